/**
 * 4. Concurrency, on one worker in a process of its own (CPU and memory from /proc):
 * - 100 sessions of 20 turns started at once: turns per second, worker CPU, peak RSS;
 * - 1,000 sessions parked awaiting approval: the worker's RSS and CPU while they wait, where the
 *   memory is (each thread's V8 heap, malloc, the rest; before and after a garbage collection),
 *   and the time from `approve` to the session's next model request, for sessions evicted from
 *   the workflow cache and for cached ones;
 * - the floor: as many bare workflows parked on a signal, on a fresh worker of their own.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BenchEnv } from '../env.js';
import { sessionConfig, withModel } from '../env.js';
import type { ChildWorker } from '../child.js';
import { startChildWorker, stopChildWorker } from '../child.js';
import type { WorkerMemory } from '../probe.js';
import { probeWorker } from '../probe.js';
import { PARK_TASK, benchResponder, benchTask } from '../script.js';
import type { Spread } from '../stats.js';
import { cpuSeconds, memory, round, sleep, spread } from '../stats.js';
import { releaseSignal } from '../workflows.js';
import { approveUpdate } from '../../src/shared/api/session-api.js';
import { defaultPayloadConverter } from '@temporalio/common';

export interface ConcurrencyResult {
  busy: {
    sessions: number;
    turnsEach: number;
    seconds: number;
    turnsPerSecond: number;
    /** Worker CPU seconds over wall seconds (1.0 = one core busy). */
    workerCpuCores: number;
    workerPeakRssMiB: number;
    /**
     * Activity attempts after the first, over every session's history. Nothing fails on purpose
     * here, so each one is a false retry: a healthy call given up on (a heartbeat that came too
     * late from a busy worker).
     */
    retries: number;
    /** Those retries by activity type and the failure of the attempt before ("model: …"), counted. */
    retryCauses: Record<string, number>;
    /** Activity timeouts (heartbeat or start-to-close) in those histories. */
    timeouts: number;
  };
  parked: {
    sessions: number;
    secondsToPark: number;
    idleSeconds: number;
    idleCpuCores: number;
    /** The same over a second window, after a forced GC. */
    idleCpuCoresAfterGc: number;
    workerRssMiB: number;
    workerPeakRssMiB: number;
    /**
     * Seconds from the `approve` update to the session's next model request, for sessions among
     * the first parked: evicted from the workflow cache (more than maxCachedWorkflows were parked
     * after them).
     */
    approveToModel: Spread;
    approveEvicted: Latencies;
    /** The same from `ratchet approve` (the client's `decide`, queries included), evicted sessions. */
    approveEvictedCli: Latencies;
    /** The update again, for the last sessions parked, still in the cache. */
    approveCached: Latencies;
    /** The worker's memory while they wait, and again after a garbage collection. */
    memory: WorkerMemory;
    memoryAfterGc: WorkerMemory;
  };
  /** The idle worker (after start, before any session), and after its garbage collection. */
  idle: WorkerMemory;
  idleAfterGc: WorkerMemory;
  /** As many bare workflows parked on a signal, on a fresh worker: what any parked workflow costs. */
  floor?: {
    workflows: number;
    idle: WorkerMemory;
    memory: WorkerMemory;
    memoryAfterGc: WorkerMemory;
  };
  workerStartRssMiB: number;
}

export interface Latencies {
  p50: number;
  p95: number;
  max: number;
  runs: number;
}

/** The call a parked session waits on, from its history (the server's, no worker involved). */
async function pendingCallId(env: BenchEnv, sessionId: string): Promise<string> {
  const history = await env.client.workflow.getHandle(sessionId).fetchHistory();
  let callId: string | undefined;
  const find = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(find);
    else if (value && typeof value === 'object') {
      const item = value as { type?: unknown; call_id?: unknown };
      if (item.type === 'function_call' && typeof item.call_id === 'string') callId = item.call_id;
      else Object.values(value).forEach(find);
    }
  };
  for (const event of history.events ?? []) {
    for (const payload of event.activityTaskCompletedEventAttributes?.result?.payloads ?? []) {
      find(defaultPayloadConverter.fromPayload(payload));
    }
  }
  if (!callId) throw new Error(`no function call in the history of ${sessionId}`);
  return callId;
}

