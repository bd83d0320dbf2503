/**
 * What a parent session shows of one child and tells it without waiting for an answer: its row in
 * the status's `agents`, and the budget directives and interrupts passed on to it as signals. A
 * signal that cannot reach the child (it has ended) is logged, never raised.
 */
import { getExternalWorkflowHandle, log } from '@temporalio/workflow';
import type { AgentView, BudgetDirective } from '../shared/api/session-api.js';
import { budgetDirectiveSignal, interruptSignal } from '../shared/api/session-api.js';
import { rootMessage } from '../shared/boundary/failures.js';
import { describeAgentState } from '../shared/tools/agent-tools.js';
import type { ChildRecord } from './agent-host.js';

export function childView(child: ChildRecord): AgentView {
  return {
    name: child.name,
    sessionId: child.sessionId,
    branch: child.branch,
    status: child.state.status,
    turn: 'turn' in child.state ? child.state.turn : 0,
    detail: describeAgentState(child.state),
    merged: child.merged,
    closed: child.closed,
  };
}

/** Passes the token budget's directive on to a child (budget.ts). */
export function signalDirective(child: ChildRecord, directive: BudgetDirective): void {
  getExternalWorkflowHandle(child.sessionId)
    .signal(budgetDirectiveSignal, directive)
    .catch((err: unknown) =>
      log.info('could not pass the budget on to an agent', {
        agent: child.sessionId,
        detail: rootMessage(err),
      }),
    );
}

/** Passes an interrupt on to a child. */
export function signalInterrupt(child: ChildRecord, reason: string | undefined): void {
  getExternalWorkflowHandle(child.sessionId)
    .signal(interruptSignal, { reason: reason ?? 'the parent session was interrupted' })
    .catch((err: unknown) =>
      log.info('could not interrupt an agent', { agent: child.sessionId, detail: rootMessage(err) }),
    );
}
