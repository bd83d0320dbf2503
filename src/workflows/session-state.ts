/**
 * A session's state and its transitions, as a plain class: the workflow wires it to Temporal
 * (activities, handlers, timers) and unit tests drive it without a server. Everything here is
 * deterministic. The calls waiting for a person, and what the policy asks, are in approvals.ts;
 * this class carries everything across continue-as-new (`carry()`).
 */
import type { FunctionCallItem, TranscriptItem } from '../shared/prompt/items.js';
import { functionOutput, messageText, userMessage } from '../shared/prompt/items.js';
import type { ApprovalPolicy, PolicyDecision, ToolRequest } from '../shared/policy/policy.js';
import type { PrefixStyle } from '../shared/policy/session-rule-prefix.js';
import type {
  CurrentStep,
  SessionStatus,
  StatusView,
  TranscriptPage,
  TranscriptRequest,
} from '../shared/api/session-api.js';
import type {
  CarriedState,
  SessionConfig,
  TranscriptEntry,
  Usage,
  WorkspaceInfo,
} from '../shared/api/session-config.js';
import type { PlanStep } from '../shared/tools/specs.js';
import { Approvals, decideForSession } from './approvals.js';
import type { Carried } from './session-carried.js';
import { sandboxLabelOf, statusViewOf } from './status-view.js';
import { capNotice, freshState, sumUsage } from './session-carried.js';
import type { ByteMeasure, OpenCallFate } from './transcript.js';
import { Transcript } from './transcript.js';

/**
 * The session's state. Carried fields are read through getters and change only through the
 * methods below, so every transition has a name; `ended` and `current` belong to this run alone.
 */
export class SessionState {
  private s: Carried;
  private endedAs: Extract<SessionStatus, 'completed' | 'failed' | 'cancelled'> | null = null;
  private step: CurrentStep | null = null;
  private readonly transcript: Transcript;
  /** The calls waiting for a person, their decisions, and the session's own rules. */
  readonly approvals: Approvals;
  /** Parked for the token budget (budget.ts keeps and carries it; mirrored here for the status). */
  private budgetParked = false;

  /**
   * @param prefixStyle how "approve for this session" cuts a command's prefix; asked at the time
   *   of the approval so that the workflow can answer it through a patch marker.
   */
  constructor(
    readonly config: SessionConfig,
    carried?: CarriedState,
    prefixStyle: () => PrefixStyle = () => 'narrow',
    measure: ByteMeasure = 'utf8',
  ) {
    const start: Omit<CarriedState, 'workspace'> & { workspace: WorkspaceInfo | null } = carried ?? {
      ...freshState(config),
      entries: [],
      sessionRules: [],
    };
    // Runs before the epoch was derived carried it beside `compactions`, always equal to it.
    const { epoch: _sameAsCompactions, entries, sessionRules, ...rest } = start;
    this.s = rest;
    this.transcript = new Transcript(entries, measure);
    this.approvals = new Approvals(sessionRules, {
      allows: (request) => this.decidePolicy(request).action === 'allow',
      ended: () => this.endedAs,
      prefixStyle,
    });
  }

  // ── what the session carries, read-only ───────────────────────────────────

  get entries(): readonly TranscriptEntry[] {
    return this.transcript.entries;
  }
  /**
   * The transcript's epoch: its indexes are stable until the next compaction, so the epoch is the
   * number of compactions.
   */
  get epoch(): number {
    return this.s.compactions;
  }
  get turn(): number {
    return this.s.turn;
  }
  /** Turn at which the turn limit stops the session (raised when a person sends a message). */
  get turnLimit(): number {
    return this.s.turnLimit;
  }
  get usage(): Usage {
    return this.s.usage;
  }
  /**
   * Tokens of the last model call's context: its input plus its output, since the output is in
   * the next request (carried as `lastInputTokens`, its name in histories).
   */
  get contextTokens(): number {
    return this.s.lastInputTokens;
  }
  get plan(): readonly PlanStep[] {
    return this.s.plan;
  }
  get approvalPolicy(): ApprovalPolicy {
    return this.s.approvalPolicy;
  }
  get queuedMessages(): readonly string[] {
    return this.s.queuedMessages;
  }
  get idle(): boolean {
    return this.s.idle;
  }
  get lastMessage(): string | null {
    return this.s.lastMessage;
  }
  get notice(): string | null {
    return this.s.notice;
  }
  get workspace(): WorkspaceInfo | null {
    return this.s.workspace;
  }
  get runs(): number {
    return this.s.runs;
  }
  get compactions(): number {
    return this.s.compactions;
  }
  /** How many leading entries are the fixed context (AGENTS.md, environment) that compaction keeps. */
  get contextEntries(): number {
    return this.s.contextEntries;
  }
  /** Turn at which the transcript was last compacted. */
  get lastCompactionTurn(): number | null {
    return this.s.lastCompactionTurn;
  }
  /**
   * Why this session's commands cannot be confined, or null when they can. Set once, when the
   * workspace is prepared on a worker without a sandbox: a constant of the session.
   */
  get unconfined(): string | null {
    return this.s.unconfined;
  }
  /** Task queue of the worker that holds the workspace; null: the session's own queue. */
  get toolQueue(): string | null {
    return this.s.toolQueue;
  }
  /** The latest checkpoint of the workspace (checkpoints.ts); null before the first. */
  get lastCheckpoint(): { turn: number; commit: string } | null {
    return this.s.lastCheckpoint ?? null;
  }
  /** The provider's last stored response (providerState), reset by compaction. */
  get lastResponse(): { id: string; upTo: number } | null {
    return this.s.lastResponse;
  }
  /** Terminal status, once the session has ended. */
  get ended(): Extract<SessionStatus, 'completed' | 'failed' | 'cancelled'> | null {
    return this.endedAs;
  }
  /** What the session is doing now (display only). */
  get current(): CurrentStep | null {
    return this.step;
  }

