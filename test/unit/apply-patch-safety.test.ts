/**
 * apply_patch against what can go wrong around it: a worker that dies mid-write (the journal and
 * the retry), paths into git's directories, links swapped while a patch is written, and Codex's
 * matching semantics that models rely on.
 */
import { lstat, mkdtemp, readdir, realpath, rename, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyPatch } from '../../src/activities/tools/apply-patch.js';
import { fileTree, patch, putFile, readText } from '../helpers/files.js';
import type { ToolContext } from '../../src/activities/tools/context.js';
import { PatchJournal } from '../../src/activities/tools/patch-journal.js';
import { WorkspaceFs } from '../../src/activities/tools/workspace-fs.js';

let workspace: string;
let outside: string;
let journals: string;
let ctx: ToolContext;

beforeEach(async () => {
  workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-patch-safety-')));
  outside = await realpath(await mkdtemp(path.join(tmpdir(), 'ratchet-outside-')));
  journals = await mkdtemp(path.join(tmpdir(), 'ratchet-journal-'));
  ctx = { workspace, signal: new AbortController().signal, heartbeat: () => {} };
});

afterEach(async () => {
  for (const dir of [workspace, outside, journals]) await rm(dir, { recursive: true, force: true });
});

const put = (relative: string, content: string, root = workspace): Promise<void> =>
  putFile(root, relative, content);
const text = (relative: string, root = workspace): Promise<string> => readText(root, relative);
const tree = fileTree;

function journalFor(edit: string, callId = 'call-1'): PatchJournal {
  return new PatchJournal(journals, { sessionId: 'session-1', callId, patch: edit });
}

describe('a retry of the same call, finished from the journal', () => {
  const edit = patch(
    '*** Add File: path/new.txt',
    '+new',
    '*** Delete File: path/old.txt',
    '*** Update File: src/app.ts',
    '*** Move to: src/main.ts',
    '@@',
    '-hello',
    '+goodbye',
    '*** Update File: notes.md',
    '@@',
    ' a',
    '+a2',
    ' b',
  );

  async function original(): Promise<void> {
    await put('path/old.txt', 'old\n');
    await put('src/app.ts', 'hello\nworld\n');
    await put('notes.md', 'a\nb\n');
  }

  const result = {
    [path.join('path', 'new.txt')]: 'new\n',
    [path.join('src', 'main.ts')]: 'goodbye\nworld\n',
    'notes.md': 'a\na2\nb\n',
  };

  it('writes the files a cut-off attempt had not written, and says which were already there', async () => {
    await original();
    expect((await applyPatch(edit, ctx, { journal: journalFor(edit) })).success).toBe(true);
    expect(await tree(workspace)).toEqual(result);
    // As if the worker had died after writing two of the five changes.
    await rm(path.join(workspace, 'notes.md'));
    await put('notes.md', 'a\nb\n');
    await put('src/app.ts', 'hello\nworld\n');
    await put('path/old.txt', 'old\n');
    const retried = await applyPatch(edit, ctx, { journal: journalFor(edit) });
    expect(retried.success).toBe(true);
    expect(retried.output).toBe(
      [
        'Success. Updated the following files:',
        'A path/new.txt (already applied by an earlier attempt of this call)',
        'D path/old.txt',
        'M src/main.ts (moved from src/app.ts)',
        'M notes.md',
        'The worker running this call stopped after writing 1 file; this retry found it as the patch leaves it and wrote the rest.',
      ].join('\n'),
    );
    expect(await tree(workspace)).toEqual(result);
  });

  it('changes nothing when the whole result is in place, and says so of every file', async () => {
    await original();
    await applyPatch(edit, ctx, { journal: journalFor(edit) });
    const retried = await applyPatch(edit, ctx, { journal: journalFor(edit) });
    expect(retried.display).toBe(
      'apply_patch · 4 files (1 added, 1 updated, 1 moved, 1 deleted, 4 already applied)',
    );
    expect(await tree(workspace)).toEqual(result);
  });

  it('applies normally, saying nothing of "already applied", when the first attempt died before its journal', async () => {
    // A whitespace-only edit: its new lines match the old ones loosely, never exactly.
    await put('ws.txt', 'value   \nnext\n');
    const trim = patch('*** Update File: ws.txt', '@@', '-value   ', '+value');
    const outcome = await applyPatch(trim, ctx, { journal: journalFor(trim) });
    expect(outcome.output).toBe('Success. Updated the following files:\nM ws.txt');
    expect(await text('ws.txt')).toBe('value\nnext\n');
  });

  it('writes nothing and says what changed when a file was changed by someone else since', async () => {
    await original();
    await applyPatch(edit, ctx, { journal: journalFor(edit) });
    await put('notes.md', 'edited by a person\n');
    await put('src/app.ts', 'hello\nworld\n');
    const retried = await applyPatch(edit, ctx, { journal: journalFor(edit) });
    expect(retried.success).toBe(false);
    expect(retried.output).toContain('since then notes.md changed in a way this patch did not make');
    expect(await text('notes.md')).toBe('edited by a person\n');
    expect(await text('src/app.ts')).toBe('hello\nworld\n');
  });

  it('removes the temporary file a cut-off write left beside its target', async () => {
    await put('a.txt', 'one\n');
    const change = patch('*** Update File: a.txt', '@@', '-one', '+two');
    const journal = journalFor(change);
    await applyPatch(change, ctx, { journal });
    await put('a.txt', 'one\n');
    await put(journal.temporaryFor('a.txt'), 'two\n');
    expect((await applyPatch(change, ctx, { journal: journalFor(change) })).success).toBe(true);
    expect(await readdir(workspace)).toEqual(['a.txt']);
    expect(await text('a.txt')).toBe('two\n');
  });

  it('keeps one journal per call: another call with the same patch is a new application', async () => {
    await put('list.txt', 'one\n');
    const add = patch('*** Update File: list.txt', '+two');
    await applyPatch(add, ctx, { journal: journalFor(add, 'call-1') });
    const second = await applyPatch(add, ctx, { journal: journalFor(add, 'call-2') });
    expect(second.output).toBe('Success. Updated the following files:\nM list.txt');
    expect(await text('list.txt')).toBe('one\ntwo\ntwo\n');
  });
});

