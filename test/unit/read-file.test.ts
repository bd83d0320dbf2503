import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ToolContext } from '../../src/activities/tools/context.js';
import { executeReadFile } from '../../src/activities/tools/read-file.js';
import { openInWorkspace, resolveInWorkspace } from '../../src/activities/tools/workspace-paths.js';

let workspace: string;
let outside: string;
let ctx: ToolContext;

beforeEach(async () => {
  workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-read-file-')));
  outside = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-outside-')));
  ctx = { workspace, signal: new AbortController().signal, heartbeat: () => {} };
});

afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

function lines(count: number, width = 10): string {
  return Array.from({ length: count }, (_, i) => `${String(i + 1).padStart(width, '-')}\n`).join('');
}

describe('executeReadFile', () => {
  it('numbers the lines', async () => {
    await mkdir(path.join(workspace, 'src'));
    await writeFile(path.join(workspace, 'src/app.ts'), 'const a = 1;\n\nexport { a };\n');
    const outcome = await executeReadFile({ file_path: 'src/app.ts' }, ctx);
    expect(outcome).toEqual({
      output: 'L1: const a = 1;\nL2: \nL3: export { a };',
      display: 'read_file · src/app.ts · L1-3',
      success: true,
    });
  });

  it('reads a last line without a newline, and drops carriage returns', async () => {
    await writeFile(path.join(workspace, 'crlf.txt'), 'one\r\ntwo\r\nthree');
    const outcome = await executeReadFile({ file_path: 'crlf.txt' }, ctx);
    expect(outcome.output).toBe('L1: one\nL2: two\nL3: three');
  });

  it('returns the window from offset, at most limit lines, and says where to continue', async () => {
    await writeFile(path.join(workspace, 'f.txt'), lines(30));
    const outcome = await executeReadFile({ file_path: 'f.txt', offset: 10, limit: 5 }, ctx);
    expect(outcome.success).toBe(true);
    expect(outcome.output.split('\n')).toEqual([
      'L10: --------10',
      'L11: --------11',
      'L12: --------12',
      'L13: --------13',
      'L14: --------14',
      '[More lines follow. Continue with offset 15.]',
    ]);
    expect(outcome.display).toBe('read_file · f.txt · L10-14');

    const end = await executeReadFile({ file_path: 'f.txt', offset: 26, limit: 5 }, ctx);
    expect(end.output).not.toContain('More lines');
    expect(end.output.split('\n').at(-1)).toBe('L30: --------30');
  });

  it('reads 2000 lines by default', async () => {
    await writeFile(path.join(workspace, 'f.txt'), lines(2500, 4));
    const outcome = await executeReadFile({ file_path: 'f.txt' }, ctx);
    const shown = outcome.output.split('\n');
    expect(shown).toHaveLength(2001);
    expect(shown[1999]).toBe('L2000: 2000');
    expect(shown[2000]).toBe('[More lines follow. Continue with offset 2001.]');
  });

  it('cuts lines longer than 500 characters, without splitting a character', async () => {
    await writeFile(
      path.join(workspace, 'long.txt'),
      `${'x'.repeat(1200)}\n${'€'.repeat(600)}\n${'z'.repeat(1_000_000)}\nshort\n`,
    );
    const outcome = await executeReadFile({ file_path: 'long.txt' }, ctx);
    expect(outcome.output.split('\n')).toEqual([
      `L1: ${'x'.repeat(500)} [… line cut at 500 characters; 700 more bytes]`,
      `L2: ${'€'.repeat(500)} [… line cut at 500 characters; 300 more bytes]`,
      `L3: ${'z'.repeat(500)} [… line cut at 500 characters; 999,500 more bytes]`,
      'L4: short',
    ]);
  });

  it('stops under 64 KiB and names the offset to continue from', async () => {
    const line = (n: number): string => `${String(n).padStart(5, '0')} ${'y'.repeat(94)}`;
    await writeFile(
      path.join(workspace, 'big.txt'),
      Array.from({ length: 2000 }, (_, i) => `${line(i + 1)}\n`).join(''),
    );
    const outcome = await executeReadFile({ file_path: 'big.txt' }, ctx);
    expect(outcome.success).toBe(true);
    expect(Buffer.byteLength(outcome.output)).toBeLessThanOrEqual(64 * 1024);
    const note = /\[Output stopped after L(\d+) to stay under 64 KiB\. Continue with offset (\d+)\.\]$/.exec(
      outcome.output,
    );
    expect(note).not.toBeNull();
    const last = Number(note?.[1]);
    expect(Number(note?.[2])).toBe(last + 1);
    expect(last).toBeGreaterThan(500);
    expect(outcome.output).toContain(`L${last}: ${line(last)}\n`);

    const next = await executeReadFile({ file_path: 'big.txt', offset: last + 1, limit: 1 }, ctx);
    expect(next.output.split('\n')[0]).toBe(`L${last + 1}: ${line(last + 1)}`);
  });

  it('refuses a binary file', async () => {
    await writeFile(
      path.join(workspace, 'image.png'),
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01, 0x02]),
    );
    const outcome = await executeReadFile({ file_path: 'image.png' }, ctx);
    expect(outcome.success).toBe(false);
    expect(outcome.output).toBe('image.png is a binary file (7 bytes); read_file reads text only.');
  });

  it('reports a missing file, a directory and an offset past the end as errors the model can act on', async () => {
    await mkdir(path.join(workspace, 'src'));
    await writeFile(path.join(workspace, 'three.txt'), 'a\nb\nc\n');

    const missing = await executeReadFile({ file_path: 'src/nope.ts' }, ctx);
    expect(missing).toMatchObject({ success: false, display: 'read_file · src/nope.ts · error' });
    expect(missing.output).toContain('File not found: src/nope.ts');

    const directory = await executeReadFile({ file_path: 'src' }, ctx);
    expect(directory.success).toBe(false);
    expect(directory.output).toContain('is a directory');
    expect(directory.output).toContain('list_dir');

    const past = await executeReadFile({ file_path: 'three.txt', offset: 4 }, ctx);
    expect(past.success).toBe(false);
    expect(past.output).toBe(
      'Offset 4 is past the end of three.txt, which has 3 lines. Use an offset between 1 and 3.',
    );
  });

  it('reads an empty file as empty', async () => {
    await writeFile(path.join(workspace, 'empty.txt'), '');
    const outcome = await executeReadFile({ file_path: 'empty.txt' }, ctx);
    expect(outcome).toMatchObject({ success: true, output: '[empty.txt is empty.]' });
  });

  it('refuses paths that leave the workspace', async () => {
    await writeFile(path.join(outside, 'secret.txt'), 'top secret\n');
    await symlink(path.join(outside, 'secret.txt'), path.join(workspace, 'link.txt'));

    for (const file_path of [path.join(outside, 'secret.txt'), '../x.txt', 'link.txt']) {
      const outcome = await executeReadFile({ file_path }, ctx);
      expect(outcome.success, file_path).toBe(false);
      expect(outcome.output, file_path).toContain('outside the workspace');
      expect(outcome.output).not.toContain('top secret');
    }
  });

  it('follows a symbolic link that stays inside the workspace', async () => {
    await writeFile(path.join(workspace, 'real.txt'), 'inside\n');
    await symlink('real.txt', path.join(workspace, 'alias.txt'));
    const outcome = await executeReadFile({ file_path: 'alias.txt' }, ctx);
    expect(outcome.output).toBe('L1: inside');
  });
});

