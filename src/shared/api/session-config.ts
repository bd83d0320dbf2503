/**
 * The session's input and the state it carries across continue-as-new, as zod schemas with a
 * schema version. Old shapes that must still parse live in test/fixtures/.
 *
 * Every schema here is a function that builds it anew: a worker evaluates the modules of the
 * workflow bundle once for every session it caches, and schemas built at load cost each one
 * ~0.7 MiB of the workflow thread's heap, parked or not (docs/PERFORMANCE.md, "Parked sessions").
 * Built on use, a session holds none of them between uses.
 */
import { z } from 'zod';
import type { TranscriptItem } from '../prompt/items.js';
import { approvalPolicies } from '../policy/policy.js';
import { sandboxModes } from '../policy/sandbox.js';
import { planStepStatus } from '../tools/specs.js';
import { utf8Bytes } from '../util/bytes.js';
import {
  agentsSettingsSchema,
  budgetSettingsSchema,
  checkpointSettingsSchema,
  limitsSchema,
  modelSettingsSchema,
  parentLinkSchema,
} from './session-settings.js';

// The configuration's parts, for those that import them with the whole.
export * from './session-settings.js';

/** Longest task in UTF-8 bytes (it is carried twice across continue-as-new). */
export const MAX_TASK_BYTES = 64 * 1024;

export const SESSION_SCHEMA_VERSION = 1;

/** Retired children whose last status `wait` can still answer (the rest are counted only). */
export const MAX_RETIRED_KEPT = 20;

export const policyRuleSchema = () =>
  z
    .object({
      tool: z.string().min(1),
      prefix: z.array(z.string()).optional(),
      action: z.enum(['allow', 'ask', 'deny']),
    })
    .strict();

export const sessionConfigSchema = () =>
  z
    .object({
      task: z
        .string()
        .trim()
        .min(1, 'the task is empty')
        .refine(
          (task) => utf8Bytes(task) <= MAX_TASK_BYTES,
          `the task is longer than ${MAX_TASK_BYTES} bytes`,
        ),
      /** Absolute path of the git working copy the session works in. */
      workspace: z.string().min(1),
      model: modelSettingsSchema(),
      approvalPolicy: z.enum(approvalPolicies).default('untrusted'),
      /** Isolation for commands; when the worker cannot provide it, every command asks instead. */
      sandbox: z.enum(sandboxModes).default('workspace-write'),
      /** Standing rules (from configuration) evaluated before the policy. */
      rules: z.array(policyRuleSchema()).default([]),
      limits: limitsSchema().default(limitsSchema().parse({})),
      /**
       * Pin the session to one worker (its RATCHET_WORKER_ID): the workspace is prepared there.
       * Without it, the first worker that prepares the workspace holds it.
       */
      worker: z.string().min(1).max(200).optional(),
      /** Keep Ratchet's search attributes current (the namespace must have them registered). */
      searchAttributes: z.boolean().default(true),
      /** Tell the workers' notify URLs when the session waits, idles, fails or finishes. */
      notify: z.boolean().default(false),
      /**
       * Fan-out: the session may start child sessions (spawn_agent …), each in its own git worktree.
       * Absent: no agent tools are offered (and the session issues the commands it always did).
       */
      agents: agentsSettingsSchema().optional(),
      /** Set on a child session: the session that started it. */
      parent: parentLinkSchema().optional(),
      /** A token budget for the whole tree; absent: none (and the session issues the commands it always did). */
      budget: budgetSettingsSchema().optional(),
      checkpoints: checkpointSettingsSchema().default(checkpointSettingsSchema().parse({})),
    })
    .strict();
export type SessionConfigInput = z.input<ReturnType<typeof sessionConfigSchema>>;
export type SessionConfig = z.infer<ReturnType<typeof sessionConfigSchema>>;

const usageSchema = () =>
  z
    .object({
      inputTokens: z.number(),
      cachedInputTokens: z.number(),
      outputTokens: z.number(),
      reasoningTokens: z.number(),
      totalTokens: z.number(),
    })
    .strict();
export type Usage = z.infer<ReturnType<typeof usageSchema>>;

/** A transcript item as the workflow holds it (the Responses API item plus what a person reads). */
export const transcriptEntrySchema = () =>
  z
    .object({
      item: z.custom<TranscriptItem>(
        (value) =>
          typeof value === 'object' &&
          value !== null &&
          typeof (value as { type?: unknown }).type === 'string',
        'a transcript item needs a string "type"',
      ),
      /** Model turn that produced or consumed it. */
      turn: z.number().int().nonnegative(),
      /** One-line summary for a person (tool outcomes). */
      display: z.string().optional(),
      /** For tool outputs: whether the tool did what was asked. */
      success: z.boolean().optional(),
    })
    .strict();
