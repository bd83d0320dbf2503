/**
 * The parts of a session's configuration (sessionConfigSchema, session-config.ts), one schema
 * each: the model, the limits and timeouts, the children a session may start and its link to a
 * parent, the token budget, and checkpoints. Plain zod, deterministic: workflow code imports it.
 *
 * Schemas are built on each call, as in session-config.ts.
 */
import { z } from 'zod';
import { MAX_AGENTS_LIMIT } from '../tools/agent-tools.js';

/** Largest token budget, and largest addition to one (a typo's guard: a trillion tokens). */
export const MAX_BUDGET_TOKENS = 1_000_000_000_000;

export const modelSettingsSchema = () =>
  z
    .object({
      /** Model name as the endpoint knows it. */
      name: z.string().min(1),
      reasoningEffort: z.enum(['minimal', 'low', 'medium', 'high']).optional(),
      /** Context window in tokens; compaction triggers at `compactAtRatio` of it. */
      contextWindow: z.number().int().positive().default(200_000),
      compactAtRatio: z.number().min(0.05).max(1).default(0.8),
      /** remote: the endpoint's responses.compact; local: a summary written by the model; auto: remote, else local. */
      compaction: z.enum(['auto', 'remote', 'local']).default('auto'),
      /**
       * Keep the conversation on the provider (`store: true`, `previous_response_id`), so that each
       * request carries only the items added since the last response. Fewer bytes per request,
       * but the provider retains the conversation: not for zero-data-retention use. After a
       * compaction, or when the provider no longer knows the id, the whole input is sent again.
       */
      providerState: z.boolean().default(false),
      /**
       * Create each streamed Responses API request in the provider's background mode, so that a
       * model call cut off by a lost worker is re-attached to (the rest of the stream) instead of
       * generated again. The provider keeps background responses for about ten minutes, even with
       * `store: false` (README, "Background mode"): not for zero-data-retention use. Left out: off.
       */
      background: z.boolean().optional(),
    })
    .strict();
export type ModelSettings = z.infer<ReturnType<typeof modelSettingsSchema>>;

/** A whole number above zero, `fallback` when left out. */
function positiveInt(fallback: number) {
  return z.number().int().positive().default(fallback);
}

export const limitsSchema = () =>
  z
    .object({
      /** Model turns before the session stops and waits for a message. */
      maxTurns: positiveInt(200),
      /** Default per-command timeout for the shell tool. */
      commandTimeoutMs: positiveInt(10 * 60_000),
      /** Serialized transcript size that triggers compaction (a continue-as-new input is one payload, ≤ 2 MiB). */
      maxTranscriptBytes: positiveInt(1024 * 1024),
      /**
       * A model call whose worker stops heartbeating for this long is retried elsewhere. Recovery
       * from a dead worker takes about this (less the time since the last heartbeat) + the 0.2 s
       * first retry interval + the worker's 1 s sticky-queue timeout (the new worker's transcript
       * query waits on the dead worker's queue that long): under 5 s (docs/PERFORMANCE.md). The
       * activity heartbeats on a timer every third of it and every beat reaches the server, so a
       * busy event loop has two thirds of it in hand; a needless retry only repeats a model call
       * (or re-attaches to it, with `background`), which is safe.
       */
      modelHeartbeatTimeoutMs: positiveInt(2_000),
      /** A streamed model response that sends nothing for this long is abandoned and retried. */
      modelStreamIdleTimeoutMs: positiveInt(120_000),
      /** Attempts for one model call before the session stops and waits (non-retryable errors stop at once). */
      modelMaxAttempts: positiveInt(10),
      /** A tool activity whose worker stops heartbeating for this long is considered lost. */
      toolHeartbeatTimeoutMs: positiveInt(15_000),
      /**
       * A tool call that the worker holding the workspace has not picked up for this long means
       * that worker is gone: the call is not run and the session stops and waits (DESIGN.md §10).
       */
      toolScheduleToStartTimeoutMs: positiveInt(5 * 60_000),
    })
    .strict();
export type SessionLimits = z.infer<ReturnType<typeof limitsSchema>>;

export const agentsSettingsSchema = () =>
  z
    .object({
      /** Most child sessions open at once. */
      max: z.number().int().min(1).max(MAX_AGENTS_LIMIT),
      /** How deep the tree may grow: 1 lets this session's children start none of their own. */
      maxDepth: z.number().int().min(1).max(4).default(1),
      /** Keep children's worktrees and branches when the session ends (`--keep-worktrees`). */
      keepWorktrees: z.boolean().default(false),
    })
    .strict();

export const parentLinkSchema = () =>
  z
    .object({
      /** The parent's workflow id. */
      id: z.string().min(1),
      /** The child's name in the parent ("agent-2"); also its id's last part. */
      name: z.string().min(1),
      /** 1 for a child of a top-level session. */
      depth: z.number().int().min(1),
    })
    .strict();
export type ParentLink = z.infer<ReturnType<typeof parentLinkSchema>>;

/**
 * A token budget for the session and every session below it (`--budget-tokens`): when the tree
 * has spent it, each session parks at its next turn boundary until a person adds tokens or stops
 * it (src/workflows/budget.ts). Children inherit it with the rest of the configuration.
 */
export const budgetSettingsSchema = () =>
  z
    .object({
      /** Total tokens (input + output, as the endpoint reports them) the whole tree may spend. */
      tokens: z.number().int().positive().max(MAX_BUDGET_TOKENS),
    })
    .strict();
export type BudgetSettings = z.infer<ReturnType<typeof budgetSettingsSchema>>;

/** Checkpoints of the workspace, one per turn that may have changed it (README, "Checkpoints"). */
export const checkpointSettingsSchema = () =>
  z
    .object({
      enabled: z.boolean().default(true),
      /** Checkpoints of this many of the latest turns are kept; older ones are pruned. 0: keep all. */
      keep: z.number().int().nonnegative().default(100),
      /** When the session completes: keep its checkpoints, or prune them all (no rewind after the end). */
      afterEnd: z.enum(['keep', 'prune']).default('keep'),
      /** Longest a checkpoint may take before the turn goes on without it. */
      timeoutMs: z.number().int().positive().default(120_000),
    })
    .strict();