describe('openInWorkspace', () => {
  it('catches a directory swapped for a link to outside after the path was checked', async () => {
    await mkdir(path.join(workspace, 'sub'));
    await writeFile(path.join(workspace, 'sub', 'f.txt'), 'inside\n');
    await writeFile(path.join(outside, 'f.txt'), 'outside secret\n');
    const absolute = await resolveInWorkspace(workspace, 'sub/f.txt');
    // The swap a concurrent command could make between the check and the read.
    await rm(path.join(workspace, 'sub'), { recursive: true });
    await symlink(outside, path.join(workspace, 'sub'));
    await expect(openInWorkspace(workspace, absolute)).rejects.toThrow(/outside the workspace/);
    // A link that stays inside is still fine.
    await mkdir(path.join(workspace, 'real'));
    await writeFile(path.join(workspace, 'real', 'g.txt'), 'g\n');
    await symlink(path.join(workspace, 'real'), path.join(workspace, 'alias'));
    const handle = await openInWorkspace(workspace, path.join(workspace, 'alias', 'g.txt'));
    await handle.close();
  });

  it('does not wait on a FIFO put where a file was', async () => {
    await execa('mkfifo', [path.join(workspace, 'pipe')]);
    await expect(openInWorkspace(workspace, path.join(workspace, 'pipe'))).rejects.toMatchObject({
      code: 'ENOTREG',
    });
  });
});
