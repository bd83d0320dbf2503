import pc from 'picocolors';
import { describe, expect, it } from 'vitest';
import { LiveLine } from '../../src/cli/live-line.js';
import {
  SPINNER_FRAMES,
  colorsFor,
  formatElapsed,
  plain,
  renderApproval,
  renderEntry,
  renderLiveLine,
  renderPatchPreview,
  spinnerFrame,
} from '../../src/cli/render.js';
import { escapeControl } from '../../src/shared/util/escape.js';
import { decide } from '../../src/shared/policy/policy.js';
import type { ToolRequest } from '../../src/shared/policy/policy.js';
import type { PendingApproval } from '../../src/shared/api/session-api.js';
import { toolCallSummary } from '../../src/shared/tools/summary.js';
import type { TranscriptEntry } from '../../src/shared/api/session-config.js';

const colors = pc.createColors(true);
const ESC = '\x1b';
const GREEN = '\x1b[32m';
const RED = '\x1b[31m';
const BOLD = '\x1b[1m';

function approval(tool: string, args: unknown, summary: string): PendingApproval {
  return {
    callId: 'call_1',
    tool,
    arguments: args,
    summary,
    reason: 'the policy asks',
    turn: 1,
    requestedAt: '2026-01-01T00:00:00.000Z',
  };
}

describe('spinner and elapsed time', () => {
  it('cycles through the frames, whatever the tick', () => {
    expect(spinnerFrame(0)).toBe(SPINNER_FRAMES[0]);
    expect(spinnerFrame(SPINNER_FRAMES.length + 3)).toBe(SPINNER_FRAMES[3]);
    expect(spinnerFrame(-1)).toBe(SPINNER_FRAMES.at(-1));
  });

  it('formats seconds, minutes and hours, and a clock behind the server as 0s', () => {
    expect(formatElapsed(0)).toBe('0s');
    expect(formatElapsed(42_999)).toBe('42s');
    expect(formatElapsed(65_000)).toBe('1m 05s');
    expect(formatElapsed(2 * 3600_000 + 4 * 60_000 + 59_000)).toBe('2h 04m');
    expect(formatElapsed(-3000)).toBe('0s');
  });

  it('renders the live line from the step and its start, cut to the width', () => {
    const step = { label: 'shell · npm test', since: '2026-01-01T00:00:00.000Z' };
    const now = Date.parse(step.since) + 83_000;
    expect(renderLiveLine(step, now, 2, plain)).toBe(`${SPINNER_FRAMES[2]} shell · npm test  1m 23s`);
    const long = { ...step, label: `model · ${'x'.repeat(200)}` };
    const line = renderLiveLine(long, now, 0, plain, 40);
    expect(line.length).toBeLessThan(40);
    expect(line).toMatch(/… {2}1m 23s$/);
    expect(renderLiveLine({ ...step, since: 'not a time' }, now, 0, plain)).toBe(
      `${SPINNER_FRAMES[0]} shell · npm test`,
    );
  });
});

describe('patch preview', () => {
  const patch = [
    '*** Begin Patch',
    '*** Update File: src/a.ts',
    '@@ function a() {',
    '-  return 1;',
    '+  return 2;',
    ' }',
    '*** End Patch',
  ].join('\n');

  it('colours additions green, removals red and headers bold', () => {
    const lines = renderPatchPreview(patch, colors).split('\n');
    expect(lines[1]).toBe(`    ${BOLD}*** Update File: src/a.ts${ESC}[22m`);
    expect(lines[3]).toContain(`${RED}-  return 1;`);
    expect(lines[4]).toContain(`${GREEN}+  return 2;`);
  });

  it('stops at 40 lines and says how many more there are', () => {
    const big = [
      '*** Begin Patch',
      '*** Add File: big.txt',
      ...Array.from({ length: 100 }, (_, i) => `+${i}`),
    ];
    const lines = renderPatchPreview(big.join('\n'), plain).split('\n');
    expect(lines).toHaveLength(41);
    expect(lines[39]).toBe('    +37');
    expect(lines[40]).toBe('    … 62 more lines');
    expect(renderPatchPreview(big.slice(0, 40).join('\n'), plain).split('\n')).toHaveLength(40);
  });
});

describe('approvals', () => {
  it('show a patch with its preview and a command in full, with its directory', () => {
    const patchText = renderApproval(
      approval(
        'apply_patch',
        { input: '*** Begin Patch\n*** Add File: x\n+hi\n*** End Patch' },
        'apply_patch · x',
      ),
      plain,
    );
    expect(patchText.split('\n')).toEqual([
      'approval needed apply_patch · x (call_1)',
      '  the policy asks',
      '    *** Begin Patch',
      '    *** Add File: x',
      '    +hi',
      '    *** End Patch',
    ]);
    const script = 'npm ci\nnpm test -- --reporter dot ' + 'x'.repeat(100);
    const shellText = renderApproval(
      approval('shell', { command: ['bash', '-lc', script], workdir: 'pkg' }, 'shell · npm ci …'),
      plain,
    );
    expect(shellText.split('\n').slice(2)).toEqual([
      '    $ npm ci',
      `      npm test -- --reporter dot ${'x'.repeat(100)}`,
      '    in pkg',
    ]);
  });
});

