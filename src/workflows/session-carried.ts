/**
 * What a session carries across continue-as-new before SessionState (session-state.ts) wraps it:
 * the carried fields it owns, a new session's starting values, and the cap on a carried notice.
 */
import type { CarriedState, SessionConfig, Usage, WorkspaceInfo } from '../shared/api/session-config.js';
import { emptyUsage } from '../shared/api/session-config.js';

/** Longest notice kept: notices are carried across continue-as-new and shown in the UI. */
const MAX_NOTICE_CHARS = 4000;

export function capNotice(notice: string): string {
  return notice.length <= MAX_NOTICE_CHARS ? notice : `${notice.slice(0, MAX_NOTICE_CHARS - 1)}…`;
}

/**
 * What a session carries across continue-as-new, as declared once by carriedStateSchema
 * (src/shared/api/session-config.ts), less what others own: the session rules (approvals.ts) and
 * `epoch` (always the number of compactions; see carry()). A prepared session's workspace is
 * never null.
 */
export type Carried = Omit<CarriedState, 'entries' | 'workspace' | 'epoch' | 'sessionRules'> & {
  workspace: WorkspaceInfo | null;
};

/** A new session's carried state. Typed as Carried, so a field added to the schema must be given here. */
export function freshState(config: SessionConfig): Carried {
  return {
    turn: 0,
    turnLimit: config.limits.maxTurns,
    usage: { ...emptyUsage },
    lastInputTokens: 0,
    plan: [],
    approvalPolicy: config.approvalPolicy,
    queuedMessages: [],
    idle: false,
    lastMessage: null,
    notice: null,
    workspace: null,
    runs: 1,
    compactions: 0,
    contextEntries: 0,
    lastCompactionTurn: null,
    unconfined: null,
    toolQueue: null,
    lastResponse: null,
  };
}

/** Two counts of tokens added up. */
export function sumUsage(a: Usage, b: Usage): Usage {
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    cachedInputTokens: a.cachedInputTokens + b.cachedInputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    reasoningTokens: a.reasoningTokens + b.reasoningTokens,
    totalTokens: a.totalTokens + b.totalTokens,
  };
}
