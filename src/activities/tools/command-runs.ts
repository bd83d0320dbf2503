/**
 * A command outlives the attempt that started it when the server, not the worker, gave up on the
 * attempt: a Temporal server down for longer than the heartbeat timeout times the attempt out
 * when it comes back, though the worker and its command are fine. Ending the command then would
 * throw away work the user approved; reporting it lost would tell the model "unknown" about a
 * command that finishes a second later. So the command keeps running, and the next attempt of
 * the same call (the workflow retries a command only on the queue of the worker that holds the
 * workspace, so the retry comes here) attaches to it and returns its result.
 *
 * At most once holds because **only a call's first attempt ever starts its command**. Before it
 * starts, the call is recorded in a journal on the worker's disk, and its result when it ends. A
 * retry that finds no live run reads the journal: a result is returned as it was; anything else
 * (a start with no result: the process that ran it died; an unreadable record; no record at all:
 * the first attempt ran elsewhere, on a worker of the same id with a journal of its own, or died
 * before recording) is reported lost, its effect unknown. A first attempt never reads the
 * journal: a record from an earlier run of the session (a rewind) can reuse a call id and a
 * command, and must not stand in for running it now; the run id is part of the key as well. A
 * command that changes nothing (a known read-only one) is not recorded: it simply runs again.
 *
 * The cost: two small files written per command that may change the workspace, the first of
 * them synced to disk before the command starts (about 2 ms here). The second is not synced: a
 * machine that crashes before it reaches the disk leaves "started", and a retry reports the
 * command lost, which is the conservative answer.
 *
 * An interrupt or a cancelled session still ends the command, whichever attempt it reaches. One
 * that lands between attempts (the workflow cancels a retry not yet started) finds no attempt
 * to reach: a command that no attempt has waited for during the orphan grace (a minute) is
 * ended, so it cannot run on unseen after its session stopped waiting.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';
import { ActivityFailureType } from '../../shared/boundary/failure-types.js';
import type { ToolActivityResult } from '../../shared/tools/shell-output.js';
import type { ToolOutcome } from '../../shared/tools/specs.js';
import { toolFailure } from '../../shared/tools/specs.js';
import type { ToolContext } from './context.js';
import { readJournalFile, stateJournalDir, writeJournalFile } from './journal-file.js';

/** The call a command belongs to. */
export interface CommandKey {
  sessionId: string;
  callId: string;
  /** The call's arguments as run, so a reused call id never picks up another command. */
  command: string;
}

/** Where command journals live when the worker names no directory. */
export function defaultCommandJournalDir(env: NodeJS.ProcessEnv = process.env): string {
  return stateJournalDir('command-journal', env);
}

/** A journal entry: written before the command starts, and again with its result. */
function commandRecord() {
  return z.discriminatedUnion('state', [
    z.object({ version: z.literal(1), state: z.literal('started'), startedAt: z.string() }),
    z.object({
      version: z.literal(1),
      state: z.literal('done'),
      startedAt: z.string(),
      result: z.custom<ToolActivityResult>((value) => typeof value === 'object' && value !== null),
    }),
  ]);
}
type CommandRecord = z.infer<ReturnType<typeof commandRecord>>;

/** A command running in this process, and the attempts waiting for it. */
interface RunControl {
  /** Ends the command (an interrupt, a cancelled session, no attempt waiting). */
  stop: AbortController;
  /** Where the command's progress goes: the attempt attached to it now. */
  progress: { to: (details: Record<string, unknown>) => void };
  /** Attempts waiting for it now. */
  attached: number;
  /** It has ended (its result is in the journal). */
  ended: boolean;
  /** Ends it if no attempt attaches in time, while none waits. */
  orphaned?: NodeJS.Timeout;
}

interface LiveRun extends RunControl {
  result: Promise<ToolActivityResult>;
}

/**
 * Whether a cancellation only says the server no longer knows this attempt (it timed the
 * attempt out, or the activity is gone): the command should go on for a retry to collect.
 */
function attemptAbandoned(activity: Context): boolean {
  const details = activity.cancellationDetails;
  if (details?.notFound || details?.timedOut) return true;
  const reason = (activity.cancellationSignal.reason as Error | undefined)?.message;
  return reason === 'NOT_FOUND' || reason === 'TIMED_OUT';
}

/**
 * The answer when the journal cannot take the record a command needs before it starts: the
 * command is not run (a retry could not tell whether it had), and the model and the operator
 * read why.
 */
function notRecorded(dir: string, err: unknown): ToolOutcome {
  return toolFailure(
    'shell',
    `The command was not run: this worker cannot record it in its command journal (${dir}: ` +
      `${(err as Error).message}), which keeps a command from running twice. Tell the user: the operator ` +
      'must make that directory writable (XDG_STATE_HOME) on the worker.',
    'not run: no command journal',
  );
}

/**
 * A command that threw after it was recorded as started is not retried: a retry could only
 * report it lost, and would hide why it failed.
 */
function finalFailure(err: unknown): never {
  if (err instanceof ApplicationFailure && err.nonRetryable) throw err;
  const message = err instanceof Error ? err.message : String(err);
  throw ApplicationFailure.create({
    message,
    type: ActivityFailureType.CommandFailed,
    nonRetryable: true,
    cause: err as Error,
  });
}

export class CommandRuns {
  private readonly live = new Map<string, LiveRun>();

