/**
 * What a person sees of a session: the status query's view of a SessionState (session-state.ts)
 * and how its commands are confined, in words. Read-only and deterministic.
 */
import type { StatusView } from '../shared/api/session-api.js';
import type { SandboxMode } from '../shared/policy/sandbox.js';
import type { SessionState } from './session-state.js';

/** How commands are confined, as a person reads it. */
export function sandboxLabelOf(sandbox: SandboxMode, unconfined: string | null): string {
  if (sandbox === 'danger-full-access') return 'danger-full-access (no sandbox)';
  if (unconfined !== null) return `none: ${unconfined}; every command asks for approval`;
  return sandbox;
}

export function statusViewOf(state: SessionState): StatusView {
  return {
    status: state.status,
    task: state.config.task,
    workspace: state.config.workspace,
    model: state.config.model.name,
    approvalPolicy: state.approvalPolicy,
    sandbox: state.sandboxLabel,
    turn: state.turn,
    pendingApprovals: state.approvals.pending(),
    usage: state.usage,
    // The very array the state carries, as the view always had it.
    plan: state.plan as StatusView['plan'],
    lastMessage: state.lastMessage,
    notice: state.notice,
    current: state.current,
    transcriptLength: state.entries.length,
    epoch: state.epoch,
    runs: state.runs,
    compactions: state.compactions,
    queuedMessages: state.queuedMessages.length,
    toolQueue: state.toolQueue,
  };
}
