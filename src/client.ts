/**
 * The client side of Ratchet: start sessions and talk to them. The CLI is a thin layer over this.
 * Errors a person can act on are `RatchetError`s with one-line messages.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import {
  RatchetPendingApprovals,
  RatchetRepo,
  RatchetStatus,
  RatchetTurn,
  searchAttributeDefinitions,
} from './shared/api/search-attributes.js';
import type {
  ApprovalAck,
  ApprovalDecisionKind,
  BudgetDecision,
  BudgetView,
  SessionResult,
  SessionStatus,
  PendingApproval,
  StatusView,
  TranscriptPage,
} from './shared/api/session-api.js';
import {
  DEFAULT_TASK_QUEUE,
  WORKFLOW_TYPE,
  approveUpdate,
  interruptSchema,
  interruptSignal,
  moveToWorkerUpdate,
  transcriptQuery,
  userMessageSchema,
  userMessageSignal,
} from './shared/api/session-api.js';
import type {
  CarriedState,
  SessionConfig,
  SessionConfigInput,
  SessionInput,
} from './shared/api/session-config.js';
import {
  SESSION_SCHEMA_VERSION,
  describeZodError,
  sessionConfigSchema,
  sessionInputSchema,
} from './shared/api/session-config.js';
import { firstLine } from './shared/util/text.js';
import type { HistoryLine } from './history-lines.js';
import { HistoryLines } from './history-lines.js';

import type { ActivityProgress, SessionSummary } from './session-views.js';
import {
  activityProgress,
  closedSessionView,
  sessionSummary,
  terminalWorkflowStatus,
} from './session-views.js';

import { RatchetError, errorMessage } from './client-errors.js';
import type { TreeClient } from './session-tree.js';
import { locateInTree, treeApprovals, treeBudget, treeRoot } from './session-tree.js';
import { QUERY_AHEAD_WAIT_MS, askWhileAhead, queryStatus, startedConfig } from './client-status.js';
import { decisionUpdateId, newSessionId } from './session-ids.js';

export { RatchetError } from './client-errors.js';
export { decisionUpdateId, newSessionId } from './session-ids.js';
export type { HistoryLine } from './history-lines.js';
export type { ActivityProgress, SessionSummary } from './session-views.js';

export interface RatchetClientOptions {
  taskQueue?: string;
  /** Base URL of the Temporal Web UI, for links. */
  uiBaseUrl?: string;
}

export class RatchetClient {
  readonly taskQueue: string;
  readonly uiBaseUrl: string | undefined;

  constructor(
    readonly client: Client,
    options: RatchetClientOptions = {},
  ) {
    this.taskQueue = options.taskQueue ?? DEFAULT_TASK_QUEUE;
    this.uiBaseUrl = options.uiBaseUrl;
  }

  get namespace(): string {
    return this.client.options.namespace;
  }

  uiUrl(sessionId: string): string | undefined {
    if (!this.uiBaseUrl) return undefined;
    return `${this.uiBaseUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(this.namespace)}/workflows/${encodeURIComponent(sessionId)}`;
  }

  /** True when the namespace has Ratchet's search attributes registered. */
  async hasSearchAttributes(): Promise<boolean> {
    try {
      const response = await this.client.connection.operatorService.listSearchAttributes({
        namespace: this.namespace,
      });
      const custom = response.customAttributes ?? {};
      return Object.keys(searchAttributeDefinitions).every((name) => name in custom);
    } catch {
      return false;
    }
  }

