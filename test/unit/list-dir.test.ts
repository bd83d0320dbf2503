import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ToolContext } from '../../src/activities/tools/context.js';
import { executeListDir } from '../../src/activities/tools/list-dir.js';

let workspace: string;
let outside: string;
let ctx: ToolContext;

beforeEach(async () => {
  workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-list-dir-')));
  outside = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-outside-')));
  ctx = { workspace, signal: new AbortController().signal, heartbeat: () => {} };
});

afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function files(root: string, paths: string[]): Promise<void> {
  for (const relative of paths) {
    const absolute = path.join(root, relative);
    if (relative.endsWith('/')) {
      await mkdir(absolute, { recursive: true });
    } else {
      await mkdir(path.dirname(absolute), { recursive: true });
      await writeFile(absolute, relative);
    }
  }
}

describe('executeListDir', () => {
  it('lists a tree two levels deep, sorted, with directories and links marked', async () => {
    await files(workspace, [
      'src/b.ts',
      'src/a.ts',
      'src/deep/deeper/x.ts',
      'README.md',
      '.git/HEAD',
      'node_modules/pkg/index.js',
      'empty/',
    ]);
    await writeFile(path.join(outside, 'target.txt'), 'x');
    await mkdir(path.join(outside, 'dir'));
    await writeFile(path.join(outside, 'dir/hidden.txt'), 'x');
    await symlink(path.join(outside, 'dir'), path.join(workspace, 'src/linked-dir'));
    await symlink(path.join(outside, 'target.txt'), path.join(workspace, 'link.txt'));

    const outcome = await executeListDir({ dir_path: '.' }, ctx);
    expect(outcome.success).toBe(true);
    expect(outcome.output).toBe(
      [
        `Absolute path: ${workspace}`,
        '.git/ (not expanded)',
        'README.md',
        'empty/',
        'link.txt@',
        'node_modules/ (not expanded)',
        'src/',
        '  a.ts',
        '  b.ts',
        '  deep/',
        '  linked-dir@',
      ].join('\n'),
    );
    expect(outcome.display).toBe('list_dir · . · 10 of 10 entries');
  });

  it('descends as deep as asked, and no deeper', async () => {
    await files(workspace, ['src/deep/deeper/x.ts', 'top.txt']);
    const one = await executeListDir({ dir_path: '.', depth: 1 }, ctx);
    expect(one.output.split('\n').slice(1)).toEqual(['src/', 'top.txt']);

    const four = await executeListDir({ dir_path: 'src', depth: 4 }, ctx);
    expect(four.output.split('\n')).toEqual([
      `Absolute path: ${path.join(workspace, 'src')}`,
      'deep/',
      '  deeper/',
      '    x.ts',
    ]);
  });

  it('pages through entries by offset and limit and says how many remain', async () => {
    await files(
      workspace,
      Array.from({ length: 12 }, (_, i) => `f${String(i + 1).padStart(2, '0')}.txt`),
    );
    const first = await executeListDir({ dir_path: '.', limit: 5 }, ctx);
    expect(first.output.split('\n')).toEqual([
      `Absolute path: ${workspace}`,
      'f01.txt',
      'f02.txt',
      'f03.txt',
      'f04.txt',
      'f05.txt',
      '[7 more entries; continue with offset 6.]',
    ]);

    const last = await executeListDir({ dir_path: '.', offset: 11, limit: 5 }, ctx);
    expect(last.output.split('\n')).toEqual([`Absolute path: ${workspace}`, 'f11.txt', 'f12.txt']);
    expect(last.display).toBe('list_dir · . · 2 of 12 entries');

    const past = await executeListDir({ dir_path: '.', offset: 13 }, ctx);
    expect(past.success).toBe(false);
    expect(past.output).toContain('Offset 13 is past the end: . has 12 entries');
  });

  it('reports an empty directory', async () => {
    await files(workspace, ['empty/']);
    const outcome = await executeListDir({ dir_path: 'empty' }, ctx);
    expect(outcome).toMatchObject({
      success: true,
      output: `Absolute path: ${workspace}/empty\n[empty is empty.]`,
    });
  });

  it('reports a missing directory, a file and an escaping path as errors', async () => {
    await files(workspace, ['file.txt']);
    await symlink(outside, path.join(workspace, 'out'));

    const missing = await executeListDir({ dir_path: 'nope' }, ctx);
    expect(missing).toMatchObject({ success: false, display: 'list_dir · nope · error' });
    expect(missing.output).toContain('Directory not found: nope');

    const file = await executeListDir({ dir_path: 'file.txt' }, ctx);
    expect(file.success).toBe(false);
    expect(file.output).toContain('read_file');

    for (const dir_path of ['..', outside, 'out']) {
      const outcome = await executeListDir({ dir_path }, ctx);
      expect(outcome.success, dir_path).toBe(false);
      expect(outcome.output, dir_path).toContain('outside the workspace');
    }
  });
});
