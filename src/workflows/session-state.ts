/**
 * A session's state and its transitions, as a plain class: the workflow wires it to Temporal
 * (activities, handlers, timers) and unit tests drive it without a server. Everything here is
 * deterministic.
 */
import type { FunctionCallItem, TranscriptItem } from '../shared/items.js';
import { functionOutput, messageText, userMessage } from '../shared/items.js';
import type { ApprovalPolicy, PolicyDecision, PolicyRule, ToolRequest } from '../shared/policy.js';
import { decide, ruleMatches, sessionRuleFor } from '../shared/policy.js';
import type { PrefixStyle } from '../shared/safe-commands.js';
import type {
  Approval,
  ApprovalAck,
  CurrentStep,
  PendingApproval,
  SessionStatus,
  StatusView,
  TranscriptPage,
  TranscriptRequest,
} from '../shared/session-api.js';
import type {
  CarriedState,
  SessionConfig,
  TranscriptEntry,
  Usage,
  WorkspaceInfo,
} from '../shared/session-config.js';
import { emptyUsage } from '../shared/session-config.js';
import type { PlanStep } from '../shared/tools.js';
import { jsonBytes } from '../shared/bytes.js';

export const DEFAULT_PAGE_BYTES = 1024 * 1024;

/** A decision the session is waiting for, with the policy's reason for asking. */
interface WaitingCall {
  view: PendingApproval;
  request: ToolRequest;
  decision?: Approval;
}

/** Longest notice kept: notices are carried across continue-as-new and shown in the UI. */
const MAX_NOTICE_CHARS = 4000;

export function capNotice(notice: string): string {
  return notice.length <= MAX_NOTICE_CHARS ? notice : `${notice.slice(0, MAX_NOTICE_CHARS - 1)}…`;
}

export class ApprovalRejected extends Error {
  override name = 'ApprovalRejected';
}

/** How transcript sizes are measured: UTF-8 bytes as payloads are, or (histories from before) UTF-16 units. */
export type ByteMeasure = 'utf8' | 'utf16';

function measureEntry(measure: ByteMeasure, entry: TranscriptEntry): number {
  return measure === 'utf8' ? jsonBytes(entry) : JSON.stringify(entry).length;
}

/** A call whose output the transcript does not have yet, and why: never started, or cut mid-run. */
export type OpenCallFate = 'not_run' | 'interrupted';

/** Finds call ids already used in the transcript and gives repeats a fresh, deterministic one. */
export function uniqueCallIds(
  used: ReadonlySet<string>,
  items: readonly TranscriptItem[],
): { items: TranscriptItem[]; renamed: number } {
  const taken = new Set(used);
  let renamed = 0;
  const out = items.map((item) => {
    if (item.type !== 'function_call') return item;
    let id = item.call_id;
    if (taken.has(id)) {
      let n = 2;
      while (taken.has(`${item.call_id}~${n}`)) n += 1;
      id = `${item.call_id}~${n}`;
      renamed += 1;
    }
    taken.add(id);
    return id === item.call_id ? item : { ...item, call_id: id };
  });
  return { items: out, renamed };
}

export class SessionState {
  entries: TranscriptEntry[];
  epoch: number;
  turn: number;
  turnLimit: number;
  usage: Usage;
  lastInputTokens: number;
  plan: PlanStep[];
  sessionRules: PolicyRule[];
  approvalPolicy: ApprovalPolicy;
  queuedMessages: string[];
  idle: boolean;
  lastMessage: string | null;
  notice: string | null;
  workspace: WorkspaceInfo | null;
  runs: number;
  compactions: number;
  contextEntries: number;
  lastCompactionTurn: number | null;
  /** Why this session's commands cannot be confined (then every command asks); null when they can. */
  unconfined: string | null;
  /** Task queue of the worker that holds the workspace; null: the session's own queue. */
  toolQueue: string | null;
  /** The provider's last stored response (providerState), reset by compaction. */
  lastResponse: { id: string; upTo: number } | null;
  /** Terminal status, once the session has ended. */
  ended: Extract<SessionStatus, 'completed' | 'failed' | 'cancelled'> | null = null;
  current: CurrentStep | null = null;
  private transcriptBytes: number;
  private readonly waiting = new Map<string, WaitingCall>();
  private readonly decided = new Set<string>();