  async start(input: SessionConfigInput, sessionId?: string): Promise<{ sessionId: string; runId: string }> {
    const parsed = sessionConfigSchema().safeParse(input);
    if (!parsed.success) throw new RatchetError(`invalid session: ${describeZodError(parsed.error)}`);
    const config: SessionConfig = { ...parsed.data };
    if (config.searchAttributes) config.searchAttributes = await this.hasSearchAttributes();
    const workflowId = sessionId ?? newSessionId(config.task);
    const args: [SessionInput] = [{ schemaVersion: SESSION_SCHEMA_VERSION, config }];
    const handle = await this.client.workflow.start(WORKFLOW_TYPE, {
      taskQueue: this.taskQueue,
      workflowId,
      args,
      staticSummary: firstLine(config.task, 200),
      memo: { task: firstLine(config.task, 200) },
      staticDetails: [
        `**Task:** ${config.task.length > 2000 ? `${config.task.slice(0, 2000)}…` : config.task}`,
        `**Repository:** ${config.workspace}`,
        `**Model:** ${config.model.name}`,
        `**Approval policy:** ${config.approvalPolicy}`,
      ].join('\n\n'),
      ...(config.searchAttributes
        ? {
            typedSearchAttributes: [
              { key: RatchetStatus, value: 'running' },
              { key: RatchetRepo, value: config.workspace },
              { key: RatchetTurn, value: 0 },
              { key: RatchetPendingApprovals, value: 0 },
            ],
          }
        : {}),
    });
    return { sessionId: workflowId, runId: handle.firstExecutionRunId };
  }

  /**
   * Starts a session that carries state from another (a fork): it begins where that state left
   * off, in the workspace the state names, without preparing it again.
   */
  async startCarried(
    config: SessionConfig,
    carried: CarriedState,
    sessionId: string,
    origin: string,
    options: { replace: boolean },
  ): Promise<{ sessionId: string; runId: string }> {
    const parsed = sessionInputSchema().safeParse({ schemaVersion: SESSION_SCHEMA_VERSION, config, carried });
    if (!parsed.success) throw new RatchetError(`invalid session: ${describeZodError(parsed.error)}`);
    const input = parsed.data;
    if (input.config.searchAttributes) input.config.searchAttributes = await this.hasSearchAttributes();
    const handle = await this.client.workflow.start(WORKFLOW_TYPE, {
      taskQueue: this.taskQueue,
      workflowId: sessionId,
      args: [input],
      // A rewind is a new run of the same session: after a closed one, or in place of a running one.
      ...(options.replace
        ? {
            workflowIdReusePolicy: 'ALLOW_DUPLICATE' as const,
            workflowIdConflictPolicy: 'TERMINATE_EXISTING' as const,
          }
        : {}),
      staticSummary: firstLine(`${config.task} (${origin})`, 200),
      memo: { task: firstLine(config.task, 200) },
      staticDetails: [
        `**Task:** ${config.task.length > 2000 ? `${config.task.slice(0, 2000)}…` : config.task}`,
        `**Repository:** ${config.workspace}`,
        `**Started as:** ${origin}`,
      ].join('\n\n'),
      ...(input.config.searchAttributes
        ? {
            typedSearchAttributes: [
              { key: RatchetStatus, value: carried.idle ? 'idle' : 'running' },
              { key: RatchetRepo, value: config.workspace },
              { key: RatchetTurn, value: carried.turn },
              { key: RatchetPendingApprovals, value: 0 },
            ],
          }
        : {}),
    });
    return { sessionId, runId: handle.firstExecutionRunId };
  }

  /** A handle to an existing session; RatchetError when there is none with that id. */
  async session(sessionId: string): Promise<WorkflowHandle> {
    const handle = this.client.workflow.getHandle(sessionId);
    try {
      const description = await handle.describe();
      if (description.type !== WORKFLOW_TYPE) {
        throw new RatchetError(`${sessionId} is a ${description.type} workflow, not a Ratchet session`);
      }
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new RatchetError(`no session with id ${sessionId}`);
      throw err;
    }
    return handle;
  }

