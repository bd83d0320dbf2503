/**
 * The public API of a session workflow: its name, task queue, messages and the shapes they carry.
 * Client, worker, workflow and tests all import it from here. Its schemas are built on each call,
 * as in session-config.ts.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import type { ApprovalPolicy } from '../policy/policy.js';
import { approvalPolicies } from '../policy/policy.js';
import type { TranscriptEntry, Usage } from './session-config.js';
import { MAX_BUDGET_TOKENS } from './session-config.js';
import type { PlanStep } from '../tools/specs.js';
import { utf8Bytes } from '../util/bytes.js';

export const WORKFLOW_TYPE = 'agentSession';
export const DEFAULT_TASK_QUEUE = 'ratchet';

/**
 * The task queue of one worker (RATCHET_WORKER_ID) serving `taskQueue`: tool calls of the
 * sessions whose workspace it prepared go there, since only it has the working copy.
 */
export function workerTaskQueue(taskQueue: string, workerId: string): string {
  return `${taskQueue}@${workerId}`;
}

export const sessionStatuses = [
  'running',
  'awaiting_approval',
  /** Parked at a turn boundary: the tree's token budget is spent (src/workflows/budget.ts). */
  'awaiting_budget',
  'idle',
  'completed',
  'failed',
  'cancelled',
] as const;
export type SessionStatus = (typeof sessionStatuses)[number];

export const approvalDecisions = ['approve', 'approve_for_session', 'deny', 'abort'] as const;
export type ApprovalDecisionKind = (typeof approvalDecisions)[number];

export const approvalSchema = () =>
  z
    .object({
      callId: z.string().min(1, 'callId is required'),
      decision: z.enum(approvalDecisions),
      reason: z.string().max(4000).optional(),
      /** Who decided (a user name, "web-ui", …), recorded with the decision. */
      by: z.string().max(200).optional(),
    })
    .strict();
export type Approval = z.infer<ReturnType<typeof approvalSchema>>;

/**
 * Longest message, in UTF-8 bytes (queued messages are carried across continue-as-new, whose
 * input is one payload; the task's limit is in session-config.ts).
 */
export const MAX_MESSAGE_BYTES = 64 * 1024;

export const userMessageSchema = () =>
  z
    .object({
      text: z
        .string()
        .trim()
        .min(1, 'the message is empty')
        .refine(
          (text) => utf8Bytes(text) <= MAX_MESSAGE_BYTES,
          `the message is longer than ${MAX_MESSAGE_BYTES} bytes`,
        ),
    })
    .strict();
export type UserMessage = z.infer<ReturnType<typeof userMessageSchema>>;

export const interruptSchema = () => z.object({ reason: z.string().max(4000).optional() }).strict();
export type Interrupt = z.infer<ReturnType<typeof interruptSchema>>;

/** Moves a session to another worker (its RATCHET_WORKER_ID) that has the same repository. */
export const moveToWorkerSchema = () => z.object({ worker: z.string().trim().min(1).max(200) }).strict();
export type MoveToWorker = z.infer<ReturnType<typeof moveToWorkerSchema>>;

export const setPolicySchema = () => z.object({ policy: z.enum(approvalPolicies) }).strict();
export type SetPolicy = z.infer<ReturnType<typeof setPolicySchema>>;

/**
 * A person's budget decision, for the tree's root: `{ "add": 50000 }` (continue with that many
 * more tokens) or `{ "stop": true }` (every session of the tree comes to rest). The same JSON is
 * the payload of the `budget` signal the Web UI's "Send Signal" form sends.
 */
export const budgetDecisionSchema = () =>
  z
    .object({
      add: z
        .number({ error: 'add must be a number of tokens' })
        .int('add must be a whole number of tokens')
        .positive('add must be more than 0 tokens')
        .max(MAX_BUDGET_TOKENS, `add must be at most ${MAX_BUDGET_TOKENS} tokens`)
        .optional(),
      stop: z.literal(true, { error: 'stop must be true' }).optional(),
      by: z.string().max(200).optional(),
      /**
       * Applies only while the tree's limit is still this one (the limit the person was shown): a
       * page submitted twice, or after someone else decided, is refused instead of adding twice.
       */
      ifLimit: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    })
    .strict()
    .refine((d) => (d.add === undefined) !== (d.stop === undefined), {
      error: 'give either {"add": <tokens>} or {"stop": true}',
    });
export type BudgetDecision = z.infer<ReturnType<typeof budgetDecisionSchema>>;

/**
 * What a parent tells its children about the budget (never sent by a person): park at the next
 * turn boundary (`parked: true`) or go on (`false`); `stop` (with `parked: true`) comes to rest
 * instead of waiting. `seq` grows with every directive the parent sends; older ones are ignored.
 */
export const budgetDirectiveSchema = () =>
  z
    .object({
      parked: z.boolean(),
      stop: z.literal(true).optional(),
      seq: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    })
    .strict()
    .refine((d) => d.stop === undefined || d.parked, { error: 'a stop directive parks (parked: true)' });
export type BudgetDirective = z.infer<ReturnType<typeof budgetDirectiveSchema>>;

