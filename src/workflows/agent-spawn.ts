/**
 * spawn_agent: a new child session. This module owns the sequence: the open-agents limit and the
 * task are checked and the child named → a worktree on a new branch is made by the worker that
 * holds the workspace → the child is recorded (pending_init) → `agentSession` starts as a child
 * workflow with the id `<parent>/agent-N`, the parent's configuration (model, policy, rules,
 * sandbox, budget), the worktree as its workspace and the same worker → the model reads the
 * agent's id. The consecutive spawns of one reply take each step together (`spawnChildren`):
 * all are checked and named in the reply's order, then their worktrees are made at once, then
 * their children started together.
 */
import type { ActivityOptions, ChildWorkflowHandle, proxyActivities } from '@temporalio/workflow';
import { ParentClosePolicy, isCancellation, startChild, workflowInfo } from '@temporalio/workflow';
import { agentBranch, inputText, refSafe } from '../shared/tools/agent-tools.js';
import type { SessionConfig, WorkspaceInfo } from '../shared/api/session-config.js';
import { SESSION_SCHEMA_VERSION } from '../shared/api/session-config.js';
import { firstLine } from '../shared/util/text.js';
import { rootMessage } from '../shared/boundary/failures.js';
import type { Activities, AgentHost, AgentToolResult, ChildRecord } from './agent-host.js';
import { failure } from './agent-host.js';

export interface SpawnDeps {
  host: AgentHost;
  acts: ReturnType<typeof proxyActivities<Activities>>;
  /** Where the worktree activity runs: the worker that holds the workspace. */
  routed: ActivityOptions;
  /** This session's depth in the tree (0 at the root). */
  depth: number;
  /** Children open now (not closed). */
  open: number;
  /** The next child's name (agent-1, agent-2, …; never reused). */
  nextName(): string;
  add(child: ChildRecord): void;
  /** The child's workflow started. */
  started(child: ChildRecord, handle: ChildWorkflowHandle<never>): void;
}

/** A spawn that passed its checks: its name, branch and task are fixed, nothing is issued yet. */
export interface SpawnPlan {
  name: string;
  sessionId: string;
  branch: string;
  task: string;
  workspace: WorkspaceInfo;
}

/**
 * Checks a spawn and names it. `inFlight` counts the spawns of the same reply planned before this
 * one (spawns together): they count against the open-agents limit as if they were open already.
 */
export function planSpawn(
  deps: SpawnDeps,
  args: { message?: string; items?: { text?: string }[] },
  inFlight = 0,
): SpawnPlan | AgentToolResult {
  const { host } = deps;
  const max = host.config.agents!.max;
  if (deps.open + inFlight >= max) {
    return failure(
      inFlight === 0
        ? `This session may have at most ${max} agents open at once; close one (close_agent) before spawning another.`
        : `This session may have at most ${max} agents open at once, and ${deps.open} open plus the ${inFlight} ` +
            `spawned before this call in the same reply reach it: this spawn was refused (the others go ahead). ` +
            'Close one (close_agent) before spawning another.',
      `spawn_agent · refused (${max} open)`,
    );
  }
  const task = inputText(args);
  if (task.trim() === '') {
    return failure('spawn_agent needs a task: give `message` (or text `items`).', 'spawn_agent · no task');
  }
  const workspace = host.workspace();
  if (!workspace) return failure('The workspace is not prepared yet.', 'spawn_agent · no workspace');
  const name = deps.nextName();
  return {
    name,
    sessionId: `${host.sessionId}/${name}`,
    branch: agentBranch(host.sessionId, name),
    task,
    workspace,
  };
}

export function isPlan(planned: SpawnPlan | AgentToolResult): planned is SpawnPlan {
  return 'sessionId' in planned;
}

type Worktree = Awaited<ReturnType<Activities['createAgentWorktree']>>;

/** The worktree activity of a planned spawn (on the worker that holds the workspace). */
function makeWorktree(deps: SpawnDeps, plan: SpawnPlan): Promise<Worktree> {
  const { host, acts, routed } = deps;
  return host.guard.settled(
    acts.createAgentWorktree.executeWithOptions(
      { summary: `worktree · ${plan.name} on ${plan.branch}`, ...routed },
      [
        {
          workspace: plan.workspace,
          branch: plan.branch,
          parentDir: refSafe(host.sessionId),
          childDir: plan.name,
        },
      ],
    ),
  );
}

function noWorktree(plan: SpawnPlan, err: unknown): AgentToolResult {
  return failure(
    `Could not create a worktree for the agent: ${rootMessage(err)}`,
    `spawn_agent · ${plan.name} · no worktree`,
  );
}

/** The child's record, kept by the tree once its worktree exists. */
function recordChild(deps: SpawnDeps, plan: SpawnPlan, tree: Worktree): ChildRecord {
  const child: ChildRecord = {
    name: plan.name,
    sessionId: plan.sessionId,
    branch: plan.branch,
    worktree: tree.worktree,
    workspace: tree.workspace,
    base: tree.base,
    state: { status: 'pending_init' },
    merged: false,
    closed: false,
  };
  deps.add(child);
  deps.host.changed();
  return child;
}