  // ── the session's own transitions ─────────────────────────────────────────

  /** The workspace was prepared: the session holds it for good. */
  workspacePrepared(workspace: WorkspaceInfo): void {
    this.s.workspace = workspace;
  }

  /** The entries so far are the fixed context that compaction keeps. */
  markFixedContext(): void {
    this.s.contextEntries = this.transcript.entries.length;
  }

  /** The worker cannot confine commands: for the rest of the session every command asks. */
  runUnconfined(detail: string): void {
    this.s.unconfined = detail;
    this.setNotice(
      `commands cannot be sandboxed on this worker (${detail}); every command will ask for approval`,
    );
  }

  /**
   * Tool calls go to this worker's queue from now on. `journals`: the worker said it keeps a
   * command journal (it prepared the workspace); a worker moved to by hand has not said so.
   */
  routeToolsTo(queue: string, journals = false): void {
    this.s.toolQueue = queue;
    if (journals) this.s.commandJournal = true;
    else delete this.s.commandJournal;
  }

  /** Whether a command's lost attempt may be retried on the holder's queue (its journal decides). */
  get holderJournals(): boolean {
    return this.s.toolQueue !== null && this.s.commandJournal === true;
  }

  setNotice(notice: string): void {
    this.s.notice = capNotice(notice);
  }

  /** Drops the notice if it starts with `prefix` (one that a later event made untrue). */
  clearNoticeOf(prefix: string): void {
    if (this.s.notice?.startsWith(prefix)) this.s.notice = null;
  }

  updatePlan(plan: PlanStep[]): void {
    this.s.plan = plan;
  }

  /** After a reply, with providerState: the provider's id for it, covering the whole transcript. */
  rememberResponse(responseId: string | null | undefined): void {
    this.s.lastResponse = responseId ? { id: responseId, upTo: this.transcript.entries.length } : null;
  }

  /** A new approval policy; the waiting calls it now allows are approved. */
  changePolicy(policy: ApprovalPolicy): string[] {
    this.s.approvalPolicy = policy;
    return this.approvals.approveAllowed(`policy changed to ${policy}`);
  }

  setCurrent(kind: CurrentStep['kind'], label: string): void {
    this.step = { kind, label, since: new Date().toISOString() };
  }

  clearCurrent(): void {
    this.step = null;
  }

  /** The workspace's latest checkpoint (taken, or restored by a rewind). */
  recordCheckpoint(turn: number, commit: string): void {
    this.s.lastCheckpoint = { turn, commit };
  }

  /** The token budget parked this session, or let it go (budget.ts). */
  markBudgetParked(parked: boolean): void {
    this.budgetParked = parked;
  }

  /** The session is over; `notice` says why when it failed. */
  end(status: Extract<SessionStatus, 'completed' | 'failed' | 'cancelled'>, notice?: string): void {
    this.endedAs = status;
    this.step = null;
    if (notice !== undefined) this.s.notice = notice;
  }

  // ── transcript ────────────────────────────────────────────────────────────

  append(item: TranscriptItem, note?: { display: string; success: boolean }): void {
    this.transcript.push(note ? { item, turn: this.s.turn, ...note } : { item, turn: this.s.turn });
  }

  /** Every call id in the transcript (a new call must not reuse one). */
  callIds(): Set<string> {
    return this.transcript.callIds();
  }

  get bytes(): number {
    return this.transcript.bytes;
  }

  /** Replaces the transcript with a compacted one; indexes restart in a new epoch. */
  replaceTranscript(items: TranscriptItem[]): void {
    this.transcript.clear();
    this.s.compactions += 1;
    this.s.lastCompactionTurn = this.s.turn;
    this.s.lastInputTokens = 0;
    // The provider's copy is of the old transcript: the next request sends the compacted one whole.
    this.s.lastResponse = null;
    for (const item of items) this.append(item);
  }

