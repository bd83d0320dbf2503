/**
 * Runs the tool calls of one model reply. This module owns the sequence of a call's life:
 * prepared (validated, the policy asked; tool-calls.ts) → awaiting approval when the policy asks
 * a person → executing as an activity → done with the result the model reads, in the
 * transcript in the reply's order. The parallel rule is a read/write lock on the workspace:
 * read-only calls that the policy allows share the read side and run together; any other call
 * takes the write side, so it waits for the calls before it and the calls after it wait for it.
 * A worker found gone, a denial, a rejection and an infrastructure failure all end as a result.
 */
import {
  ActivityFailure,
  CancelledFailure,
  TimeoutFailure,
  condition,
  isCancellation,
  metricMeter,
  patched,
} from '@temporalio/workflow';
import type { ToolCallInput } from '../shared/boundary/activity-types.js';
import { INLINE_ARGUMENTS_MAX_BYTES } from '../shared/boundary/activity-types.js';
import { utf8Bytes } from '../shared/util/bytes.js';
import type { FunctionCallItem } from '../shared/prompt/items.js';
import type { ToolRequest } from '../shared/policy/policy.js';
import type { SessionContext } from './context.js';
import { isWorkerLost, startedEarlier } from '../shared/boundary/failures.js';
import {
  PLAN_UPDATED_OUTPUT,
  toolFailedOutput,
  unknownEffectOutput,
  policyDeniedOutput,
  userDeniedOutput,
  workerGoneOutput,
  workerLostOutput,
} from './model-text.js';
import { Patch } from './patches.js';
import type { OpenCallFate } from './transcript.js';
import type { PreparedCall, ToolCall } from './tool-calls.js';
import { prepareCall } from './tool-calls.js';

export interface ToolResult {
  output: string;
  display: string;
  success: boolean;
  /** For the tool-call metric: what became of the call (success when absent and successful). */
  outcome?: 'denied' | 'rejected' | 'not_run';
}

/** Where one call of the turn is: the scheduler moves it along, an interrupted turn reads it. */
export type CallLife =
  | { status: 'scheduled' }
  | { status: 'awaiting_approval' }
  | { status: 'executing' }
  | { status: 'done'; result: ToolResult };

/** The lives of a turn's calls, by call id. A result, once known, stays the truth about its call. */
export class TurnCalls {
  private readonly lives = new Map<string, CallLife>();

  private move(callId: string, life: CallLife): void {
    if (life.status !== 'done' && this.lives.get(callId)?.status === 'done') return;
    this.lives.set(callId, life);
  }

  awaitingApproval(callId: string): void {
    this.move(callId, { status: 'awaiting_approval' });
  }

  executing(callId: string): void {
    this.move(callId, { status: 'executing' });
  }

  done(callId: string, result: ToolResult): void {
    this.move(callId, { status: 'done', result });
  }

  result(callId: string): ToolResult | undefined {
    const life = this.lives.get(callId);
    return life?.status === 'done' ? life.result : undefined;
  }

  /** What became of a call without a result: cut while it ran, or never run. */
  fate(callId: string): OpenCallFate {
    return this.lives.get(callId)?.status === 'executing' ? 'interrupted' : 'not_run';
  }
}

/**
 * The workspace as a read/write lock. Readers run concurrently; their promises never reject (a
 * rejection nobody awaits would fail the workflow task): the first error is kept and rethrown by
 * the next `write()`, which waits for every reader before a writer runs.
 */
class WorkspaceLock {
  private readers: Promise<void>[] = [];
  private error: Error | undefined;

  read<T>(run: Promise<T>, then: (value: T) => void): void {
    this.readers.push(
      run.then(
        then,
        (err: unknown) => void (this.error ??= err instanceof Error ? err : new Error(String(err))),
      ),
    );
  }

  /** Waits until no reader runs (and rethrows a reader's error). */
  async write(): Promise<void> {
    await Promise.all(this.readers);
    this.readers = [];
    if (this.error !== undefined) throw this.error;
  }
}

/** What the model reads when a tool activity failed as infrastructure, not as a tool result. */
export function toolFailureOutput(call: ToolCall, err: ActivityFailure): string {
  const cause = err.cause;
  const detail =
    cause instanceof TimeoutFailure
      ? 'the worker running it stopped responding'
      : (cause?.message ?? err.message);
  return call.readOnly ? toolFailedOutput(call.tool, detail) : unknownEffectOutput(call.tool, detail);
}