  /**
   * @param prefixStyle how "approve for this session" cuts a command's prefix; asked at the time
   *   of the approval so that the workflow can answer it through a patch marker.
   */
  constructor(
    readonly config: SessionConfig,
    carried?: CarriedState,
    private readonly prefixStyle: () => PrefixStyle = () => 'narrow',
    private readonly measure: ByteMeasure = 'utf8',
  ) {
    this.entries = carried?.entries ?? [];
    this.epoch = carried?.epoch ?? 0;
    this.turn = carried?.turn ?? 0;
    this.turnLimit = carried?.turnLimit ?? config.limits.maxTurns;
    this.usage = carried?.usage ?? { ...emptyUsage };
    this.lastInputTokens = carried?.lastInputTokens ?? 0;
    this.plan = carried?.plan ?? [];
    this.sessionRules = carried?.sessionRules ?? [];
    this.approvalPolicy = carried?.approvalPolicy ?? config.approvalPolicy;
    this.queuedMessages = carried?.queuedMessages ?? [];
    this.idle = carried?.idle ?? false;
    this.lastMessage = carried?.lastMessage ?? null;
    this.notice = carried?.notice ?? null;
    this.workspace = carried?.workspace ?? null;
    this.runs = carried?.runs ?? 1;
    this.compactions = carried?.compactions ?? 0;
    this.contextEntries = carried?.contextEntries ?? 0;
    this.lastCompactionTurn = carried?.lastCompactionTurn ?? null;
    this.unconfined = carried?.unconfined ?? null;
    this.toolQueue = carried?.toolQueue ?? null;
    this.lastResponse = carried?.lastResponse ?? null;
    this.transcriptBytes = this.entries.reduce((sum, entry) => sum + this.entryBytes(entry), 0);
  }

  // ── transcript ────────────────────────────────────────────────────────────

  append(item: TranscriptItem, note?: { display: string; success: boolean }): void {
    const entry: TranscriptEntry = note ? { item, turn: this.turn, ...note } : { item, turn: this.turn };
    this.entries.push(entry);
    this.transcriptBytes += this.entryBytes(entry);
  }

  private entryBytes(entry: TranscriptEntry): number {
    return measureEntry(this.measure, entry);
  }

  /** Every call id in the transcript (a new call must not reuse one). */
  callIds(): Set<string> {
    const ids = new Set<string>();
    for (const { item } of this.entries) if (item.type === 'function_call') ids.add(item.call_id);
    return ids;
  }

  get bytes(): number {
    return this.transcriptBytes;
  }

  /** Replaces the transcript with a compacted one; indexes restart in a new epoch. */
  replaceTranscript(items: TranscriptItem[]): void {
    this.entries = [];
    this.transcriptBytes = 0;
    this.epoch += 1;
    this.compactions += 1;
    this.lastInputTokens = 0;
    // The provider's copy is of the old transcript: the next request sends the compacted one whole.
    this.lastResponse = null;
    for (const item of items) this.append(item);
  }

  transcriptPage(request: TranscriptRequest = {}): TranscriptPage {
    const fromIndex = Math.max(0, Math.min(request.fromIndex ?? 0, this.entries.length));
    const maxBytes = request.maxBytes ?? DEFAULT_PAGE_BYTES;
    const limit = request.limit ?? Number.POSITIVE_INFINITY;
    const entries: TranscriptEntry[] = [];
    let bytes = 0;
    for (let i = fromIndex; i < this.entries.length && entries.length < limit; i++) {
      const entry = this.entries[i]!;
      const size = this.entryBytes(entry);
      // Always return at least one entry, so that a reader makes progress.
      if (entries.length > 0 && bytes + size > maxBytes) break;
      entries.push(entry);
      bytes += size;
    }
    return {
      epoch: this.epoch,
      fromIndex,
      entries,
      nextIndex: fromIndex + entries.length,
      total: this.entries.length,
    };
  }

  // ── model turns ───────────────────────────────────────────────────────────

  /** Starts the next turn; returns its number. */
  beginTurn(): number {
    this.turn += 1;
    return this.turn;
  }

  /**
   * The model never answered (it gave up, or the request did not fit): the turn did not happen and
   * the next attempt takes its number. The number was shown (and published) while the model was
   * called, so it is taken back rather than taken late.
   */
  abandonTurn(): void {
    this.turn -= 1;
  }

  addUsage(usage: Usage): void {
    this.usage = {
      inputTokens: this.usage.inputTokens + usage.inputTokens,
      cachedInputTokens: this.usage.cachedInputTokens + usage.cachedInputTokens,
      outputTokens: this.usage.outputTokens + usage.outputTokens,
      reasoningTokens: this.usage.reasoningTokens + usage.reasoningTokens,
      totalTokens: this.usage.totalTokens + usage.totalTokens,
    };
    this.lastInputTokens = usage.inputTokens + usage.outputTokens;
  }