/** A session's budget as status shows it. */
export interface BudgetView {
  /** The tree's limit (on the root; a child shows the limit it was started with). */
  limit: number;
  /** Tokens spent by this session and every session below it. */
  spent: number;
  /** Parked, or about to park at its next turn boundary, awaiting a budget decision. */
  parked: boolean;
  /** Where decisions are made: null on the root, else the parent's id. */
  decidedAt: string | null;
}

export interface ApprovalAck {
  callId: string;
  decision: ApprovalDecisionKind;
  /** Other pending calls that the new session rule approved too. */
  alsoApproved: string[];
}

export interface PendingApproval {
  callId: string;
  tool: string;
  /** The call's arguments, parsed. */
  arguments: unknown;
  /** The command or patch summary a person reads. */
  summary: string;
  /** Why the policy asks. */
  reason: string;
  turn: number;
  /** Workflow time when the approval was requested (ISO 8601). */
  requestedAt: string;
}

export interface CurrentStep {
  kind: 'model' | 'tool' | 'compaction' | 'approval' | 'workspace';
  label: string;
  since: string;
}

export interface StatusView {
  status: SessionStatus;
  task: string;
  workspace: string;
  model: string;
  approvalPolicy: ApprovalPolicy;
  /** How commands are confined ("workspace-write", or why they cannot be). */
  sandbox: string;
  turn: number;
  pendingApprovals: PendingApproval[];
  usage: Usage;
  plan: PlanStep[];
  lastMessage: string | null;
  /** Something a person should know: an error that stopped the session, a limit reached. */
  notice: string | null;
  current: CurrentStep | null;
  transcriptLength: number;
  epoch: number;
  runs: number;
  compactions: number;
  queuedMessages: number;
  /** Task queue of the worker that holds the workspace (null: any worker of the session's queue). */
  toolQueue?: string | null;
  /** A session that fans out: its children, as they last reported. */
  agents?: AgentView[];
  /** Children merged and finished that an earlier run retired (no longer listed in `agents`). */
  agentsRetired?: number;
  /** A child session: its parent's id. */
  parent?: string;
  /** A session with a token budget (`--budget-tokens`). */
  budget?: BudgetView;
}

export interface TranscriptRequest {
  fromIndex?: number;
  /** Most entries to return (default: as many as fit in maxBytes). */
  limit?: number;
  /** Serialized size budget for one page (default 1 MiB; a query answer is one gRPC message ≤ 4 MB). */
  maxBytes?: number;
}

export interface TranscriptPage {
  epoch: number;
  fromIndex: number;
  entries: TranscriptEntry[];
  /** Index to ask for next; equals `total` when the page reached the end. */
  nextIndex: number;
  total: number;
}

export interface FileChange {
  path: string;
  /** Git's porcelain status letters, e.g. "M", "A", "D", "??". */
  status: string;
}

export interface SessionResult {
  status: 'completed';
  finalMessage: string;
  turns: number;
  usage: Usage;
  filesChanged: FileChange[];
  /** How many changed files were left out of `filesChanged` to keep the result small. */
  filesChangedOmitted?: number;
  compactions: number;
  runs: number;
}

export const approveUpdate = defineUpdate<ApprovalAck, [Approval]>('approve');
export const approveSignal = defineSignal<[Approval]>('approve');
export const userMessageSignal = defineSignal<[UserMessage]>('userMessage');
export const interruptSignal = defineSignal<[Interrupt?]>('interrupt');
/** Answers the task queue tool calls go to from now on. */
export const moveToWorkerUpdate = defineUpdate<string, [MoveToWorker]>('moveToWorker');
export const setPolicyUpdate = defineUpdate<ApprovalPolicy, [SetPolicy]>('setPolicy');
/** One child session as its parent sees it. */
export interface AgentView {
  /** The name the model uses ("agent-2"). */
  name: string;
  /** The child's workflow id. */
  sessionId: string;
  branch: string | null;
  /** "running", "awaiting_approval", "awaiting_budget", "idle", "completed", "errored", "shutdown", "pending_init". */
  status: string;
  turn: number;
  /** One line for a person. */
  detail: string;
  merged: boolean;
  closed: boolean;
}

/** What a child tells its parent whenever its status changes, and when it ends. */
export interface AgentReport {
  /** The child's name in the parent. */
  name: string;
  status: 'running' | 'awaiting_approval' | 'awaiting_budget' | 'idle' | 'completed' | 'errored' | 'shutdown';
  turn: number;
  pending?: number;
  /** With a budget: tokens spent by the child and every session below it. */
  tokens?: number;
  /** Final message (completed), or why (idle, errored). */
  message?: string;
  filesChanged?: string[];
}

export const agentReportSignal = defineSignal<[AgentReport]>('agentReport');
/** A budget decision (validated; a child refuses it and names its parent). Answers the budget. */
export const budgetUpdate = defineUpdate<BudgetView, [BudgetDecision]>('budget');
/** The same decision as a signal, for the Web UI (a child passes it on to its parent). */
export const budgetSignal = defineSignal<[BudgetDecision]>('budget');
/** A parent's budget directive to its children. */
export const budgetDirectiveSignal = defineSignal<[BudgetDirective]>('budgetDirective');

export const statusQuery = defineQuery<StatusView>('status');
export const transcriptQuery = defineQuery<TranscriptPage, [TranscriptRequest?]>('transcript');