describe('git directories', () => {
  beforeEach(async () => {
    await put('.git/config', '[core]\n\tbare = false\n');
    await put('.git/hooks/pre-commit.sample', '#!/bin/sh\n');
    await put('sub/.git/config', '[core]\n');
    await put('file.txt', 'x\n');
  });

  it.each([
    ['the config', ['*** Update File: .git/config', '@@', ' [core]', '+\tfsmonitor = ./evil']],
    ['a new hook', ['*** Add File: .git/hooks/pre-commit', '+#!/bin/sh']],
    [
      'a hook by a move',
      ['*** Update File: .git/hooks/pre-commit.sample', '*** Move to: .git/hooks/pre-commit', '@@', '+x'],
    ],
    ['a move into .git', ['*** Update File: file.txt', '*** Move to: .git/hooks/post-checkout', '@@', '+x']],
    ['another letter case', ['*** Add File: .GIT/hooks/pre-commit', '+#!/bin/sh']],
    ['a nested repository', ['*** Update File: sub/.git/config', '@@', ' [core]', '+\tfsmonitor = x']],
    ['a path through ..', ['*** Add File: sub/../.git/info/attributes', '+* filter=evil']],
  ])('refuses %s and writes nothing', async (_name, body) => {
    const before = await tree(workspace);
    const outcome = await applyPatch(patch('*** Add File: fine.txt', '+fine', ...body), ctx);
    expect(outcome.success).toBe(false);
    expect(outcome.display).toBe('apply_patch · path in a git directory');
    expect(await tree(workspace)).toEqual(before);
  });

  it('refuses a committed link that points into .git, as auto-edit would otherwise allow', async () => {
    await symlink('.git/config', path.join(workspace, 'innocent.cfg'));
    await symlink('.git', path.join(workspace, 'gitdir'));
    for (const body of [
      ['*** Update File: innocent.cfg', '@@', ' [core]', '+\tfsmonitor = ./evil'],
      ['*** Add File: gitdir/hooks/pre-commit', '+#!/bin/sh'],
    ]) {
      const outcome = await applyPatch(patch(...body), ctx);
      expect(outcome.display).toBe('apply_patch · path in a git directory');
    }
    expect(await text('.git/config')).toBe('[core]\n\tbare = false\n');
    await expect(lstat(path.join(workspace, '.git/hooks/pre-commit'))).rejects.toThrow(/ENOENT/);
  });
});

