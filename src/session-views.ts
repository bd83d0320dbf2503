/**
 * What the client shows of a session from what Temporal's server keeps, without asking the
 * workflow: a `ratchet list` row from a workflow's search attributes, the status of a closed
 * session no worker answers for (from its input and result), and the progress of the activity a
 * running session waits on (from the server's record of it). Pure functions over the server's
 * records, so that each is tested without a server.
 */
import type { WorkflowExecutionInfo } from '@temporalio/client';
import type proto from '@temporalio/proto';
import {
  RatchetParent,
  RatchetPendingApprovals,
  RatchetRepo,
  RatchetStatus,
  RatchetTurn,
} from './shared/api/search-attributes.js';
import type { SessionResult, SessionStatus, StatusView } from './shared/api/session-api.js';
import type { SessionConfig } from './shared/api/session-config.js';
import { emptyUsage } from './shared/api/session-config.js';

/** The session status a closed workflow's status stands for. */
export const terminalWorkflowStatus: Readonly<Record<string, SessionStatus>> = {
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'cancelled',
  TIMED_OUT: 'failed',
};

export interface SessionSummary {
  sessionId: string;
  status: SessionStatus | 'unknown';
  workflowStatus: string;
  task: string;
  repo: string | undefined;
  turn: number | undefined;
  pendingApprovals: number | undefined;
  startTime: string;
  closeTime: string | undefined;
  /** A child session's parent (RatchetParent). */
  parent?: string;
}

/** A `ratchet list` row: a running session's status as it last published it, a closed one's from how it closed. */
export function sessionSummary(info: WorkflowExecutionInfo): SessionSummary {
  const recorded = info.typedSearchAttributes.get(RatchetStatus) as SessionStatus | undefined;
  const running = info.status.name === 'RUNNING';
  return {
    sessionId: info.workflowId,
    status: running ? (recorded ?? 'unknown') : (terminalWorkflowStatus[info.status.name] ?? 'unknown'),
    workflowStatus: info.status.name,
    task: typeof info.memo?.task === 'string' ? info.memo.task : '',
    repo: info.typedSearchAttributes.get(RatchetRepo),
    turn: info.typedSearchAttributes.get(RatchetTurn),
    pendingApprovals: info.typedSearchAttributes.get(RatchetPendingApprovals),
    startTime: info.startTime.toISOString(),
    closeTime: info.closeTime?.toISOString(),
    ...(info.typedSearchAttributes.get(RatchetParent)
      ? { parent: info.typedSearchAttributes.get(RatchetParent) }
      : {}),
  };
}

/** What the server keeps of a closed session: its first run's configuration, its result or failure. */
export interface ClosedRecord {
  workflowStatus: string;
  /** The workflow's static summary (the task). */
  summary: string | undefined;
  repo: string | undefined;
  turn: number | undefined;
  config: SessionConfig | null;
  result: SessionResult | null;
  failure: string | null;
}

/** The status of a closed session that no worker answered for, as far as the server's records tell. */
export function closedSessionView(record: ClosedRecord): StatusView {
  const { config, result, failure } = record;
  return {
    status: terminalWorkflowStatus[record.workflowStatus] ?? 'failed',
    task: record.summary ?? config?.task ?? '',
    workspace: String(record.repo ?? config?.workspace ?? ''),
    model: config?.model.name ?? '',
    approvalPolicy: config?.approvalPolicy ?? 'untrusted',
    sandbox: config?.sandbox ?? '',
    turn: result?.turns ?? Number(record.turn ?? 0),
    pendingApprovals: [],
    usage: result?.usage ?? { ...emptyUsage },
    plan: [],
    lastMessage: result?.finalMessage ?? null,
    notice:
      failure !== null
        ? `${failure} (no worker answered the status query; this is what the server keeps)`
        : 'no worker answered the status query; this is what the server keeps',
    current: null,
    transcriptLength: 0,
    epoch: 0,
    runs: result?.runs ?? 1,
    compactions: result?.compactions ?? 0,
    queuedMessages: 0,
  };
}

/**
 * The activity the session waits on, from the server's record of it (not from the workflow): how
 * many attempts it has had, why the last one failed, and what its last heartbeat said.
 */
export interface ActivityProgress {
  type: string;
  /** 1 for the first attempt. */
  attempt: number;
  /** 0: unlimited. */
  maximumAttempts: number;
  lastFailure: string | null;
  /** The model activity's heartbeat: estimated output tokens so far, and whether it streams. */
  tokens: number | null;
  streamed: boolean | null;
}

/**
 * The model activity's progress if it is pending, else the first pending activity's; null when
 * none is. `decode` reads a heartbeat payload (the client's payload converter).
 */
export function activityProgress(
  pending: readonly proto.temporal.api.workflow.v1.IPendingActivityInfo[],
  decode: (payload: proto.temporal.api.common.v1.IPayload) => unknown,
): ActivityProgress | null {
  const activity = pending.find((a) => a.activityType?.name === 'model') ?? pending[0];
  if (!activity) return null;
  let details: Record<string, unknown> = {};
  const payload = activity.heartbeatDetails?.payloads?.[0];
  if (payload) {
    try {
      const value = decode(payload);
      if (typeof value === 'object' && value !== null) details = value as Record<string, unknown>;
    } catch {
      // details in a shape this client does not read
    }
  }
  const failure = activity.lastFailure;
  return {
    type: activity.activityType?.name ?? '',
    attempt: activity.attempt ?? 1,
    maximumAttempts: activity.maximumAttempts ?? 0,
    lastFailure: failure?.message ? failure.message : null,
    tokens: typeof details.tokens === 'number' ? details.tokens : null,
    streamed: typeof details.streamed === 'boolean' ? details.streamed : null,
  };
}