  transcriptPage(request: TranscriptRequest = {}): TranscriptPage {
    return this.transcript.page(request, this.epoch);
  }

  // ── model turns ───────────────────────────────────────────────────────────

  /** Starts the next turn; returns its number. */
  beginTurn(): number {
    this.s.turn += 1;
    return this.s.turn;
  }

  /**
   * The model never answered (it gave up, or the request did not fit): the turn did not happen and
   * the next attempt takes its number. The number was shown (and published) while the model was
   * called, so it is taken back rather than taken late.
   */
  abandonTurn(): void {
    this.s.turn -= 1;
  }

  addUsage(usage: Usage): void {
    this.s.usage = sumUsage(this.s.usage, usage);
    this.s.lastInputTokens = usage.inputTokens + usage.outputTokens;
  }

  /** Why the transcript must be compacted before the next model call, or null. */
  compactionReason(): string | null {
    const { contextWindow, compactAtRatio } = this.config.model;
    const tokenLimit = Math.floor(contextWindow * compactAtRatio);
    if (this.s.lastInputTokens >= tokenLimit) {
      return `the last request used ${this.s.lastInputTokens} of ${contextWindow} tokens (limit ${tokenLimit})`;
    }
    if (this.bytes >= this.config.limits.maxTranscriptBytes) {
      return `the transcript is ${this.bytes} bytes (limit ${this.config.limits.maxTranscriptBytes})`;
    }
    return null;
  }

  // ── messages from people ──────────────────────────────────────────────────

  queueMessage(text: string): void {
    this.s.queuedMessages.push(text);
  }

  /** Moves queued messages into the transcript; true if there were any. */
  deliverQueuedMessages(): boolean {
    if (this.s.queuedMessages.length === 0) return false;
    for (const text of this.s.queuedMessages) this.append(userMessage(text));
    this.s.queuedMessages = [];
    this.s.idle = false;
    this.s.notice = null;
    if (this.s.turn >= this.s.turnLimit) this.s.turnLimit = this.s.turn + this.config.limits.maxTurns;
    return true;
  }

  goIdle(notice: string | null): void {
    this.s.idle = true;
    this.s.notice = notice === null ? null : capNotice(notice);
    this.step = null;
  }

  // ── what the policy asks ──────────────────────────────────────────────────

  /** The policy's decision for a call, made stricter where the sandbox cannot hold (approvals.ts). */
  decidePolicy(request: ToolRequest): PolicyDecision {
    return decideForSession(request, {
      policy: this.s.approvalPolicy,
      rules: [...this.config.rules, ...this.approvals.sessionRules],
      unconfined: this.s.unconfined,
      sandbox: this.config.sandbox,
    });
  }

  // ── status ────────────────────────────────────────────────────────────────

  get status(): SessionStatus {
    if (this.endedAs) return this.endedAs;
    if (this.approvals.pending().length > 0) return 'awaiting_approval';
    if (this.s.idle) return 'idle';
    if (this.budgetParked) return 'awaiting_budget';
    return 'running';
  }

  /** How commands are confined, as a person reads it (status-view.ts). */
  get sandboxLabel(): string {
    return sandboxLabelOf(this.config.sandbox, this.s.unconfined);
  }

  /** What the status query answers (status-view.ts). */
  statusView(): StatusView {
    return statusViewOf(this);
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
    if (text) this.s.lastMessage = text;
  }

  /** Whether the transcript has an output for this call. */
  hasOutput(callId: string): boolean {
    return this.transcript.hasOutput(callId);
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
    for (const call of this.transcript.unanswered(calls)) {
      const fate = fateOf(call);
      const text = typeof output === 'string' ? output : output(call, fate);
      this.append(functionOutput(call.call_id, text), {
        display: `${call.name} · ${fate === 'interrupted' ? 'interrupted' : 'not run'}`,
        success: false,
      });
    }
  }

  /**
   * The state the next run starts from (continue-as-new): every carried field, as carried. `epoch`
   * is still written (as the number of compactions) so that the payload keeps its shape and size
   * for workers running older code and for histories replayed with it.
   */
  carry(): CarriedState {
    const { workspace } = this.s;
    if (!workspace) throw new Error('cannot carry a session whose workspace was never prepared');
    // What a rewind asked of its first run is done by then: the next run must not restore again.
    // A fork's base checkpoint stays recorded in its first run, the one that started from it.
    const { rewind: _done, base: _recorded, ...rest } = this.s;
    return {
      ...rest,
      entries: [...this.transcript.entries],
      epoch: this.epoch,
      sessionRules: [...this.approvals.sessionRules],
      workspace,
      runs: this.s.runs + 1,
    };
  }
}
