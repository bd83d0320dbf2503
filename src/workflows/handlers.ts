/**
 * The session's messages: two queries, the approve update and signal, the user-message and
 * interrupt signals, and the moveToWorker and setPolicy updates. Each handler owns one sequence:
 * validate (an update refuses in its validator with an ApplicationFailure the caller sees; a
 * signal that cannot apply is logged and ignored) → ask the state or the run control to change →
 * publish. Nothing here waits or issues an activity.
 */
import { ApplicationFailure, log, setHandler, workflowInfo } from '@temporalio/workflow';
import { SessionFailureType } from '../shared/boundary/failure-types.js';
import {
  approvalSchema,
  approveSignal,
  approveUpdate,
  budgetDecisionSchema,
  budgetDirectiveSignal,
  budgetSignal,
  budgetUpdate,
  interruptSchema,
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
} from '../shared/api/session-api.js';
import { describeZodError } from '../shared/api/session-config.js';
import { BudgetRefused } from './budget.js';
import type { SessionContext } from './context.js';

/** How the notice of a budget signal the session could not use begins. */
const IGNORED_BUDGET_SIGNAL = 'ignored a budget signal';

function refuse(message: string, type: string): never {
  throw ApplicationFailure.nonRetryable(message, type);
}

export function registerHandlers({
  state,
  control,
  view,
  guard,
  agents,
  parentLink,
  budget,
}: SessionContext): void {
  const refuseWhenEnded = () => {
    if (state.ended) refuse(`the session has ended (${state.ended})`, SessionFailureType.SessionEnded);
  };

  setHandler(statusQuery, () =>
    agents || parentLink || budget
      ? {
          ...state.statusView(),
          ...(agents?.hasChildren ? { agents: agents.view() } : {}),
          ...(agents?.retiredCount ? { agentsRetired: agents.retiredCount } : {}),
          ...(parentLink ? { parent: parentLink.parentId } : {}),
          ...(budget ? { budget: budget.view() } : {}),
        }
      : state.statusView(),
  );
  setHandler(transcriptQuery, (request) => state.transcriptPage(request ?? {}));

  setHandler(
    approveUpdate,
    (approval) => {
      guard.check();
      const ack = state.approvals.apply(approvalSchema().parse(approval));
      log.info('approval decided', {
        callId: ack.callId,
        decision: ack.decision,
        by: approval.by,
        via: 'update',
      });
      view.publish();
      return ack;
    },
    {
      validator: (approval) => {
        const checked = approvalSchema().safeParse(approval);
        if (!checked.success) {
          refuse(
            `malformed approval: ${describeZodError(checked.error)}`,
            SessionFailureType.InvalidApproval,
          );
        }
        try {
          state.approvals.validate(checked.data);
        } catch (err) {
          refuse((err as Error).message, SessionFailureType.InvalidApproval);
        }
      },
    },
  );

  setHandler(approveSignal, (approval) => {
    guard.check();
    const checked = approvalSchema().safeParse(approval);
    if (!checked.success) {
      log.warn('ignored a malformed approval signal', { problem: describeZodError(checked.error) });
      return;
    }
    try {
      const ack = state.approvals.apply(checked.data);
      log.info('approval decided', {
        callId: ack.callId,
        decision: ack.decision,
        by: checked.data.by,
        via: 'signal',
      });
      view.publish();
    } catch (err) {
      log.warn('ignored an approval signal', {
        callId: checked.data.callId,
        problem: (err as Error).message,
      });
    }
  });

  setHandler(userMessageSignal, (message) => {
    guard.check();
    const checked = userMessageSchema().safeParse(message);
    if (!checked.success) {
      log.warn('ignored a malformed user message', { problem: describeZodError(checked.error) });
      return;
    }
    if (state.ended) {
      log.warn('ignored a user message after the session ended', { status: state.ended });
      return;
    }
    state.queueMessage(checked.data.text);
    view.publish();
  });

  setHandler(interruptSignal, (request) => {
    guard.check();
    if (state.ended || state.idle) return;
    // The stop is what matters: a malformed reason is dropped, never the interrupt.
    const checked = interruptSchema().safeParse(request ?? {});
    if (!checked.success) {
      log.warn('interrupting without its malformed reason', { problem: describeZodError(checked.error) });
    }
    const reason = checked.success ? checked.data.reason : undefined;
    // Honoured at the next boundary when no turn is running (preparation, compaction, collection).
    control.requestStop({ kind: 'interrupt', reason });
    // Passed on to every child still working (agents.ts).
    agents?.interruptAll(reason);
  });

  // The token budget (budget.ts). Every session has the handlers; one without a budget refuses.
  setHandler(
    budgetUpdate,
    (decision) => {
      guard.check();
      const answer = budget!.decide(budgetDecisionSchema().parse(decision));
      state.clearNoticeOf(IGNORED_BUDGET_SIGNAL);
      log.info('budget decided', {
        decision: decision.add !== undefined ? `add ${decision.add}` : 'stop',
        by: decision.by,
      });
      return answer;
    },
    {
      validator: (decision) => {
        const checked = budgetDecisionSchema().safeParse(decision);
        if (!checked.success) {
          refuse(
            `malformed budget decision (expected {"add": <tokens>} or {"stop": true}): ${describeZodError(checked.error)}`,
            SessionFailureType.InvalidBudget,
          );
        }
        refuseWhenEnded();
        if (!budget) {
          refuse(
            'this session has no token budget (start it with --budget-tokens N)',
            SessionFailureType.InvalidBudget,
          );
        }
        try {
          budget.validate(checked.data);
        } catch (err) {
          if (err instanceof BudgetRefused) refuse(err.message, SessionFailureType.InvalidBudget);
          throw err;
        }
      },
    },
  );

  // The Web UI's signal cannot answer: what it ignores is logged and shown as the session's notice
  // (`ratchet status`, the inbox), set without publishing, so it issues no command.
  const ignoreBudgetSignal = (problem: string) => {
    log.warn('ignored a budget signal', { problem });
    if (!state.ended) state.setNotice(`${IGNORED_BUDGET_SIGNAL}: ${problem}`);
  };
  setHandler(budgetSignal, (decision) => {
    guard.check();
    const checked = budgetDecisionSchema().safeParse(decision);
    if (!checked.success) {
      return ignoreBudgetSignal(
        `malformed (expected {"add": <tokens>} or {"stop": true}): ${describeZodError(checked.error)}`,
      );
    }
    if (!budget || state.ended) {
      return ignoreBudgetSignal(
        budget ? 'the session has ended' : 'this session has no token budget (--budget-tokens N)',
      );
    }
    // A child passes a person's decision on towards the root, which decides for the tree.
    if (!budget.isRoot) return budget.forwardToParent(checked.data);
    try {
      budget.decide(checked.data);
      state.clearNoticeOf(IGNORED_BUDGET_SIGNAL);
    } catch (err) {
      if (!(err instanceof BudgetRefused)) throw err;
      ignoreBudgetSignal(err.message);
    }
  });

  setHandler(budgetDirectiveSignal, (directive) => {
    guard.check();
    if (!budget || state.ended) return;
    const ignored = budget.applyDirective(directive);
    if (ignored) log.warn('ignored a budget directive', { problem: ignored });
  });

  setHandler(
    moveToWorkerUpdate,
    ({ worker }) => {
      guard.check();
      const queue = workerTaskQueue(workflowInfo().taskQueue, worker.trim());
      log.warn('session moved to another worker', { from: state.toolQueue, to: queue });
      state.routeToolsTo(queue);
      if (state.idle) state.setNotice(`moved to worker ${worker.trim()}; send a message to continue`);
      view.publish();
      return queue;
    },
    {
      validator: (request) => {
        const checked = moveToWorkerSchema().safeParse(request);
        if (!checked.success) {
          refuse(`malformed move: ${describeZodError(checked.error)}`, SessionFailureType.InvalidMove);
        }
        refuseWhenEnded();
        if (!state.workspace) {
          refuse('the workspace is not prepared yet; nothing to move', SessionFailureType.NotPrepared);
        }
      },
    },
  );

  setHandler(
    setPolicyUpdate,
    ({ policy }) => {
      guard.check();
      state.changePolicy(policy);
      view.publish();
      return policy;
    },
    {
      validator: (request) => {
        const checked = setPolicySchema().safeParse(request);
        if (!checked.success) {
          refuse(
            `malformed policy change: ${describeZodError(checked.error)}`,
            SessionFailureType.InvalidPolicy,
          );
        }
        refuseWhenEnded();
      },
    },
  );
}