/** Starts the child workflow (its start is awaited, not its end). */
function startSession(
  deps: SpawnDeps,
  plan: SpawnPlan,
  child: ChildRecord,
): Promise<ChildWorkflowHandle<never>> {
  const { host, depth } = deps;
  const queue = host.toolQueue();
  const prefix = `${workflowInfo().taskQueue}@`;
  const worker = queue?.startsWith(prefix) ? queue.slice(prefix.length) : host.config.worker;
  const config: SessionConfig = {
    ...host.config,
    task: plan.task,
    workspace: child.workspace,
    approvalPolicy: host.approvalPolicy(),
    notify: false,
    parent: { id: host.sessionId, name: plan.name, depth: depth + 1 },
    ...(worker ? { worker } : {}),
  };
  const starting = startChild('agentSession', {
    workflowId: plan.sessionId,
    taskQueue: workflowInfo().taskQueue,
    args: [{ schemaVersion: SESSION_SCHEMA_VERSION, config }],
    parentClosePolicy: ParentClosePolicy.ABANDON,
  });
  return host.guard.settled(starting) as Promise<ChildWorkflowHandle<never>>;
}

/** What the model reads once the child started, or could not (the record says it ended). */
function afterStart(
  deps: SpawnDeps,
  plan: SpawnPlan,
  child: ChildRecord,
  outcome: PromiseSettledResult<ChildWorkflowHandle<never>>,
): AgentToolResult {
  if (outcome.status === 'rejected') {
    child.state = {
      status: 'errored',
      why: `the child session did not start: ${rootMessage(outcome.reason)}`,
    };
    child.closed = true;
    deps.host.changed();
    return failure(
      `The agent could not be started: ${rootMessage(outcome.reason)}`,
      `spawn_agent · ${plan.name} · not started`,
    );
  }
  deps.started(child, outcome.value);
  deps.host.changed();
  return {
    output: JSON.stringify({ agent_id: plan.name, nickname: null }),
    display: `spawn_agent · ${plan.name} · ${firstLine(plan.task)}`,
    success: true,
  };
}

/** A cancellation among settled outcomes is rethrown (the turn is being cut). */
function rethrowCancellation(outcomes: PromiseSettledResult<unknown>[]): void {
  for (const outcome of outcomes) {
    if (outcome.status === 'rejected' && isCancellation(outcome.reason)) throw outcome.reason;
  }
}

/** One spawn_agent call on its own: plan → worktree → record → start. */
export async function spawnChild(
  deps: SpawnDeps,
  args: { message?: string; items?: { text?: string }[] },
): Promise<AgentToolResult> {
  const plan = planSpawn(deps, args);
  if (!isPlan(plan)) return plan;
  let tree: Worktree;
  try {
    tree = await makeWorktree(deps, plan);
  } catch (err) {
    if (isCancellation(err)) throw err;
    return noWorktree(plan, err);
  }
  const child = recordChild(deps, plan, tree);
  const [started] = await Promise.allSettled([startSession(deps, plan, child)]);
  rethrowCancellation([started]);
  return afterStart(deps, plan, child, started);
}

/**
 * The consecutive spawn_agent calls of one reply, together (marker `concurrent-spawns`): each is
 * checked and named in the reply's order (those refused count for nothing; those planned count
 * against the limit), their worktree activities are scheduled at once, the children whose
 * worktree exists are recorded in that order and their starts issued together. One spawn's
 * failure is its own result; the others go ahead. Results come back in the reply's order.
 */
export async function spawnChildren(
  deps: SpawnDeps,
  calls: readonly (SpawnPlan | AgentToolResult)[],
): Promise<AgentToolResult[]> {
  const plans = calls.filter(isPlan);
  const trees = await Promise.allSettled(plans.map((plan) => makeWorktree(deps, plan)));
  rethrowCancellation(trees);
  const results = new Map<SpawnPlan, AgentToolResult>();
  const starting: { plan: SpawnPlan; child: ChildRecord }[] = [];
  plans.forEach((plan, i) => {
    const tree = trees[i]!;
    if (tree.status === 'rejected') results.set(plan, noWorktree(plan, tree.reason));
    else starting.push({ plan, child: recordChild(deps, plan, tree.value) });
  });
  const started = await Promise.allSettled(
    starting.map(({ plan, child }) => startSession(deps, plan, child)),
  );
  // Children that started are kept (and ended by the session's end) even if the turn is cut here.
  starting.forEach(({ plan, child }, i) => {
    if (started[i]!.status === 'fulfilled' || !isCancellation((started[i] as PromiseRejectedResult).reason))
      results.set(plan, afterStart(deps, plan, child, started[i]!));
  });
  rethrowCancellation(started);
  return calls.map((call) => (isPlan(call) ? results.get(call)! : call));
}
