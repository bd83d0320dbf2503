/**
 * Fan-out, inside the session workflow. A session whose configuration has `agents` answers the
 * multi-agent tools here: spawn_agent → worktree (an activity on the worker that holds the
 * workspace; the consecutive spawns of one reply together, agent-spawn.ts) → child workflow (`agentSession` itself, id `<parent>/agent-N`) → the child reports
 * each change of its status by signal → wait reads those reports → merge_agent brings the child's
 * branch back (an activity) → close_agent or the parent's end cancels what still runs and removes
 * the worktrees and branches.
 *
 * Children are started with ParentClosePolicy.ABANDON: Temporal applies a parent-close policy when
 * a run closes, continue-as-new included, and a parent that continues as new must keep its
 * children. So the parent itself reaches them: its end (completed, failed or cancelled) cancels
 * every child still open, and an interrupt is passed on. What the parent knows of a child comes
 * from the child's reports (signals to the parent's id reach whichever run is current), so it
 * survives continue-as-new; within one run the child's result backs them up.
 *
 * The child's side is `ParentLink` (parent-link.ts): it reports to the parent and flushes before
 * the child ends. merge_agent is agent-merge.ts; the shared types are agent-host.ts.
 */
import type { ActivityOptions, ChildWorkflowHandle } from '@temporalio/workflow';
import {
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { AgentState, AgentToolName } from '../shared/tools/agent-tools.js';
import {
  agentToolSpecs,
  describeAgentState,
  inputText,
  isAgentToolName,
  isFinalAgentState,
  modelStatus,
  waitTimeout,
} from '../shared/tools/agent-tools.js';
import type { FunctionCallItem } from '../shared/prompt/items.js';
import type { AgentReport, AgentView, BudgetDirective, SessionResult } from '../shared/api/session-api.js';
import { agentReportSignal, interruptSignal, userMessageSignal } from '../shared/api/session-api.js';
import type { CarriedAgents, SessionLimits } from '../shared/api/session-config.js';
import { firstLine } from '../shared/util/text.js';
import { rootMessage } from '../shared/boundary/failures.js';
import type { Activities, AgentHost, AgentToolResult, ChildRecord } from './agent-host.js';
import { failure, stateOf } from './agent-host.js';
import { childView, signalDirective, signalInterrupt } from './agent-children.js';
import { mergeChild } from './agent-merge.js';
import type { SpawnDeps } from './agent-spawn.js';
import { isPlan, planSpawn, spawnChild, spawnChildren } from './agent-spawn.js';
import { RetiredChildren } from './agent-retired.js';
import { Patch } from './patches.js';

export type { AgentHost, AgentToolResult, ChildRecord } from './agent-host.js';
export { ParentLink } from './parent-link.js';

export class AgentTree {
  /** Whether this session offers the agent tools (it may fan out, and is not too deep). */
  readonly offersTools: boolean;
  private counter: number;
  private readonly children = new Map<string, ChildRecord>();
  private readonly childHandles = new Map<string, ChildWorkflowHandle<never>>();
  /** Children merged and finished (agent-retired.ts). */
  private readonly retired: RetiredChildren;
  private readonly depth: number;
  private readonly acts: ReturnType<typeof proxyActivities<Activities>>;

  constructor(
    private readonly host: AgentHost,
    carried: CarriedAgents | undefined,
    private readonly limits: SessionLimits,
  ) {
    const agents = host.config.agents;
    this.depth = host.config.parent?.depth ?? 0;
    this.offersTools = agents !== undefined && this.depth < agents.maxDepth;
    this.counter = carried?.counter ?? 0;
    for (const child of carried?.children ?? []) this.children.set(child.name, { ...child });
    this.retired = new RetiredChildren(carried?.retired);
    this.acts = proxyActivities<Activities>({
      startToCloseTimeout: '5 minutes',
      heartbeatTimeout: `${Math.ceil(limits.toolHeartbeatTimeoutMs / 1000)}s`,
      retry: { initialInterval: '1s', maximumAttempts: 3, nonRetryableErrorTypes: ['AgentWorktree'] },
    });
    if (this.offersTools || this.children.size > 0) {
      setHandler(agentReportSignal, (report) => {
        host.guard.check();
        this.onReport(report);
      });
    }
  }

  /** Whether a call is one of the agent tools this session answers. */
  handles(name: string): name is AgentToolName {
    return this.offersTools && isAgentToolName(name);
  }

  /** Children retired by earlier runs (merged and finished; agent-retired.ts). */
  get retiredCount(): number {
    return this.retired.count;
  }

  get hasChildren(): boolean {
    return this.children.size > 0 || this.retired.count > 0;
  }

  view(): AgentView[] {
    return [...this.children.values()].map(childView);
  }

  /** What the next run needs: retired children leave the list here (their worktrees are gone). */
  carry(): CarriedAgents {
    const { children, retired } = this.retired.carry([...this.children.values()]);
    return { counter: this.counter, children, ...(retired ? { retired } : {}) };
  }

  /** The refusal for an id that names no child; a retired one says what became of it. */
  private unknown(tool: string, id: string): AgentToolResult {
    return (
      this.retired.refusal(tool, id) ?? failure(`No agent with id ${id}.`, `${tool} · unknown agent ${id}`)
    );
  }

  private routed(): ActivityOptions {
    const queue = this.host.toolQueue();
    if (!queue) return {};
    return {
      taskQueue: queue,
      scheduleToStartTimeout: `${Math.ceil(this.limits.toolScheduleToStartTimeoutMs / 1000)}s`,
    };
  }

  private onReport(report: AgentReport): void {
    const child = typeof report?.name === 'string' ? this.children.get(report.name) : undefined;
    if (!child) {
      log.warn('ignored a report from an unknown agent', { name: String(report?.name) });
      return;
    }
    // A closed child's last word is its shutdown; a finished one does not start again by itself.
    if (typeof report.tokens === 'number' && report.tokens >= (child.tokens ?? 0))
      child.tokens = report.tokens;
    if (child.closed && report.status !== 'completed' && report.status !== 'errored') {
      if (report.tokens !== undefined) this.host.changed();
      return;
    }
    child.state = stateOf(report);
    this.host.changed();
  }

  private resolve(id: string): ChildRecord | undefined {
    return this.children.get(id) ?? [...this.children.values()].find((child) => child.sessionId === id);
  }

  /** A call's arguments, checked against its tool's schema, or the result that refuses them. */
  private parse(call: FunctionCallItem): { args: Record<string, unknown> } | { refused: AgentToolResult } {
    const name = call.name as AgentToolName;
    let raw: unknown;
    try {
      raw = call.arguments.trim() === '' ? {} : JSON.parse(call.arguments);
    } catch (err) {
      return {
        refused: failure(
          `The arguments for ${name} are not valid JSON (${(err as Error).message}). Send a JSON object.`,
          `${name} · malformed arguments`,
        ),
      };
    }
    const parsed = agentToolSpecs[name].parameters.safeParse(raw);
    if (!parsed.success) {
      const problems = parsed.error.issues
        .map((issue) => `${issue.path.length ? issue.path.join('.') : 'arguments'}: ${issue.message}`)
        .join('; ');
      return {
        refused: failure(`Invalid arguments for ${name}: ${problems}.`, `${name} · invalid arguments`),
      };
    }
    return { args: parsed.data };
  }

  /**
   * The calls that run together from the first of `calls` on: a run of two or more consecutive
   * spawn_agent calls (marker `concurrent-spawns`, asked only for such a run), else the first alone.
   */
  spawnGroup(calls: readonly FunctionCallItem[]): FunctionCallItem[] {
    let n = 0;
    while (n < calls.length && calls[n]!.name === 'spawn_agent') n++;
    return n > 1 && patched(Patch.concurrentSpawns) ? calls.slice(0, n) : calls.slice(0, 1);
  }

  /** Runs a group (`spawnGroup`): results in the calls' order; never throws but for cancellation. */
  async runGroup(calls: readonly FunctionCallItem[]): Promise<AgentToolResult[]> {
    if (calls.length === 1) return [await this.run(calls[0]!)];
    const deps = this.spawnDeps();
    let inFlight = 0;
    const planned = calls.map((call) => {
      const parsed = this.parse(call);
      if ('refused' in parsed) return parsed.refused;
      const plan = planSpawn(deps, parsed.args, inFlight);
      if (isPlan(plan)) inFlight++;
      return plan;
    });
    return spawnChildren(deps, planned);
  }

  /** Runs one agent tool call; never throws but for cancellation. */
  async run(call: FunctionCallItem): Promise<AgentToolResult> {
    const name = call.name as AgentToolName;
    const parsed = this.parse(call);
    if ('refused' in parsed) return parsed.refused;
    const args = parsed.args;
    switch (name) {
      case 'spawn_agent':
        return this.spawn(args);
      case 'send_input':
        return this.send(
          args as { id: string; message?: string; items?: { text?: string }[]; interrupt?: boolean },
        );
      case 'wait':
        return this.wait(args as { ids: string[]; timeout_ms?: number });
      case 'close_agent':
        return this.close(args as { id: string });
      case 'merge_agent':
        return this.merge(call, args as { id: string });
    }
  }

  private spawnDeps(): SpawnDeps {
    return {
      host: this.host,
      acts: this.acts,
      routed: this.routed(),
      depth: this.depth,
      open: [...this.children.values()].filter((child) => !child.closed).length,
      nextName: () => `agent-${++this.counter}`,
      add: (child) => this.children.set(child.name, child),
      started: (child, handle) => this.started(child, handle),
    };
  }

  private async spawn(args: { message?: string; items?: { text?: string }[] }): Promise<AgentToolResult> {
    return spawnChild(this.spawnDeps(), args);
  }

  /** A child's workflow started: keep its handle, tell it the budget, back its reports up. */
  private started(child: ChildRecord, handle: ChildWorkflowHandle<never>): void {
    const name = child.name;
    this.childHandles.set(name, handle);
    // A tree parked for its budget parks a child started meanwhile too.
    const directive = this.host.budgetDirective?.();
    if (directive) signalDirective(child, directive);
    if (child.state.status === 'pending_init') child.state = { status: 'running', turn: 0 };
    // Within this run the result backs up the child's own reports (a child that could not report).
    void (handle.result() as Promise<SessionResult>).then(
      (result) =>
        this.ended(name, {
          status: 'completed',
          turn: result.turns,
          message: result.finalMessage,
          filesChanged: result.filesChanged.map((f) => f.path),
        }),
      (err: unknown) =>
        this.ended(
          name,
          isCancellation(err) ? { status: 'shutdown' } : { status: 'errored', why: rootMessage(err) },
        ),
    );
  }

  private ended(name: string, state: AgentState): void {
    const child = this.children.get(name);
    if (!child || isFinalAgentState(child.state)) return;
    child.state = state;
    this.host.changed();
  }

  private async send(args: {
    id: string;
    message?: string;
    items?: { text?: string }[];
    interrupt?: boolean;
  }): Promise<AgentToolResult> {
    const child = this.resolve(args.id);
    if (!child) return this.unknown('send_input', args.id);
    const text = inputText(args);
    if (text.trim() === '')
      return failure('send_input needs a message.', `send_input · ${child.name} · empty`);
    if (child.closed || child.state.status === 'completed' || child.state.status === 'errored') {
      return failure(
        `Agent ${child.name} has ended (${describeAgentState(child.state)}); spawn a new agent for more work.`,
        `send_input · ${child.name} · ended`,
      );
    }
    const external = getExternalWorkflowHandle(child.sessionId);
    try {
      if (args.interrupt)
        await external.signal(interruptSignal, { reason: 'the parent session redirected it' });
      await external.signal(userMessageSignal, { text });
    } catch (err) {
      if (isCancellation(err)) throw err;
      return failure(
        `Could not reach agent ${child.name}: ${rootMessage(err)}`,
        `send_input · ${child.name} · failed`,
      );
    }
    if (child.state.status === 'idle') child.state = { status: 'running', turn: child.state.turn };
    this.host.changed();
    return {
      output: JSON.stringify({ submission_id: `${child.name}:${workflowInfo().historyLength}` }),
      display: `send_input · ${child.name} · ${firstLine(text)}`,
      success: true,
    };
  }

  private async wait(args: { ids: string[]; timeout_ms?: number }): Promise<AgentToolResult> {
    const timeout = waitTimeout(args.timeout_ms);
    if (typeof timeout !== 'number') return failure(timeout.problem, 'wait · bad timeout');
    const targets = args.ids.map((id) => ({ id, child: this.resolve(id) }));
    const finished = () =>
      targets.filter(({ child }) => child === undefined || isFinalAgentState(child.state));
    if (finished().length === 0) await condition(() => finished().length > 0, timeout);
    const done = finished();
    const status = Object.fromEntries(
      done.map(({ id, child }) => [
        id,
        child ? modelStatus(child.state, child.branch) : (this.retired.statusOf(id) ?? 'not_found'),
      ]),
    );
    const names = done.map(({ id }) => id);
    return {
      output: JSON.stringify({ status, timed_out: done.length === 0 }),
      display:
        done.length === 0
          ? `wait · timed out after ${Math.round(timeout / 1000)} s`
          : `wait · ${names.join(', ')} finished`,
      success: true,
    };
  }

  private async close(args: { id: string }): Promise<AgentToolResult> {
    const child = this.resolve(args.id);
    if (!child) return this.unknown('close_agent', args.id);
    const previous = modelStatus(child.state, child.branch);
    if (!child.closed) await this.cancelChild(child);
    child.closed = true;
    if (!isFinalAgentState(child.state) || child.state.status === 'idle')
      child.state = { status: 'shutdown' };
    this.host.changed();
    return {
      output: JSON.stringify({ previous_status: previous }),
      display: `close_agent · ${child.name}`,
      success: true,
    };
  }

  private async cancelChild(child: ChildRecord): Promise<void> {
    if (
      child.state.status === 'completed' ||
      child.state.status === 'errored' ||
      child.state.status === 'shutdown'
    ) {
      return;
    }
    try {
      await getExternalWorkflowHandle(child.sessionId).cancel();
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.info('agent already gone', { agent: child.sessionId, detail: rootMessage(err) });
    }
  }

  private async merge(call: FunctionCallItem, args: { id: string }): Promise<AgentToolResult> {
    const child = this.resolve(args.id);
    if (!child) return this.unknown('merge_agent', args.id);
    const ended = () =>
      child.state.status === 'completed' ||
      child.state.status === 'errored' ||
      child.state.status === 'shutdown';
    // A child that has ended has its worktree removed by the merge's own activity.
    if (
      ended() &&
      !this.retired.worktreeGone(child.name) &&
      !this.host.config.agents?.keepWorktrees &&
      this.host.workspace() &&
      patched(Patch.mergeThenRemove)
    ) {
      return mergeChild(
        {
          host: this.host,
          acts: this.acts,
          routed: this.routed(),
          thenRemove: true,
          removed: (outcome) => {
            if (outcome === true) this.retired.removedWorktree(child.name);
            else
              log.warn('could not remove an agent worktree', { agent: child.name, detail: outcome.problem });
          },
        },
        call,
        child,
      );
    }
    const result = await mergeChild({ host: this.host, acts: this.acts, routed: this.routed() }, call, child);
    const done = ended();
    if (child.merged && done && !this.retired.worktreeGone(child.name) && patched(Patch.retireMergedAgents)) {
      await this.removeWorktree(child);
      this.retired.removedWorktree(child.name);
    }
    return result;
  }

  /** Removes a child's worktree and branch, unless they are kept; a failure is logged, not raised. */
  private async removeWorktree(child: ChildRecord): Promise<void> {
    const workspace = this.host.workspace();
    if (this.host.config.agents?.keepWorktrees || !workspace) return;
    try {
      await this.host.guard.settled(
        this.acts.removeAgentWorktree.executeWithOptions(
          { summary: `worktree · remove ${child.name}`, ...this.routed() },
          [{ workspace, worktree: child.worktree, branch: child.branch, keepBranch: false }],
        ),
      );
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('could not remove an agent worktree', { agent: child.name, detail: rootMessage(err) });
    }
  }

  /** Tokens the children and theirs have spent, as they last reported (a budgeted tree). */
  subtreeTokens(): number {
    let sum = 0;
    for (const child of this.children.values()) sum += child.tokens ?? 0;
    return sum + this.retired.tokens;
  }

  /** Passes the token budget's directive on to every child that may still spend (budget.ts). */
  direct(directive: BudgetDirective): void {
    for (const child of this.children.values()) {
      if (child.closed || (isFinalAgentState(child.state) && child.state.status !== 'idle')) continue;
      signalDirective(child, directive);
    }
  }

  /** Passes an interrupt on to every child still working. */
  interruptAll(reason: string | undefined): void {
    for (const child of this.children.values()) {
      if (child.closed || isFinalAgentState(child.state)) continue;
      signalInterrupt(child, reason);
    }
  }

  /**
   * The session ends (completed, failed or cancelled): every child still open is cancelled, and
   * the worktrees and branches are removed unless they are kept. Failures are logged, not raised:
   * a worktree left behind must not change how the session ends.
   */
  async closeAll(): Promise<void> {
    for (const child of this.children.values()) {
      if (!child.closed) await this.cancelChild(child);
      child.closed = true;
    }
    // Those removed after their merge (retire-merged-agents) are gone already.
    for (const child of this.children.values()) {
      if (!this.retired.worktreeGone(child.name)) await this.removeWorktree(child);
    }
  }
}