/** Nearest-rank percentiles. */
function latencies(values: readonly number[]): Latencies {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
  return {
    p50: round(rank(50), 3),
    p95: round(rank(95), 3),
    max: round(sorted.at(-1) ?? NaN, 3),
    runs: sorted.length,
  };
}

async function startProbedWorker(
  env: BenchEnv,
  taskQueue: string,
  modelBaseUrl: string,
  probeDir: string,
  workerOptions: Record<string, unknown> | undefined,
  preload: string | null | undefined,
): Promise<ChildWorker> {
  await mkdir(probeDir, { recursive: true });
  return startChildWorker({
    address: env.server.address,
    taskQueue,
    bundlePath: env.bundlePath,
    modelBaseUrl,
    workerOptions,
    probeDir,
    preload: preload ?? null,
  });
}

/** Runs `task` over `items`, at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await task(items[next++]!);
    }),
  );
}

export async function concurrency(
  env: BenchEnv,
  options: {
    sessions: number;
    turns: number;
    parked: number;
    approvals: number;
    /** Bare workflows parked on a signal for the floor (0: none). */
    floor: number;
    /** Write heap snapshots of both threads here, with 1,000 parked after the GC. */
    heapSnapshotDir?: string;
    workerOptions?: Record<string, unknown>;
    /** A library to preload into the worker (jemalloc); none: glibc malloc. */
    preload?: string | null;
    log: (m: string) => void;
  },
): Promise<ConcurrencyResult> {
  const { log } = options;
  return withModel({ responder: benchResponder() }, async (model) => {
    const taskQueue = `bench-concurrency-${randomUUID()}`;
    const ratchet = env.ratchet(taskQueue);
    const probeRoot = await mkdtemp(path.join(os.tmpdir(), 'ratchet-bench-probe-'));
    const probeDir = path.join(probeRoot, 'sessions');
    const worker = await startProbedWorker(
      env,
      taskQueue,
      model.baseUrl,
      probeDir,
      options.workerOptions,
      options.preload,
    );
    try {
      await sleep(1000);
      const idle = await probeWorker(worker.pid, probeDir);
      const idleAfterGc = await probeWorker(worker.pid, probeDir, { gc: true });
      const workerStartRssMiB = idle.rssMiB;
      log(`idle worker: ${JSON.stringify(idle)}`);

      // ── 100 sessions of 20 turns at once ──
      const cpu0 = await cpuSeconds(worker.pid);
      const started = performance.now();
      const ids: string[] = [];
      await Promise.all(
        Array.from({ length: options.sessions }, async () => {
          const { sessionId } = await ratchet.start(
            sessionConfig(benchTask('small.txt', options.turns), env.repo),
          );
          ids.push(sessionId);
        }),
      );
      await Promise.all(ids.map((id) => env.client.workflow.getHandle(id).result()));
      const seconds = (performance.now() - started) / 1000;
      const busyCpu = (await cpuSeconds(worker.pid)) - cpu0;
      let retries = 0;
      let timeouts = 0;
      const retryCauses: Record<string, number> = {};
      await pool(ids, 20, async (id) => {
        const history = await env.client.workflow.getHandle(id).fetchHistory();
        const types = new Map<string, string>();
        for (const event of history.events ?? []) {
          const scheduled = event.activityTaskScheduledEventAttributes;
          if (scheduled) types.set(String(event.eventId), scheduled.activityType?.name ?? '?');
          const started = event.activityTaskStartedEventAttributes;
          if ((started?.attempt ?? 1) > 1) {
            retries += 1;
            // The attempt before failed with this (its first line: a cause, not a stack).
            // …and the innermost cause, when it has one (a gRPC status under "Failed to query Workflow").
            let root = started?.lastFailure?.cause;
            while (root?.cause) root = root.cause;
            const first = (message: string | null | undefined) => message?.split('\n')[0]?.slice(0, 160);
            const failure =
              (first(started?.lastFailure?.message) ?? 'no failure recorded') +
              (root?.message ? ` ← ${first(root.message)}` : '');
            const cause = `${types.get(String(started?.scheduledEventId)) ?? '?'}: ${failure}`;
            retryCauses[cause] = (retryCauses[cause] ?? 0) + 1;
          }
          if (event.activityTaskTimedOutEventAttributes) timeouts += 1;
        }
      });
      const busy = {
        retries,
        retryCauses,
        timeouts,
        sessions: options.sessions,
        turnsEach: options.turns,
        seconds: round(seconds, 1),
        turnsPerSecond: round((options.sessions * options.turns) / seconds, 1),
        workerCpuCores: round(busyCpu / seconds, 2),
        workerPeakRssMiB: (await memory(worker.pid)).peakRssMiB,
      };
      log(`busy: ${JSON.stringify(busy)}`);

      // ── 1,000 sessions parked awaiting approval ──
      const parkStarted = performance.now();
      const parkedIds: string[] = [];
      await pool(
        Array.from({ length: options.parked }, (_, i) => i),
        50,
        async () => {
          const { sessionId } = await ratchet.start(
            sessionConfig(PARK_TASK, env.repo, { approvalPolicy: 'untrusted' }),
          );
          parkedIds.push(sessionId);
        },
      );
      const query = `TaskQueue = "${taskQueue}" AND RatchetStatus = "awaiting_approval"`;
      for (;;) {
        const { count } = await env.client.workflow.count(query);
        if (count >= options.parked) break;
        if (performance.now() - parkStarted > 600_000)
          throw new Error(`only ${count} sessions parked after 10 min`);
        await sleep(1000);
      }
      const secondsToPark = (performance.now() - parkStarted) / 1000;
      log(`parked ${options.parked} sessions in ${round(secondsToPark, 1)} s`);
      await sleep(5000);
      const idleSeconds = 20;
      const idle0 = await cpuSeconds(worker.pid);
      await sleep(idleSeconds * 1000);
      const idleCpu = (await cpuSeconds(worker.pid)) - idle0;
      const mem = await memory(worker.pid);
      const parkedMemory = await probeWorker(worker.pid, probeDir);
      log(`parked worker: ${JSON.stringify(parkedMemory)}`);
      const memoryAfterGc = await probeWorker(worker.pid, probeDir, { gc: true });
      log(`after a GC: ${JSON.stringify(memoryAfterGc)}`);
      // CPU again, after the parking burst's garbage has been collected (the first window can
      // still hold the V8 heap shrinking after the burst).
      const later0 = await cpuSeconds(worker.pid);
      await sleep(idleSeconds * 1000);
      const idleCpuLater = (await cpuSeconds(worker.pid)) - later0;
      if (options.heapSnapshotDir) {
        await mkdir(options.heapSnapshotDir, { recursive: true });
        await probeWorker(worker.pid, probeDir, { gc: true, snapshotDir: options.heapSnapshotDir });
        log(`heap snapshots in ${options.heapSnapshotDir}`);
      }

      // Nothing touches a session before its approval, so the first parked are out of the cache
      // and the last parked in it. The decision alone (the `approve` update, the call id read
      // from the history on the server), and `ratchet approve` as a person runs it (it first asks
      // the session for its pending call: a query, which replays an evicted session).
      const timed = async (sessionId: string, send: () => Promise<unknown>) => {
        const before = model.requests.length;
        const sent = Date.now();
        await send();
        const next = await model.waitForRequest(before + 1, 30_000);
        await env.client.workflow.getHandle(sessionId).result();
        return (next.receivedAt - sent) / 1000;
      };
      const update = async (sessionId: string) => {
        const callId = await pendingCallId(env, sessionId);
        return timed(sessionId, () =>
          env.client.workflow.getHandle(sessionId).executeUpdate(approveUpdate, {
            args: [{ callId, decision: 'approve' }],
          }),
        );
      };
      const cli = (sessionId: string) => timed(sessionId, () => ratchet.decide(sessionId, 'approve'));
      const n = options.approvals;
      const evicted: number[] = [];
      for (const sessionId of parkedIds.slice(0, n)) evicted.push(await update(sessionId));
      const evictedCli: number[] = [];
      for (const sessionId of parkedIds.slice(n, 2 * n)) evictedCli.push(await cli(sessionId));
      const cached: number[] = [];
      for (const sessionId of parkedIds.slice(-n)) cached.push(await update(sessionId));
      const approved = new Set([...parkedIds.slice(0, 2 * n), ...parkedIds.slice(-n)]);
      const parked = {
        sessions: options.parked,
        secondsToPark: round(secondsToPark, 1),
        idleSeconds,
        idleCpuCores: round(idleCpu / idleSeconds, 3),
        idleCpuCoresAfterGc: round(idleCpuLater / idleSeconds, 3),
        workerRssMiB: mem.rssMiB,
        workerPeakRssMiB: mem.peakRssMiB,
        approveToModel: spread(evicted),
        approveEvicted: latencies(evicted),
        approveEvictedCli: latencies(evictedCli),
        approveCached: latencies(cached),
        memory: parkedMemory,
        memoryAfterGc,
      };
      log(`parked: ${JSON.stringify({ ...parked, memory: undefined, memoryAfterGc: undefined })}`);
      await pool(
        parkedIds.filter((id) => !approved.has(id)),
        50,
        async (id) => {
          await env.client.workflow
            .getHandle(id)
            .terminate('benchmark finished')
            .catch(() => {});
        },
      );
      await stopChildWorker(worker);
      const floor = options.floor > 0 ? await parkedFloor(env, model.baseUrl, options, probeRoot) : undefined;
      return { busy, parked, idle, idleAfterGc, ...(floor ? { floor } : {}), workerStartRssMiB };
    } finally {
      await stopChildWorker(worker);
      await rm(probeRoot, { recursive: true, force: true });
    }
  });
}

