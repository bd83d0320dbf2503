/**
 * `npx tsx bench/fan-out.ts`: one task split into 4 child sessions against the same work done by
 * one session, with the scripted model answering each call after 500 ms; and what one worktree
 * costs (time, disk) on a repository of 10,000 files. Prints Markdown for docs/PERFORMANCE.md.
 *
 * Each part is PART_TURNS model calls: reads, one patch, a last message. Sequentially one session
 * does the 4 parts (4 × (PART_TURNS − 1) + 1 calls); fanned out, the parent spawns 4 children in
 * one reply, waits for all in one reply, merges all in one reply and answers (4 calls), while
 * each child does one part. PART_TURNS may list sizes (`PART_TURNS=10,20`): each run then measures
 * every size, sequential and fanned out, one after another, so all figures come from one run.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { execa } from 'execa';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createWorktreeActivities } from '../src/activities/worktree.js';
import { createWorkspaceActivities } from '../src/activities/workspace.js';
import type { SessionResult } from '../src/shared/api/session-api.js';
import type { RecordedRequest, ScriptStep, ScriptedOutput } from '../src/testing/scripted-model.js';
import { BenchEnv, sessionConfig, withModel } from './env.js';

const PARTS = 4;
const SIZES = (process.env.PART_TURNS ?? '10').split(',').map((text) => {
  const size = Number(text.trim());
  if (!Number.isInteger(size) || size < 3 || size > 200)
    throw new Error(`PART_TURNS: "${text}" is not a whole number of model calls from 3 to 200`);
  return size;
});
const DELAY_MS = 500;
const RUNS = Number(process.env.RUNS ?? 3);

Runtime.install({ logger: new DefaultLogger('WARN') });
const log = (message: string) => process.stderr.write(`${message}\n`);

const step = (...output: ScriptedOutput[]): ScriptStep => ({
  kind: 'reply',
  output,
  usage: { inputTokens: 10, outputTokens: 5 },
  delayMs: DELAY_MS,
});
const fc = (name: string, args: Record<string, unknown>): ScriptedOutput => ({
  type: 'function_call',
  name,
  arguments: args,
});

function partSteps(part: number, partTurns: number): ScriptStep[] {
  const file = `part${part}.txt`;
  return [
    ...Array.from({ length: partTurns - 2 }, () => step(fc('read_file', { file_path: file }))),
    step(
      fc('apply_patch', {
        input: [
          '*** Begin Patch',
          `*** Update File: ${file}`,
          `-part ${part}`,
          `+PART ${part}`,
          '*** End Patch',
        ].join('\n'),
      }),
    ),
  ];
}

/** Replies a request carries (a run of calls is one reply): the step that answers it. */
function repliesIn(body: unknown): number {
  const input = (body as { input?: { type?: string }[] }).input ?? [];
  return input.filter((item, i) => item.type === 'function_call' && input[i - 1]?.type !== 'function_call')
    .length;
}

function sessionOf(body: unknown): string {
  const key = (body as { prompt_cache_key?: unknown }).prompt_cache_key;
  const text = typeof key === 'string' ? key : '';
  return text.includes('/') ? text.slice(text.lastIndexOf('/') + 1) : 'parent';
}

const ids = Array.from({ length: PARTS }, (_, i) => `agent-${i + 1}`);
function sequentialScript(partTurns: number): ScriptStep[] {
  return [
    ...Array.from({ length: PARTS }, (_, i) => partSteps(i + 1, partTurns)).flat(),
    step({ type: 'message', text: 'all parts done' }),
  ];
}
function fanOutScript(partTurns: number): Record<string, ScriptStep[]> {
  return {
    parent: [
      step(...ids.map((_, i) => fc('spawn_agent', { message: `part ${i + 1}` }))),
      step(...ids.map((id) => fc('wait', { ids: [id], timeout_ms: 300_000 }))),
      step(...ids.map((id) => fc('merge_agent', { id }))),
      step({ type: 'message', text: 'all parts merged' }),
    ],
    ...Object.fromEntries(
      ids.map((id, i) => [
        id,
        [...partSteps(i + 1, partTurns), step({ type: 'message', text: `${id} done` })],
      ]),
    ),
  };
}
const scripts = new Map(
  SIZES.map((size) => [size, { sequential: sequentialScript(size), fanOut: fanOutScript(size) }]),
);

/** Session ids carry the size: `seq-<size>-<run>`, `fan-<size>-<run>` (and its `/agent-N`). */
function responder(request: RecordedRequest): ScriptStep | undefined {
  const key = (request.body as { prompt_cache_key?: unknown }).prompt_cache_key;
  const match = typeof key === 'string' ? /(seq|fan)-(\d+)-/.exec(key) : null;
  const script = match ? scripts.get(Number(match[2])) : undefined;
  if (!script) return undefined;
  const steps = match![1] === 'seq' ? script.sequential : script.fanOut[sessionOf(request.body)];
  return steps?.[repliesIn(request.body)];
}

