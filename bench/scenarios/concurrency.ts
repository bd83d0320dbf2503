/**
 * 4. Concurrency, on one worker in a process of its own (CPU and memory from /proc):
 * - 100 sessions of 20 turns started at once: turns per second, worker CPU, peak RSS;
 * - 1,000 sessions parked awaiting approval: the worker's RSS and CPU while they wait, and the
 *   time from `approve` to the session's next model request.
 */
import { randomUUID } from 'node:crypto';
import type { BenchEnv } from '../env.js';
import { sessionConfig, withModel } from '../env.js';
import { startChildWorker, stopChildWorker } from '../child.js';
import { PARK_TASK, benchResponder, benchTask } from '../script.js';
import type { Spread } from '../stats.js';
import { cpuSeconds, memory, round, sleep, spread } from '../stats.js';

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
    /** Activity timeouts (heartbeat or start-to-close) in those histories. */
    timeouts: number;
  };
  parked: {
    sessions: number;
    secondsToPark: number;
    idleSeconds: number;
    idleCpuCores: number;
    workerRssMiB: number;
    workerPeakRssMiB: number;
    /** Seconds from sending `approve` to the session's next model request. */
    approveToModel: Spread;
  };
  workerStartRssMiB: number;
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
    workerOptions?: Record<string, unknown>;
    log: (m: string) => void;
  },
): Promise<ConcurrencyResult> {
  const { log } = options;
  return withModel({ responder: benchResponder() }, async (model) => {
    const taskQueue = `bench-concurrency-${randomUUID()}`;
    const ratchet = env.ratchet(taskQueue);
    const worker = await startChildWorker({
      address: env.server.address,
      taskQueue,
      bundlePath: env.bundlePath,
      modelBaseUrl: model.baseUrl,
      workerOptions: options.workerOptions,
    });
    try {
      await sleep(1000);
      const workerStartRssMiB = (await memory(worker.pid)).rssMiB;

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
      await pool(ids, 20, async (id) => {
        const history = await env.client.workflow.getHandle(id).fetchHistory();
        for (const event of history.events ?? []) {
          if ((event.activityTaskStartedEventAttributes?.attempt ?? 1) > 1) retries += 1;
          if (event.activityTaskTimedOutEventAttributes) timeouts += 1;
        }
      });
      const busy = {
        retries,
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

      const latencies: number[] = [];
      for (const sessionId of parkedIds.slice(0, options.approvals)) {
        const { pendingApprovals } = await ratchet.status(sessionId);
        const callId = pendingApprovals[0]!.callId;
        const before = model.requests.length;
        const sent = Date.now();
        await ratchet.decide(sessionId, 'approve', { callId });
        const next = await model.waitForRequest(before + 1, 30_000);
        latencies.push((next.receivedAt - sent) / 1000);
        await env.client.workflow.getHandle(sessionId).result();
      }
      const parked = {
        sessions: options.parked,
        secondsToPark: round(secondsToPark, 1),
        idleSeconds,
        idleCpuCores: round(idleCpu / idleSeconds, 3),
        workerRssMiB: mem.rssMiB,
        workerPeakRssMiB: mem.peakRssMiB,
        approveToModel: spread(latencies),
      };
      log(`parked: ${JSON.stringify(parked)}`);
      await pool(parkedIds.slice(options.approvals), 50, async (id) => {
        await env.client.workflow
          .getHandle(id)
          .terminate('benchmark finished')
          .catch(() => {});
      });
      return { busy, parked, workerStartRssMiB };
    } finally {
      await stopChildWorker(worker);
    }
  });
}