/** `options.floor` bare workflows parked on a signal, on a fresh worker with the same options. */
async function parkedFloor(
  env: BenchEnv,
  modelBaseUrl: string,
  options: {
    floor: number;
    workerOptions?: Record<string, unknown>;
    preload?: string | null;
    log: (m: string) => void;
  },
  probeRoot: string,
): Promise<NonNullable<ConcurrencyResult['floor']>> {
  const taskQueue = `bench-floor-${randomUUID()}`;
  const probeDir = path.join(probeRoot, 'floor');
  const worker = await startProbedWorker(
    env,
    taskQueue,
    modelBaseUrl,
    probeDir,
    options.workerOptions,
    options.preload,
  );
  const ids: string[] = [];
  try {
    await sleep(1000);
    const idle = await probeWorker(worker.pid, probeDir);
    await pool(
      Array.from({ length: options.floor }, (_, i) => i),
      50,
      async () => {
        const workflowId = `bench-floor-${randomUUID()}`;
        await env.client.workflow.start('parkedFloor', { taskQueue, workflowId });
        ids.push(workflowId);
      },
    );
    // Parked once each has run its first workflow task (started, task scheduled, started, completed).
    const started = performance.now();
    let waiting = [...ids];
    while (waiting.length > 0) {
      const still: string[] = [];
      await pool(waiting, 50, async (id) => {
        const { historyLength } = await env.client.workflow.getHandle(id).describe();
        if (historyLength < 4) still.push(id);
      });
      waiting = still;
      if (waiting.length === 0) break;
      if (performance.now() - started > 300_000)
        throw new Error(`${waiting.length} floor workflows not parked after 5 min`);
      await sleep(1000);
    }
    await sleep(5000);
    const memory = await probeWorker(worker.pid, probeDir);
    const memoryAfterGc = await probeWorker(worker.pid, probeDir, { gc: true });
    options.log(`floor, ${options.floor} parked: ${JSON.stringify(memory)}`);
    return { workflows: options.floor, idle, memory, memoryAfterGc };
  } finally {
    await stopChildWorker(worker);
    await pool(ids, 50, async (id) => {
      await env.client.workflow
        .getHandle(id)
        .signal(releaseSignal)
        .catch(() => {});
    });
  }
}

