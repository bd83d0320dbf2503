/**
 * spawn_agent: a new child session. This module owns the sequence: the open-agents limit and the
 * task are checked → a worktree on a new branch is made by the worker that holds the workspace
 * → the child is recorded (pending_init) → `agentSession` starts as a child workflow with the
 * id `<parent>/agent-N`, the parent's configuration (model, policy, rules, sandbox, budget), the
 * worktree as its workspace and the same worker → the model reads the agent's id.
 */
import type { ActivityOptions, ChildWorkflowHandle, proxyActivities } from '@temporalio/workflow';
import { ParentClosePolicy, isCancellation, startChild, workflowInfo } from '@temporalio/workflow';
import { agentBranch, inputText, refSafe } from '../shared/tools/agent-tools.js';
import type { SessionConfig } from '../shared/api/session-config.js';
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

export async function spawnChild(
  deps: SpawnDeps,
  args: { message?: string; items?: { text?: string }[] },
): Promise<AgentToolResult> {
  const { host, acts, routed, depth } = deps;
  const max = host.config.agents!.max;
  if (deps.open >= max) {
    return failure(
      `This session may have at most ${max} agents open at once; close one (close_agent) before spawning another.`,
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
  const sessionId = `${host.sessionId}/${name}`;
  const branch = agentBranch(host.sessionId, name);
  let tree: Awaited<ReturnType<Activities['createAgentWorktree']>>;
  try {
    tree = await host.guard.settled(
      acts.createAgentWorktree.executeWithOptions({ summary: `worktree · ${name} on ${branch}`, ...routed }, [
        { workspace, branch, parentDir: refSafe(host.sessionId), childDir: name },
      ]),
    );
  } catch (err) {
    if (isCancellation(err)) throw err;
    return failure(
      `Could not create a worktree for the agent: ${rootMessage(err)}`,
      `spawn_agent · ${name} · no worktree`,
    );
  }
  const child: ChildRecord = {
    name,
    sessionId,
    branch,
    worktree: tree.worktree,
    workspace: tree.workspace,
    base: tree.base,
    state: { status: 'pending_init' },
    merged: false,
    closed: false,
  };
  deps.add(child);
  host.changed();
  const queue = host.toolQueue();
  const prefix = `${workflowInfo().taskQueue}@`;
  const worker = queue?.startsWith(prefix) ? queue.slice(prefix.length) : host.config.worker;
  const config: SessionConfig = {
    ...host.config,
    task,
    workspace: tree.workspace,
    approvalPolicy: host.approvalPolicy(),
    notify: false,
    parent: { id: host.sessionId, name, depth: depth + 1 },
    ...(worker ? { worker } : {}),
  };
  try {
    const handle = await host.guard.settled(
      startChild('agentSession', {
        workflowId: sessionId,
        taskQueue: workflowInfo().taskQueue,
        args: [{ schemaVersion: SESSION_SCHEMA_VERSION, config }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      }),
    );
    deps.started(child, handle as ChildWorkflowHandle<never>);
  } catch (err) {
    if (isCancellation(err)) throw err;
    child.state = { status: 'errored', why: `the child session did not start: ${rootMessage(err)}` };
    child.closed = true;
    host.changed();
    return failure(
      `The agent could not be started: ${rootMessage(err)}`,
      `spawn_agent · ${name} · not started`,
    );
  }
  host.changed();
  return {
    output: JSON.stringify({ agent_id: name, nickname: null }),
    display: `spawn_agent · ${name} · ${firstLine(task)}`,
    success: true,
  };
}
