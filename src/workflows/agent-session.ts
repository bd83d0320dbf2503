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
import { itemsDigest } from '../shared/digest.js';
import { agentsMdMessage, environmentContextMessage } from '../shared/prompt.js';
import {
  RatchetPendingApprovals,
  RatchetRepo,
  RatchetStatus,
  RatchetTurn,
} from '../shared/search-attributes.js';
import type { SessionResult } from '../shared/session-api.js';
import {
  approvalSchema,
  approveSignal,
  approveUpdate,
  interruptSignal,
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
import { isNotificationEvent } from '../shared/notifications.js';
import { Notifier } from './notification.js';
import { SessionState } from './session-state.js';
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
  const state = new SessionState(config, carried, () =>
    patched('narrow-session-prefix') ? 'narrow' : 'v0.1',
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
      notifier.emit(status, {
        task: config.task,
        turn: state.turn,
        pending: state.pendingApprovals().map(({ callId, summary, reason }) => ({ callId, summary, reason })),
        message: status === 'completed' ? state.lastMessage : state.notice,
      });
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
    stopRequest = { kind: 'interrupt', reason: request?.reason };
    turnScope?.cancel();
  });

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
  async function runTool(prepared: ToolCall, itemIndex: number): Promise<ToolResult> {
    setCurrent('tool', prepared.summary);
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
          'start it again (same RATCHET_WORKER_ID) and send a message to continue';
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

  async function runCalls(calls: FunctionCallItem[], firstIndex: number): Promise<void> {
    const prepared: PreparedCall[] = calls.map((call) =>
      prepareCall(
        call,
        (request) => state.decidePolicy(request),
        // Sessions recorded before shell-wrapped patches ran as apply_patch replay them as shell.
        () => patched('shell-apply-patch'),
      ),
    );
    const indexOf = new Map(calls.map((call, i) => [call.call_id, firstIndex + i] as const));
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

    const results = new Map<string, ToolResult>();
    // Read-only calls run concurrently; their promises never reject (a rejection nobody awaits
    // would fail the workflow task), the first error is rethrown where they are awaited.
    let readers: Promise<void>[] = [];
    let readerError: Error | undefined;
    const awaitReaders = async () => {
      await Promise.all(readers);
      readers = [];
      if (readerError !== undefined) throw readerError;
    };
    for (const p of prepared) {
      const id = p.call.call_id;
      if (p.kind === 'rejected') {
        results.set(id, { output: p.output, display: p.display, success: false, outcome: 'rejected' });
      } else if (p.kind === 'plan') {
        state.plan = p.args.plan;
        results.set(id, {
          output: 'Plan updated.',
          display: `update_plan · ${p.args.plan.length} steps`,
          success: true,
        });
      } else if (p.decision.action === 'deny') {
        results.set(id, {
          output: `This ${p.tool} call is not allowed: ${p.decision.reason}`,
          display: `${p.summary} · denied by policy`,
          success: false,
          outcome: 'denied',
        });
      } else if (p.readOnly && p.decision.action === 'allow') {
        readers.push(
          runTool(p, indexOf.get(id)!).then(
            (result) => void results.set(id, result),
            (err: unknown) => void (readerError ??= err instanceof Error ? err : new Error(String(err))),
          ),
        );
      } else {
        // Anything that may change the workspace waits for the calls before it, and the
        // calls after it wait for it.
        await awaitReaders();
        const verdict = p.decision.action === 'ask' ? await awaitDecision(p) : 'run';
        results.set(id, verdict === 'run' ? await runTool(p, indexOf.get(id)!) : verdict);
      }
    }
    await awaitReaders();
    for (const call of calls) {
      const result = results.get(call.call_id)!;
      state.appendToolOutput(call.call_id, result);
      toolCallsMetric.add(1, {
        tool: call.name,
        outcome: result.outcome ?? (result.success ? 'success' : 'failure'),
      });
    }
  }

  // ── one turn ────────────────────────────────────────────────────────────
  async function runTurn(): Promise<TurnOutcome> {
    state.turn += 1;
    const turn = state.turn;
    let calls: FunctionCallItem[] = [];
    const scope = new CancellationScope();
    turnScope = scope;
    try {
      return await scope.run(async () => {
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
        for (const item of reply.output) state.append(item);
        if (config.model.providerState) {
          state.lastResponse = reply.responseId ? { id: reply.responseId, upTo: state.entries.length } : null;
        }
        state.recordAssistantText(reply.output);
        calls = reply.output.filter(isFunctionCall);
        lastTurn = turnOutcome(turn, calls);
        if (calls.length === 0) return 'final';
        await runCalls(calls, firstIndex + reply.output.findIndex(isFunctionCall));
        if (workerLost !== null) {
          log.warn('the worker holding the workspace is unavailable', { toolQueue: state.toolQueue });
          state.goIdle(workerLost);
          workerLost = null;
          return 'stopped';
        }
        return 'continue';
      });
    } catch (err) {
      if (isCancellation(err) && !CancellationScope.current().consideredCancelled) {
        const request: StopRequest = stopRequest ?? { kind: 'interrupt' };
        const label = request.kind === 'abort' ? 'aborted' : 'interrupted';
        const why = request.reason ? ` (${request.reason})` : '';
        state.closeOpenCalls(calls, `The user ${label} this turn before the call ran or finished${why}.`);
        state.clearApprovals();
        state.goIdle(`turn ${turn} ${label} by the user${why}; waiting for a message`);
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
  async function continueAsNewNow(): Promise<never> {
    await notifier.flush();
    await condition(allHandlersFinished);
    log.info('continuing as new', { turn: state.turn, entries: state.entries.length, bytes: state.bytes });
    return continueAsNew<typeof agentSession>({
      schemaVersion: SESSION_SCHEMA_VERSION,
      config,
      carried: state.carry(),
    });
  }

  async function compactAndContinue(reason: string): Promise<never> {
    setCurrent('compaction', `compaction · ${reason}`);
    log.info('compacting', { reason, entries: state.entries.length, bytes: state.bytes });
    const result = await activities.compact({
      sessionId,
      epoch: state.epoch,
      upTo: state.entries.length,
      model: config.model,
      contextEntries: state.contextEntries,
    });
    state.addUsage(result.usage);
    state.replaceTranscript(result.items);
    state.lastCompactionTurn = state.turn;
    return continueAsNewNow();
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
      state.deliverQueuedMessages();
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
      if (reason) await compactAndContinue(reason);
      if (workflowInfo().continueAsNewSuggested) await continueAsNewNow();

      const outcome = await runTurn();
      if (outcome === 'overflow') {
        if (state.lastCompactionTurn === state.turn) {
          state.goIdle(
            'the transcript does not fit the model context even after compaction; send a message to continue',
          );
          continue;
        }
        await compactAndContinue('the model rejected the request as longer than its context window');
      }
      if (outcome === 'final' && state.queuedMessages.length === 0) break;
    }

    setCurrent('workspace', 'workspace · collect changes');
    // The conversation is finished; a workspace that vanished only costs the list of changes.
    const filesChanged = await activities
      .workspaceChanges({ workspace: state.workspace }, state.toolQueue)
      .catch((err: unknown) => {
        if (err instanceof ActivityFailure && !isCancellation(err)) {
          state.notice = `could not list the changed files: ${rootMessage(err)}`;
          return [];
        }
        throw err;
      });
    state.ended = 'completed';
    state.current = null;
    publish();
    await notifier.flush();
    await condition(allHandlersFinished);
    return {
      status: 'completed',
      finalMessage: state.lastMessage ?? '',
      turns: state.turn,
      usage: state.usage,
      filesChanged,
      compactions: state.compactions,
      runs: state.runs,
    };
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
