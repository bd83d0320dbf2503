/**
 * merge_agent: brings a finished (or closed) child's branch back into the parent's workspace.
 * This module owns the sequence: the child must have stopped → the policy decides (an edit of
 * the files the child reported) → a person, if it asks → the merge activity on the worker that
 * holds the workspace (one attempt; for a child that has ended it then removes the worktree and
 * branch, marker `merge-then-remove`) → the model reads what changed and which files conflict.
 * Merging never moves the parent's repository (src/activities/worktree.ts).
 */
import type { ActivityOptions } from '@temporalio/workflow';
import { ActivityFailure, isCancellation, type proxyActivities } from '@temporalio/workflow';
import { describeAgentState, isFinalAgentState } from '../shared/tools/agent-tools.js';
import type { FunctionCallItem } from '../shared/prompt/items.js';
import type { ToolRequest } from '../shared/policy/policy.js';
import { rootMessage } from '../shared/boundary/failures.js';
import type { Activities, AgentHost, AgentToolResult, ChildRecord } from './agent-host.js';
import { failure } from './agent-host.js';

export interface MergeDeps {
  host: AgentHost;
  acts: ReturnType<typeof proxyActivities<Activities>>;
  /** Where the activity runs: the worker that holds the workspace. */
  routed: ActivityOptions;
  /** The activity removes the worktree and branch once merged (a child that has ended). */
  thenRemove?: boolean;
  /** With `thenRemove`, after a merge: whether they are gone (else why not). */
  removed?: (outcome: true | { problem: string }) => void;
}

export async function mergeChild(
  { host, acts, routed, thenRemove, removed }: MergeDeps,
  call: FunctionCallItem,
  child: ChildRecord,
): Promise<AgentToolResult> {
  const summary = `merge_agent · ${child.name} (${child.branch})`;
  if (!isFinalAgentState(child.state) || child.state.status === 'idle') {
    if (!child.closed) {
      return failure(
        `Agent ${child.name} is still working (${describeAgentState(child.state)}); wait for it, or close it (close_agent), before merging.`,
        `${summary} · still running`,
      );
    }
  }
  // The files the child reported changing are what the merge edits (unknown otherwise: it asks).
  const files = child.state.status === 'completed' ? child.state.filesChanged : [];
  const request: ToolRequest = {
    tool: 'merge_agent',
    kind: 'edit',
    ...(files.length ? { paths: files } : {}),
  };
  const decision = host.decide(request);
  if (decision.action === 'deny') {
    return {
      output: `This merge_agent call is not allowed: ${decision.reason}`,
      display: `${summary} · denied by policy`,
      success: false,
      outcome: 'denied',
    };
  }
  if (decision.action === 'ask') {
    const verdict = await host.ask(call, summary, request, decision.reason);
    if (verdict !== 'run') return verdict;
  }
  const workspace = host.workspace()!;
  try {
    const outcome = await host.guard.settled(
      acts.mergeAgentBranch.executeWithOptions({ summary, ...routed, retry: { maximumAttempts: 1 } }, [
        {
          workspace,
          worktree: child.worktree,
          branch: child.branch,
          base: child.base,
          label: child.name,
          ...(thenRemove ? { thenRemove } : {}),
        },
      ]),
    );
    child.merged = true;
    if (thenRemove) removed?.(outcome.removed ?? { problem: 'the merge did not say' });
    host.changed();
    const changed = outcome.files.length ? outcome.files.join(', ') : 'none (nothing new to merge)';
    if (outcome.conflicts.length > 0) {
      return {
        output:
          `Merged ${child.branch} into your workspace with conflicts in: ${outcome.conflicts.join(', ')}. ` +
          'Those files now hold conflict markers (<<<<<<<, =======, >>>>>>>); edit them to resolve the conflict. ' +
          `Files changed by the merge: ${changed}.`,
        display: `${summary} · ${outcome.conflicts.length} conflicted`,
        success: false,
      };
    }
    return {
      output: `Merged ${child.branch} into your workspace. Files changed: ${changed}.`,
      display: `${summary} · ${outcome.files.length} files`,
      success: true,
    };
  } catch (err) {
    if (isCancellation(err)) throw err;
    const detail = err instanceof ActivityFailure ? rootMessage(err) : String(err);
    return {
      output: `The merge of ${child.branch} failed: ${detail}. Check the state of the workspace before trying again.`,
      display: `${summary} · failed`,
      success: false,
    };
  }
}