describe('colours', () => {
  const entry: TranscriptEntry = {
    item: { type: 'function_call_output', call_id: 'c', output: 'x' },
    turn: 1,
    display: 'exit 1',
    success: false,
  };

  it('are off for a pipe, even in CI, and with NO_COLOR; on for a terminal or FORCE_COLOR', () => {
    expect(colorsFor({ isTTY: false }, { CI: 'true' }).isColorSupported).toBe(false);
    expect(colorsFor({}, {}).isColorSupported).toBe(false);
    expect(colorsFor({ isTTY: true }, {}).isColorSupported).toBe(true);
    expect(colorsFor({ isTTY: true }, { NO_COLOR: '1' }).isColorSupported).toBe(false);
    expect(colorsFor({ isTTY: true }, { TERM: 'dumb' }).isColorSupported).toBe(false);
    expect(colorsFor({ isTTY: false }, { FORCE_COLOR: '1' }).isColorSupported).toBe(true);
    expect(renderEntry(entry, colorsFor({ isTTY: false }, {}))).toBe('✗ exit 1');
    expect(renderEntry(entry, colors)).toBe(`${RED}✗ exit 1${ESC}[39m`);
  });
});

describe('the live line', () => {
  /** A stand-in terminal that records every write. */
  function terminal() {
    const writes: string[] = [];
    const out = { columns: 60, write: (text: string) => writes.push(text) > 0 };
    return { writes, out: out as unknown as NodeJS.WritableStream };
  }

  it('redraws in place and clears itself before a permanent line', () => {
    const { writes, out } = terminal();
    const line = new LiveLine(out, plain, 60_000);
    line.set({ label: 'model · turn 1 · 3 items in context', since: new Date().toISOString() });
    line.print('✓ shell · ls');
    line.stop();
    expect(writes).toEqual([
      `\r\x1b[2K${SPINNER_FRAMES[0]} model · turn 1 · 3 items in context  0s`,
      '\r\x1b[2K',
      '✓ shell · ls\n',
      `\r\x1b[2K${SPINNER_FRAMES[1]} model · turn 1 · 3 items in context  0s`,
      '\r\x1b[2K',
    ]);
  });

  it('writes nothing while there is no step', () => {
    const { writes, out } = terminal();
    const line = new LiveLine(out, plain, 60_000);
    line.set(null);
    line.print('session completed');
    line.stop();
    expect(writes).toEqual(['session completed\n']);
  });
});

describe('control characters from the model', () => {
  // The review's spoof: the terminal showed only `npm test`; answering y ran the rest.
  const spoof = 'echo pwned>spoof.txt;#\x1b[22Dnpm test\x1b[K';
  const request: ToolRequest = { tool: 'shell', kind: 'execute', command: ['bash', '-lc', spoof] };
  // eslint-disable-next-line no-control-regex -- Ratchet's own colour codes
  const shown = (text: string): string => text.replace(/\x1b\[[0-9;]*m/g, ''); // Ratchet's own colours

  it('are escaped in the approval prompt, its summary and its reason, byte for byte visible', () => {
    const summary = toolCallSummary('shell', { command: ['bash', '-lc', spoof] });
    const reason = decide(request, 'untrusted', []).reason;
    const text = renderApproval(approval('shell', { command: ['bash', '-lc', spoof] }, summary), colors);
    for (const part of [summary, reason, shown(text)]) {
      expect(part).not.toContain(ESC);
      expect(part).toContain('echo pwned>spoof.txt;#\\x1b[22Dnpm test\\x1b[K');
    }
  });

  it('are escaped in every line a session prints: messages, results, status, live line, patches', () => {
    const hostile = 'ok\r\x1b]0;title\x07\u202eevil\x9b';
    const message: TranscriptEntry = {
      item: { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: hostile }] },
    } as TranscriptEntry;
    const output: TranscriptEntry = {
      item: { type: 'function_call_output', call_id: 'c', output: '' },
      display: hostile,
      success: true,
    } as TranscriptEntry;
    const call: TranscriptEntry = {
      item: { type: 'function_call', call_id: 'c', name: hostile, arguments: '{}' },
    } as TranscriptEntry;
    const lines = [
      renderEntry(message, plain),
      renderEntry(output, plain),
      renderEntry(call, plain),
      renderLiveLine({ label: hostile, since: new Date().toISOString() }, Date.now(), 0, plain, 200),
      renderPatchPreview(`*** Begin Patch\n+${hostile}\n`, plain),
      escapeControl(hostile),
    ];
    for (const line of lines) {
      // eslint-disable-next-line no-control-regex -- no control character may be left
      expect(line).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]/);
      expect(line).toContain('\\x1b');
    }
    expect(escapeControl(hostile)).toBe('ok\\r\\x1b]0;title\\x07\\u202eevil\\x9b');
    expect(escapeControl('tab\there\nnext')).toBe('tab\there\nnext');
  });
});
