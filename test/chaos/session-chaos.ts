/**
 * The randomized session harness (issue 11). A batch runs several seeds' sessions at once on one
 * Temporal server and one worker process, against one scripted model that answers each session
 * from its own plan (plan.ts). While they run, a person acts at random moments (approve, deny,
 * abort, approve for the session, interrupt, send — whenever the session is in whatever step),
 * and, when faults are on, the worker process is SIGKILLed and replaced and the server restarted.
 * After the batch, each session is checked (invariants.ts, and here: status answered, came to
 * rest in time, no workflow-task failure in any run's history).
 */
import { Client, Connection } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import proto from '@temporalio/proto';
import { appendFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RatchetClient } from '../../src/client.js';
import type { SessionConfigInput } from '../../src/shared/api/session-config.js';
import { approveSignal, statusQuery, transcriptQuery } from '../../src/shared/api/session-api.js';
import type { StatusView } from '../../src/shared/api/session-api.js';
import type { RecordedRequest, ScriptStep } from '../../src/testing/scripted-model.js';
import { ScriptedModel } from '../../src/testing/scripted-model.js';
import type { ReadyProcess } from '../../src/testing/child-process.js';
import { createTempRepo } from '../helpers/git-repo.js';
import type { TempRepo } from '../helpers/git-repo.js';
import { startChildWorker } from '../helpers/child-worker.js';
import { pairingProblems, truthProblems } from './invariants.js';
import type { ChaosPlan } from './plan.js';
import { RUNS_FILE, Rng, planFor, tokenOf } from './plan.js';

/** A session must come to rest (completed, or idle with nothing left to do) within this. */
export const REST_BOUND_MS = 150_000;
/** Longest the status query may go unanswered (a worker kill or server restart in between). */
const STATUS_SILENCE_MS = 45_000;

export interface ChaosServer {
  address: string;
  /** Stops the server and starts it again on the same database and port, `downMs` later. */
  restart(downMs?: number): Promise<void>;
}

export interface BatchOptions {
  seeds: number[];
  server: ChaosServer;
  taskQueue: string;
  /** SIGKILL and replace the worker, restart the server, at random moments. */
  faults: boolean;
  /**
   * Half the server restarts keep it down for 4–7 s, longer than the sessions' 3 s heartbeat
   * timeout, so the server times running attempts out as it comes back. Drawn from a sequence
   * of their own: the kills and restart moments are the same with or without.
   */
  outages?: boolean;
  log?: (line: string) => void;
  /** Where to write what a session with a problem saw (its requests and transcript), if anywhere. */
  dumpDir?: string;
}

export interface SeedOutcome {
  seed: number;
  sessionId: string;
  rest: string;
  problems: string[];
  ms: number;
}

