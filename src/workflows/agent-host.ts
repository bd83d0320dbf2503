/**
 * What fan-out (agents.ts) shares with its parts: the result of an agent tool call, a child as
 * the parent keeps it, what the tree needs from the session around it, and how a child's report
 * becomes the state the parent keeps. Pure: no commands are issued here.
 */
import type { createActivities } from '../activities/index.js';
import type { AgentState } from '../shared/tools/agent-tools.js';
import type { FunctionCallItem } from '../shared/prompt/items.js';
import type { PolicyDecision, ToolRequest } from '../shared/policy/policy.js';
import type { AgentReport, BudgetDirective } from '../shared/api/session-api.js';
import type { CarriedAgents, SessionConfig, WorkspaceInfo } from '../shared/api/session-config.js';
import type { TaskGuard } from './task-guard.js';

export type Activities = ReturnType<typeof createActivities>;

/** What a tool call gives back (the session's ToolResult). */
export interface AgentToolResult {
  output: string;
  display: string;
  success: boolean;
  outcome?: 'denied' | 'rejected' | 'not_run';
}

/** One child, as the parent keeps it (carried across continue-as-new). */
export type ChildRecord = CarriedAgents['children'][number];

/** What the tree needs from the session around it. */
export interface AgentHost {
  sessionId: string;
  config: SessionConfig;
  workspace(): WorkspaceInfo | null;
  toolQueue(): string | null;
  approvalPolicy(): SessionConfig['approvalPolicy'];
  decide(request: ToolRequest): PolicyDecision;
  /** Asks a person about a call the policy asks about: 'run', or the result to give instead. */
  ask(
    call: FunctionCallItem,
    summary: string,
    request: ToolRequest,
    reason: string,
  ): Promise<'run' | AgentToolResult>;
  /** The status or the children changed: show it. */
  changed(): void;
  /** Fails an activation that runs ahead of the session's workflow tasks (task-guard.ts). */
  guard: TaskGuard;
  /** With a budget: what a child started now must be told (null: nothing, it may run). */
  budgetDirective?(): BudgetDirective | null;
}

export function failure(output: string, display: string): AgentToolResult {
  return { output, display, success: false, outcome: 'rejected' };
}

export function stateOf(report: AgentReport): AgentState {
  switch (report.status) {
    case 'running':
      return { status: 'running', turn: report.turn };
    case 'awaiting_approval':
      return { status: 'awaiting_approval', turn: report.turn, pending: report.pending ?? 1 };
    case 'idle':
      return { status: 'idle', turn: report.turn, why: report.message ?? 'waiting for a message' };
    case 'awaiting_budget':
      return { status: 'awaiting_budget', turn: report.turn };
    case 'completed':
      return {
        status: 'completed',
        turn: report.turn,
        message: report.message ?? '',
        filesChanged: report.filesChanged ?? [],
      };
    case 'errored':
      return { status: 'errored', why: report.message ?? 'the session failed' };
    case 'shutdown':
      return { status: 'shutdown' };
  }
}
