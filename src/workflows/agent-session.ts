/**
 * The agent session: the Codex agent loop as a Temporal workflow. Build the request → model →
 * run the tool calls it asks for (after the policy, and a person where the policy asks) → append
 * the results → model again, until the model answers without a tool call.
 *
 * This file wires state (session-state.ts) to Temporal; it does no I/O.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  ContinueAsNew,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  metricMeter,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { FunctionCallItem } from '../shared/items.js';
import { isFunctionCall, userMessage } from '../shared/items.js';
import { PAYLOAD_BUDGET_BYTES, jsonBytes } from '../shared/bytes.js';
import { itemsDigest } from '../shared/digest.js';
import { agentsMdMessage, environmentContextMessage } from '../shared/prompt.js';
import {
  RatchetPendingApprovals,
  RatchetRepo,
  RatchetStatus,
  RatchetTurn,
} from '../shared/search-attributes.js';
import type { FileChange, SessionResult } from '../shared/session-api.js';
import {
  approvalSchema,
  approveSignal,
  approveUpdate,
  interruptSignal,
  moveToWorkerSchema,
  moveToWorkerUpdate,
  setPolicySchema,
  setPolicyUpdate,
  statusQuery,
  transcriptQuery,
  userMessageSchema,
  userMessageSignal,
  workerTaskQueue,
} from '../shared/session-api.js';
import type { SessionInput } from '../shared/session-config.js';
import { SESSION_SCHEMA_VERSION, describeZodError, sessionInputSchema } from '../shared/session-config.js';
import { summarizeRawCall } from '../shared/tool-summary.js';
import {
  createSessionActivities,
  isWorkerLost,
  modelCallSummary,
  modelFailureKind,
  toolFailureOutput,
} from './activities.js';
import { isNotificationEvent, notificationDetails } from '../shared/notifications.js';
import { Notifier } from './notification.js';
import type { OpenCallFate } from './session-state.js';
import { SessionState, capNotice, uniqueCallIds } from './session-state.js';
import type { PreparedCall, ToolCall } from './tool-calls.js';
import { prepareCall } from './tool-calls.js';

interface ToolResult {
  output: string;
  display: string;
  success: boolean;
  /** For the tool-call metric: what became of the call (success when absent and successful). */
  outcome?: 'denied' | 'rejected' | 'not_run';
}

type TurnOutcome = 'final' | 'continue' | 'stopped' | 'overflow';

interface StopRequest {
  kind: 'interrupt' | 'abort';
  reason?: string;
}

/** What became of a turn's calls so far: an interrupted turn records each call's truth. */
interface CallProgress {
  started: Set<string>;
  results: Map<string, ToolResult>;
}

/** Most bytes of changed-file list a session's result carries (the result is one payload). */
const MAX_FILES_CHANGED_BYTES = 256 * 1024;

function capFileList(files: FileChange[]): { kept: FileChange[]; omitted: number } {
  const kept: FileChange[] = [];
  let bytes = 0;
  for (const file of files) {
    bytes += jsonBytes(file) + 1;
    if (bytes > MAX_FILES_CHANGED_BYTES) break;
    kept.push(file);
  }
  return { kept, omitted: files.length - kept.length };
}

/** What the model reads for a call of an interrupted or aborted turn that has no result. */
function openCallOutput(label: string, why: string) {
  return (call: FunctionCallItem, fate: OpenCallFate): string =>
    fate === 'not_run'
      ? `The user ${label} this turn before this call ran${why}; it was not run.`
      : `The user ${label} this turn while this ${call.name} call was running${why}; it was stopped before ` +
        'it reported a result, so its effect on the workspace is unknown. Check the state of the workspace ' +
        'before running it again.';
}