  async status(
    sessionId: string,
  ): Promise<StatusView & { sessionId: string; activity?: ActivityProgress | null }> {
    const handle = await this.session(sessionId);
    const description = await handle.describe();
    const closed = description.status.name !== 'RUNNING';
    try {
      const view = await queryStatus(this.client, handle, Date.now() + (closed ? 5000 : 15_000));
      if (closed) view.status = terminalWorkflowStatus[description.status.name] ?? view.status;
      const activity = closed
        ? null
        : activityProgress(description.raw.pendingActivities ?? [], (payload) =>
            this.client.options.loadedDataConverter.payloadConverter.fromPayload<unknown>(payload),
          );
      return { sessionId, ...view, ...(activity ? { activity } : {}) };
    } catch (err) {
      if (!closed)
        throw new RatchetError(
          `session ${sessionId} did not answer (${errorMessage(err)}); is a worker running?`,
        );
      // A closed session is answered by replaying its history on a worker. Without one, what the
      // server keeps answers: the run's input (the configuration), its result or failure.
      const config = await startedConfig(this.client, handle, description.runId);
      const outcome = await handle.result().then(
        (result: SessionResult) => ({ result, failure: null }),
        (failure: unknown) => ({ result: null, failure: errorMessage(failure) }),
      );
      const view = closedSessionView({
        workflowStatus: description.status.name,
        summary: await description.staticSummary(),
        repo: description.typedSearchAttributes.get(RatchetRepo),
        turn: description.typedSearchAttributes.get(RatchetTurn),
        config,
        ...outcome,
      });
      return { sessionId, ...view };
    }
  }

  async transcript(sessionId: string, fromIndex = 0): Promise<TranscriptPage> {
    const handle = this.client.workflow.getHandle(sessionId);
    // Refused while a workflow task is pending on a worker without the session cached: asked again.
    return askWhileAhead(
      (askDeadline) =>
        this.client.connection.withDeadline(askDeadline, () => handle.query(transcriptQuery, { fromIndex })),
      Date.now() + QUERY_AHEAD_WAIT_MS,
    );
  }

  async result(sessionId: string): Promise<SessionResult> {
    const handle = await this.session(sessionId);
    return (await handle.result()) as SessionResult;
  }

  /**
   * Decides a pending call. Without a call id, the only pending call; with several pending, an
   * error that lists them.
   */
  async decide(
    sessionId: string,
    decision: ApprovalDecisionKind,
    options: { callId?: string; reason?: string; by?: string } = {},
  ): Promise<ApprovalAck> {
    // A session that fans out answers for its whole tree: the call may be a child's.
    const found = await locateInTree(this.tree, sessionId, options.callId);
    if (found) sessionId = found.sessionId;
    const handle = await this.session(sessionId);
    let callId = options.callId ?? found?.callId;
    if (!callId) {
      const { pendingApprovals, status } = await this.status(sessionId);
      if (pendingApprovals.length === 0) {
        throw new RatchetError(`session ${sessionId} has no pending approval (status: ${status})`);
      }
      if (pendingApprovals.length > 1) {
        const list = pendingApprovals.map((p) => `${p.callId} (${p.summary})`).join(', ');
        throw new RatchetError(
          `session ${sessionId} has ${pendingApprovals.length} pending approvals; name one: ${list}`,
        );
      }
      callId = pendingApprovals[0]!.callId;
    }
    try {
      // The same decision twice is one update: when the first took effect but its answer was
      // lost (the CLI timed out), running the command again returns that answer.
      return await handle.executeUpdate(approveUpdate, {
        updateId: decisionUpdateId(callId, decision),
        args: [
          {
            callId,
            decision,
            ...(options.reason ? { reason: options.reason } : {}),
            ...(options.by ? { by: options.by } : {}),
          },
        ],
      });
    } catch (err) {
      throw new RatchetError(`cannot ${decision.replace(/_/g, ' ')} ${callId}: ${errorMessage(err)}`);
    }
  }

  /**
   * The calls waiting for a person in a session and in every session below it (the children it
   * lists in its status, and theirs), each with the session that holds it (session-tree.ts).
   */
  async treeApprovals(
    sessionId: string,
    depth = 0,
  ): Promise<{ sessionId: string; approval: PendingApproval }[]> {
    return treeApprovals(this.tree, sessionId, depth);
  }

