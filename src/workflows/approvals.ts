/**
 * The session's approvals: the calls waiting for a person, the decisions made on them, and the
 * rules a person set for the rest of the session ("approve for this session"). This class owns
 * the sequence of one call's approval — asked → decided (by a person, a session rule or a new
 * policy) → settled — and refuses a decision that comes too late or twice. Deterministic: the
 * workflow waits on `decisionFor` and unit tests drive it without a server.
 */
import type { ApprovalPolicy, PolicyDecision, PolicyRule, ToolRequest } from '../shared/policy/policy.js';
import { decide, ruleMatches, sessionRuleFor } from '../shared/policy/policy.js';
import type { SandboxMode } from '../shared/policy/sandbox.js';
import type { PrefixStyle } from '../shared/policy/session-rule-prefix.js';
import type { Approval, ApprovalAck, PendingApproval } from '../shared/api/session-api.js';

/** A decision that cannot be applied; its message is for the caller. */
export class ApprovalRejected extends Error {
  override name = 'ApprovalRejected';
}

/** A decision the session is waiting for, with the policy's reason for asking. */
interface WaitingCall {
  view: PendingApproval;
  request: ToolRequest;
  decision?: Approval;
}

/** What the approvals ask of the session they belong to. */
export interface ApprovalContext {
  /** Whether the session's policy and rules (session rules included) now allow the request. */
  allows(request: ToolRequest): boolean;
  /** How the session ended, or null while it runs: an ended session takes no decision. */
  ended(): string | null;
  /**
   * How "approve for this session" cuts a command's prefix; asked at the time of the approval so
   * that the workflow can answer it through a patch marker.
   */
  prefixStyle(): PrefixStyle;
}

export class Approvals {
  private readonly waiting = new Map<string, WaitingCall>();
  private readonly decided = new Set<string>();
  private readonly rules: PolicyRule[];

  /** @param sessionRules the rules carried from earlier runs of the session */
  constructor(
    sessionRules: readonly PolicyRule[],
    private readonly session: ApprovalContext,
  ) {
    this.rules = [...sessionRules];
  }

  /** The rules a person set with "approve for this session" (carried across continue-as-new). */
  get sessionRules(): readonly PolicyRule[] {
    return this.rules;
  }

  /** The policy asks about this call: wait for a decision on it. */
  request(view: PendingApproval, request: ToolRequest): void {
    this.waiting.set(view.callId, { view, request });
  }

  /** The decision for a call, once a person (or a session rule) has made it. */
  decisionFor(callId: string): Approval | undefined {
    return this.waiting.get(callId)?.decision;
  }

  /**
   * Stops waiting for one call: its decision has been acted on, or it will not run. A decision
   * that arrives later is refused as already decided.
   */
  settle(callId: string): void {
    if (this.waiting.delete(callId)) this.decided.add(callId);
  }

  /** Ends every wait (turn aborted or interrupted): calls not yet decided are dropped. */
  clear(): void {
    for (const callId of this.waiting.keys()) this.decided.add(callId);
    this.waiting.clear();
  }

  /** The calls waiting for a person, in the order they were asked about. */
  pending(): PendingApproval[] {
    return [...this.waiting.values()].filter((w) => !w.decision).map((w) => w.view);
  }

  /** Throws ApprovalRejected with a message for the caller when the approval cannot be applied. */
  validate(approval: Approval): void {
    const ended = this.session.ended();
    if (ended) throw new ApprovalRejected(`the session has ended (${ended}); nothing to approve`);
    const waiting = this.waiting.get(approval.callId);
    if (!waiting) {
      if (this.decided.has(approval.callId)) {
        throw new ApprovalRejected(`call ${approval.callId} was already decided`);
      }
      const pending = this.pending().map((p) => p.callId);
      throw new ApprovalRejected(
        `no pending approval for call ${approval.callId}` +
          (pending.length ? ` (pending: ${pending.join(', ')})` : ' (nothing is pending)'),
      );
    }
    if (waiting.decision) throw new ApprovalRejected(`call ${approval.callId} was already decided`);
  }

  /** Records a decision (validated here). "approve_for_session" also approves what its rule covers. */
  apply(approval: Approval): ApprovalAck {
    this.validate(approval);
    const waiting = this.waiting.get(approval.callId)!;
    waiting.decision = approval;
    let alsoApproved: string[] = [];
    if (approval.decision === 'approve_for_session') {
      this.rules.push(sessionRuleFor(waiting.request, this.session.prefixStyle()));
      alsoApproved = this.approveAllowed(`covered by the session rule from ${approval.callId}`);
    }
    return { callId: approval.callId, decision: approval.decision, alsoApproved };
  }

  /** Approves the waiting calls that the policy and rules now allow (after a new rule or policy). */
  approveAllowed(reason: string): string[] {
    const approved: string[] = [];
    for (const [callId, waiting] of this.waiting) {
      if (waiting.decision) continue;
      if (this.session.allows(waiting.request)) {
        waiting.decision = { callId, decision: 'approve', reason };
        approved.push(callId);
      }
    }
    return approved;
  }
}

/** What decideForSession weighs: the session's policy and rules and how its commands are confined. */
export interface SessionPolicy {
  policy: ApprovalPolicy;
  /** The configured rules, then the session rules. */
  rules: readonly PolicyRule[];
  /** Why commands cannot be confined on this worker, or null when they can. */
  unconfined: string | null;
  sandbox: SandboxMode;
}

/**
 * The policy's decision, made stricter where the sandbox cannot hold: without one every command
 * asks, and a read-only session asks before every edit — unless a rule a person set allows it.
 */
export function decideForSession(request: ToolRequest, session: SessionPolicy): PolicyDecision {
  const { rules } = session;
  const decision = decide(request, session.policy, [...rules]);
  if (decision.action !== 'allow') return decision;
  if (rules.some((rule) => rule.action === 'allow' && ruleMatches(rule, request))) return decision;
  if (session.unconfined !== null && request.kind === 'execute') {
    return {
      action: 'ask',
      reason: `commands cannot be sandboxed on this worker (${session.unconfined}), so every command asks`,
    };
  }
  if (session.sandbox === 'read-only' && request.kind === 'edit') {
    return { action: 'ask', reason: 'the session is read-only (sandbox read-only), so every edit asks' };
  }
  return decision;
}
