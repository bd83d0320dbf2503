import { mkdir, mkdtemp, realpath, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ToolContext } from '../../src/activities/tools/context.js';
import { executeGrepFiles } from '../../src/activities/tools/grep-files.js';

let workspace: string;
let outside: string;
let ctx: ToolContext;

beforeEach(async () => {
  workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-grep-files-')));
  outside = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-outside-')));
  ctx = { workspace, signal: new AbortController().signal, heartbeat: () => {} };
});

afterEach(async () => {
  await rm(workspace, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

/** Writes files whose modification times increase in the order given (the last is the newest). */
async function write(files: Record<string, string | Buffer>): Promise<void> {
  let second = 1_700_000_000;
  for (const [relative, content] of Object.entries(files)) {
    const absolute = path.join(workspace, relative);
    await mkdir(path.dirname(absolute), { recursive: true });
    await writeFile(absolute, content);
    second += 10;
    await utimes(absolute, second, second);
  }
}

async function gitInit(): Promise<void> {
  const result = await execa('git', ['init', '--quiet'], { cwd: workspace, reject: false });
  if (result.exitCode !== 0) {
    throw new Error(`git is needed for this test (install it, e.g. apt-get install git): ${result.message}`);
  }
}

describe('executeGrepFiles', () => {
  it('returns matching files, most recently modified first', async () => {
    await write({
      'old.ts': 'export const needle = 1;\n',
      'other.ts': 'nothing here\n',
      'src/newer.ts': 'const x = needle;\n',
      'src/newest.md': 'a needle in the docs\n',
    });
    const outcome = await executeGrepFiles({ pattern: 'needle' }, ctx);
    expect(outcome).toEqual({
      output: 'src/newest.md\nsrc/newer.ts\nold.ts',
      display: 'grep_files · /needle/ · 3 files',
      success: true,
    });
  });

  it('matches ^ and $ at line boundaries', async () => {
    await write({ 'a.ts': 'const a = 1;\nimport x from "x";\n', 'b.ts': 'const b = "import y";\n' });
    const outcome = await executeGrepFiles({ pattern: '^import\\b' }, ctx);
    expect(outcome.output).toBe('a.ts');
  });

  it('stops at the limit and says that more files match', async () => {
    await write(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}.txt`, 'match\n'])));
    const outcome = await executeGrepFiles({ pattern: 'match', limit: 3 }, ctx);
    expect(outcome.output.split('\n')).toEqual([
      'f7.txt',
      'f6.txt',
      'f5.txt',
      '[More files match; these are the 3 most recently modified. Narrow the search with path or include.]',
    ]);
    expect(outcome.display).toBe('grep_files · /match/ · 3+ files');
  });

  it('filters by include, on the base name or on the whole path', async () => {
    await write({
      'a.ts': 'hit',
      'src/b.ts': 'hit',
      'src/c.js': 'hit',
      'lib/d.ts': 'hit',
      '.hidden.ts': 'hit',
    });
    const byName = await executeGrepFiles({ pattern: 'hit', include: '*.ts' }, ctx);
    expect(byName.output.split('\n').sort()).toEqual(['.hidden.ts', 'a.ts', 'lib/d.ts', 'src/b.ts']);
    const byPath = await executeGrepFiles({ pattern: 'hit', include: 'src/**/*.ts' }, ctx);
    expect(byPath.output).toBe('src/b.ts');
  });

  it('searches only under path, which may also be a single file', async () => {
    await write({ 'a.ts': 'hit', 'src/b.ts': 'hit', 'src/deep/c.ts': 'hit' });
    const dir = await executeGrepFiles({ pattern: 'hit', path: 'src' }, ctx);
    expect(dir.output).toBe('src/deep/c.ts\nsrc/b.ts');
    expect(dir.display).toBe('grep_files · /hit/ in src · 2 files');
    const file = await executeGrepFiles({ pattern: 'hit', path: 'a.ts' }, ctx);
    expect(file.output).toBe('a.ts');
  });

  it('outside git, skips .git, node_modules, symbolic links, binary files and files over 4 MiB', async () => {
    await writeFile(path.join(outside, 'target.ts'), 'hit');
    await write({
      'kept.ts': 'hit',
      '.git/config': 'hit',
      'node_modules/pkg/index.js': 'hit',
      'sub/node_modules/pkg/index.js': 'hit',
      'image.bin': Buffer.concat([Buffer.from('hit'), Buffer.from([0, 1, 2])]),
      'huge.txt': Buffer.concat([Buffer.alloc(4 * 1024 * 1024, 'a'), Buffer.from('hit')]),
      'almost-huge.txt': Buffer.concat([Buffer.alloc(4 * 1024 * 1024 - 3, 'a'), Buffer.from('hit')]),
    });
    await symlink(path.join(outside, 'target.ts'), path.join(workspace, 'link.ts'));
    const outcome = await executeGrepFiles({ pattern: 'hit' }, ctx);
    expect(outcome.output).toBe('almost-huge.txt\nkept.ts');
  });

  it('in a git working copy, honours .gitignore and includes untracked files', async () => {
    await gitInit();
    await write({
      '.gitignore': 'build/\n*.log\n',
      'src/app.ts': 'hit',
      'build/out.js': 'hit',
      'debug.log': 'hit',
      'notes.txt': 'hit',
    });
    const outcome = await executeGrepFiles({ pattern: 'hit' }, ctx);
    expect(outcome.output).toBe('notes.txt\nsrc/app.ts');

    const inSubdirectory = await executeGrepFiles({ pattern: 'hit', path: 'src' }, ctx);
    expect(inSubdirectory.output).toBe('src/app.ts');

    // An ignored directory asked for by name is still searched.
    const ignored = await executeGrepFiles({ pattern: 'hit', path: 'build' }, ctx);
    expect(ignored.output).toBe('build/out.js');
  });

  it('honours nested .gitignore files, and negations', async () => {
    await write({
      '.gitignore': '*.log\n!keep.log\n',
      'keep.log': 'hit',
      'drop.log': 'hit',
      'pkg/.gitignore': 'gen/\n',
      'pkg/gen/x.ts': 'hit',
      'pkg/src/y.ts': 'hit',
    });
    const outcome = await executeGrepFiles({ pattern: 'hit' }, ctx);
    expect(outcome.output.split('\n').sort()).toEqual(['keep.log', 'pkg/src/y.ts']);
  });

  it('runs no git: a planted fsmonitor, hook or nested repository runs nothing', async () => {
    const marker = path.join(outside, 'pwned');
    await gitInit();
    await write({ 'a.ts': 'hit', 'nested/b.ts': 'hit' });
    await execa('git', ['init', '--quiet', 'nested'], { cwd: workspace });
    for (const repo of [workspace, path.join(workspace, 'nested')]) {
      await execa('git', ['config', 'core.fsmonitor', `touch ${marker}; false`], { cwd: repo });
    }
    const outcome = await executeGrepFiles({ pattern: 'hit', path: 'nested' }, ctx);
    expect(outcome.output).toBe('nested/b.ts');
    expect((await executeGrepFiles({ pattern: 'hit' }, ctx)).output.split('\n').sort()).toEqual([
      'a.ts',
      'nested/b.ts',
    ]);
    await expect(realpath(marker)).rejects.toThrow();
  });

  it('matches in linear time: a pattern that backtracks for ever in RegExp returns at once', async () => {
    await write({ 'a.txt': `${'a'.repeat(50_000)}!` });
    const started = performance.now();
    const outcome = await executeGrepFiles({ pattern: '(a+)+$' }, ctx);
    expect(outcome.output).toBe('No matches found.');
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('says so when nothing matches', async () => {
    await write({ 'a.ts': 'nothing' });
    const outcome = await executeGrepFiles({ pattern: 'absent' }, ctx);
    expect(outcome).toEqual({
      output: 'No matches found.',
      display: 'grep_files · /absent/ · no matches',
      success: true,
    });
  });

  it('reports an invalid regular expression, a missing path and an escaping path as errors', async () => {
    const invalid = await executeGrepFiles({ pattern: 'foo(' }, ctx);
    expect(invalid.success).toBe(false);
    expect(invalid.output).toMatch(/^Invalid regular expression: .*missing closing \)/);
    expect(invalid.output).toContain('RE2 syntax');

    const missing = await executeGrepFiles({ pattern: 'x', path: 'nope' }, ctx);
    expect(missing.success).toBe(false);
    expect(missing.output).toContain('Path not found: nope');

    await writeFile(path.join(outside, 'secret.ts'), 'hit');
    await symlink(outside, path.join(workspace, 'out'));
    for (const requested of ['..', outside, 'out']) {
      const outcome = await executeGrepFiles({ pattern: 'hit', path: requested }, ctx);
      expect(outcome.success, requested).toBe(false);
      expect(outcome.output, requested).toContain('outside the workspace');
    }
  });

  it('stops with the abort reason when cancelled', async () => {
    await write({ 'a.ts': 'hit' });
    const controller = new AbortController();
    const reason = new Error('cancelled by test');
    controller.abort(reason);
    await expect(executeGrepFiles({ pattern: 'hit' }, { ...ctx, signal: controller.signal })).rejects.toBe(
      reason,
    );
  });
});
