/**
 * 5. Recovery: the worker is killed (SIGKILL) while a model call is in flight, and a new worker
 * process is started at once, as a supervisor would. Measured from the kill: until the retried
 * model call reaches the model on the new worker, and until the session's next turn asks the model.
 */
import { randomUUID } from 'node:crypto';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { limitsSchema } from '../../src/shared/api/session-config.js';
import type { BenchEnv } from '../env.js';
import { sessionConfig, withModel } from '../env.js';
import { startChildWorker, stopChildWorker } from '../child.js';
import { benchResponder, benchTask } from '../script.js';
import type { Spread } from '../stats.js';
import { round, spread } from '../stats.js';

export interface RecoveryResult {
  /** Seconds from the kill until the interrupted model call is retried on the new worker. */
  retried: Spread;
  /** Seconds from the kill until the next turn's model request (the session moved on). */
  nextTurn: Spread;
  /** The timeouts in force (session defaults and worker options). */
  timeouts: Record<string, string>;
}

export async function recovery(
  env: BenchEnv,
  options: { runs: number; log: (message: string) => void },
): Promise<RecoveryResult> {
  return withModel({ responder: benchResponder() }, async (model) => {
    const retried: number[] = [];
    const nextTurn: number[] = [];
    const taskQueue = `bench-recovery-${randomUUID()}`;
    const ratchet = env.ratchet(taskQueue);
    const start = () =>
      startChildWorker({
        address: env.server.address,
        taskQueue,
        bundlePath: env.bundlePath,
        modelBaseUrl: model.baseUrl,
      });
    let worker = await start();
    try {
      for (let run = 0; run < options.runs; run += 1) {
        const before = model.requests.length;
        model.enqueue({ kind: 'hang' });
        const { sessionId } = await ratchet.start(sessionConfig(benchTask('small.txt', 3), env.repo));
        await model.waitForRequest(before + 1, 30_000);
        worker.process.kill('SIGKILL');
        const killedAt = Date.now();
        await worker.process;
        worker = await start();
        const retry = await model.waitForRequest(before + 2, 60_000);
        const next = await model.waitForRequest(before + 3, 60_000);
        retried.push((retry.receivedAt - killedAt) / 1000);
        nextTurn.push((next.receivedAt - killedAt) / 1000);
        const result = (await env.client.workflow.getHandle(sessionId).result()) as SessionResult;
        if (result.turns !== 3) throw new Error(`recovery session ran ${result.turns} turns`);
        const history = await env.client.workflow.getHandle(sessionId).fetchHistory();
        const startedAgain = history.events?.find(
          (e) => (e.activityTaskStartedEventAttributes?.attempt ?? 0) > 1,
        );
        if (startedAgain?.eventTime) {
          const at =
            Number(startedAgain.eventTime.seconds) * 1000 + (startedAgain.eventTime.nanos ?? 0) / 1e6;
          options.log(
            `  attempt ${startedAgain.activityTaskStartedEventAttributes?.attempt} started ${round((at - killedAt) / 1000, 2)} s after the kill; ` +
              `last failure: ${startedAgain.activityTaskStartedEventAttributes?.lastFailure?.message ?? '?'}`,
          );
        }
        options.log(
          `recovery run ${run + 1}/${options.runs}: retried after ${round(retried.at(-1)!, 1)} s, next turn after ${round(nextTurn.at(-1)!, 1)} s`,
        );
      }
    } finally {
      await stopChildWorker(worker);
    }
    return {
      retried: spread(retried),
      nextTurn: spread(nextTurn),
      timeouts: {
        modelHeartbeatTimeout: `${limitsSchema().parse({}).modelHeartbeatTimeoutMs / 1000} s (session limit modelHeartbeatTimeoutMs)`,
        modelRetryInitialInterval:
          '0.2 s after a lost worker; errors back off 1 s, 2 s, 4 s … (src/workflows/activities.ts, model-errors.ts)',
        maxHeartbeatThrottleInterval: '0.5 s (src/worker.ts: every heartbeat reaches the server)',
        stickyQueueScheduleToStartTimeout:
          '1 s (src/worker.ts); a retried activity resets the sticky queue before its transcript query',
      },
    };
  });
}
