/**
 * What a session shows outside itself while it runs: the Web UI's current details (Markdown),
 * the search attributes a list filters on, and the notifications a status change sends. It owns
 * the publish sequence: the state changes → `publish()` compares what it would show with what it
 * last showed → upserts the search attributes, sets the details, and emits a notification only
 * for what changed. `sessionDetails` is pure, so what a person reads is tested without a server.
 */
import { patched, setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import type { FunctionCallItem } from '../shared/prompt/items.js';
import { isNotificationEvent, notificationDetails } from '../shared/api/notifications.js';
import {
  RatchetParent,
  RatchetPendingApprovals,
  RatchetRepo,
  RatchetStatus,
  RatchetTurn,
} from '../shared/api/search-attributes.js';
import type { CurrentStep } from '../shared/api/session-api.js';
import type { SessionConfig } from '../shared/api/session-config.js';
import { summarizeRawCall } from '../shared/tools/summary.js';
import type { ParentLink } from './agents.js';
import type { Notifier } from './notification.js';
import { Patch } from './patches.js';
import type { SessionState } from './session-state.js';
import { firstLine } from '../shared/util/text.js';

/** "turn 7 · 3 tool calls: shell · npm test, read_file · a.ts, …" or "turn 8 · answered". */
export function turnOutcome(turn: number, calls: FunctionCallItem[]): string {
  if (calls.length === 0) return `turn ${turn} · answered`;
  const shown = calls.slice(0, 3).map((call) => summarizeRawCall(call.name, call.arguments));
  const more = calls.length > 3 ? `, … ${calls.length - 3} more` : '';
  return `turn ${turn} · ${calls.length} tool ${calls.length === 1 ? 'call' : 'calls'}: ${shown.join(', ')}${more}`;
}

/** The Web UI's current details: task, status, what runs now, the last turn, what waits for a person. */
export function sessionDetails(state: SessionState, task: string, lastTurn: string): string {
  return (
    `**${firstLine(task)}**\n\n` +
    `status: ${state.status} · turn ${state.turn} · run ${state.runs}` +
    (state.compactions ? ` · ${state.compactions} compactions` : '') +
    (state.current ? `\n\nnow: ${state.current.label}` : '') +
    (lastTurn ? `\n\nlast turn: ${lastTurn}` : '') +
    // The call ids a person needs for the UI's "Send a Signal" form (README: Approving from the Web UI).
    state.approvals
      .pending()
      .map((p, i) => `${i === 0 ? '\n\nwaiting for approval:' : ''}\n- \`${p.callId}\` ${p.summary}`)
      .join('') +
    (state.notice ? `\n\n${state.notice}` : '')
  );
}

export class SessionView {
  private shown = { status: '', turn: -1, pending: -1, details: '' };
  /**
   * What the last model reply asked for: an activity's summary is fixed before its result is
   * known, so the outcome is shown here (display only; not carried across continue-as-new).
   */
  private lastTurn = '';

  constructor(
    private readonly config: SessionConfig,
    private readonly state: SessionState,
    private readonly notifier: Notifier,
    /** A child session reports each change of its status to its parent. */
    private readonly parentLink: ParentLink | null = null,
    /** With a budget: what this session and those below it spent (reported to the parent). */
    private readonly spent: (() => number) | null = null,
  ) {}

  publish(): void {
    const { state, config, shown } = this;
    const status = state.status;
    const pending = state.approvals.pending().length;
    const changed = status !== shown.status || pending !== shown.pending;
    if (
      config.searchAttributes &&
      (changed || (state.turn !== shown.turn && !patched(Patch.turnAttributeOnStatus)))
    ) {
      upsertSearchAttributes([
        { key: RatchetStatus, value: status },
        { key: RatchetTurn, value: state.turn },
        { key: RatchetPendingApprovals, value: pending },
        ...(shown.status === '' ? [{ key: RatchetRepo, value: config.workspace }] : []),
        ...(shown.status === '' && this.parentLink
          ? [{ key: RatchetParent, value: this.parentLink.parentId }]
          : []),
      ]);
    }
    // A child tells its parent what it is doing; how it ended is reported where it ends.
    if (
      this.parentLink &&
      (status === 'running' ||
        status === 'awaiting_approval' ||
        status === 'awaiting_budget' ||
        status === 'idle')
    ) {
      this.parentLink.report({
        status,
        turn: state.turn,
        pending,
        ...(status === 'idle' && state.notice ? { message: state.notice } : {}),
        ...(this.spent ? { tokens: this.spent() } : {}),
      });
    }
    const details = sessionDetails(state, config.task, this.lastTurn);
    if (details !== shown.details) setCurrentDetails(details);
    // Not on a run's first publish: a run continued as new does not announce its state again.
    if (status !== shown.status && shown.status !== '' && isNotificationEvent(status)) {
      this.notifier.emit(
        status,
        notificationDetails({
          task: config.task,
          turn: state.turn,
          pending: state.approvals
            .pending()
            .map(({ callId, summary, reason }) => ({ callId, summary, reason })),
          message: status === 'completed' ? state.lastMessage : state.notice,
        }),
      );
    }
    this.shown = { status, turn: state.turn, pending, details };
  }

  /** Shows what the session is doing now, and publishes. */
  setCurrent(kind: CurrentStep['kind'], label: string): void {
    this.state.setCurrent(kind, label);
    this.publish();
  }

  /** What the last reply asked for, as a person reads it. */
  get lastTurnSummary(): string {
    return this.lastTurn;
  }

  /** Remembers what the last reply asked for (shown with the next publish). */
  showTurn(turn: number, calls: FunctionCallItem[]): void {
    this.lastTurn = turnOutcome(turn, calls);
  }
}
