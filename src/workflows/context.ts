/**
 * What the parts of a session run share: its configuration and state, the activity stubs, the
 * run's control (stops, lost worker), and its view (what it shows outside). Built once by the
 * workflow's entry (agent-session.ts) and handed to handlers, the tool scheduler, the turn and
 * continue-as-new, so that each is a module of its own and none keeps state in a closure.
 */
import type { SessionConfig } from '../shared/api/session-config.js';
import type { SessionActivities } from './activities.js';
import type { AgentTree, ParentLink } from './agents.js';
import type { TreeBudget } from './budget.js';
import type { SessionCheckpoints } from './checkpoints.js';
import type { Notifier } from './notification.js';
import type { SessionView } from './publish.js';
import type { RunControl } from './run-control.js';
import type { SessionState } from './session-state.js';
import type { TaskGuard } from './task-guard.js';

export interface SessionContext {
  readonly config: SessionConfig;
  readonly state: SessionState;
  /** The workflow id: transcript reads and activity inputs name the session by it. */
  readonly sessionId: string;
  readonly activities: SessionActivities;
  /** Fails an activation that runs ahead of the session's workflow tasks (task-guard.ts). */
  readonly guard: TaskGuard;
  readonly control: RunControl;
  readonly view: SessionView;
  /** The workspace's checkpoints (checkpoints.ts): after each turn that may have written. */
  readonly checkpoints: SessionCheckpoints;
  readonly notifier: Notifier;
  /** Sizes are UTF-8 bytes (the utf8-bytes marker); histories from before counted UTF-16 units. */
  readonly utf8: boolean;
  /** A session that may fan out, or has children: its tree (agents.ts); null for every other. */
  readonly agents: AgentTree | null;
  /** A child session: its link to its parent; null for every other. */
  readonly parentLink: ParentLink | null;
  /** A session with a token budget (budget.ts); null for every other. */
  readonly budget: TreeBudget | null;
}

/** The state to carry across continue-as-new, with the children of a session that has some. */
export function carriedState({ state, agents, budget }: Pick<SessionContext, 'state' | 'agents' | 'budget'>) {
  const carried = agents?.hasChildren ? { ...state.carry(), agents: agents.carry() } : state.carry();
  return budget ? { ...carried, budget: budget.carry() } : carried;
}
