/**
 * Children that are merged and finished, as a parent keeps them over a long session. When such a
 * child's merge lands its worktree is removed (agents.ts, marker `retire-merged-agents`); at the
 * next continue-as-new it leaves the carried children for a count, its tokens (the budget still
 * counts them) and, for the latest MAX_RETIRED_KEPT, what `wait` answers for it. So the carried
 * list holds the children that may still do or bring back work, not every child ever spawned.
 */
import { modelStatus } from '../shared/tools/agent-tools.js';
import type { CarriedAgents } from '../shared/api/session-config.js';
import { MAX_RETIRED_KEPT } from '../shared/api/session-config.js';
import type { AgentToolResult, ChildRecord } from './agent-host.js';
import { failure } from './agent-host.js';

type Retired = NonNullable<CarriedAgents['retired']>;

export class RetiredChildren {
  private readonly s: Retired;
  /** Children of this run whose worktree is gone after their merge. */
  private readonly gone = new Set<string>();

  constructor(carried: Retired | undefined) {
    this.s = carried ? { ...carried, recent: [...carried.recent] } : { count: 0, tokens: 0, recent: [] };
  }

  get count(): number {
    return this.s.count;
  }

  /** Tokens the retired children (and theirs) spent, for the budget. */
  get tokens(): number {
    return this.s.tokens;
  }

  worktreeGone(name: string): boolean {
    return this.gone.has(name);
  }

  removedWorktree(name: string): void {
    this.gone.add(name);
  }

  /** The children to carry, and the retired record with those whose worktree is gone added. */
  carry(children: readonly ChildRecord[]): { children: ChildRecord[]; retired: Retired | null } {
    const retired: Retired = { ...this.s, recent: [...this.s.recent] };
    const kept: ChildRecord[] = [];
    for (const child of children) {
      if (!this.gone.has(child.name)) {
        kept.push(child);
        continue;
      }
      retired.count += 1;
      retired.tokens += child.tokens ?? 0;
      retired.recent.push({
        name: child.name,
        sessionId: child.sessionId,
        status: JSON.stringify(modelStatus(child.state, child.branch)),
      });
    }
    retired.recent = retired.recent.slice(-MAX_RETIRED_KEPT);
    return { children: kept, retired: retired.count > 0 ? retired : null };
  }

  /** What `wait` answers for a child retired by an earlier run (null: not one of them). */
  statusOf(id: string): unknown {
    const record = this.s.recent.find((r) => r.name === id || r.sessionId === id);
    return record ? (JSON.parse(record.status) as unknown) : null;
  }

  /** The answer to a tool call naming a retired child (null: not one of them). */
  refusal(tool: string, id: string): AgentToolResult | null {
    if (this.statusOf(id) === null) return null;
    return failure(
      `Agent ${id} was merged and has ended; its worktree is gone. Spawn a new agent for more work.`,
      `${tool} · ${id} · retired`,
    );
  }
}
