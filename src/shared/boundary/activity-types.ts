/**
 * Inputs and results of the session's activities. The model and tool activities take a reference
 * to the transcript (session, epoch, length), not the transcript itself, so that each item enters
 * the event history once.
 */
import type { TranscriptItem } from '../prompt/items.js';
import type { ToolActivityResult } from '../tools/shell-output.js';
import type { SandboxMode } from '../policy/sandbox.js';
import type { ModelSettings, Usage, WorkspaceInfo } from '../api/session-config.js';

export interface TranscriptRef {
  /** The session's workflow id. */
  sessionId: string;
  /** Transcript epoch (incremented by compaction): indexes are stable within one. */
  epoch: number;
}

/**
 * The model settings a model call reads: the model, its effort, and the two request modes. The
 * rest of ModelSettings (context window, compaction) is the workflow's business and stays out of
 * the call's input, which history records every turn (docs/PERFORMANCE.md). `providerState`
 * absent means false, as it always did to the activity (`=== true`).
 */
export type ModelCallSettings = Pick<ModelSettings, 'name' | 'reasoningEffort' | 'background'> & {
  providerState?: boolean;
};

/** The settings a model call carries: those it reads, and only when they say something. */
export function modelCallSettings(model: ModelSettings): ModelCallSettings {
  return {
    name: model.name,
    ...(model.reasoningEffort === undefined ? {} : { reasoningEffort: model.reasoningEffort }),
    ...(model.providerState ? { providerState: true } : {}),
    ...(model.background === undefined ? {} : { background: model.background }),
  };
}

export interface ModelCallInput extends Omit<TranscriptRef, 'sessionId'> {
  /**
   * The session's workflow id. Absent in calls scheduled by the session itself (since 2026-12):
   * the activity reads it from its own info, which saves ~60 bytes of history every turn.
   */
  sessionId?: string;
  /** The request carries transcript entries [0, upTo). */
  upTo: number;
  /** Calls scheduled before 2026-12 carry the whole ModelSettings (a superset). */
  model: ModelCallSettings;
  turn: number;
  /** Abandon (and retry) a stream that sends nothing for this long. */
  streamIdleTimeoutMs?: number;
  /**
   * With the session's `providerState`: a stored response that holds entries [0, upTo); the
   * request then carries only entries [upTo, this.upTo) and refers to it.
   */
  previousResponse?: { id: string; upTo: number };
  /**
   * Entries [from, upTo) are the previous model reply and what followed it; their digest
   * (itemsDigest) lets a worker that saw the reply and the tool outputs rebuild them without
   * asking the workflow.
   */
  tail?: { from: number; digest: string };
  /** Offer the multi-agent tools (a session that may fan out); absent: the usual tools only. */
  agentTools?: boolean;
  /**
   * The session's workspace, when a reply whose calls are all cheap reads may have them run
   * beside it (READS_WITH_REPLY): the reads' results come back with the reply, and the workflow
   * task that takes the reply needs no second activation for them.
   */
  reads?: { workspace: string; holder?: string };
}

/** The cheap reads a reply's calls may be run as beside it (the local reads' tools). */
export const READS_WITH_REPLY: ReadonlySet<string> = new Set(['read_file', 'list_dir']);

/** A call of the reply run beside it: what its read activity would have returned. */
export interface ReadWithReply {
  callId: string;
  result: ToolActivityResult;
}

export interface ModelReply {
  output: TranscriptItem[];
  usage: Usage;
  responseId: string | null;
  /** The reply's reads, run beside it when the input asked for it and all its calls are reads. */
  reads?: ReadWithReply[];
}

export interface CompactInput extends TranscriptRef {
  upTo: number;
  model: ModelSettings;
  /** How many leading entries are the session's fixed context (AGENTS.md, environment). */
  contextEntries: number;
}

export interface CompactResult {
  items: TranscriptItem[];
  method: 'remote' | 'local';
  usage: Usage;
}

export interface PrepareWorkspaceInput {
  workspace: string;
}

export interface PreparedWorkspace {
  info: WorkspaceInfo;
  agentsMd: string | null;
  shell: string;
  /** Whether this worker can confine commands (bubblewrap), and how or why not. */
  sandbox: { available: boolean; detail: string };
  /** This worker's own task queue: the session's tool calls are routed there. */
  toolQueue?: string;
  /**
   * This worker keeps a command journal (src/activities/tools/command-runs.ts), so a command's
   * attempt retried on its queue never runs the command twice. Workers from before it do not
   * say so, and their commands are never retried.
   */
  commandJournal?: boolean;
}

export interface ToolCallInput extends TranscriptRef {
  /** Workspace root (real path). */
  workspace: string;
  callId: string;
  /** Index of the function_call entry, for arguments too large to pass inline. */
  itemIndex: number;
  /** The call's JSON arguments when small; otherwise fetched from the transcript. */
  arguments?: string;
  /** Default command timeout (shell). */
  timeoutMs?: number;
  /**
   * Task queue of the worker holding the workspace, for a call run as a local activity on
   * whichever worker runs the workflow: any other worker refuses it (NotWorkspaceHolder).
   */
  holder?: string;
  /** How to confine the command (shell; default workspace-write). */
  sandbox?: SandboxMode;
  /**
   * The session runs without a sandbox: a constant of the session, set when its workspace was
   * prepared on a worker that cannot confine commands, so every command of it asked a person
   * first and runs as it is. Without it, a worker that cannot confine a command refuses it.
   */
  sessionUnconfined?: boolean;
  /** The same, under the name that activities scheduled by earlier workflow code carry. */
  unconfinedApproved?: boolean;
}

export interface WorkspaceChangesInput {
  workspace: WorkspaceInfo;
}

/**
 * Arguments larger than this (UTF-8 bytes) are not copied into the tool activity's input: the
 * activity reads them from the transcript (src/workflows/tool-scheduler.ts decides).
 */
export const INLINE_ARGUMENTS_MAX_BYTES = 2048;

/** The session's checkpoint of one turn: the workspace as a commit under refs/ratchet/<session>/. */
export interface CheckpointInput {
  workspace: WorkspaceInfo;
  sessionId: string;
  /** 0: the workspace as the session found it. */
  turn: number;
  /** What the turn did, as a person reads it (kept in the commit message and the record). */
  did: string;
  /** The previous checkpoint's commit: the files reported are those changed since. */
  since: string | null;
  /** How many of the latest turns' checkpoints to keep (older refs are deleted); 0: all. */
  keep: number;
}

export interface CheckpointRecord {
  turn: number;
  commit: string;
  /** The user's HEAD when it was taken. */
  head: string | null;
  /** When it was taken (worker clock, ISO 8601). */
  at: string;
  did: string;
  /** Files changed since the previous checkpoint (at most 200; `filesOmitted` more). */
  files: { path: string; status: string }[];
  filesOmitted: number;
}

export interface RestoreCheckpointInput {
  workspace: WorkspaceInfo;
  sessionId: string;
  turn: number;
  commit: string;
  /**
   * The session's latest checkpoint when the rewind was asked for: files changed since it were
   * changed outside the session, and the restore refuses to overwrite them unless `force`.
   */
  latest: string | null;
  force: boolean;
}

export interface RestoredCheckpoint {
  /** The ref that keeps the working tree as it was before the restore. */
  savedRef: string;
  savedCommit: string;
  files: { path: string; status: string }[];
}

export interface PruneCheckpointsInput {
  workspace: WorkspaceInfo;
  sessionId: string;
  keep: number;
}