  /** Why the transcript must be compacted before the next model call, or null. */
  compactionReason(): string | null {
    const { contextWindow, compactAtRatio } = this.config.model;
    const tokenLimit = Math.floor(contextWindow * compactAtRatio);
    if (this.lastInputTokens >= tokenLimit) {
      return `the last request used ${this.lastInputTokens} of ${contextWindow} tokens (limit ${tokenLimit})`;
    }
    if (this.transcriptBytes >= this.config.limits.maxTranscriptBytes) {
      return `the transcript is ${this.transcriptBytes} bytes (limit ${this.config.limits.maxTranscriptBytes})`;
    }
    return null;
  }

  // ── messages from people ──────────────────────────────────────────────────

  queueMessage(text: string): void {
    this.queuedMessages.push(text);
  }

  /** Moves queued messages into the transcript; true if there were any. */
  deliverQueuedMessages(): boolean {
    if (this.queuedMessages.length === 0) return false;
    for (const text of this.queuedMessages) this.append(userMessage(text));
    this.queuedMessages = [];
    this.idle = false;
    this.notice = null;
    if (this.turn >= this.turnLimit) this.turnLimit = this.turn + this.config.limits.maxTurns;
    return true;
  }

  goIdle(notice: string | null): void {
    this.idle = true;
    this.notice = notice === null ? null : capNotice(notice);
    this.current = null;
  }

  // ── approvals ─────────────────────────────────────────────────────────────

  /**
   * The policy's decision, made stricter where the sandbox cannot hold: without one every command
   * asks, and a read-only session asks before every edit — unless a rule a person set allows it.
   */
  decidePolicy(request: ToolRequest): PolicyDecision {
    const rules = [...this.config.rules, ...this.sessionRules];
    const decision = decide(request, this.approvalPolicy, rules);
    if (decision.action !== 'allow') return decision;
    if (rules.some((rule) => rule.action === 'allow' && ruleMatches(rule, request))) return decision;
    if (this.unconfined !== null && request.kind === 'execute') {
      return {
        action: 'ask',
        reason: `commands cannot be sandboxed on this worker (${this.unconfined}), so every command asks`,
      };
    }
    if (this.config.sandbox === 'read-only' && request.kind === 'edit') {
      return { action: 'ask', reason: 'the session is read-only (sandbox read-only), so every edit asks' };
    }
    return decision;
  }

  /** How commands are confined, as a person reads it. */
  get sandboxLabel(): string {
    if (this.config.sandbox === 'danger-full-access') return 'danger-full-access (no sandbox)';
    if (this.unconfined !== null) return `none: ${this.unconfined}; every command asks for approval`;
    return this.config.sandbox;
  }

  requestApproval(view: PendingApproval, request: ToolRequest): void {
    this.waiting.set(view.callId, { view, request });
  }

  /** The decision for a call, once a person (or a session rule) has made it. */
  decisionFor(callId: string): Approval | undefined {
    return this.waiting.get(callId)?.decision;
  }

  /** Forgets a call once its decision has been acted on. */
  settle(callId: string): void {
    if (this.waiting.delete(callId)) this.decided.add(callId);
  }

  /** Throws ApprovalRejected with a message for the caller when the approval cannot be applied. */
  validateApproval(approval: Approval): void {
    if (this.ended) throw new ApprovalRejected(`the session has ended (${this.ended}); nothing to approve`);
    const waiting = this.waiting.get(approval.callId);
    if (!waiting) {
      if (this.decided.has(approval.callId)) {
        throw new ApprovalRejected(`call ${approval.callId} was already decided`);
      }
      const pending = this.pendingApprovals().map((p) => p.callId);
      throw new ApprovalRejected(
        `no pending approval for call ${approval.callId}` +
          (pending.length ? ` (pending: ${pending.join(', ')})` : ' (nothing is pending)'),
      );
    }
    if (waiting.decision) throw new ApprovalRejected(`call ${approval.callId} was already decided`);
  }

  /** Records a decision (validate first). "approve_for_session" also approves what its rule covers. */
  applyApproval(approval: Approval): ApprovalAck {
    this.validateApproval(approval);
    const waiting = this.waiting.get(approval.callId)!;
    waiting.decision = approval;
    let alsoApproved: string[] = [];
    if (approval.decision === 'approve_for_session') {
      this.sessionRules.push(sessionRuleFor(waiting.request, this.prefixStyle()));
      alsoApproved = this.approveCoveredCalls(`covered by the session rule from ${approval.callId}`);
    }
    return { callId: approval.callId, decision: approval.decision, alsoApproved };
  }

