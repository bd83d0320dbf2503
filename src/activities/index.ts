/**
 * All of a session's activities, built from narrow dependencies so that tests and benchmarks can
 * substitute any of them. Workflows are typed with `ReturnType<typeof createActivities>`.
 */
import type OpenAI from 'openai';
import { createCompactActivity } from './compact.js';
import { createModelActivity } from './model.js';
import type { ModelApi } from './openai-client.js';
import { StreamingMemory } from './stream-support.js';
import { createToolActivities } from './tool-activities.js';
import type { SandboxInfo } from './tools/sandbox.js';
import type { TranscriptSource } from './transcript-source.js';
import { createWorkspaceActivities } from './workspace.js';

export interface ActivityDeps {
  openai: () => OpenAI;
  /** Which API the model endpoint speaks (default: the Responses API). */
  api?: ModelApi;
  /** Cap on each reply's output tokens; none when undefined. */
  maxOutputTokens?: number;
  /** false: never stream model requests (the `stream` setting). */
  stream?: boolean;
  transcript: TranscriptSource;
  commandEnv: Record<string, string>;
  allowedRoots: readonly string[];
  sandbox: SandboxInfo;
  streamIdleTimeoutMs?: number;
  /** This worker's own task queue (tool calls of sessions it prepares are routed there). */
  toolQueue?: string;
}

export function createActivities(deps: ActivityDeps) {
  return {
    model: createModelActivity({
      openai: deps.openai,
      transcript: deps.transcript,
      streamIdleTimeoutMs: deps.streamIdleTimeoutMs ?? 120_000,
      api: deps.api,
      maxOutputTokens: deps.maxOutputTokens,
      streaming: new StreamingMemory(deps.stream ?? true),
    }),
    compact: createCompactActivity({ openai: deps.openai, transcript: deps.transcript, api: deps.api }),
    ...createWorkspaceActivities({
      allowedRoots: deps.allowedRoots,
      sandbox: deps.sandbox,
      toolQueue: deps.toolQueue,
    }),
    ...createToolActivities({
      transcript: deps.transcript,
      commandEnv: deps.commandEnv,
      sandbox: deps.sandbox,
      toolQueue: deps.toolQueue,
    }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
