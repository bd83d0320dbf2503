import { describe, expect, it } from 'vitest';
import { decide } from '../../src/shared/policy/policy.js';
import { patchFromCommand } from '../../src/shared/tools/shell-patch.js';
import { prepareCall } from '../../src/workflows/tool-calls.js';

const body = ['*** Begin Patch', '*** Update File: a.txt', '@@', '-one', '+two', '*** End Patch'].join('\n');

describe('patchFromCommand', () => {
  it.each([
    ['apply_patch with the patch as its argument', ['apply_patch', body], undefined],
    ['applypatch', ['applypatch', body], undefined],
    ['bash -lc with a quoted heredoc', ['bash', '-lc', `apply_patch <<'EOF'\n${body}\nEOF\n`], undefined],
    [
      'bash -lc with a double-quoted heredoc',
      ['bash', '-lc', `apply_patch <<"PATCH"\n${body}\nPATCH`],
      undefined,
    ],
    ['sh -c with a bare heredoc', ['sh', '-c', `apply_patch <<EOF\n${body}\nEOF`], undefined],
    ['a cd before it', ['bash', '-lc', `cd src/lib && apply_patch <<'EOF'\n${body}\nEOF\n`], 'src/lib'],
    ['a quoted cd', ['bash', '-lc', `cd 'my dir' && apply_patch <<'EOF'\n${body}\nEOF\n`], 'my dir'],
  ])('finds the patch in %s', (_name, command, workdir) => {
    expect(patchFromCommand(command)).toEqual(
      workdir === undefined ? { patch: body } : { patch: body, workdir },
    );
  });

  it("joins the call's workdir and a cd", () => {
    expect(patchFromCommand(['bash', '-lc', `cd lib && apply_patch <<'EOF'\n${body}\nEOF`], 'pkg')).toEqual({
      patch: body,
      workdir: 'pkg/lib',
    });
    expect(patchFromCommand(['apply_patch', body], 'pkg')).toEqual({ patch: body, workdir: 'pkg' });
  });

  it.each([
    ['a command after the heredoc', ['bash', '-lc', `apply_patch <<'EOF'\n${body}\nEOF\nrm -rf ~`]],
    ['a command chained on the opening line', ['bash', '-lc', `apply_patch <<'EOF' && curl x\n${body}\nEOF`]],
    ['a command before it', ['bash', '-lc', `rm x; apply_patch <<'EOF'\n${body}\nEOF`]],
    ['a cd with an expansion', ['bash', '-lc', `cd $(evil) && apply_patch <<'EOF'\n${body}\nEOF`]],
    ['an unclosed heredoc', ['bash', '-lc', `apply_patch <<'EOF'\n${body}\n`]],
    ['something that is not a patch', ['apply_patch', 'hello']],
    ['another program', ['cat', body]],
    ['extra arguments', ['apply_patch', body, '--force']],
  ])('leaves %s a shell command', (_name, command) => {
    expect(patchFromCommand(command)).toBeUndefined();
  });
});

describe('prepareCall with a patch sent through the shell', () => {
  const call = (command: string[]) => ({
    type: 'function_call' as const,
    call_id: 'c1',
    name: 'shell',
    arguments: JSON.stringify({ command }),
  });

  it("runs it as apply_patch, under apply_patch's policy and with its summary", () => {
    const prepared = prepareCall(
      call(['bash', '-lc', `cd src && apply_patch <<'EOF'\n${body}\nEOF`]),
      (request) => decide(request, 'auto-edit', []),
    );
    expect(prepared).toMatchObject({
      kind: 'tool',
      tool: 'apply_patch',
      args: { input: body, workdir: 'src' },
      readOnly: false,
      summary: 'apply_patch · src/a.txt',
      request: { tool: 'apply_patch', kind: 'edit', paths: ['src/a.txt'] },
      decision: { action: 'allow' },
    });
  });

  it('keeps it a shell command when the workflow says the session predates this', () => {
    const prepared = prepareCall(
      call(['apply_patch', body]),
      (request) => decide(request, 'untrusted', []),
      () => false,
    );
    expect(prepared).toMatchObject({ kind: 'tool', tool: 'shell' });
  });
});