  /** Approves the waiting calls that the policy and rules now allow (after a new rule or policy). */
  approveCoveredCalls(reason: string): string[] {
    const approved: string[] = [];
    for (const [callId, waiting] of this.waiting) {
      if (waiting.decision) continue;
      if (this.decidePolicy(waiting.request).action === 'allow') {
        waiting.decision = { callId, decision: 'approve', reason };
        approved.push(callId);
      }
    }
    return approved;
  }

  /** Stops waiting for one call's decision (it will not run); a late decision is refused. */
  dropApproval(callId: string): void {
    if (this.waiting.delete(callId)) this.decided.add(callId);
  }

  /** Ends every wait (turn aborted or interrupted): calls not yet decided are dropped. */
  clearApprovals(): void {
    for (const callId of this.waiting.keys()) this.decided.add(callId);
    this.waiting.clear();
  }

  pendingApprovals(): PendingApproval[] {
    return [...this.waiting.values()].filter((w) => !w.decision).map((w) => w.view);
  }

  // ── status ────────────────────────────────────────────────────────────────

  get status(): SessionStatus {
    if (this.ended) return this.ended;
    if (this.pendingApprovals().length > 0) return 'awaiting_approval';
    if (this.idle) return 'idle';
    return 'running';
  }

  statusView(): StatusView {
    return {
      status: this.status,
      task: this.config.task,
      workspace: this.config.workspace,
      model: this.config.model.name,
      approvalPolicy: this.approvalPolicy,
      sandbox: this.sandboxLabel,
      turn: this.turn,
      pendingApprovals: this.pendingApprovals(),
      usage: this.usage,
      plan: this.plan,
      lastMessage: this.lastMessage,
      notice: this.notice,
      current: this.current,
      transcriptLength: this.entries.length,
      epoch: this.epoch,
      runs: this.runs,
      compactions: this.compactions,
      queuedMessages: this.queuedMessages.length,
      toolQueue: this.toolQueue,
    };
  }

  appendToolOutput(callId: string, result: { output: string; display: string; success: boolean }): void {
    this.append(functionOutput(callId, result.output), { display: result.display, success: result.success });
  }

  /** Keeps the model's latest text (its final answer once it stops calling tools). */
  recordAssistantText(items: TranscriptItem[]): void {
    const text = items
      .filter((item) => item.type === 'message')
      .map((item) => messageText(item))
      .join('\n')
      .trim();
    if (text) this.lastMessage = text;
  }

  /** Whether the transcript has an output for this call. */
  hasOutput(callId: string): boolean {
    return this.entries.some((e) => e.item.type === 'function_call_output' && e.item.call_id === callId);
  }

  /**
   * Answers every call of a turn that has no output yet, so the transcript stays well-formed, and
   * says what became of it: `output` gives the words for a call that never started and for one
   * cut while it ran (its effect unknown).
   */
  closeOpenCalls(
    calls: FunctionCallItem[],
    output: string | ((call: FunctionCallItem, fate: OpenCallFate) => string),
    fateOf: (call: FunctionCallItem) => OpenCallFate = () => 'not_run',
  ): void {
    const answered = new Set(
      this.entries.flatMap((e) => (e.item.type === 'function_call_output' ? [e.item.call_id] : [])),
    );
    for (const call of calls) {
      if (!answered.has(call.call_id)) {
        const fate = fateOf(call);
        const text = typeof output === 'string' ? output : output(call, fate);
        this.append(functionOutput(call.call_id, text), {
          display: `${call.name} · ${fate === 'interrupted' ? 'interrupted' : 'not run'}`,
          success: false,
        });
      }
    }
  }

  /** The state the next run starts from (continue-as-new). */
  carry(): CarriedState {
    if (!this.workspace) throw new Error('cannot carry a session whose workspace was never prepared');
    return {
      entries: this.entries,
      epoch: this.epoch,
      turn: this.turn,
      turnLimit: this.turnLimit,
      usage: this.usage,
      lastInputTokens: this.lastInputTokens,
      plan: this.plan,
      sessionRules: this.sessionRules,
      approvalPolicy: this.approvalPolicy,
      queuedMessages: this.queuedMessages,
      idle: this.idle,
      lastMessage: this.lastMessage,
      notice: this.notice,
      workspace: this.workspace,
      runs: this.runs + 1,
      compactions: this.compactions,
      contextEntries: this.contextEntries,
      lastCompactionTurn: this.lastCompactionTurn,
      unconfined: this.unconfined,
      toolQueue: this.toolQueue,
      lastResponse: this.lastResponse,
    };
  }
}