async function events(env: BenchEnv, id: string): Promise<number> {
  return (await env.client.workflow.getHandle(id).fetchHistory()).events?.length ?? 0;
}

type HistoryEvent = NonNullable<
  Awaited<ReturnType<ReturnType<BenchEnv['client']['workflow']['getHandle']>['fetchHistory']>>['events']
>[number];

function ms(event: HistoryEvent | undefined): number {
  const time = event?.eventTime;
  return time ? Number(time.seconds ?? 0) * 1000 + Math.round((time.nanos ?? 0) / 1e6) : Number.NaN;
}

/** Each activity of a history: its type, when it was scheduled and when it closed (ms). */
function activitySpans(history: HistoryEvent[]): { type: string; from: number; to: number }[] {
  const scheduled = new Map<string, { type: string; from: number }>();
  const spans: { type: string; from: number; to: number }[] = [];
  for (const event of history) {
    const attributes = event.activityTaskScheduledEventAttributes;
    if (attributes)
      scheduled.set(String(event.eventId), { type: attributes.activityType?.name ?? '', from: ms(event) });
    const closed =
      event.activityTaskCompletedEventAttributes ??
      event.activityTaskFailedEventAttributes ??
      event.activityTaskTimedOutEventAttributes;
    const start = closed ? scheduled.get(String(closed.scheduledEventId)) : undefined;
    if (start) spans.push({ ...start, to: ms(event) });
  }
  return spans;
}

/**
 * Where a fanned-out run's wall time goes, from the histories (server time): the parent's first
 * model call, the spawns (worktree + child start), each child's start-up before its first model
 * call and its own run, the merges, and the parent's end after its last model call.
 */
async function profile(env: BenchEnv, parentId: string): Promise<string[]> {
  const history = async (id: string) => (await env.client.workflow.getHandle(id).fetchHistory()).events ?? [];
  const parent = await history(parentId);
  const start = ms(parent[0]);
  const end = ms(parent.at(-1));
  const spans = activitySpans(parent);
  const models = spans.filter((s) => s.type === 'model');
  const of = (type: string) => spans.filter((s) => s.type === type);
  const sum = (list: { from: number; to: number }[]) => list.reduce((t, s) => t + (s.to - s.from), 0);
  const lines = [
    `parent: first model call ends at ${(models[0]!.to - start).toFixed(0)} ms; ` +
      `${of('createAgentWorktree').length} worktrees ${sum(of('createAgentWorktree')).toFixed(0)} ms in all; ` +
      `${of('mergeAgentBranch').length} merges ${sum(of('mergeAgentBranch')).toFixed(0)} ms; ` +
      `${of('removeAgentWorktree').length} removals ${sum(of('removeAgentWorktree')).toFixed(0)} ms; ` +
      `after its last model call ${(end - models.at(-1)!.to).toFixed(0)} ms; total ${(end - start).toFixed(0)} ms`,
  ];
  for (const id of ids) {
    const child = await history(`${parentId}/${id}`);
    const childSpans = activitySpans(child);
    const firstModel = childSpans.find((s) => s.type === 'model');
    const childModels = childSpans.filter((s) => s.type === 'model');
    // Before its first model call: each activity, and the time between them (workflow tasks).
    const before = childSpans.filter((s) => s.to <= firstModel!.from);
    const activityMs = sum(before);
    const startup = before.map((s) => `${s.type} ${(s.to - s.from).toFixed(0)}`).join(', ');
    lines.push(
      `${id}: start-up ${(firstModel!.from - ms(child[0])).toFixed(0)} ms = activities [${startup}] ` +
        `${activityMs.toFixed(0)} ms + between them ${(firstModel!.from - ms(child[0]) - activityMs).toFixed(0)} ms`,
    );
    lines.push(
      `${id}: started at ${(ms(child[0]) - start).toFixed(0)} ms; first model call scheduled ` +
        `${(firstModel!.from - ms(child[0])).toFixed(0)} ms after its start; ${childModels.length} model calls ` +
        `${sum(childModels).toFixed(0)} ms; between them ${(ms(child.at(-1)) - ms(child[0]) - sum(childModels)).toFixed(0)} ms; ` +
        `ended at ${(ms(child.at(-1)) - start).toFixed(0)} ms`,
    );
  }
  return lines;
}