/**
 * Whether a call's arguments travel in the tool activity's input (else the activity reads them
 * from the transcript). Only inline reads run as local activities, so this decides commands:
 * histories from before counted UTF-16 units, and the marker is asked only where the two differ.
 */
function inlineArguments(args: string): boolean {
  if (utf8Bytes(args) <= INLINE_ARGUMENTS_MAX_BYTES) return true;
  return args.length <= INLINE_ARGUMENTS_MAX_BYTES && !patched(Patch.inlineUtf8Bytes);
}

export class ToolScheduler {
  // Emitted by the worker's runtime (Prometheus when configured); not recorded, skipped on replay.
  private readonly callsMetric = metricMeter.createCounter(
    'ratchet_tool_calls',
    'calls',
    'Tool calls by tool and outcome (success, failure, denied, rejected, not_run)',
  );
  private readonly approvalWaitMetric = metricMeter.createHistogram(
    'ratchet_approval_wait',
    'int',
    'ms',
    'Time a tool call waited for a person to decide it',
  );

  constructor(private readonly ctx: SessionContext) {}

  /**
   * Runs a reply's calls. Each output enters the transcript as soon as it and every call before
   * it have one, so an interrupted turn keeps what ran (the turn answers the rest).
   */
  async runCalls(
    calls: FunctionCallItem[],
    indexOf: ReadonlyMap<string, number>,
    book: TurnCalls,
  ): Promise<void> {
    const { state, view, control } = this.ctx;
    const prepared: PreparedCall[] = calls.map((call) =>
      prepareCall(
        call,
        (request) => state.decidePolicy(request),
        // Sessions recorded before shell-wrapped patches ran as apply_patch replay them as shell.
        () => patched(Patch.shellApplyPatch),
      ),
    );
    for (const p of prepared) {
      if (p.kind === 'tool' && p.decision.action === 'ask') {
        state.approvals.request(
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
    view.publish();

    let appended = 0;
    const land = (id: string, result: ToolResult) => {
      book.done(id, result);
      for (; appended < calls.length; appended++) {
        const call = calls[appended]!;
        const done = book.result(call.call_id);
        if (!done) break;
        state.appendToolOutput(call.call_id, done);
        this.callsMetric.add(1, {
          tool: call.name,
          outcome: done.outcome ?? (done.success ? 'success' : 'failure'),
        });
      }
    };
    const lock = new WorkspaceLock();
    // Once the workspace's worker is known to be gone, the turn's other calls are not scheduled
    // (each would wait the whole schedule-to-start timeout) and no longer ask anyone.
    const skipLost = (p: ToolCall): boolean => {
      if (!control.workerLost || !patched(Patch.lostWorkerSkipsRest)) return false;
      state.approvals.settle(p.call.call_id);
      view.publish();
      land(p.call.call_id, {
        output: workerGoneOutput(p.tool),
        display: `${p.summary} · not run (worker unavailable)`,
        success: false,
        outcome: 'not_run',
      });
      return true;
    };
    for (let i = 0; i < prepared.length; i++) {
      const p = prepared[i]!;
      const id = p.call.call_id;
      if (this.ctx.agents?.handles(p.call.name)) {
        // Agent tools (agents.ts) run in order with the calls that may change the workspace; the
        // consecutive spawns of one reply run together, as one of them.
        await lock.write();
        const group = this.ctx.agents.spawnGroup(prepared.slice(i).map((q) => q.call));
        for (const call of group) book.executing(call.call_id);
        const results = await this.ctx.agents.runGroup(group);
        group.forEach((call, k) => land(call.call_id, results[k]!));
        i += group.length - 1;
      } else if (p.kind === 'rejected') {
        land(id, { output: p.output, display: p.display, success: false, outcome: 'rejected' });
      } else if (p.kind === 'plan') {
        state.updatePlan(p.args.plan);
        land(id, {
          output: PLAN_UPDATED_OUTPUT,
          display: `update_plan · ${p.args.plan.length} steps`,
          success: true,
        });
      } else if (p.decision.action === 'deny') {
        land(id, {
          output: policyDeniedOutput(p.tool, p.decision.reason),
          display: `${p.summary} · denied by policy`,
          success: false,
          outcome: 'denied',
        });
      } else if (p.readOnly && p.decision.action === 'allow') {
        if (skipLost(p)) continue;
        lock.read(this.runTool(p, indexOf.get(id)!, book), (result) => land(id, result));
      } else {
        await lock.write();
        if (skipLost(p)) continue;
        const verdict = p.decision.action === 'ask' ? await this.awaitDecision(p, book) : 'run';
        land(id, verdict === 'run' ? await this.runTool(p, indexOf.get(id)!, book) : verdict);
      }
    }
    await lock.write();
  }

  private async runTool(prepared: ToolCall, itemIndex: number, book: TurnCalls): Promise<ToolResult> {
    const { config, state, view, control, activities, sessionId } = this.ctx;
    view.setCurrent('tool', prepared.summary);
    book.executing(prepared.call.call_id);
    if (!prepared.readOnly) this.ctx.checkpoints.noteWrite();
    const input: ToolCallInput = {
      sessionId,
      epoch: state.epoch,
      workspace: state.workspace!.root,
      callId: prepared.call.call_id,
      itemIndex,
      timeoutMs: config.limits.commandTimeoutMs,
      sandbox: config.sandbox,
      sessionUnconfined: state.unconfined !== null,
      ...(inlineArguments(prepared.call.arguments) ? { arguments: prepared.call.arguments } : {}),
    };
    try {
      const outcome = await activities.runTool(prepared, input, state.toolQueue, state.holderJournals);
      return { output: outcome.output, display: outcome.display, success: outcome.success };
    } catch (err) {
      if (err instanceof ActivityFailure && isWorkerLost(err) && state.toolQueue) {
        const waited = Math.round(config.limits.toolScheduleToStartTimeoutMs / 1000);
        control.markWorkerLost(
          `the worker holding the workspace (task queue ${state.toolQueue}) did not take a tool call for ${waited} s; ` +
            'start it again (same RATCHET_WORKER_ID), or move the session to another worker that has the ' +
            'repository (the moveToWorker update), then send a message to continue',
        );
        if (startedEarlier(err)) {
          return {
            output: unknownEffectOutput(
              prepared.tool,
              `the worker running it stopped, and did not take the call up again within ${waited} s`,
            ),
            display: `${prepared.summary} · lost (worker unavailable)`,
            success: false,
          };
        }
        return {
          output: workerLostOutput(prepared.tool, waited),
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

  /** Asks a person about an agent tool call the policy asks about (merge_agent). */
  async askAbout(
    call: FunctionCallItem,
    summary: string,
    request: ToolRequest,
    reason: string,
  ): Promise<'run' | ToolResult> {
    const { state, view } = this.ctx;
    state.approvals.request(
      {
        callId: call.call_id,
        tool: call.name,
        arguments: {},
        summary,
        reason,
        turn: state.turn,
        requestedAt: new Date().toISOString(),
      },
      request,
    );
    view.publish();
    return this.awaitDecision({ call, summary, tool: call.name } as unknown as ToolCall, new TurnCalls());
  }

  /** Waits for a person's decision: 'run', a denial the model reads, or (abort) the turn's end. */
  private async awaitDecision(prepared: ToolCall, book: TurnCalls): Promise<'run' | ToolResult> {
    const { state, view, control } = this.ctx;
    const callId = prepared.call.call_id;
    book.awaitingApproval(callId);
    view.setCurrent('approval', `approval · ${prepared.summary}`);
    const askedAt = Date.now();
    await condition(() => state.approvals.decisionFor(callId) !== undefined);
    const decision = state.approvals.decisionFor(callId)!;
    this.approvalWaitMetric.record(Date.now() - askedAt, {
      tool: prepared.tool,
      decision: decision.decision,
    });
    state.approvals.settle(callId);
    view.publish();
    switch (decision.decision) {
      case 'approve':
      case 'approve_for_session':
        return 'run';
      case 'deny':
        return {
          output: userDeniedOutput(prepared.tool, decision.reason),
          display: `${prepared.summary} · denied${decision.reason ? ` (${decision.reason})` : ''}`,
          success: false,
          outcome: 'denied',
        };
      case 'abort':
        control.requestStop({ kind: 'abort', reason: decision.reason });
        throw new CancelledFailure('turn aborted by the user');
    }
  }
}