const heapOf = (m: WorkerMemory) => round(m.main.heapUsedMiB + (m.workflowThread?.heapUsedMiB ?? 0), 1);

/** Rows of the results' markdown table: where a parked worker's memory is, against the floor. */
export function parkedMemoryRows(k: ConcurrencyResult): string[] {
  const p = k.parked;
  // Results written before these figures existed have none.
  if (!k.idle || !p.memory) return [];
  const above = (m: WorkerMemory, idle: WorkerMemory) => round(m.rssMiB - idle.rssMiB, 1);
  const where = (m: WorkerMemory) =>
    `RSS ${m.rssMiB} MiB: V8 heap used ${m.main.heapUsedMiB} (main) + ${m.workflowThread?.heapUsedMiB ?? '?'} (workflow thread), ` +
    `committed ${m.main.heapTotalMiB} + ${m.workflowThread?.heapTotalMiB ?? '?'}; malloc ${m.mallocMainMiB} (main heap) + ` +
    `${m.mallocArenasMiB} (arenas); other anonymous ${m.otherAnonMiB}; files ${m.fileMiB}; external ${m.main.externalMiB} + ${m.workflowThread?.externalMiB ?? '?'}`;
  const rows = [
    `| worker CPU while they wait, a second ${p.idleSeconds} s after a GC | ${p.idleCpuCoresAfterGc} cores |`,
    `| idle worker | ${where(k.idle)} |`,
    `| ${p.sessions} parked | ${where(p.memory)} |`,
    `| ${p.sessions} parked, after a GC | ${where(p.memoryAfterGc)}; **${above(p.memoryAfterGc, k.idle)} MiB above the idle worker**, V8 heap used ${round(heapOf(p.memoryAfterGc) - heapOf(k.idleAfterGc), 1)} MiB above |`,
    `| approve → next model request, evicted sessions (first parked) | p50 **${p.approveEvicted.p50} s**, p95 **${p.approveEvicted.p95} s**, max ${p.approveEvicted.max} s (${p.approveEvicted.runs}) |`,
    `| \`ratchet approve\` → next model request, evicted sessions | p50 ${p.approveEvictedCli?.p50} s, p95 ${p.approveEvictedCli?.p95} s, max ${p.approveEvictedCli?.max} s (${p.approveEvictedCli?.runs}) |`,
    `| approve → next model request, cached sessions (last parked) | p50 ${p.approveCached.p50} s, p95 ${p.approveCached.p95} s, max ${p.approveCached.max} s (${p.approveCached.runs}) |`,
  ];
  const f = k.floor;
  if (f) {
    const ours = above(p.memory, k.idle);
    const floor = above(f.memory, f.idle);
    rows.push(
      `| floor: ${f.workflows} bare workflows parked on a signal, fresh worker | ${floor} MiB above its idle worker (${round(f.memoryAfterGc.rssMiB - f.idle.rssMiB, 1)} after a GC); V8 heap used ${round(heapOf(f.memoryAfterGc) - heapOf(f.idle), 1)} MiB above |`,
      `| Ratchet ÷ floor, RSS above idle | ${floor > 0 ? round(ours / floor, 2) : '—'}× |`,
    );
  }
  return rows;
}