  /** The root of the tree a session belongs to (itself when it has no parent). */
  async treeRoot(sessionId: string): Promise<string> {
    return treeRoot(this.tree, sessionId);
  }

  /**
   * The token budget of a session's tree, and with a decision, decides it at the tree's root:
   * `{ add: N }` continues with N more tokens, `{ stop: true }` brings every session to rest.
   */
  async budget(
    sessionId: string,
    decision?: BudgetDecision,
  ): Promise<BudgetView & { sessionId: string; status: SessionStatus }> {
    return treeBudget(this.tree, sessionId, decision);
  }

  /** What the tree's look-ups ask of this client (session-tree.ts). */
  private readonly tree: TreeClient = {
    status: (sessionId) => this.status(sessionId),
    requireRunning: (sessionId) => this.requireRunning(sessionId),
  };

  async send(sessionId: string, text: string): Promise<void> {
    // The session drops a malformed message with only a log line: refuse it here, out loud.
    const checked = userMessageSchema().safeParse({ text });
    if (!checked.success) throw new RatchetError(describeZodError(checked.error).replace(/^text: /, ''));
    const handle = await this.requireRunning(sessionId);
    await handle.signal(userMessageSignal, { text });
  }

  async interrupt(sessionId: string, reason?: string): Promise<void> {
    const checked = interruptSchema().safeParse(reason ? { reason } : {});
    if (!checked.success) throw new RatchetError(`invalid interrupt: ${describeZodError(checked.error)}`);
    const handle = await this.requireRunning(sessionId);
    await handle.signal(interruptSignal, checked.data);
  }

  /**
   * Hands the session's workspace to another worker (its RATCHET_WORKER_ID), which must have the
   * same repository at the same path: for when the worker that prepared it is gone for good.
   * Answers the task queue tool calls now go to.
   */
  async moveToWorker(sessionId: string, worker: string): Promise<string> {
    const handle = await this.requireRunning(sessionId);
    try {
      return await handle.executeUpdate(moveToWorkerUpdate, { args: [{ worker }] });
    } catch (err) {
      throw new RatchetError(`cannot move ${sessionId} to worker ${worker}: ${errorMessage(err)}`);
    }
  }

  async cancel(sessionId: string): Promise<void> {
    const handle = await this.requireRunning(sessionId);
    await handle.cancel();
  }

  private async requireRunning(sessionId: string): Promise<WorkflowHandle> {
    const handle = await this.session(sessionId);
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') {
      throw new RatchetError(`session ${sessionId} has ended (${description.status.name.toLowerCase()})`);
    }
    return handle;
  }

  async list(options: { status?: SessionStatus; limit?: number } = {}): Promise<SessionSummary[]> {
    const clauses = [`WorkflowType = '${WORKFLOW_TYPE}'`];
    if (options.status) clauses.push(`${RatchetStatus.name} = '${options.status}'`);
    const sessions: SessionSummary[] = [];
    for await (const info of this.client.workflow.list({ query: clauses.join(' AND ') })) {
      sessions.push(sessionSummary(info));
      if (sessions.length >= (options.limit ?? 50)) break;
    }
    return sessions;
  }

  /** Every run's events (continue-as-new followed), as lines a person reads (history-lines.ts). */
  async history(sessionId: string): Promise<HistoryLine[]> {
    const handle = await this.session(sessionId);
    const description = await handle.describe();
    const lines = new HistoryLines();
    let runId: string | undefined = description.raw.workflowExecutionInfo?.firstRunId ?? description.runId;
    while (runId) {
      const history = await this.client.workflow.getHandle(sessionId, runId).fetchHistory();
      runId = lines.addRun(runId, history.events ?? []);
    }
    return lines.lines;
  }
}