export type TranscriptEntry = z.infer<ReturnType<typeof transcriptEntrySchema>>;

export const workspaceInfoSchema = () =>
  z
    .object({
      root: z.string(),
      gitHead: z.string().nullable(),
      /** Files that were already modified when the session started, with their content hash. */
      initiallyDirty: z.record(z.string(), z.string()),
      agentsMd: z.boolean(),
      /**
       * The repository's git directory and work tree, worked out once when the workspace was
       * prepared; Ratchet's own git uses these and never searches again. Absent in older sessions.
       */
      git: z.object({ gitDir: z.string(), workTree: z.string() }).strict().optional(),
    })
    .strict();
export type WorkspaceInfo = z.infer<ReturnType<typeof workspaceInfoSchema>>;

const agentStateSchema = () =>
  z.discriminatedUnion('status', [
    z.object({ status: z.literal('pending_init') }).strict(),
    z.object({ status: z.literal('running'), turn: z.number() }).strict(),
    z.object({ status: z.literal('awaiting_approval'), turn: z.number(), pending: z.number() }).strict(),
    z.object({ status: z.literal('idle'), turn: z.number(), why: z.string() }).strict(),
    z.object({ status: z.literal('awaiting_budget'), turn: z.number() }).strict(),
    z
      .object({
        status: z.literal('completed'),
        turn: z.number(),
        message: z.string(),
        filesChanged: z.array(z.string()),
      })
      .strict(),
    z.object({ status: z.literal('errored'), why: z.string() }).strict(),
    z.object({ status: z.literal('shutdown') }).strict(),
  ]);

/** A fanning-out session's children, carried across continue-as-new. */
export const carriedAgentsSchema = () =>
  z
    .object({
      /** Children spawned so far (names are agent-1, agent-2, …, never reused). */
      counter: z.number().int().nonnegative(),
      children: z.array(
        z
          .object({
            name: z.string(),
            sessionId: z.string(),
            branch: z.string(),
            worktree: z.string(),
            workspace: z.string(),
            base: z.string(),
            state: agentStateSchema(),
            merged: z.boolean(),
            closed: z.boolean(),
            /** Tokens the child and its own children have spent, as it last reported (with a budget). */
            tokens: z.number().int().nonnegative().optional(),
          })
          .strict(),
      ),
      /**
       * Children merged and finished, whose worktrees are gone: dropped from `children` when the
       * session continues as new, so the carried list does not grow with every child ever spawned.
       * What `wait` and the budget still need is kept: a count, their tokens, the latest few.
       */
      retired: z
        .object({
          count: z.number().int().nonnegative(),
          tokens: z.number().int().nonnegative(),
          recent: z
            .array(
              z
                .object({
                  name: z.string(),
                  sessionId: z.string(),
                  /** What `wait` answers for it, as JSON. */
                  status: z.string(),
                })
                .strict(),
            )
            .max(MAX_RETIRED_KEPT),
        })
        .strict()
        .optional(),
    })
    .strict();
export type CarriedAgents = z.infer<ReturnType<typeof carriedAgentsSchema>>;
/** A budgeted session's own part of the budget (src/workflows/budget.ts), carried across continue-as-new. */
export const carriedBudgetSchema = () =>
  z
    .object({
      /** The tree's limit: the configured tokens plus what people added (the root's is the one that counts). */
      limit: z.number().int().positive(),
      /** Parked (or told to park, on a child) until a budget decision. */
      parked: z.boolean(),
      /** The last directive this session sent its children, and the last one it heard from its parent. */
      sent: z.number().int().nonnegative(),
      heard: z.number().int().nonnegative(),
    })
    .strict();
export type CarriedBudget = z.infer<ReturnType<typeof carriedBudgetSchema>>;

/**
 * What `ratchet rewind` asks of the run it starts with the state of the end of a turn
 * (docs/ARCHITECTURE.md, "Rewind and fork"): restore that turn's checkpoint first, then wait.
 */
export const rewindSchema = () =>
  z
    .object({
      turn: z.number().int().nonnegative(),
      commit: z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, 'a commit id'),
      /** The latest checkpoint when the rewind was asked for (changes since it are someone else's). */
      latest: z.string().nullable(),
      force: z.boolean(),
      by: z.string().max(200).optional(),
      /** The run whose history holds turns up to `turn` (`ratchet checkpoints` follows it back). */
      fromRunId: z.string().optional(),
    })
    .strict();
