/**
 * A token budget for a tree of sessions (`--budget-tokens`); a session without children is a tree
 * of one. This module owns the sequence: children report what they and theirs have spent (with
 * each change of status and at every turn's end, agents.ts) → the root, the only accountant,
 * adds its own usage and finds the tree over its limit → it parks and tells every child below it
 * to park (a `budgetDirective` signal, passed down level by level) → each session parks at its
 * next turn boundary, status `awaiting_budget` → a person decides at the root (the `budget`
 * update, or the signal of the same shape from the Web UI): `add` raises the limit and, once the
 * tree is under it, the root tells everyone to go on; `stop` brings every session to rest (idle,
 * with a notice; a message later parks it again while the tree is still over).
 *
 * Why the root counts, rather than each child holding a share: a share would strand tokens in a
 * child that finished early while a busy sibling parks, and moving shares needs the same
 * signals as reporting. Reports are one signal per child turn, only in a budgeted tree; what it
 * costs is that a session learns of the limit one report late, so the tree can overshoot by at
 * most the turns already in flight (one model call per running session).
 *
 * The limit, whether this session is parked and the directives' sequence numbers are carried
 * across continue-as-new; what was spent is the carried usage and the children's reports. A
 * session that waits here issues no command, so a worker lost meanwhile loses nothing: replay
 * brings it back to the same wait.
 */
import { condition, getExternalWorkflowHandle, isCancellation, log, patched } from '@temporalio/workflow';
import type { BudgetDecision, BudgetDirective, BudgetView } from '../shared/api/session-api.js';
import { budgetDirectiveSchema, budgetSignal } from '../shared/api/session-api.js';
import type { BudgetSettings, CarriedBudget, SessionConfig } from '../shared/api/session-config.js';
import { describeZodError } from '../shared/api/session-config.js';
import { rootMessage } from '../shared/boundary/failures.js';
import type { AgentTree } from './agents.js';
import { Patch } from './patches.js';
import type { RunControl } from './run-control.js';
import type { SessionState } from './session-state.js';

/** What the budget needs from the session around it. */
export interface BudgetHost {
  config: SessionConfig;
  state: SessionState;
  control(): RunControl;
  agents: AgentTree | null;
  publish(): void;
}

export class BudgetRefused extends Error {
  override name = 'BudgetRefused';
}

export class TreeBudget {
  private s: CarriedBudget;
  /** A person chose to stop: the session comes to rest at its boundary instead of waiting. */
  private stopAsked = false;

  constructor(
    private readonly host: BudgetHost,
    settings: BudgetSettings,
    carried: CarriedBudget | undefined,
  ) {
    this.s = carried ? { ...carried } : { limit: settings.tokens, parked: false, sent: 0, heard: 0 };
    host.state.markBudgetParked(this.s.parked);
  }

  /** The root of the tree decides; every other session is told by its parent. */
  get isRoot(): boolean {
    return this.host.config.parent === undefined;
  }

  get parked(): boolean {
    return this.s.parked;
  }

  /** Tokens spent by this session and every session below it (as they last reported). */
  spent(): number {
    return this.host.state.usage.totalTokens + (this.host.agents?.subtreeTokens() ?? 0);
  }

  view(): BudgetView {
    return {
      limit: this.s.limit,
      spent: this.spent(),
      parked: this.s.parked,
      decidedAt: this.host.config.parent?.id ?? null,
    };
  }

  carry(): CarriedBudget {
    return { ...this.s };
  }

  /** What a child started now is told (null: nothing; it may run). */
  directiveForNewChild(): BudgetDirective | null {
    return this.s.parked ? { parked: true, seq: this.s.sent } : null;
  }

  /** The root parks the tree when it has spent the limit, and lets it go once it is under. */
  evaluate(): void {
    if (!this.isRoot) return;
    const over = this.spent() >= this.s.limit;
    if (over === this.s.parked) return;
    log.info(over ? 'token budget spent: parking the tree' : 'token budget raised: the tree goes on', {
      spent: this.spent(),
      limit: this.s.limit,
    });
    this.direct({ parked: over });
  }

  private direct(directive: Omit<BudgetDirective, 'seq'>): void {
    this.s.parked = directive.parked;
    this.host.state.markBudgetParked(directive.parked);
    this.s.sent += 1;
    this.host.agents?.direct({ ...directive, seq: this.s.sent });
    this.host.publish();
  }