interface PersonRecord {
  approvedTokens: Set<string>;
  approvedForSession: boolean;
  acked: string[];
  rest: string;
  problems: string[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const MESSAGES = ['please continue', 'bitte weiter', '请继续', 'продолжай', 'go on 🙂'];

/** Answers each session's requests from its own plan (sessions are told apart by prompt_cache_key). */
class Responder {
  private readonly plans = new Map<string, { replies: ScriptStep[]; summaries: ScriptStep[] }>();
  add(sessionId: string, plan: ChaosPlan): void {
    this.plans.set(sessionId, { replies: [...plan.replies], summaries: [...plan.summaries] });
  }
  answer(request: RecordedRequest): ScriptStep {
    const body = request.body as { prompt_cache_key?: string; tool_choice?: string };
    const plan = this.plans.get(body.prompt_cache_key ?? '');
    const summary = body.tool_choice === 'none';
    const queue = summary ? plan?.summaries : plan?.replies;
    return (
      queue?.shift() ?? {
        kind: 'reply',
        output: [{ type: 'message', text: summary ? 'Summary: nothing else to say.' : 'Done.' }],
      }
    );
  }
}

function conversationOf(request: RecordedRequest): Array<Record<string, unknown>> {
  const body = request.body as { input?: unknown };
  const items = request.conversation ?? (Array.isArray(body?.input) ? body.input : []);
  return items as Array<Record<string, unknown>>;
}

/** The person: decides approvals, interrupts, sends messages, at random; stops once it is at rest. */
async function person(
  ratchet: RatchetClient,
  handle: WorkflowHandle,
  plan: ChaosPlan,
): Promise<PersonRecord> {
  const { rng } = plan;
  const record: PersonRecord = {
    approvedTokens: new Set(),
    approvedForSession: false,
    acked: [],
    rest: 'none',
    problems: [],
  };
  const started = Date.now();
  let lastAnswer = Date.now();
  let resumes = plan.resumes;
  let interrupts = 2;
  let messages = 3;
  let sent = 0;
  const send = async () => {
    const text = `m${plan.seed}-${sent++} ${rng.pick(MESSAGES)}`;
    try {
      await ratchet.send(handle.workflowId, text);
      record.acked.push(text);
    } catch {
      // Not acknowledged (the session had ended): nothing was promised.
    }
  };
  for (;;) {
    if (Date.now() - started > REST_BOUND_MS) {
      record.problems.push(`did not come to rest within ${REST_BOUND_MS / 1000} s`);
      return record;
    }
    await sleep(rng.int(60, 250));
    let view: StatusView;
    try {
      view = await ratchet.client.connection.withDeadline(Date.now() + 5000, () => handle.query(statusQuery));
      lastAnswer = Date.now();
    } catch {
      if (Date.now() - lastAnswer > STATUS_SILENCE_MS) {
        record.problems.push(`status did not answer for ${STATUS_SILENCE_MS / 1000} s`);
        return record;
      }
      continue;
    }
    if (view.status === 'completed' || view.status === 'failed' || view.status === 'cancelled') {
      record.rest = view.status;
      return record;
    }
    if (view.status === 'awaiting_approval') {
      const pending = view.pendingApprovals[0]!;
      const decision = rng.weighted({ approve: 6, deny: 2, abort: 1, approve_for_session: 1 });
      const token = tokenOf(pending.arguments);
      // Recorded before it is sent: the command may run before the answer comes back.
      if (token && (decision === 'approve' || decision === 'approve_for_session'))
        record.approvedTokens.add(token);
      if (decision === 'approve_for_session') record.approvedForSession = true;
      try {
        if (rng.chance(0.8)) {
          await ratchet.decide(handle.workflowId, decision, { callId: pending.callId, by: 'chaos' });
        } else {
          await handle.signal(approveSignal, { callId: pending.callId, decision, by: 'chaos-signal' });
        }
      } catch {
        // Decided meanwhile (an interrupt, a session rule): fine.
      }
      continue;
    }
    if (view.status === 'idle' && view.queuedMessages === 0) {
      if (resumes === 0) {
        record.rest = `idle: ${view.notice ?? ''}`;
        return record;
      }
      resumes -= 1;
      await send();
      continue;
    }
    if (view.status === 'running') {
      if (interrupts > 0 && rng.chance(plan.interruptChance)) {
        interrupts -= 1;
        try {
          await ratchet.interrupt(handle.workflowId, rng.pick(['stop', 'halt ✋', '停']));
        } catch {
          // ended meanwhile
        }
      } else if (messages > 0 && rng.chance(plan.messageChance)) {
        messages -= 1;
        await send();
      }
    }
  }
}

async function transcriptOf(
  connection: Connection,
  handle: WorkflowHandle,
): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = [];
  let from = 0;
  for (;;) {
    // Bounded: with no worker to answer, the check reports it rather than waiting out the server.
    const page = await connection.withDeadline(Date.now() + 15_000, () =>
      handle.query(transcriptQuery, { fromIndex: from }),
    );
    items.push(...page.entries.map((entry) => entry.item as unknown as Record<string, unknown>));
    if (page.nextIndex >= page.total) return items;
    from = page.nextIndex;
  }
}

/** Workflow-task failures other than a signal arriving while a task completed (benign, retried). */
async function historyProblems(client: Client, handle: WorkflowHandle): Promise<string[]> {
  const problems: string[] = [];
  const Cause = proto.temporal.api.enums.v1.WorkflowTaskFailedCause;
  const description = await handle.describe();
  let runId: string | undefined = description.raw.workflowExecutionInfo?.firstRunId ?? description.runId;
  while (runId) {
    const history = await client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
    let next: string | undefined;
    for (const event of history.events ?? []) {
      const failed = event.workflowTaskFailedEventAttributes;
      if (
        failed &&
        failed.cause !== Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND &&
        failed.cause !== Cause.WORKFLOW_TASK_FAILED_CAUSE_RESET_STICKY_TASK_QUEUE
      ) {
        problems.push(`workflow task failed (${Cause[failed.cause ?? 0]}): ${failed.failure?.message ?? ''}`);
      }
      if (event.workflowExecutionFailedEventAttributes) {
        problems.push(
          `session failed: ${event.workflowExecutionFailedEventAttributes.failure?.message ?? ''}`,
        );
      }
      next = event.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? next;
    }
    runId = next;
  }
  return problems;
}

async function writeHistories(client: Client, handle: WorkflowHandle, prefix: string): Promise<void> {
  const description = await handle.describe();
  let runId: string | undefined = description.raw.workflowExecutionInfo?.firstRunId ?? description.runId;
  for (let run = 0; runId; run++) {
    const history = await client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
    await writeFile(`${prefix}-run${run}.json`, historyToJSON(history));
    let next: string | undefined;
    for (const event of history.events ?? [])
      next = event.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? next;
    runId = next;
  }
}

function sessionConfig(plan: ChaosPlan, repo: TempRepo): SessionConfigInput {
  return {
    task: `Chaos ${plan.seed}: append to ${RUNS_FILE} — 追加してください`,
    workspace: repo.dir,
    approvalPolicy: 'untrusted',
    model: {
      name: 'scripted-model',
      contextWindow: plan.settings.contextWindow,
      compaction: plan.settings.compaction,
    },
    limits: {
      modelHeartbeatTimeoutMs: 3000,
      toolHeartbeatTimeoutMs: 3000,
      modelStreamIdleTimeoutMs: 5000,
      modelMaxAttempts: 3,
      maxTranscriptBytes: plan.settings.maxTranscriptBytes,
      toolScheduleToStartTimeoutMs: 60_000,
    },
  };
}

/** Worker kills and server restarts at random moments of the batch, from the batch's own seed. */
async function faults(
  rng: Rng,
  options: BatchOptions,
  worker: { current: ReadyProcess; start: () => Promise<ReadyProcess> },
  done: () => boolean,
): Promise<void> {
  const outage = new Rng(options.seeds[0]! * 104_729);
  const events: Array<{ at: number; kind: 'kill' | 'restart' }> = [];
  for (let i = rng.int(1, 2); i > 0; i--) events.push({ at: rng.int(500, 10_000), kind: 'kill' });
  if (rng.chance(0.3)) events.push({ at: rng.int(1000, 12_000), kind: 'restart' });
  events.sort((a, b) => a.at - b.at);
  const started = Date.now();
  for (const event of events) {
    while (Date.now() - started < event.at) {
      if (done()) return;
      await sleep(50);
    }
    if (done()) return;
    if (event.kind === 'kill') {
      options.log?.(`  SIGKILL worker ${worker.current.pid} at ${event.at} ms`);
      worker.current.process.kill('SIGKILL');
      await worker.current.process.catch(() => undefined);
      worker.current = await worker.start();
    } else {
      const downMs = options.outages && outage.chance(0.5) ? outage.int(4000, 7000) : 0;
      options.log?.(`  server restart at ${event.at} ms${downMs ? `, down for ${downMs} ms` : ''}`);
      await options.server.restart(downMs);
    }
  }
}

export async function runBatch(options: BatchOptions): Promise<SeedOutcome[]> {
  const responder = new Responder();
  const model = await ScriptedModel.start({ responder: (request) => responder.answer(request) });
  const connection = await Connection.connect({ address: options.server.address });
  const client = new Client({ connection, namespace: 'default' });
  const ratchet = new RatchetClient(client, { taskQueue: options.taskQueue });
  // RATCHET_CHAOS_WORKER_ENV='{"K":"V"}': more environment for the worker processes (test hooks);
  // RATCHET_CHAOS_WORKER_LOG=<file>: everything they print, whole (the dump keeps each one's tail).
  const workerEnv: Record<string, string> = {
    ...(process.env.RATCHET_TEST_NO_CACHE === '1' ? { RATCHET_TEST_NO_CACHE: '1' } : {}),
    ...(JSON.parse(process.env.RATCHET_CHAOS_WORKER_ENV ?? '{}') as Record<string, string>),
  };
  const workerLog = process.env.RATCHET_CHAOS_WORKER_LOG;
  const startWorker = async () => {
    const started = await startChildWorker({
      address: options.server.address,
      taskQueue: options.taskQueue,
      modelBaseUrl: model.baseUrl,
      env: workerEnv,
    });
    if (workerLog) {
      const append = (chunk: Buffer) => appendFileSync(workerLog, chunk);
      started.process.stdout?.on('data', append);
      started.process.stderr?.on('data', append);
    }
    return started;
  };
  // Every worker process of the batch, so that what each printed can be kept with a problem.
  const workers: ReadyProcess[] = [];
  const start = async () => {
    const started = await startWorker();
    workers.push(started);
    return started;
  };
  const worker = { current: await start(), start };
  const repos: TempRepo[] = [];
  try {
    const sessions = await Promise.all(
      options.seeds.map(async (seed) => {
        const plan = planFor(seed);
        const repo = await createTempRepo({ 'a.txt': 'alpha\n' });
        repos.push(repo);
        const sessionId = `chaos-${seed}-${Date.now().toString(36)}`;
        responder.add(sessionId, plan);
        await ratchet.start(sessionConfig(plan, repo), sessionId);
        return {
          seed,
          plan,
          repo,
          sessionId,
          handle: client.workflow.getHandle(sessionId),
          started: Date.now(),
        };
      }),
    );
    let finished = 0;
    const faultRun = options.faults
      ? faults(new Rng(options.seeds[0]! * 7919), options, worker, () => finished === sessions.length)
      : Promise.resolve();
    const people = await Promise.all(
      sessions.map(async (s) => {
        const record = await person(ratchet, s.handle, s.plan);
        finished += 1;
        return { ...s, record, ms: Date.now() - s.started };
      }),
    );
    await faultRun;

    // A worker that died on its own (not killed here) leaves every session unanswered: say so.
    const workerGone =
      worker.current.process.exitCode !== null || worker.current.process.signalCode !== null
        ? `the worker process ${worker.current.pid} exited by itself (${worker.current.process.exitCode ?? worker.current.process.signalCode})`
        : null;
    const outcomes: SeedOutcome[] = [];
    for (const s of people) {
      const problems = [...s.record.problems, ...(workerGone ? [workerGone] : [])];
      try {
        const transcript = await transcriptOf(connection, s.handle);
        const requests = model.requests.filter(
          (r) => (r.body as { prompt_cache_key?: string } | undefined)?.prompt_cache_key === s.sessionId,
        );
        const conversations = [
          { where: 'final transcript', items: transcript },
          ...requests.map((r) => ({ where: `request ${r.index} (${r.path})`, items: conversationOf(r) })),
        ];
        for (const { where, items } of conversations) problems.push(...pairingProblems(where, items));
        const runsLog = await readFile(path.join(s.repo.dir, RUNS_FILE), 'utf8').then(
          (text) => text.split('\n').filter(Boolean),
          () => [],
        );
        problems.push(
          ...truthProblems({
            conversations,
            runsLog,
            approvedTokens: s.record.approvedTokens,
            approvedForSession: s.record.approvedForSession,
            ackedMessages: s.record.acked,
          }),
        );
        problems.push(...(await historyProblems(client, s.handle)));
        if (problems.length > 0 && options.dumpDir) {
          await mkdir(options.dumpDir, { recursive: true });
          const dump = { seed: s.seed, problems, runsLog, transcript, requests };
          await writeFile(path.join(options.dumpDir, `seed-${s.seed}.json`), JSON.stringify(dump, null, 1));
        }
      } catch (err) {
        problems.push(`could not check: ${(err as Error).message}`);
      }
      if (problems.length > 0 && options.dumpDir) {
        // Every run's history, to replay (test/integration/replay.test.ts) and read.
        await mkdir(options.dumpDir, { recursive: true });
        await writeHistories(client, s.handle, path.join(options.dumpDir, `seed-${s.seed}`)).catch(
          (err: Error) => problems.push(`could not fetch the history: ${err.message}`),
        );
      }
      outcomes.push({ seed: s.seed, sessionId: s.sessionId, rest: s.record.rest, problems, ms: s.ms });
      options.log?.(
        `  seed ${s.seed}: ${s.record.rest.slice(0, 80)} · ${s.ms} ms${problems.length ? ` · ${problems.length} PROBLEMS` : ''}`,
      );
    }
    if (outcomes.some((o) => o.problems.length > 0) && options.dumpDir) {
      await mkdir(options.dumpDir, { recursive: true });
      const printed = workers.map((w) => `--- worker ${w.pid}\n${w.output()}`).join('\n');
      await writeFile(path.join(options.dumpDir, `batch-${options.seeds[0]}-workers.log`), printed);
    }
    // Sessions left idle are ended so that they hold nothing on the server.
    await Promise.all(people.map((s) => s.handle.terminate('chaos batch over').catch(() => undefined)));
    return outcomes;
  } finally {
    worker.current.process.kill('SIGKILL');
    await worker.current.process.catch(() => undefined);
    await model.close();
    await connection.close();
    await Promise.all(repos.map((repo) => repo.remove()));
  }
}