  constructor(
    private readonly dir: string,
    /** How long a command no attempt waits for keeps running (for the retry to come). */
    private readonly orphanGraceMs = 60_000,
  ) {}

  /** Commands running in this process. */
  get size(): number {
    return this.live.size;
  }

  /**
   * The command's result, from its live run, from the journal, or by starting it; `start` runs
   * the command under the context it is given. `rerunnable`: the command changes nothing, so a
   * lost attempt is simply run again.
   */
  async run(
    key: CommandKey,
    context: ToolContext,
    rerunnable: boolean,
    start: (context: ToolContext) => Promise<ToolActivityResult>,
  ): Promise<ToolActivityResult> {
    if (rerunnable) return start(context);
    const activity = Context.current();
    // The workflow run too: a rewound or continued session may reuse a call id.
    const runId = activity.info.workflowExecution?.runId ?? '';
    const id = createHash('sha256')
      .update(`${key.sessionId}\0${runId}\0${key.callId}\0${key.command}`)
      .digest('hex')
      .slice(0, 32);
    const file = path.join(this.dir, `${id}.json`);
    const attempt = activity.info.attempt;
    let run = this.live.get(id);
    if (run === undefined && attempt > 1) return this.recorded(file, attempt);
    if (run === undefined) {
      const startedAt = new Date().toISOString();
      try {
        await writeJournalFile(this.dir, file, JSON.stringify({ version: 1, state: 'started', startedAt }));
      } catch (err) {
        return notRecorded(this.dir, err);
      }
      // Another attempt of the call cannot have started it meanwhile: only a first one starts.
      run = this.begin(id, file, startedAt, context.workspace, start);
    }
    return this.attach(run, activity, context);
  }

  /** A retry with no live run: the result the journal kept, or the call is lost. */
  private async recorded(file: string, attempt: number): Promise<ToolActivityResult> {
    let record: Awaited<ReturnType<CommandRuns['load']>>;
    try {
      record = await this.load(file);
    } catch (err) {
      record = { problem: `the command journal cannot be read (${(err as Error).message})` };
    }
    if (record !== undefined && 'state' in record && record.state === 'done') return record.result;
    const why =
      record === undefined
        ? `attempt ${attempt} found no record of it on this worker (an earlier attempt may have run it elsewhere)`
        : 'problem' in record
          ? record.problem
          : `the worker running it stopped before it reported a result (started ${record.startedAt})`;
    throw ApplicationFailure.nonRetryable(why, ActivityFailureType.CommandLost);
  }

  /** The call's record; one that cannot be read counts as started, never as absent. */
  private async load(file: string): Promise<CommandRecord | { problem: string } | undefined> {
    const text = await readJournalFile(file);
    if (text === undefined) return undefined;
    const unreadable = {
      problem: 'the worker running it stopped before it reported a result (its record is cut short)',
    };
    try {
      const parsed = commandRecord().safeParse(JSON.parse(text));
      return parsed.success ? parsed.data : unreadable;
    } catch {
      return unreadable;
    }
  }

  private begin(
    id: string,
    file: string,
    startedAt: string,
    workspace: string,
    start: (context: ToolContext) => Promise<ToolActivityResult>,
  ): LiveRun {
    const control: RunControl = {
      stop: new AbortController(),
      progress: { to: () => {} },
      attached: 0,
      ended: false,
    };
    const result = (async () => {
      try {
        // Started a tick later, so that the run is in the table before it can leave it.
        const outcome = await Promise.resolve().then(() =>
          start({
            workspace,
            signal: control.stop.signal,
            heartbeat: (details) => control.progress.to(details),
          }),
        );
        // Not synced: see the header. A result that cannot be recorded is still returned to
        // whoever waits; a retry in another process would then report the call lost.
        const record = JSON.stringify({ version: 1, state: 'done', startedAt, result: outcome });
        await writeJournalFile(this.dir, file, record, false).catch(() => undefined);
        return outcome;
      } finally {
        // A retry from now on finds the result in the journal (written just above).
        this.live.delete(id);
        control.ended = true;
        clearTimeout(control.orphaned);
      }
    })();
    // Nobody may be attached when it ends (its attempt was abandoned and no retry came).
    result.catch(() => undefined);
    const run: LiveRun = Object.assign(control, { result });
    this.live.set(id, run);
    return run;
  }

  private async attach(run: LiveRun, activity: Context, context: ToolContext): Promise<ToolActivityResult> {
    run.progress.to = context.heartbeat;
    run.attached += 1;
    clearTimeout(run.orphaned);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        if (!attemptAbandoned(activity)) run.stop.abort(context.signal.reason);
        reject(context.signal.reason as Error);
      };
    });
    context.signal.addEventListener('abort', onAbort!, { once: true });
    if (context.signal.aborted) onAbort!();
    try {
      return await Promise.race([run.result.catch(finalFailure), aborted]);
    } finally {
      context.signal.removeEventListener('abort', onAbort!);
      if (run.progress.to === context.heartbeat) run.progress.to = () => {};
      run.attached -= 1;
      if (run.attached === 0 && !run.ended && !run.stop.signal.aborted) {
        run.orphaned = setTimeout(() => {
          run.stop.abort(new Error(`no attempt waited for the command for ${this.orphanGraceMs} ms`));
        }, this.orphanGraceMs);
        run.orphaned.unref();
      }
    }
  }
}