  /**
   * At a turn boundary: waits while the tree is parked (for a decision, an interrupt, or a
   * stop). True when it waited: the loop starts over (messages, interrupts, idle) before a turn.
   */
  async atBoundary(): Promise<boolean> {
    this.evaluate();
    if (!this.s.parked) return false;
    this.host.publish();
    await condition(() => !this.s.parked || this.stopAsked || this.host.control().stopRequest !== null);
    if (this.stopAsked) {
      this.stopAsked = false;
      this.host.state.goIdle(
        `stopped at the token budget (${this.spent()} tokens spent here; the tree's limit ` +
          `${this.s.limit}); add tokens at the tree's root and send a message to continue`,
      );
    }
    return true;
  }

  /** Throws BudgetRefused, with a message for the person, when a decision cannot apply here. */
  validate(decision: BudgetDecision): void {
    if (!this.isRoot) {
      throw new BudgetRefused(
        `budget decisions for this tree are made at its root; this session's parent is ${this.host.config.parent!.id}`,
      );
    }
    if (decision.ifLimit !== undefined && decision.ifLimit !== this.s.limit) {
      throw new BudgetRefused(
        `the budget changed since you looked: the tree's limit is now ${this.s.limit} tokens, not ` +
          `${decision.ifLimit} (${this.spent()} spent${this.s.parked ? ', still parked' : ''}); nothing was changed`,
      );
    }
    if (decision.stop === true && !this.s.parked) {
      throw new BudgetRefused(
        `nothing to stop: the tree has spent ${this.spent()} of ${this.s.limit} tokens and is not waiting for a budget decision`,
      );
    }
  }

  /** A person's decision, at the root (validate first). */
  decide(decision: BudgetDecision): BudgetView {
    this.validate(decision);
    if (decision.add !== undefined) {
      this.s.limit += decision.add;
      this.evaluate();
    } else {
      this.stop();
    }
    this.host.publish();
    return this.view();
  }

  /** Stops here (a session already at rest stays so) and tells every child below to stop. */
  private stop(): void {
    if (!this.host.state.idle) this.stopAsked = true;
    this.direct({ parked: true, stop: true });
  }

  /**
   * A parent's directive (a child). One older than the last heard (late, or repeated) is ignored.
   * So is a malformed one (sent by hand): a `seq` that is not a whole number would stay in the
   * carried state and fail the next run's input, and `"parked": "no"` would park. Histories from
   * before the check replay the old way (marker `budget-directive-checked`, asked only when the
   * two ways differ). Answers why it was ignored, or null.
   */
  applyDirective(raw: unknown): string | null {
    if (this.isRoot) return 'this session is the root of its tree: it takes no directives';
    const checked = budgetDirectiveSchema().safeParse(raw);
    let directive: BudgetDirective;
    if (checked.success) directive = checked.data;
    else {
      const problem = `malformed: ${describeZodError(checked.error)}`;
      // The old way ignored only a directive without a numeric seq, or an older one.
      const old = raw as Partial<BudgetDirective> | null;
      if (typeof old?.seq !== 'number' || old.seq <= this.s.heard) return problem;
      if (patched(Patch.budgetDirectiveChecked)) return problem;
      directive = { parked: Boolean(old.parked), seq: old.seq, ...(old.stop ? { stop: true } : {}) };
    }
    if (directive.seq <= this.s.heard) {
      return `older than the last one heard (seq ${directive.seq}, heard ${this.s.heard})`;
    }
    this.s.heard = directive.seq;
    if (directive.stop) this.stop();
    else if (directive.parked !== this.s.parked) this.direct({ parked: directive.parked });
    return null;
  }

  /** A person's decision sent to a child (the Web UI's signal): passed on towards the root. */
  forwardToParent(decision: BudgetDecision): void {
    const parent = this.host.config.parent;
    if (!parent) return;
    getExternalWorkflowHandle(parent.id)
      .signal(budgetSignal, decision)
      .catch((err: unknown) => {
        if (isCancellation(err)) return;
        log.warn('could not pass a budget decision to the parent', {
          parent: parent.id,
          detail: rootMessage(err),
        });
      });
  }
}
