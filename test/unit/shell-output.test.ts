/**
 * The shell returns its output's parts and the workflow writes the text the model reads
 * (src/shared/tools/shell-output.ts). The promise: the model reads, byte for byte, what it read
 * when the activity returned the text, whatever the command printed, after the result has been
 * through the payload converter as history holds it; and a result recorded in the old shape is
 * read as it was.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { activityContext, toolCall } from '../helpers/tool-calls.js';
import { mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createToolActivities } from '../../src/activities/tool-activities.js';
import { commandEnvironment } from '../../src/activities/tools/env.js';
import { executeShell } from '../../src/activities/tools/shell.js';
import type { ShellMetadata, ShellOutcome, ToolActivityResult } from '../../src/shared/tools/shell-output.js';
import { shellOutputText, toolOutcome } from '../../src/shared/tools/shell-output.js';
import type { ToolOutcome } from '../../src/shared/tools/specs.js';
import { historiesDir } from '../helpers/histories.js';

/** The text as executeShell wrote it before it returned the parts (its last lines, verbatim). */
function legacyText(
  text: string,
  finished: { exitCode: number; timedOut: boolean },
  seconds: number,
  omittedBytes: number,
  sandbox?: { mode: ShellMetadata['sandbox'] },
): string {
  const metadata: Partial<ShellMetadata> = { exit_code: finished.exitCode, duration_seconds: seconds };
  if (finished.timedOut) metadata.timed_out = true;
  if (omittedBytes > 0) metadata.truncated_bytes = omittedBytes;
  if (sandbox !== undefined) metadata.sandbox = sandbox.mode;
  return JSON.stringify({ output: text, metadata });
}

/** The old text of a result in the new shape, read from its parts. */
function legacyOf(parts: ShellOutcome['shell']): string {
  const m = parts.metadata;
  return legacyText(
    parts.output,
    { exitCode: m.exit_code, timedOut: m.timed_out === true },
    m.duration_seconds,
    m.truncated_bytes ?? 0,
    m.sandbox === undefined ? undefined : { mode: m.sandbox },
  );
}

/** What the workflow gets back from history: the result through the payload converter. */
function throughHistory<T>(value: T): { value: T; bytes: number } {
  const payload = defaultPayloadConverter.toPayload(value);
  return { value: defaultPayloadConverter.fromPayload<T>(payload), bytes: payload.data?.length ?? 0 };
}

const ADVERSARIAL: Record<string, string> = {
  empty: '',
  quotes: 'say "hi" and \'bye\' and "\\"nested\\""',
  backslashes: 'C:\\path\\to\\file \\\\server\\share \\u0041 \\n',
  newlines: 'a\nb\r\nc\rd\n\n\n',
  nul: 'before\u0000after\u0000',
  controls: Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('') + '\u007f',
  'lone high surrogate': 'x\ud800y',
  'lone low surrogate': 'x\udc00y',
  'reversed pair': '\udc00\ud800',
  'surrogate at the end': 'end\ud83d',
  'astral and separators': '😀 \u2028 \u2029 \ufeff \ufffd é',
  'json-looking': '{"output":"x","metadata":{"exit_code":1}}',
  'escape soup': '\\"\n\\\n"\\'.repeat(10_000),
};

const METADATA: ShellMetadata[] = [
  { exit_code: 0, duration_seconds: 0 },
  { exit_code: 1, duration_seconds: 0.1, sandbox: 'workspace-write' },
  { exit_code: 124, duration_seconds: 600.3, timed_out: true, truncated_bytes: 49_983_616 },
  { exit_code: -1, duration_seconds: 12.7, truncated_bytes: 1, sandbox: 'read-only' },
  { exit_code: 137, duration_seconds: 1e-7, timed_out: true, sandbox: 'danger-full-access' },
];

