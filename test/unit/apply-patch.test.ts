import { chmod, mkdir, mkdtemp, readdir, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyPatch } from '../../src/activities/tools/apply-patch.js';
import { fileTree, patch, putFile, readText } from '../helpers/files.js';
import type { ToolContext } from '../../src/activities/tools/context.js';

let workspace: string;
let outside: string;
let ctx: ToolContext;

beforeEach(async () => {
  workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-apply-patch-')));
  outside = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-outside-')));
  ctx = { workspace, signal: new AbortController().signal, heartbeat: () => {} };
});

afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

const put = (relative: string, content: string, root = workspace): Promise<void> =>
  putFile(root, relative, content);
const text = (relative: string, root = workspace): Promise<string> => readText(root, relative);
const tree = fileTree;

const greeter = [
  'export function greet(name: string): string {',
  '  const greeting = "Hello";',
  '  return `${greeting}, ${name}`;',
  '}',
  '',
  'export function part(name: string): string {',
  '  const greeting = "Hello";',
  '  return `${greeting}, ${name}`;',
  '}',
  '',
].join('\n');

describe('applyPatch', () => {
  it('adds a file, creating its directories, and ends it with a newline', async () => {
    const outcome = await applyPatch(patch('*** Add File: deep/er/new.txt', '+first', '+second'), ctx);
    expect(outcome).toEqual({
      output: 'Success. Updated the following files:\nA deep/er/new.txt',
      display: 'apply_patch · 1 file (1 added)',
      success: true,
    });
    expect(await text('deep/er/new.txt')).toBe('first\nsecond\n');
  });

  it('updates a file with context lines, leaving the rest alone', async () => {
    await put('src/app.ts', 'one\ntwo\nthree\nfour\nfive\n');
    const outcome = await applyPatch(
      patch('*** Update File: src/app.ts', '@@', ' two', '-three', '+THREE', '+three and a half', ' four'),
      ctx,
    );
    expect(outcome).toEqual({
      output: 'Success. Updated the following files:\nM src/app.ts',
      display: 'apply_patch · 1 file (1 updated)',
      success: true,
    });
    expect(await text('src/app.ts')).toBe('one\ntwo\nTHREE\nthree and a half\nfour\nfive\n');
  });

  it('locates a hunk below its "@@" header line', async () => {
    await put('greet.ts', greeter);
    const outcome = await applyPatch(
      patch(
        '*** Update File: greet.ts',
        '@@ export function part(name: string): string {',
        '-  const greeting = "Hello";',
        '+  const greeting = "Bye";',
      ),
      ctx,
    );
    expect(outcome.success).toBe(true);
    expect(await text('greet.ts')).toBe(greeter.replace(/("Hello";)(?![\s\S]*"Hello";)/, '"Bye";'));
  });

  it('applies several hunks in order, each searched below the one before', async () => {
    await put('list.txt', 'x\na\nx\nb\nx\nc\n');
    const outcome = await applyPatch(
      patch('*** Update File: list.txt', '@@', '-x', '+X1', '@@', '-x', '+X2'),
      ctx,
    );
    expect(outcome.success).toBe(true);
    expect(await text('list.txt')).toBe('X1\na\nX2\nb\nx\nc\n');
  });

  it('anchors an "*** End of File" hunk to the end of the file', async () => {
    await put('end.txt', 'same\nmiddle\nsame\n');
    const outcome = await applyPatch(
      patch('*** Update File: end.txt', '@@', '-same', '+last', '*** End of File'),
      ctx,
    );
    expect(outcome.success).toBe(true);
    expect(await text('end.txt')).toBe('same\nmiddle\nlast\n');
  });

  it('matches context whose whitespace drifted, keeping the file’s own context lines', async () => {
    await put('drift.py', 'def f():\n    x = 1   \n\ty = 2\n    return x + y\n');
    const outcome = await applyPatch(
      patch('*** Update File: drift.py', '@@', ' x = 1', '  y = 2', '-  return x + y', '+    return x * y'),
      ctx,
    );
    expect(outcome.success).toBe(true);
    expect(await text('drift.py')).toBe('def f():\n    x = 1   \n\ty = 2\n    return x * y\n');
  });

  it('prefers an exact match to an earlier match that ignores whitespace', async () => {
    await put('ws.txt', '  value\nvalue\n');
    const outcome = await applyPatch(patch('*** Update File: ws.txt', '@@', '-value', '+changed'), ctx);
    expect(outcome.success).toBe(true);
    expect(await text('ws.txt')).toBe('  value\nchanged\n');
  });

  it('prefers a match that only ignores trailing whitespace to one that ignores indentation', async () => {
    await put('ws.txt', '  value \nvalue \n');
    const outcome = await applyPatch(patch('*** Update File: ws.txt', '@@', '-value', '+changed'), ctx);
    expect(outcome.success).toBe(true);
    expect(await text('ws.txt')).toBe('  value \nchanged\n');
  });

  it('applies later operations to the result of earlier ones on the same file', async () => {
    const outcome = await applyPatch(
      patch('*** Add File: a.txt', '+one', '+two', '*** Update File: a.txt', '@@', ' one', '-two', '+2'),
      ctx,
    );
    expect(outcome.output).toBe('Success. Updated the following files:\nA a.txt\nM a.txt');
    expect(await text('a.txt')).toBe('one\n2\n');
  });

  it('deletes a file', async () => {
    await put('old/gone.txt', 'bye\n');
    const outcome = await applyPatch(patch('*** Delete File: old/gone.txt'), ctx);
    expect(outcome).toEqual({
      output: 'Success. Updated the following files:\nD old/gone.txt',
      display: 'apply_patch · 1 file (1 deleted)',
      success: true,
    });
    expect(await tree(workspace)).toEqual({});
  });

  it('moves and updates a file', async () => {
    await put('src/app.ts', 'const a = 1;\nexport { a };\n');
    const outcome = await applyPatch(
      patch(
        '*** Update File: src/app.ts',
        '*** Move to: lib/main.ts',
        '@@',
        '-const a = 1;',
        '+const a = 2;',
      ),
      ctx,
    );
    expect(outcome).toEqual({
      output: 'Success. Updated the following files:\nM lib/main.ts (moved from src/app.ts)',
      display: 'apply_patch · 1 file (1 moved)',
      success: true,
    });
    expect(await tree(workspace)).toEqual({ [path.join('lib', 'main.ts')]: 'const a = 2;\nexport { a };\n' });
  });

  it('applies a patch touching several files', async () => {
    await put('path/old.txt', 'old\n');
    await put('src/app.ts', 'hello\n');
    const outcome = await applyPatch(
      patch(
        '*** Add File: path/new.txt',
        '+new',
        '*** Delete File: path/old.txt',
        '*** Update File: src/app.ts',
        '*** Move to: src/main.ts',
        '@@',
        '-hello',
        '+goodbye',
      ),
      ctx,
    );
    expect(outcome).toEqual({
      output: [
        'Success. Updated the following files:',
        'A path/new.txt',
        'D path/old.txt',
        'M src/main.ts (moved from src/app.ts)',
      ].join('\n'),
      display: 'apply_patch · 3 files (1 added, 1 moved, 1 deleted)',
      success: true,
    });
    expect(await tree(workspace)).toEqual({
      [path.join('path', 'new.txt')]: 'new\n',
      [path.join('src', 'main.ts')]: 'goodbye\n',
    });
  });

  it('writes nothing when a hunk is not found, not even for the other files of the patch', async () => {
    await put('keep.txt', 'keep\n');
    await put('src/app.ts', 'alpha\nbeta\ngamma\n');
    await put('b.txt', 'b\n');
    const before = await tree(workspace);
    const outcome = await applyPatch(
      patch(
        '*** Add File: fresh.txt',
        '+fresh',
        '*** Delete File: keep.txt',
        '*** Update File: b.txt',
        '@@',
        '-b',
        '+B',
        '*** Update File: src/app.ts',
        '@@',
        ' alpha',
        '-delta',
        '+epsilon',
        ' gamma',
      ),
      ctx,
    );
    expect(outcome.success).toBe(false);
    expect(outcome.display).toBe('apply_patch · failed');
    expect(outcome.output).toContain('nothing was changed');
    expect(outcome.output).toContain(
      'src/app.ts: could not find the lines of the hunk. Expected:\n    alpha\n    delta\n    gamma',
    );
    expect(await tree(workspace)).toEqual(before);
  });

  it('reports a missing header and shows only the first old lines of a long hunk', async () => {
    await put('a.txt', 'one\ntwo\n');
    const missingHeader = await applyPatch(
      patch('*** Update File: a.txt', '@@ function nowhere() {', '-one'),
      ctx,
    );
    expect(missingHeader.success).toBe(false);
    expect(missingHeader.output).toContain('a.txt: could not find the line "@@ function nowhere() {"');

    const long = Array.from({ length: 9 }, (_, i) => ` missing ${i + 1}`);
    const outcome = await applyPatch(patch('*** Update File: a.txt', '@@', ' one', '@@', ...long), ctx);
    expect(outcome.output).toContain('hunk 2 of 2');
    expect(outcome.output).toContain('    missing 6\n    … (3 more lines)');
    expect(outcome.output).not.toContain('missing 7');
    expect(await text('a.txt')).toBe('one\ntwo\n');
  });

  it('reports a missing file to update, and every problem of the patch at once', async () => {
    await mkdir(path.join(workspace, 'adir'));
    const outcome = await applyPatch(
      patch(
        '*** Update File: nope.txt',
        '@@',
        '-a',
        '+b',
        '*** Add File: adir',
        '+x',
        '*** Add File: ok.txt',
        '+ok',
      ),
      ctx,
    );
    expect(outcome.success).toBe(false);
    expect(outcome.display).toBe('apply_patch · 2 problems');
    expect(outcome.output).toContain('nope.txt: cannot update it: the file does not exist');
    expect(outcome.output).toContain('adir: it is a directory');
    expect(await tree(workspace)).toEqual({});
  });

  it('refuses to update a binary file', async () => {
    await writeFile(path.join(workspace, 'bin.dat'), Buffer.from([0x61, 0x00, 0x0a]));
    const outcome = await applyPatch(patch('*** Update File: bin.dat', '@@', '-a', '+b'), ctx);
    expect(outcome.success).toBe(false);
    expect(outcome.output).toContain('bin.dat: cannot update it: it is a binary file');
  });

  it('turns a parse error into a failure that names the line', async () => {
    const outcome = await applyPatch(patch('*** Add File: a.txt', 'no plus'), ctx);
    expect(outcome.success).toBe(false);
    expect(outcome.display).toBe('apply_patch · invalid patch');
    expect(outcome.output).toContain('line 3: expected a line starting with "+"');
    expect(await tree(workspace)).toEqual({});
  });

  describe('paths outside the workspace', () => {
    it.each([
      ['a path with ".."', () => '../escape.txt'],
      ['an absolute path elsewhere', () => path.join(outside, 'escape.txt')],
      ['a symbolic link that points outside', () => 'link/escape.txt'],
      ['a move target outside', () => '../moved.txt'],
    ])('refuses %s and writes nothing', async (name, escaping) => {
      await symlink(outside, path.join(workspace, 'link'));
      await put('inside.txt', 'inside\n');
      const before = await tree(workspace);
      const operation =
        name === 'a move target outside'
          ? ['*** Update File: inside.txt', `*** Move to: ${escaping()}`, '@@', '-inside', '+moved']
          : ['*** Add File: ' + escaping(), '+escaped'];
      const outcome = await applyPatch(
        patch('*** Add File: fine.txt', '+fine', '*** Delete File: inside.txt', ...operation),
        ctx,
      );
      expect(outcome.success).toBe(false);
      expect(outcome.display).toBe('apply_patch · path outside the workspace');
      expect(outcome.output).toContain(JSON.stringify(escaping()));
      expect(await tree(workspace)).toEqual(before);
      expect(await tree(outside)).toEqual({});
      for (const name of ['escape.txt', 'moved.txt']) {
        await expect(stat(path.join(workspace, '..', name))).rejects.toThrow(/ENOENT/);
      }
    });

    it('accepts an absolute path inside the workspace', async () => {
      const outcome = await applyPatch(patch(`*** Add File: ${path.join(workspace, 'abs.txt')}`, '+x'), ctx);
      expect(outcome.output).toBe('Success. Updated the following files:\nA abs.txt');
      expect(await text('abs.txt')).toBe('x\n');
    });

    it('writes through a symbolic link inside the workspace, keeping the link', async () => {
      await put('real/target.txt', 'before\n');
      await symlink(path.join(workspace, 'real/target.txt'), path.join(workspace, 'alias.txt'));
      const outcome = await applyPatch(patch('*** Update File: alias.txt', '@@', '-before', '+after'), ctx);
      expect(outcome.success).toBe(true);
      expect(await tree(workspace)).toEqual({
        'alias.txt': '<link>',
        [path.join('real', 'target.txt')]: 'after\n',
      });
    });
  });

  describe('files as they are', () => {
    it('keeps CRLF line endings, for changed and added lines too', async () => {
      await put('win.txt', 'one\r\ntwo\r\nthree\r\n');
      const outcome = await applyPatch(
        patch('*** Update File: win.txt', '@@', ' one', '-two', '+TWO', '+2.5'),
        ctx,
      );
      expect(outcome.success).toBe(true);
      expect(await text('win.txt')).toBe('one\r\nTWO\r\n2.5\r\nthree\r\n');
    });

    it('applies a CRLF patch to an LF file without bringing in carriage returns', async () => {
      await put('unix.txt', 'one\ntwo\n');
      const outcome = await applyPatch(
        patch('*** Update File: unix.txt', '@@', '-two', '+2').replaceAll('\n', '\r\n'),
        ctx,
      );
      expect(outcome.success).toBe(true);
      expect(await text('unix.txt')).toBe('one\n2\n');
    });

    it('ends an updated file with a line break, as Codex does', async () => {
      await put('nonl.txt', 'one\ntwo');
      expect((await applyPatch(patch('*** Update File: nonl.txt', '@@', '-one', '+ONE'), ctx)).success).toBe(
        true,
      );
      expect(await text('nonl.txt')).toBe('ONE\ntwo\n');
      const appended = await applyPatch(
        patch('*** Update File: nonl.txt', '@@', ' two', '+three', '*** End of File'),
        ctx,
      );
      expect(appended.success).toBe(true);
      expect(await text('nonl.txt')).toBe('ONE\ntwo\nthree\n');
    });

    it('keeps the mode of an updated or moved file', async () => {
      await put('run.sh', '#!/bin/sh\necho hi\n');
      await chmod(path.join(workspace, 'run.sh'), 0o775);
      const outcome = await applyPatch(
        patch('*** Update File: run.sh', '*** Move to: bin/run.sh', '@@', '-echo hi', '+echo bye'),
        ctx,
      );
      expect(outcome.success).toBe(true);
      expect((await stat(path.join(workspace, 'bin/run.sh'))).mode & 0o777).toBe(0o775);
    });

    it('leaves no temporary files behind', async () => {
      await put('src/a.txt', 'a\n');
      await applyPatch(
        patch('*** Update File: src/a.txt', '@@', '-a', '+b', '*** Add File: src/c.txt', '+c'),
        ctx,
      );
      expect((await readdir(path.join(workspace, 'src'))).sort()).toEqual(['a.txt', 'c.txt']);
    });
  });

  describe('the same patch sent again in a new call', () => {
    it('writes an add again and reports it as added, not as already applied', async () => {
      const edit = patch('*** Add File: a/new.txt', '+hello');
      expect((await applyPatch(edit, ctx)).success).toBe(true);
      const again = await applyPatch(edit, ctx);
      expect(again).toEqual({
        output: 'Success. Updated the following files:\nA a/new.txt',
        display: 'apply_patch · 1 file (1 added)',
        success: true,
      });
      expect(await tree(workspace)).toEqual({ [path.join('a', 'new.txt')]: 'hello\n' });
    });

    it('lets an add overwrite a file with other content', async () => {
      await put('a.txt', 'old\n');
      const outcome = await applyPatch(patch('*** Add File: a.txt', '+new'), ctx);
      expect(outcome.output).toBe('Success. Updated the following files:\nA a.txt');
      expect(await text('a.txt')).toBe('new\n');
    });

    it('fails an update whose old lines are gone, and says the result looks present', async () => {
      await put('a.txt', 'one\ntwo\nthree\n');
      const edit = patch('*** Update File: a.txt', '@@', ' one', '-two', '+TWO', ' three');
      expect((await applyPatch(edit, ctx)).success).toBe(true);
      const again = await applyPatch(edit, ctx);
      expect(again.success).toBe(false);
      expect(again.output).toContain('a.txt: could not find the lines of the hunk');
      expect(again.output).toContain('already contains the lines this patch would leave');
      expect(again.output).not.toContain('already applied');
      expect(await text('a.txt')).toBe('one\nTWO\nthree\n');
    });

    it('adds the lines of a pure addition again, as asked', async () => {
      await put('imports.ts', '// imports\nimport a from "a";\n');
      const edit = patch('*** Update File: imports.ts', '@@ // imports', '+import b from "b";');
      expect((await applyPatch(edit, ctx)).success).toBe(true);
      expect(await text('imports.ts')).toBe('// imports\nimport b from "b";\nimport a from "a";\n');
      expect((await applyPatch(edit, ctx)).success).toBe(true);
      expect(await text('imports.ts')).toBe(
        '// imports\nimport b from "b";\nimport b from "b";\nimport a from "a";\n',
      );
    });

    it('appends a line equal to the last line (a first attempt never says "already applied")', async () => {
      await put('list.txt', 'one\ntwo\n');
      const outcome = await applyPatch(patch('*** Update File: list.txt', '+two'), ctx);
      expect(outcome.output).toBe('Success. Updated the following files:\nM list.txt');
      expect(await text('list.txt')).toBe('one\ntwo\ntwo\n');
      const after = await applyPatch(
        patch('*** Update File: list.txt', '@@', ' one', ' two', ' two', '+two'),
        ctx,
      );
      expect(after.success).toBe(true);
      expect(await text('list.txt')).toBe('one\ntwo\ntwo\ntwo\n');
    });

    it('fails a delete of a file that is gone, and a move from nowhere', async () => {
      const deleted = await applyPatch(patch('*** Delete File: gone.txt'), ctx);
      expect(deleted.success).toBe(false);
      expect(deleted.output).toContain('gone.txt: cannot delete it: the file does not exist');
      await put('src/main.ts', 'a\nc\n');
      const moved = await applyPatch(
        patch('*** Update File: src/app.ts', '*** Move to: src/main.ts', '@@', ' a', '-b', '+c'),
        ctx,
      );
      expect(moved.success).toBe(false);
      expect(moved.output).toContain('src/app.ts: cannot update it: the file does not exist');
    });
  });

  it('throws the abort reason when cancelled before writing, and writes nothing', async () => {
    const controller = new AbortController();
    const reason = new Error('cancelled');
    controller.abort(reason);
    await expect(
      applyPatch(patch('*** Add File: a.txt', '+x'), { ...ctx, signal: controller.signal }),
    ).rejects.toBe(reason);
    expect(await tree(workspace)).toEqual({});
  });
});
