/**
 * A session's tree as the client sees it: a session that fans out has children (listed in its
 * status, `agents`), at most four deep. These look-ups walk it: the calls waiting for a person
 * anywhere below a session, where one call waits, the tree's root, and the token budget that the
 * root holds for the whole tree.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type {
  BudgetDecision,
  BudgetView,
  PendingApproval,
  SessionStatus,
  StatusView,
} from './shared/api/session-api.js';
import { budgetDecisionSchema, budgetUpdate } from './shared/api/session-api.js';
import { describeZodError } from './shared/api/session-config.js';
import { RatchetError, errorMessage } from './client-errors.js';

/** What the tree's look-ups ask of the client (RatchetClient). */
export interface TreeClient {
  status(sessionId: string): Promise<StatusView>;
  /** The session's handle; a RatchetError when it has ended. */
  requireRunning(sessionId: string): Promise<WorkflowHandle>;
}

/**
 * The calls waiting for a person in a session and in every session below it (the children it
 * lists in its status, and theirs), each with the session that holds it.
 */
export async function treeApprovals(
  client: TreeClient,
  sessionId: string,
  depth = 0,
): Promise<{ sessionId: string; approval: PendingApproval }[]> {
  const view = await client.status(sessionId);
  const found = view.pendingApprovals.map((approval) => ({ sessionId, approval }));
  if (depth >= 4) return found;
  for (const agent of view.agents ?? []) {
    if (
      agent.closed ||
      !['running', 'awaiting_approval', 'awaiting_budget', 'idle', 'pending_init'].includes(agent.status)
    )
      continue;
    try {
      found.push(...(await treeApprovals(client, agent.sessionId, depth + 1)));
    } catch {
      // A child that ended meanwhile has nothing to decide.
    }
  }
  return found;
}

/**
 * Where a call waits, when the session has children: the session (itself or one below it) and
 * the call. Undefined for a session without children (the caller asks the session itself).
 */
export async function locateInTree(
  client: TreeClient,
  sessionId: string,
  callId: string | undefined,
): Promise<{ sessionId: string; callId: string } | undefined> {
  let view: StatusView;
  try {
    view = await client.status(sessionId);
  } catch {
    return undefined;
  }
  if (!view.agents?.length) return undefined;
  const pending = await treeApprovals(client, sessionId);
  const matches = callId === undefined ? pending : pending.filter((p) => p.approval.callId === callId);
  if (matches.length === 1) return { sessionId: matches[0]!.sessionId, callId: matches[0]!.approval.callId };
  if (matches.length > 1) {
    const list = matches
      .map((p) => `${p.approval.callId} in ${p.sessionId} (${p.approval.summary})`)
      .join(', ');
    throw new RatchetError(
      callId === undefined
        ? `session ${sessionId} and its agents have ${matches.length} pending approvals; name one: ${list}`
        : `${callId} is pending in more than one session of the tree; name the session: ${list}`,
    );
  }
  return undefined;
}

/** The root of the tree a session belongs to (itself when it has no parent). */
export async function treeRoot(client: TreeClient, sessionId: string): Promise<string> {
  let id = sessionId;
  // A tree is at most 4 deep (agentsSettingsSchema); the bound only guards against a cycle.
  for (let hop = 0; hop < 8; hop++) {
    const { parent } = await client.status(id);
    if (!parent) return id;
    id = parent;
  }
  throw new RatchetError(`cannot find the root of ${sessionId}'s tree (stopped at ${id})`);
}

/**
 * The token budget of a session's tree, and with a decision, decides it at the tree's root:
 * `{ add: N }` continues with N more tokens, `{ stop: true }` brings every session to rest.
 */
export async function treeBudget(
  client: TreeClient,
  sessionId: string,
  decision?: BudgetDecision,
): Promise<BudgetView & { sessionId: string; status: SessionStatus }> {
  if (decision !== undefined) {
    const checked = budgetDecisionSchema().safeParse(decision);
    if (!checked.success) {
      throw new RatchetError(`invalid budget decision: ${describeZodError(checked.error)}`);
    }
  }
  const root = await treeRoot(client, sessionId);
  if (decision === undefined) {
    const view = await client.status(root);
    if (!view.budget)
      throw new RatchetError(`session ${root} has no token budget (start it with --budget-tokens N)`);
    return { sessionId: root, status: view.status, ...view.budget };
  }
  const handle = await client.requireRunning(root);
  try {
    const answer = await handle.executeUpdate(budgetUpdate, { args: [decision] });
    const { status } = await client.status(root);
    return { sessionId: root, status, ...answer };
  } catch (err) {
    const what = decision.add !== undefined ? `add ${decision.add} tokens to` : 'stop';
    throw new RatchetError(`cannot ${what} ${root}'s budget: ${errorMessage(err)}`);
  }
}