/** The innermost message of a failure chain (ActivityFailure → ApplicationFailure → …). */
function rootMessage(err: unknown): string {
  let current: unknown = err;
  while (current instanceof Error && current.cause instanceof Error) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

function firstLine(text: string, max = 100): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/** "turn 7 · 3 tool calls: shell · npm test, read_file · a.ts, …" or "turn 8 · answered". */
function turnOutcome(turn: number, calls: FunctionCallItem[]): string {
  if (calls.length === 0) return `turn ${turn} · answered`;
  const shown = calls.slice(0, 3).map((call) => summarizeRawCall(call.name, call.arguments));
  const more = calls.length > 3 ? `, … ${calls.length - 3} more` : '';
  return `turn ${turn} · ${calls.length} tool ${calls.length === 1 ? 'call' : 'calls'}: ${shown.join(', ')}${more}`;
}

export async function agentSession(input: SessionInput): Promise<SessionResult> {
  const parsed = sessionInputSchema.safeParse(input);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `invalid session input: ${describeZodError(parsed.error)}`,
      'InvalidSessionInput',
    );
  }
  const { config, carried } = parsed.data;
  // Sessions approved before prefixes were narrowed keep the broad rules they were given.
  // Sizes are UTF-8 bytes, as payloads are; histories from before counted UTF-16 units.
  const utf8 = patched('utf8-bytes');
  const state = new SessionState(
    config,
    carried,
    () => (patched('narrow-session-prefix') ? 'narrow' : 'v0.1'),
    utf8 ? 'utf8' : 'utf16',
  );
  const sessionId = workflowInfo().workflowId;
  const activities = createSessionActivities(config.limits);
  // Emitted by the worker's runtime (Prometheus when configured); not recorded, skipped on replay.
  const toolCallsMetric = metricMeter.createCounter(
    'ratchet_tool_calls',
    'calls',
    'Tool calls by tool and outcome (success, failure, denied, rejected, not_run)',
  );
  const approvalWaitMetric = metricMeter.createHistogram(
    'ratchet_approval_wait',
    'int',
    'ms',
    'Time a tool call waited for a person to decide it',
  );

  let turnScope: CancellationScope | null = null;
  let stopRequest: StopRequest | null = null;
  /** Set when the worker holding the workspace did not take a tool call in time (it is gone). */
  let workerLost: string | null = null;
  /** Where the last model reply begins in the transcript (this run, this epoch). */
  let lastReply: { epoch: number; from: number } | null = null;

  // ── visibility ──────────────────────────────────────────────────────────
  let shown = { status: '', turn: -1, pending: -1, details: '' };
  const notifier = new Notifier(config.notify, sessionId, state.runs);
  // What the last model reply asked for: an activity's summary is fixed before its result is
  // known, so the outcome is shown here (display only; not carried across continue-as-new).
  let lastTurn = '';
  function publish(): void {
    const status = state.status;
    const pending = state.pendingApprovals().length;
    if (
      config.searchAttributes &&
      (status !== shown.status || state.turn !== shown.turn || pending !== shown.pending)
    ) {
      upsertSearchAttributes([
        { key: RatchetStatus, value: status },
        { key: RatchetTurn, value: state.turn },
        { key: RatchetPendingApprovals, value: pending },
        ...(shown.status === '' ? [{ key: RatchetRepo, value: config.workspace }] : []),
      ]);
    }
    const details =
      `**${firstLine(config.task)}**\n\n` +
      `status: ${status} · turn ${state.turn} · run ${state.runs}` +
      (state.compactions ? ` · ${state.compactions} compactions` : '') +
      (state.current ? `\n\nnow: ${state.current.label}` : '') +
      (lastTurn ? `\n\nlast turn: ${lastTurn}` : '') +
      // The call ids a person needs for the UI's "Send a Signal" form (README: Approving from the Web UI).
      state
        .pendingApprovals()
        .map((p, i) => `${i === 0 ? '\n\nwaiting for approval:' : ''}\n- \`${p.callId}\` ${p.summary}`)
        .join('') +
      (state.notice ? `\n\n${state.notice}` : '');
    if (details !== shown.details) setCurrentDetails(details);
    // Not on a run's first publish: a run continued as new does not announce its state again.
    if (status !== shown.status && shown.status !== '' && isNotificationEvent(status)) {
      notifier.emit(
        status,
        notificationDetails({
          task: config.task,
          turn: state.turn,
          pending: state
            .pendingApprovals()
            .map(({ callId, summary, reason }) => ({ callId, summary, reason })),
          message: status === 'completed' ? state.lastMessage : state.notice,
        }),
      );
    }
    shown = { status, turn: state.turn, pending, details };
  }

  function setCurrent(kind: 'model' | 'tool' | 'compaction' | 'approval' | 'workspace', label: string): void {
    state.current = { kind, label, since: new Date().toISOString() };
    publish();
  }

  // ── handlers ────────────────────────────────────────────────────────────
  setHandler(statusQuery, () => state.statusView());
  setHandler(transcriptQuery, (request) => state.transcriptPage(request ?? {}));

  setHandler(
    approveUpdate,
    (approval) => {
      const ack = state.applyApproval(approvalSchema.parse(approval));
      log.info('approval decided', {
        callId: ack.callId,
        decision: ack.decision,
        by: approval.by,
        via: 'update',
      });
      publish();
      return ack;
    },
    {
      validator: (approval) => {
        const checked = approvalSchema.safeParse(approval);
        if (!checked.success) {
          throw ApplicationFailure.nonRetryable(
            `malformed approval: ${describeZodError(checked.error)}`,
            'InvalidApproval',
          );
        }
        try {
          state.validateApproval(checked.data);
        } catch (err) {
          throw ApplicationFailure.nonRetryable((err as Error).message, 'InvalidApproval');
        }
      },
    },
  );

  setHandler(approveSignal, (approval) => {
    const checked = approvalSchema.safeParse(approval);
    if (!checked.success) {
      log.warn('ignored a malformed approval signal', { problem: describeZodError(checked.error) });
      return;
    }
    try {
      const ack = state.applyApproval(checked.data);
      log.info('approval decided', {
        callId: ack.callId,
        decision: ack.decision,
        by: checked.data.by,
        via: 'signal',
      });
      publish();
    } catch (err) {
      log.warn('ignored an approval signal', {
        callId: checked.data.callId,
        problem: (err as Error).message,
      });
    }
  });

  setHandler(userMessageSignal, (message) => {
    const checked = userMessageSchema.safeParse(message);
    if (!checked.success) {
      log.warn('ignored a malformed user message', { problem: describeZodError(checked.error) });
      return;
    }
    if (state.ended) {
      log.warn('ignored a user message after the session ended', { status: state.ended });
      return;
    }
    state.queueMessage(checked.data.text);
    publish();
  });

  setHandler(interruptSignal, (request) => {
    if (state.ended || state.idle) return;
    // Honoured at the next boundary when no turn is running (preparation, compaction, collection).
    const reason = typeof request?.reason === 'string' ? capNotice(request.reason) : undefined;
    stopRequest = { kind: 'interrupt', reason };
    turnScope?.cancel();
  });

  setHandler(
    moveToWorkerUpdate,
    ({ worker }) => {
      const queue = workerTaskQueue(workflowInfo().taskQueue, worker.trim());
      log.warn('session moved to another worker', { from: state.toolQueue, to: queue });
      state.toolQueue = queue;
      if (state.idle) state.notice = `moved to worker ${worker.trim()}; send a message to continue`;
      publish();
      return queue;
    },
    {
      validator: (request) => {
        const checked = moveToWorkerSchema.safeParse(request);
        if (!checked.success) {
          throw ApplicationFailure.nonRetryable(
            `malformed move: ${describeZodError(checked.error)}`,
            'InvalidMove',
          );
        }
        if (state.ended)
          throw ApplicationFailure.nonRetryable(`the session has ended (${state.ended})`, 'SessionEnded');
        if (!state.workspace)
          throw ApplicationFailure.nonRetryable(
            'the workspace is not prepared yet; nothing to move',
            'NotPrepared',
          );
      },
    },
  );

  setHandler(
    setPolicyUpdate,
    ({ policy }) => {
      state.approvalPolicy = policy;
      state.approveCoveredCalls(`policy changed to ${policy}`);
      publish();
      return policy;
    },
    {
      validator: (request) => {
        const checked = setPolicySchema.safeParse(request);
        if (!checked.success) {
          throw ApplicationFailure.nonRetryable(
            `malformed policy change: ${describeZodError(checked.error)}`,
            'InvalidPolicy',
          );
        }
        if (state.ended)
          throw ApplicationFailure.nonRetryable(`the session has ended (${state.ended})`, 'SessionEnded');
      },
    },
  );

  // ── tools ───────────────────────────────────────────────────────────────
  async function runTool(prepared: ToolCall, itemIndex: number, progress: CallProgress): Promise<ToolResult> {
    setCurrent('tool', prepared.summary);
    progress.started.add(prepared.call.call_id);
    const input = {
      sessionId,
      epoch: state.epoch,
      workspace: state.workspace!.root,
      callId: prepared.call.call_id,
      itemIndex,
      timeoutMs: config.limits.commandTimeoutMs,
      sandbox: config.sandbox,
      unconfinedApproved: state.unconfined !== null,
      ...(prepared.call.arguments.length <= 2048 ? { arguments: prepared.call.arguments } : {}),
    };
    try {
      const outcome = await activities.runTool(prepared, input, state.toolQueue);
      return { output: outcome.output, display: outcome.display, success: outcome.success };
    } catch (err) {
      if (err instanceof ActivityFailure && isWorkerLost(err) && state.toolQueue) {
        const waited = Math.round(config.limits.toolScheduleToStartTimeoutMs / 1000);
        workerLost =
          `the worker holding the workspace (task queue ${state.toolQueue}) did not take a tool call for ${waited} s; ` +
          'start it again (same RATCHET_WORKER_ID), or move the session to another worker that has the ' +
          'repository (the moveToWorker update), then send a message to continue';
        return {
          output:
            `The ${prepared.tool} call was not run: the worker that holds this workspace did not pick it up ` +
            `within ${waited} s (it may have stopped). The user has been told.`,
          display: `${prepared.summary} · not run (worker unavailable)`,
          success: false,
          outcome: 'not_run',
        };
      }
      if (err instanceof ActivityFailure && !isCancellation(err)) {
        return {
          output: toolFailureOutput(prepared, err),
          display: `${prepared.summary} · failed`,
          success: false,
        };
      }
      throw err;
    }
  }

  async function awaitDecision(prepared: ToolCall): Promise<'run' | ToolResult> {
    setCurrent('approval', `approval · ${prepared.summary}`);
    const askedAt = Date.now();
    await condition(() => state.decisionFor(prepared.call.call_id) !== undefined);
    const decision = state.decisionFor(prepared.call.call_id)!;
    approvalWaitMetric.record(Date.now() - askedAt, { tool: prepared.tool, decision: decision.decision });
    state.settle(prepared.call.call_id);
    publish();
    switch (decision.decision) {
      case 'approve':
      case 'approve_for_session':
        return 'run';
      case 'deny': {
        const why = decision.reason ? `: ${decision.reason}` : '.';
        return {
          output: `The user denied this ${prepared.tool} call${why} Do not retry it as it was; adapt your approach.`,
          display: `${prepared.summary} · denied${decision.reason ? ` (${decision.reason})` : ''}`,
          success: false,
          outcome: 'denied',
        };
      }
      case 'abort':
        stopRequest = { kind: 'abort', reason: decision.reason };
        turnScope?.cancel();
        throw new CancelledFailure('turn aborted by the user');
    }
  }

  function workerLostResult(prepared: ToolCall): ToolResult {
    return {
      output:
        `The ${prepared.tool} call was not run: the worker that holds this workspace is unavailable ` +
        '(an earlier call of this turn was not picked up). The user has been told.',
      display: `${prepared.summary} · not run (worker unavailable)`,
      success: false,
      outcome: 'not_run',
    };
  }

  /**
   * Runs a reply's calls. Each output enters the transcript as soon as it and every call before
   * it have one, so an interrupted turn keeps what ran (runTurn answers the rest).
   */
  async function runCalls(
    calls: FunctionCallItem[],
    indexOf: ReadonlyMap<string, number>,
    progress: CallProgress,
  ): Promise<void> {
    const prepared: PreparedCall[] = calls.map((call) =>
      prepareCall(
        call,
        (request) => state.decidePolicy(request),
        // Sessions recorded before shell-wrapped patches ran as apply_patch replay them as shell.
        () => patched('shell-apply-patch'),
      ),
    );
    for (const p of prepared) {
      if (p.kind === 'tool' && p.decision.action === 'ask') {
        state.requestApproval(
          {
            callId: p.call.call_id,
            tool: p.tool,
            arguments: p.args,
            summary: p.summary,
            reason: p.decision.reason,
            turn: state.turn,
            requestedAt: new Date().toISOString(),
          },
          p.request,
        );
      }
    }
    publish();

    const { results } = progress;
    let appended = 0;
    const land = (id: string, result: ToolResult) => {
      results.set(id, result);
      for (; appended < calls.length; appended++) {
        const call = calls[appended]!;
        const done = results.get(call.call_id);
        if (!done) break;
        state.appendToolOutput(call.call_id, done);
        toolCallsMetric.add(1, {
          tool: call.name,
          outcome: done.outcome ?? (done.success ? 'success' : 'failure'),
        });
      }
    };
    // Read-only calls run concurrently; their promises never reject (a rejection nobody awaits
    // would fail the workflow task), the first error is rethrown where they are awaited.
    let readers: Promise<void>[] = [];
    let readerError: Error | undefined;
    const awaitReaders = async () => {
      await Promise.all(readers);
      readers = [];
      if (readerError !== undefined) throw readerError;
    };
    // Once the workspace's worker is known to be gone, the turn's other calls are not scheduled
    // (each would wait the whole schedule-to-start timeout) and no longer ask anyone.
    const skipLost = (p: ToolCall): boolean => {
      if (workerLost === null || !patched('lost-worker-skips-rest')) return false;
      state.dropApproval(p.call.call_id);
      publish();
      land(p.call.call_id, workerLostResult(p));
      return true;
    };
    for (const p of prepared) {
      const id = p.call.call_id;
      if (p.kind === 'rejected') {
        land(id, { output: p.output, display: p.display, success: false, outcome: 'rejected' });
      } else if (p.kind === 'plan') {
        state.plan = p.args.plan;
        land(id, {
          output: 'Plan updated.',
          display: `update_plan · ${p.args.plan.length} steps`,
          success: true,
        });
      } else if (p.decision.action === 'deny') {
        land(id, {
          output: `This ${p.tool} call is not allowed: ${p.decision.reason}`,
          display: `${p.summary} · denied by policy`,
          success: false,
          outcome: 'denied',
        });
      } else if (p.readOnly && p.decision.action === 'allow') {
        if (skipLost(p)) continue;
        readers.push(
          runTool(p, indexOf.get(id)!, progress).then(
            (result) => land(id, result),
            (err: unknown) => void (readerError ??= err instanceof Error ? err : new Error(String(err))),
          ),
        );
      } else {
        // Anything that may change the workspace waits for the calls before it, and the
        // calls after it wait for it.
        await awaitReaders();
        if (skipLost(p)) continue;
        const verdict = p.decision.action === 'ask' ? await awaitDecision(p) : 'run';
        land(id, verdict === 'run' ? await runTool(p, indexOf.get(id)!, progress) : verdict);
      }
    }
    await awaitReaders();
  }

  // ── one turn ────────────────────────────────────────────────────────────
  /** Comes to rest after an interrupt or abort: the turn's open calls are answered truthfully. */
  function stopTurn(
    turn: number,
    request: StopRequest,
    calls: FunctionCallItem[],
    progress: CallProgress,
  ): void {
    const label = request.kind === 'abort' ? 'aborted' : 'interrupted';
    const why = request.reason ? ` (${request.reason})` : '';
    // Results that landed after an earlier call was cut are still the truth about their call.
    for (const call of calls) {
      const result = progress.results.get(call.call_id);
      if (result && !state.hasOutput(call.call_id)) state.appendToolOutput(call.call_id, result);
    }
    state.closeOpenCalls(calls, openCallOutput(label, why), (call) =>
      progress.started.has(call.call_id) ? 'interrupted' : 'not_run',
    );
    state.clearApprovals();
    state.goIdle(`turn ${turn} ${label} by the user${why}; waiting for a message`);
  }

  async function runTurn(): Promise<TurnOutcome> {
    state.turn += 1;
    const turn = state.turn;
    let calls: FunctionCallItem[] = [];
    const progress: CallProgress = { started: new Set(), results: new Map() };
    const scope = new CancellationScope();
    turnScope = scope;
    try {
      const outcome = await scope.run(async (): Promise<TurnOutcome> => {
        setCurrent('model', modelCallSummary(turn, state.entries.length));
        const tail =
          lastReply && lastReply.epoch === state.epoch && lastReply.from < state.entries.length
            ? {
                from: lastReply.from,
                digest: itemsDigest(state.entries.slice(lastReply.from).map((entry) => entry.item)),
              }
            : undefined;
        const reply = await activities.model(turn, {
          sessionId,
          epoch: state.epoch,
          upTo: state.entries.length,
          model: config.model,
          turn,
          streamIdleTimeoutMs: config.limits.modelStreamIdleTimeoutMs,
          ...(config.model.providerState && state.lastResponse
            ? { previousResponse: state.lastResponse }
            : {}),
          ...(tail ? { tail } : {}),
        });
        state.addUsage(reply.usage);
        const firstIndex = state.entries.length;
        lastReply = { epoch: state.epoch, from: firstIndex };
        // Call ids must be unique in the transcript: a reply that repeats one (chat endpoints that
        // send no ids) gets fresh ones, the same on every replay.
        let output = reply.output;
        const unique = uniqueCallIds(state.callIds(), output);
        if (unique.renamed > 0 && patched('unique-call-ids')) {
          log.warn('renamed repeated call ids', { turn, renamed: unique.renamed });
          output = unique.items;
        }
        for (const item of output) state.append(item);
        if (config.model.providerState) {
          state.lastResponse = reply.responseId ? { id: reply.responseId, upTo: state.entries.length } : null;
        }
        state.recordAssistantText(output);
        calls = output.filter(isFunctionCall);
        lastTurn = turnOutcome(turn, calls);
        if (calls.length === 0) return 'final';
        const indexOf = new Map<string, number>();
        output.forEach((item, i) => {
          if (isFunctionCall(item)) indexOf.set(item.call_id, firstIndex + i);
        });
        await runCalls(calls, indexOf, progress);
        if (workerLost !== null) {
          log.warn('the worker holding the workspace is unavailable', { toolQueue: state.toolQueue });
          state.goIdle(workerLost);
          workerLost = null;
          return 'stopped';
        }
        return 'continue';
      });
      // An interrupt whose cancellation found nothing left to cancel (the last call had just
      // finished) still stops the session here, at the end of the turn.
      if (stopRequest !== null && outcome !== 'stopped' && patched('interrupt-at-boundary')) {
        stopTurn(turn, stopRequest, calls, progress);
        return 'stopped';
      }
      return outcome;
    } catch (err) {
      if (isCancellation(err) && !CancellationScope.current().consideredCancelled) {
        stopTurn(turn, stopRequest ?? { kind: 'interrupt' }, calls, progress);
        return 'stopped';
      }
      if (err instanceof ActivityFailure) {
        const failure = modelFailureKind(err);
        if (failure.kind === 'overflow') {
          state.turn -= 1;
          return 'overflow';
        }
        if (failure.kind === 'fatal') {
          throw ApplicationFailure.nonRetryable(failure.message, failure.type);
        }
        state.turn -= 1;
        state.goIdle(`${failure.message}; send a message to try again`);
        return 'stopped';
      }
      throw err;
    } finally {
      turnScope = null;
      stopRequest = null;
      state.current = null;
      publish();
    }
  }

  // ── continue-as-new and compaction ──────────────────────────────────────
  /** Whether the state to carry fits one continue-as-new payload (histories from before: assumed). */
  function carryFits(): boolean {
    if (!utf8) return true;
    const input = { schemaVersion: SESSION_SCHEMA_VERSION, config, carried: state.carry() };
    return jsonBytes(input) <= PAYLOAD_BUDGET_BYTES;
  }

  /**
   * An interrupt that arrived while no turn ran (preparation, compaction, the final collection):
   * the session comes to rest at this boundary. True when it did.
   */
  function honourStop(): boolean {
    if (stopRequest === null) return false;
    const request = stopRequest;
    stopRequest = null;
    if (state.idle || state.ended || !patched('interrupt-at-boundary')) return false;
    const why = request.reason ? ` (${request.reason})` : '';
    state.goIdle(`interrupted by the user${why}; waiting for a message`);
    return true;
  }

  async function continueAsNewNow(): Promise<never> {
    await notifier.flush();
    await condition(allHandlersFinished);
    // An interrupt during compaction: the next run starts at rest.
    honourStop();
    log.info('continuing as new', { turn: state.turn, entries: state.entries.length, bytes: state.bytes });
    return continueAsNew<typeof agentSession>({
      schemaVersion: SESSION_SCHEMA_VERSION,
      config,
      carried: state.carry(),
    });
  }

  /**
   * Compacts, then continues as new with the compacted state. Comes to rest (idle, with a notice;
   * a message resumes) instead when compaction fails, or when its result is still over the limits:
   * continuing as new would only compact again, for ever.
   */
  async function compactAndContinue(reason: string): Promise<void> {
    setCurrent('compaction', `compaction · ${reason}`);
    log.info('compacting', { reason, entries: state.entries.length, bytes: state.bytes });
    let result: Awaited<ReturnType<typeof activities.compact>>;
    try {
      result = await activities.compact({
        sessionId,
        epoch: state.epoch,
        upTo: state.entries.length,
        model: config.model,
        contextEntries: state.contextEntries,
      });
    } catch (err) {
      if (err instanceof ActivityFailure && !isCancellation(err) && patched('compaction-failure-idles')) {
        const failure = modelFailureKind(err);
        if (failure.kind === 'fatal') throw ApplicationFailure.nonRetryable(failure.message, failure.type);
        const detail =
          failure.kind === 'overflow' ? 'the transcript is too long even to compact' : rootMessage(err);
        log.warn('compaction failed', { detail });
        state.goIdle(`compaction failed (${detail}); send a message to try again`);
        return;
      }
      throw err;
    }
    state.addUsage(result.usage);
    state.replaceTranscript(result.items);
    state.lastCompactionTurn = state.turn;
    const still = state.compactionReason();
    if ((still !== null || !carryFits()) && patched('bounded-compaction')) {
      const why = still ?? `the state to carry is over ${PAYLOAD_BUDGET_BYTES} bytes`;
      log.warn('compaction left the transcript over its limits', { why });
      state.goIdle(
        `compaction did not bring the transcript under its limits (${why}); the session will not compact ` +
          'again before the next turn; send a message to continue',
      );
      return;
    }
    return continueAsNewNow();
  }

  /** Turns until the model answers without a tool call and no message waits. */
  async function converse(): Promise<void> {
    for (;;) {
      state.deliverQueuedMessages();
      honourStop();
      if (state.idle) {
        publish();
        await condition(() => state.queuedMessages.length > 0);
        continue;
      }
      if (state.turn >= state.turnLimit) {
        state.goIdle(`stopped after ${state.turn} turns (the turn limit); send a message to continue`);
        continue;
      }
      const reason = state.compactionReason();
      // Compacted since the last turn and still over: one turn runs before the next compaction.
      if (
        reason &&
        !(state.compactions > 0 && state.lastCompactionTurn === state.turn && patched('bounded-compaction'))
      ) {
        await compactAndContinue(reason);
        continue;
      }
      if (workflowInfo().continueAsNewSuggested) {
        if (carryFits()) await continueAsNewNow();
        await compactAndContinue(`the state to carry is over ${PAYLOAD_BUDGET_BYTES} bytes`);
        continue;
      }

      const outcome = await runTurn();
      if (outcome === 'overflow') {
        if (state.lastCompactionTurn === state.turn) {
          state.goIdle(
            'the transcript does not fit the model context even after compaction; send a message to continue',
          );
          continue;
        }
        await compactAndContinue('the model rejected the request as longer than its context window');
        continue;
      }
      if (outcome === 'final' && state.queuedMessages.length === 0) return;
    }
  }

  // ── the session ─────────────────────────────────────────────────────────
  try {
    if (!state.workspace) {
      setCurrent('workspace', 'workspace · prepare');
      const pinned = config.worker ? workerTaskQueue(workflowInfo().taskQueue, config.worker) : undefined;
      const prepared = await activities
        .prepareWorkspace({ workspace: config.workspace }, pinned)
        .catch((err: unknown) => {
          // The session cannot start: fail with the reason itself, not "Activity task failed".
          if (err instanceof ActivityFailure && isWorkerLost(err)) {
            throw ApplicationFailure.nonRetryable(
              `no worker with RATCHET_WORKER_ID=${config.worker} took the workspace within ` +
                `${Math.round(config.limits.toolScheduleToStartTimeoutMs / 1000)} s`,
              'WorkerUnavailable',
            );
          }
          if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
            throw ApplicationFailure.nonRetryable(err.cause.message, err.cause.type ?? 'WorkspaceRejected');
          }
          throw err;
        });
      state.workspace = prepared.info;
      // The worker that prepared the workspace holds it: tool calls go to its own queue.
      // Sessions recorded before workers had queues of their own run tools on the session's queue.
      if (prepared.toolQueue && patched('worker-task-queue')) state.toolQueue = prepared.toolQueue;
      // Sessions recorded before workers reported their sandbox replay without the fallback.
      if (
        patched('sandbox-fallback') &&
        config.sandbox !== 'danger-full-access' &&
        !prepared.sandbox.available
      ) {
        state.unconfined = prepared.sandbox.detail;
        state.notice = `commands cannot be sandboxed on this worker (${prepared.sandbox.detail}); every command will ask for approval`;
        log.warn('session runs without a sandbox', { detail: prepared.sandbox.detail });
      }
      if (prepared.agentsMd !== null)
        state.append(userMessage(agentsMdMessage(prepared.info.root, prepared.agentsMd)));
      state.append(
        userMessage(
          environmentContextMessage({
            cwd: prepared.info.root,
            approvalPolicy: state.approvalPolicy,
            sandbox: state.sandboxLabel,
            shell: prepared.shell,
          }),
        ),
      );
      state.contextEntries = state.entries.length;
      state.append(userMessage(config.task));
      state.current = null;
    }
    publish();

    for (;;) {
      await converse();
      setCurrent('workspace', 'workspace · collect changes');
      // The conversation is finished; a workspace that vanished only costs the list of changes.
      const filesChanged = await activities
        .workspaceChanges({ workspace: state.workspace }, state.toolQueue)
        .catch((err: unknown): FileChange[] => {
          if (err instanceof ActivityFailure && !isCancellation(err)) {
            state.notice = capNotice(`could not list the changed files: ${rootMessage(err)}`);
            return [];
          }
          throw err;
        });
      // A message that arrived while the changes were collected is answered, not dropped.
      if (state.queuedMessages.length > 0 && patched('deliver-late-messages')) {
        state.current = null;
        continue;
      }
      state.ended = 'completed';
      state.current = null;
      publish();
      await notifier.flush();
      await condition(allHandlersFinished);
      const files = utf8 ? capFileList(filesChanged) : { kept: filesChanged, omitted: 0 };
      return {
        status: 'completed',
        finalMessage: state.lastMessage ?? '',
        turns: state.turn,
        usage: state.usage,
        filesChanged: files.kept,
        ...(files.omitted > 0 ? { filesChangedOmitted: files.omitted } : {}),
        compactions: state.compactions,
        runs: state.runs,
      };
    }
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    state.ended = isCancellation(err) ? 'cancelled' : 'failed';
    state.current = null;
    if (state.ended === 'failed') state.notice = rootMessage(err);
    await CancellationScope.nonCancellable(async () => {
      publish();
      await notifier.flush();
      await condition(allHandlersFinished);
    });
    throw err;
  }
}