describe('links swapped while a patch is written', () => {
  it('fails the write instead of following a directory swapped for a link to outside', async () => {
    await put('dir/file.txt', 'inside\n');
    const fs = new WorkspaceFs(workspace);
    const canonical = await fs.resolve('dir/file.txt');
    expect(canonical).toBe('dir/file.txt');
    // Between the check and the write, another process swaps the directory for a link.
    await rename(path.join(workspace, 'dir'), path.join(workspace, 'dir.orig'));
    await symlink(outside, path.join(workspace, 'dir'));
    await expect(fs.write(canonical, 'pwned\n', undefined, '.file.txt.tmp')).rejects.toThrow(/ELOOP|ENOTDIR/);
    await expect(fs.remove(canonical)).rejects.toThrow(/ELOOP|ENOTDIR/);
    expect(await tree(outside)).toEqual({});
  });

  it('replaces a file swapped for a link, rather than writing through it', async () => {
    await put('file.txt', 'inside\n');
    await put('secret.txt', 'secret\n', outside);
    const fs = new WorkspaceFs(workspace);
    const canonical = await fs.resolve('file.txt');
    await rm(path.join(workspace, 'file.txt'));
    await symlink(path.join(outside, 'secret.txt'), path.join(workspace, 'file.txt'));
    expect(await fs.read(canonical)).toEqual({
      kind: 'other',
      reason: 'changed while the patch was applied',
    });
    await fs.write(canonical, 'new\n', undefined, '.file.txt.tmp');
    expect(await text('secret.txt', outside)).toBe('secret\n');
    expect(await text('file.txt')).toBe('new\n');
  });

  it('resolves links inside the workspace to their targets, and refuses any that leave it', async () => {
    await put('real/target.txt', 'x\n');
    await symlink('real', path.join(workspace, 'alias'));
    await symlink('../real/target.txt', path.join(workspace, 'real/self.txt'));
    await symlink(outside, path.join(workspace, 'away'));
    await symlink('loop2', path.join(workspace, 'loop1'));
    await symlink('loop1', path.join(workspace, 'loop2'));
    const fs = new WorkspaceFs(workspace);
    expect(await fs.resolve('alias/target.txt')).toBe('real/target.txt');
    expect(await fs.resolve('alias/self.txt')).toBe('real/target.txt');
    expect(await fs.resolve('alias/new/deeper.txt')).toBe('real/new/deeper.txt');
    for (const escaping of ['away/x.txt', 'loop1/x', '../x', path.join(outside, 'x'), 'a\0b']) {
      await expect(fs.resolve(escaping)).rejects.toThrow(/outside the workspace/);
    }
  });
});

describe('Codex matching semantics', () => {
  it('matches context written with ASCII punctuation against typographic punctuation in the file', async () => {
    await put('doc.md', 'Intro\n“Quoted” — it’s\u00a0here\nEnd\n');
    const outcome = await applyPatch(
      patch('*** Update File: doc.md', '@@', ' Intro', '-"Quoted" - it\'s here', '+Plain now', ' End'),
      ctx,
    );
    expect(outcome.success).toBe(true);
    expect(await text('doc.md')).toBe('Intro\nPlain now\nEnd\n');
  });

  it('prefers an exact match to one that reads punctuation as ASCII', async () => {
    await put('doc.md', 'a – b\na - b\n');
    const outcome = await applyPatch(patch('*** Update File: doc.md', '@@', '-a - b', '+changed'), ctx);
    expect(outcome.success).toBe(true);
    expect(await text('doc.md')).toBe('a – b\nchanged\n');
  });

  it('applies a chunk of pure additions followed by a chunk that edits earlier lines', async () => {
    await put('list.txt', 'one\ntwo\nthree\n');
    const outcome = await applyPatch(
      patch('*** Update File: list.txt', '@@', '+four', '@@', '-one', '+ONE'),
      ctx,
    );
    expect(outcome.success).toBe(true);
    expect(await text('list.txt')).toBe('ONE\ntwo\nthree\nfour\n');
  });

  it('locates a header written with ASCII punctuation', async () => {
    await put('doc.md', '## Setup — quick\nold\n## Other\nold\n');
    const outcome = await applyPatch(
      patch('*** Update File: doc.md', '@@ ## Setup - quick', '-old', '+new'),
      ctx,
    );
    expect(outcome.success).toBe(true);
    expect(await text('doc.md')).toBe('## Setup — quick\nnew\n## Other\nold\n');
  });
});
