/**
 * 7. What a checkpoint costs on the worker: a repository of 10,000 files, and one with a 100 MB
 * binary (committed, and new in the working tree). The first checkpoint of a session reads every
 * file; later ones read only files whose stat changed. Restoring is measured after a turn that
 * changed a few files. No Temporal server is involved: this is the activity's own work.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { CheckpointScope } from '../../src/activities/checkpoint.js';
import { restoreCheckpoint, takeCheckpoint } from '../../src/activities/checkpoint.js';
import { locateRepository } from '../../src/activities/workspace-git.js';
import type { Spread } from '../stats.js';
import { round, spread } from '../stats.js';

export interface CheckpointCase {
  name: string;
  /** Milliseconds. */
  first: Spread;
  unchanged: Spread;
  afterEdit: Spread;
  restore: Spread;
  /** `git status` on the same tree, for scale (ms). */
  gitStatus: Spread;
  /** Growth of the object store from the first checkpoint (bytes, median). */
  objectBytesFirst: number;
}

export interface CheckpointsResult {
  cases: CheckpointCase[];
}

async function git(dir: string, ...args: string[]): Promise<string> {
  return (await execa('git', args, { cwd: dir })).stdout;
}

async function objectBytes(dir: string): Promise<number> {
  const out = await git(dir, 'count-objects', '-v');
  const kib = (key: string) => Number(new RegExp(`^${key}: (\\d+)`, 'm').exec(out)?.[1] ?? 0);
  return (kib('size') + kib('size-pack')) * 1024;
}

async function newRepo(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-bench-checkpoint-'));
  await git(dir, 'init', '-q', '-b', 'main');
  await git(dir, 'config', 'user.email', 'bench@example.com');
  await git(dir, 'config', 'user.name', 'Bench');
  // No background gc racing the measurements (or the clean-up).
  await git(dir, 'config', 'gc.auto', '0');
  return dir;
}

const timed = async (run: () => Promise<unknown>) => {
  const started = performance.now();
  await run();
  return performance.now() - started;
};

interface Fixture {
  name: string;
  make: (dir: string) => Promise<void>;
  /** What a turn changes before the third checkpoint. */
  edit: (dir: string, round: number) => Promise<void>;
}

const FIXTURES: Fixture[] = [
  {
    name: '10,000 files (1 KiB each, 100 directories), committed',
    make: async (dir) => {
      for (let d = 0; d < 100; d++) {
        await mkdir(path.join(dir, `dir${d}`));
        await Promise.all(
          Array.from({ length: 100 }, (_, f) =>
            writeFile(path.join(dir, `dir${d}`, `file${f}.ts`), `// ${d}/${f}\n${'x'.repeat(1000)}\n`),
          ),
        );
      }
      await git(dir, 'add', '-A');
      await git(dir, 'commit', '-q', '-m', 'files');
    },
    edit: async (dir, n) => {
      for (let f = 0; f < 10; f++) await writeFile(path.join(dir, 'dir7', `file${f}.ts`), `edited ${n}\n`);
      await writeFile(path.join(dir, `new-${n}.ts`), 'new\n');
    },
  },
  {
    name: '100 MB binary, committed',
    make: async (dir) => {
      await writeFile(path.join(dir, 'model.bin'), randomBytes(100 * 1024 * 1024));
      await writeFile(path.join(dir, 'README'), 'readme\n');
      await git(dir, 'add', '-A');
      await git(dir, 'commit', '-q', '-m', 'binary');
    },
    edit: async (dir, n) => writeFile(path.join(dir, 'README'), `edited ${n}\n`),
  },
  {
    name: '100 MB binary, new in the working tree (not committed)',
    make: async (dir) => {
      await writeFile(path.join(dir, 'README'), 'readme\n');
      await git(dir, 'add', '-A');
      await git(dir, 'commit', '-q', '-m', 'readme');
      await writeFile(path.join(dir, 'model.bin'), randomBytes(100 * 1024 * 1024));
    },
    edit: async (dir, n) => writeFile(path.join(dir, 'README'), `edited ${n}\n`),
  },
];

export async function checkpoints(options: {
  runs: number;
  log: (message: string) => void;
}): Promise<CheckpointsResult> {
  const cases: CheckpointCase[] = [];
  for (const fixture of FIXTURES) {
    const samples = {
      first: [],
      unchanged: [],
      afterEdit: [],
      restore: [],
      gitStatus: [],
      bytes: [],
    } as Record<string, number[]>;
    for (let run = 0; run < options.runs; run++) {
      const dir = await newRepo();
      const stateDir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-bench-checkpoint-state-'));
      try {
        await fixture.make(dir);
        const location = await locateRepository(dir);
        if ('problem' in location) throw new Error(location.problem);
        const scope: CheckpointScope = { location, root: dir, sessionId: `bench-${run}`, stateDir };
        const bytesBefore = await objectBytes(dir);
        let first!: Awaited<ReturnType<typeof takeCheckpoint>>;
        samples.first!.push(
          await timed(async () => (first = await takeCheckpoint(scope, { turn: 0, message: 'start\n' }))),
        );
        samples.bytes!.push((await objectBytes(dir)) - bytesBefore);
        samples.unchanged!.push(
          await timed(() => takeCheckpoint(scope, { turn: 1, message: 'same\n', since: first.commit })),
        );
        await fixture.edit(dir, run);
        samples.afterEdit!.push(
          await timed(() => takeCheckpoint(scope, { turn: 2, message: 'edit\n', since: first.commit })),
        );
        samples.restore!.push(await timed(() => restoreCheckpoint(scope, first.commit)));
        samples.gitStatus!.push(
          await timed(() => git(dir, 'status', '--porcelain', '--untracked-files=all')),
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
        await rm(stateDir, { recursive: true, force: true });
      }
    }
    const result: CheckpointCase = {
      name: fixture.name,
      first: spread(samples.first!),
      unchanged: spread(samples.unchanged!),
      afterEdit: spread(samples.afterEdit!),
      restore: spread(samples.restore!),
      gitStatus: spread(samples.gitStatus!),
      objectBytesFirst: spread(samples.bytes!).median,
    };
    options.log(
      `  ${fixture.name}: first ${round(result.first.median, 0)} ms, unchanged ${round(result.unchanged.median, 0)} ms, ` +
        `after an edit ${round(result.afterEdit.median, 0)} ms, restore ${round(result.restore.median, 0)} ms ` +
        `(git status ${round(result.gitStatus.median, 0)} ms); objects +${round(result.objectBytesFirst / 2 ** 20, 1)} MiB`,
    );
    cases.push(result);
  }
  return { cases };
}