describe('the text the model reads, from parts that went through history', () => {
  for (const [name, text] of Object.entries(ADVERSARIAL)) {
    it(`is the old text, byte for byte: ${name}`, () => {
      for (const metadata of METADATA) {
        const result: ShellOutcome = {
          shell: { output: text, metadata },
          display: 'shell · x',
          success: true,
        };
        const old = legacyOf(result.shell);
        const recorded = throughHistory(result);
        const outcome = toolOutcome(recorded.value);
        expect(Buffer.from(outcome.output).equals(Buffer.from(old))).toBe(true);
        expect(outcome.output).toBe(old);
        expect(outcome).toEqual({ output: old, display: 'shell · x', success: true });
        // The same parts, written as the activity offers them to its worker's cache.
        expect(shellOutputText(result.shell)).toBe(old);
      }
    });
  }

  it('does not depend on the order of the metadata as encoded', () => {
    const metadata = {
      sandbox: 'read-only',
      truncated_bytes: 5,
      timed_out: true,
      duration_seconds: 2,
      exit_code: 9,
    };
    const text = shellOutputText({ output: 'x', metadata: metadata as ShellMetadata });
    expect(text).toBe(
      '{"output":"x","metadata":{"exit_code":9,"duration_seconds":2,"timed_out":true,"truncated_bytes":5,"sandbox":"read-only"}}',
    );
  });

  it('puts the output in history escaped once, in fewer bytes than before', () => {
    for (const [name, text] of Object.entries(ADVERSARIAL)) {
      const metadata: ShellMetadata = { exit_code: 0, duration_seconds: 1.5, sandbox: 'workspace-write' };
      const parts = throughHistory({ shell: { output: text, metadata }, display: 'd', success: true });
      const whole = throughHistory({
        output: legacyOf({ output: text, metadata }),
        display: 'd',
        success: true,
      });
      const encoded = Buffer.from(
        defaultPayloadConverter.toPayload({ shell: { output: text, metadata } }).data!,
      );
      // The output's own JSON encoding appears as it is: no second escaping around it.
      expect(encoded.toString('utf8').includes(JSON.stringify(text)), name).toBe(true);
      expect(parts.bytes, name).toBeLessThan(whole.bytes);
    }
  });

  it('passes a result recorded as text (older workers, other tools) through unchanged', async () => {
    const history = historyFromJSON(
      JSON.parse(await readFile(path.join(historiesDir, 'checkpoints-session.json'), 'utf8')),
    );
    const recorded = (history.events ?? [])
      .flatMap((e) => e.activityTaskCompletedEventAttributes?.result?.payloads ?? [])
      .map((payload) => defaultPayloadConverter.fromPayload<unknown>(payload))
      .filter((v): v is ToolOutcome => typeof (v as ToolOutcome | null)?.output === 'string');
    const shells = recorded.filter((v) => v.output.startsWith('{"output":'));
    expect(shells.length).toBeGreaterThanOrEqual(2);
    for (const old of recorded) expect(toolOutcome(old)).toBe(old);
  });
});

describe('the shell activity', () => {
  let workspace: string;
  beforeEach(async () => {
    workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-shell-output-')));
  });
  afterEach(async () => {
    await rm(workspace, { recursive: true, force: true });
  });

  /** Runs `script` through the real activity; what it offered its cache and what it returned. */
  async function run(script: string): Promise<{ proposed: string; result: ToolActivityResult }> {
    let proposed: string | undefined;
    const activities = createToolActivities({
      transcript: {
        entries: () => Promise.reject(new Error('not asked')),
        proposeReply: () => {},
        proposeOutput: (_ref, _callId, output) => {
          proposed = output;
        },
        stats: { hits: 0, fetchedEntries: 0, queries: 0, rebuilt: 0 },
      },
      commandEnv: commandEnvironment(process.env),
      sandbox: { available: false, kind: 'none', detail: 'not used' },
    });
    const input = toolCall(workspace, { command: ['bash', '-c', script] }, { sandbox: 'danger-full-access' });
    const env = activityContext();
    const result: ToolActivityResult = await env.run(activities.shell, input);
    expect(proposed).toBeDefined();
    return { proposed: proposed!, result };
  }

  const SCRIPTS: Record<string, string> = {
    empty: 'true',
    'quotes, backslashes, newlines': `printf '%s\\n' '"q"' '\\\\' 'a\\tb' '{"k": "v\\\\"}'`,
    'NUL (binary)': `printf 'a\\0b\\0c'`,
    'invalid UTF-8': `printf 'ok \\xff\\xfe \\xed\\xa0\\x80 end\\n'`,
    'a failure on stderr': `echo 'error: "x" not found' >&2; exit 3`,
    '50 MB, truncated': `head -c 50000000 /dev/zero | tr '\\0' '"'`,
    'many lines, truncated': 'seq 1 2000000',
  };

  for (const [name, script] of Object.entries(SCRIPTS)) {
    it(`returns parts whose text, after history, is the old text: ${name}`, async () => {
      const { proposed, result } = await run(script);
      if (!('shell' in result)) throw new Error(`expected the parts, got ${JSON.stringify(result)}`);
      const old = legacyOf(result.shell);
      expect(proposed).toBe(old);
      const outcome = toolOutcome(throughHistory(result).value);
      expect(outcome.output).toBe(old);
      expect(outcome.display).toBe(result.display);
      expect(outcome.success).toBe(result.success);
      if (name.includes('truncated')) expect(result.shell.metadata.truncated_bytes).toBeGreaterThan(0);
      if (name === 'a failure on stderr') expect(result.shell.metadata.exit_code).toBe(3);
    });
  }

  it('still returns text when the command could not run', async () => {
    const parts = await executeShell(
      { command: ['no-such-program-ratchet'] },
      { workspace, signal: new AbortController().signal, heartbeat: () => {} },
      { defaultTimeoutMs: 5000, env: commandEnvironment(process.env) },
    );
    expect('shell' in parts).toBe(false);
    expect(toolOutcome(parts).output).toMatch(/command not found/);
  });
});