export type Rewind = z.infer<ReturnType<typeof rewindSchema>>;

/**
 * The checkpoint a fork starts from: taken by another session (its turn `turn`), copied into this
 * session's repository. Recorded in the fork's first run's input, so that its history holds it
 * and `ratchet checkpoints`, `diff --turn` and `rewind` reach the fork's first turn.
 */
export const baseCheckpointSchema = () =>
  z
    .object({
      turn: z.number().int().nonnegative(),
      commit: z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, 'a commit id'),
      head: z.string().nullable(),
      at: z.string(),
      did: z.string(),
      files: z.array(z.object({ path: z.string(), status: z.string() }).strict()),
      filesOmitted: z.number().int().nonnegative(),
      /** The session, and its run, that took it. */
      from: z.object({ sessionId: z.string(), runId: z.string() }).strict(),
    })
    .strict();
export type BaseCheckpoint = z.infer<ReturnType<typeof baseCheckpointSchema>>;

export const carriedStateSchema = () =>
  z
    .object({
      entries: z.array(transcriptEntrySchema()),
      /**
       * The transcript's epoch, always equal to `compactions` (the state derives it from there).
       * Still written, for workers running older code that require it; optional so that a later
       * version may stop writing it.
       */
      epoch: z.number().int().nonnegative().optional(),
      turn: z.number().int().nonnegative(),
      /** Turn at which the turn limit stops the session (raised when a person sends a message). */
      turnLimit: z.number().int().positive(),
      usage: usageSchema(),
      lastInputTokens: z.number().int().nonnegative(),
      plan: z.array(z.object({ step: z.string(), status: planStepStatus() }).strict()),
      sessionRules: z.array(policyRuleSchema()),
      approvalPolicy: z.enum(approvalPolicies),
      queuedMessages: z.array(z.string()),
      idle: z.boolean(),
      lastMessage: z.string().nullable(),
      notice: z.string().nullable(),
      workspace: workspaceInfoSchema(),
      runs: z.number().int().positive(),
      compactions: z.number().int().nonnegative(),
      /** How many leading entries are the fixed context (AGENTS.md, environment) that compaction keeps. */
      contextEntries: z.number().int().nonnegative(),
      /** Turn at which the transcript was last compacted (a second overflow there stops the session). */
      lastCompactionTurn: z.number().int().nonnegative().nullable(),
      /** Why commands cannot be confined (then every command asks), or null when they can. */
      unconfined: z.string().nullable().default(null),
      /** Task queue of the worker that holds the workspace (tool calls go there); null: the session's queue. */
      toolQueue: z.string().nullable().default(null),
      /** The worker on `toolQueue` said it keeps a command journal: commands may be retried there. */
      commandJournal: z.boolean().optional(),
      /**
       * With `providerState`: the last response the provider stored, and how many transcript
       * entries (of this epoch) it covers.
       */
      lastResponse: z
        .object({ id: z.string(), upTo: z.number().int().nonnegative() })
        .strict()
        .nullable()
        .default(null),
      /** A session that fans out: its children. */
      agents: carriedAgentsSchema().optional(),
      /** A session with a token budget: its limit and whether it is parked. */
      budget: carriedBudgetSchema().optional(),
      /** The session's latest checkpoint of its workspace (null: none yet, or from before checkpoints). */
      lastCheckpoint: z
        .object({ turn: z.number().int().nonnegative(), commit: z.string() })
        .strict()
        .nullable()
        .optional(),
      /** A run started by `ratchet rewind`: restore this checkpoint before anything else. */
      rewind: rewindSchema().optional(),
      /** A fork's first run: the checkpoint it starts from (read by the client, not by the workflow). */
      base: baseCheckpointSchema().optional(),
    })
    .strict();
export type CarriedState = z.infer<ReturnType<typeof carriedStateSchema>>;

export const sessionInputSchema = () =>
  z
    .object({
      schemaVersion: z.literal(SESSION_SCHEMA_VERSION),
      config: sessionConfigSchema(),
      /** Present when the session continues from an earlier run (continue-as-new). */
      carried: carriedStateSchema().optional(),
    })
    .strict();
export type SessionInput = z.infer<ReturnType<typeof sessionInputSchema>>;

export const emptyUsage: Usage = {
  inputTokens: 0,
  cachedInputTokens: 0,
  outputTokens: 0,
  reasoningTokens: 0,
  totalTokens: 0,
};

/** One-line, human-readable list of what is wrong with an input, for errors. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : 'input'}: ${issue.message}`)
    .join('; ');
}