const env = await BenchEnv.start(log);
try {
  const git = (...args: string[]) =>
    execa('git', ['-C', env.repo, '-c', 'user.email=b@x', '-c', 'user.name=b', ...args]);
  for (let part = 1; part <= PARTS; part++)
    await writeFile(path.join(env.repo, `part${part}.txt`), `part ${part}\n`);
  await git('add', '-A');
  await git('commit', '-q', '-m', 'parts');

  interface SizeResults {
    sequential: number[];
    fanned: number[];
    history: { parent: number; child: number; sequential: number };
  }
  const results = await withModel({ responder }, async (model) => {
    const taskQueue = 'bench-fan-out';
    const { worker } = await env.worker(taskQueue, model);
    const ratchet = env.ratchet(taskQueue);
    return worker.runUntil(async () => {
      const bySize = new Map<number, SizeResults>(
        SIZES.map((size) => [
          size,
          { sequential: [], fanned: [], history: { parent: 0, child: 0, sequential: 0 } },
        ]),
      );
      for (let run = 0; run < RUNS; run++) {
        for (const size of SIZES) {
          const { sequential, fanned, history } = bySize.get(size)!;
          await git('checkout', '-q', '--', '.');
          let started = performance.now();
          const one = await ratchet.start(
            sessionConfig('bench: four parts, one session', env.repo),
            `seq-${size}-${run}`,
          );
          const r1 = (await env.client.workflow.getHandle(one.sessionId).result()) as SessionResult;
          sequential.push(performance.now() - started);
          if (r1.filesChanged.length !== PARTS)
            throw new Error(`sequential changed ${r1.filesChanged.length} files`);
          history.sequential = await events(env, one.sessionId);
          await git('checkout', '-q', '--', '.');

          started = performance.now();
          const tree = await ratchet.start(
            sessionConfig('bench: four parts, four agents', env.repo, { agents: { max: PARTS } }),
            `fan-${size}-${run}`,
          );
          const r2 = (await env.client.workflow.getHandle(tree.sessionId).result()) as SessionResult;
          fanned.push(performance.now() - started);
          if (r2.filesChanged.length !== PARTS)
            throw new Error(`fan-out changed ${r2.filesChanged.length} files`);
          history.parent = await events(env, tree.sessionId);
          history.child = await events(env, `${tree.sessionId}/agent-1`);
          if (process.env.PROFILE) for (const line of await profile(env, tree.sessionId)) log(`  ${line}`);
          log(
            `run ${run + 1}, parts of ${size} calls: sequential ${(sequential.at(-1)! / 1000).toFixed(2)} s, ` +
              `fan-out ${(fanned.at(-1)! / 1000).toFixed(2)} s`,
          );
        }
      }
      return bySize;
    });
  });

  // One worktree of a 10,000-file repository.
  const big = await realpath(await mkdtemp(path.join(os.tmpdir(), 'ratchet-bench-big-')));
  const repo = path.join(big, 'repo');
  await mkdir(repo);
  await execa('git', ['init', '-q', '-b', 'main', repo]);
  for (let dir = 0; dir < 100; dir++) {
    await mkdir(path.join(repo, `d${dir}`));
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        writeFile(
          path.join(repo, `d${dir}`, `f${i}.ts`),
          `export const v${i} = ${dir * 100 + i};\n`.repeat(20),
        ),
      ),
    );
  }
  await execa('git', ['-C', repo, '-c', 'user.email=b@x', '-c', 'user.name=b', 'add', '-A']);
  await execa('git', ['-C', repo, '-c', 'user.email=b@x', '-c', 'user.name=b', 'commit', '-q', '-m', 'big']);
  const info = (
    await createWorkspaceActivities({ allowedRoots: [], sandbox: env.sandbox }).prepareWorkspace({
      workspace: repo,
    })
  ).info;
  const trees = createWorktreeActivities({ worktreeRoot: path.join(big, 'trees') });
  const times: number[] = [];
  let disk = '';
  for (let i = 1; i <= 3; i++) {
    const started = performance.now();
    const tree = await trees.createAgentWorktree({
      workspace: info,
      branch: `ratchet/bench/agent-${i}`,
      parentDir: 'bench',
      childDir: `agent-${i}`,
    });
    times.push(performance.now() - started);
    disk = (await execa('du', ['-sh', tree.worktree])).stdout.split('\t')[0]!;
  }
  const repoDisk = (await execa('du', ['-sh', '--exclude=.git', repo])).stdout.split('\t')[0]!;
  await rm(big, { recursive: true, force: true });

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const lines = [`| | median of ${RUNS} runs |`, '| --- | --- |'];
  for (const [size, result] of results) {
    const seq = median(result.sequential) / 1000;
    const fan = median(result.fanned) / 1000;
    const calls = PARTS * (size - 1) + 1;
    lines.push(
      `| one session, 4 parts (${calls} model calls × ${DELAY_MS} ms) | ${seq.toFixed(2)} s |`,
      `| 4 children, one part each (parent 4 calls, child ${size} calls) | ${fan.toFixed(2)} s |`,
      `| ratio (critical path ${size + 3} calls of ${calls}: ${((size + 3) / calls).toFixed(3)}×) | **${(fan / seq).toFixed(2)}×** |`,
      `| history events: sequential session / parent / one child | ${result.history.sequential} / ${result.history.parent} / ${result.history.child} |`,
    );
  }
  lines.push(
    `| one worktree of a 10,000-file repository (${repoDisk} of files) | ${median(times).toFixed(0)} ms, ${disk} on disk |`,
    '',
  );
  process.stdout.write(lines.join('\n'));
} finally {
  await env.close();
}
