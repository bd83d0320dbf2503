/**
 * What a session and a worker started from the command line take from the resolved settings
 * (flags over environment over ratchet.toml, see settings.ts).
 */
import type { SessionConfigInput } from '../shared/api/session-config.js';
import type { WorkerSettings } from './services.js';
import type { Settings } from './settings.js';
import { DEFAULT_MODEL } from './settings.js';

/** A session's configuration from the resolved settings. */
export function sessionConfig(
  task: string,
  workspace: string,
  settings: Settings,
  worker?: string,
): SessionConfigInput {
  const limits = {
    ...(settings.max_turns ? { maxTurns: settings.max_turns } : {}),
    ...(settings.command_timeout ? { commandTimeoutMs: settings.command_timeout * 1000 } : {}),
  };
  return {
    task,
    workspace,
    model: {
      name: settings.model ?? DEFAULT_MODEL,
      ...(settings.compact_at !== undefined ? { compactAtRatio: settings.compact_at } : {}),
      ...(settings.context_window ? { contextWindow: settings.context_window } : {}),
      ...(settings.provider_state ? { providerState: true } : {}),
      ...(settings.background ? { background: true } : {}),
    },
    approvalPolicy: settings.approval ?? 'untrusted',
    sandbox: settings.sandbox ?? 'workspace-write',
    ...(Object.keys(limits).length ? { limits } : {}),
    ...(worker ? { worker } : {}),
    ...(settings.notify?.length ? { notify: true } : {}),
    ...(settings.max_agents
      ? {
          agents: {
            max: settings.max_agents,
            ...(settings.agent_depth ? { maxDepth: settings.agent_depth } : {}),
            ...(settings.keep_worktrees ? { keepWorktrees: true } : {}),
          },
        }
      : {}),
    ...(settings.budget_tokens ? { budget: { tokens: settings.budget_tokens } } : {}),
    ...(settings.checkpoint_keep !== undefined || settings.checkpoint_prune_at_end
      ? {
          checkpoints: {
            ...(settings.checkpoint_keep !== undefined ? { keep: settings.checkpoint_keep } : {}),
            ...(settings.checkpoint_prune_at_end ? { afterEnd: 'prune' as const } : {}),
          },
        }
      : {}),
  };
}

/** What a worker this process runs takes from the settings. */
export function workerSettings(settings: Settings): WorkerSettings {
  return {
    endpoint: {
      apiKey: process.env.OPENAI_API_KEY || undefined,
      baseURL: settings.base_url,
      api: settings.api ?? 'responses',
      ...(settings.stream !== undefined ? { stream: settings.stream } : {}),
      ...(settings.max_output_tokens !== undefined ? { maxOutputTokens: settings.max_output_tokens } : {}),
    },
    ...(settings.workspace_roots ? { allowedRoots: settings.workspace_roots } : {}),
    ...(settings.worker_id ? { workerId: settings.worker_id } : {}),
    ...(settings.shutdown_grace ? { shutdownGraceSeconds: settings.shutdown_grace } : {}),
    ...(settings.metrics_port !== undefined ? { metricsPort: settings.metrics_port } : {}),
    ...(settings.notify?.length
      ? {
          notify: {
            targets: settings.notify,
            ...(settings.inbox_url ? { inboxUrl: settings.inbox_url } : {}),
          },
        }
      : {}),
  };
}
