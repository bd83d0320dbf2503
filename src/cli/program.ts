/**
 * The `ratchet` command line: a thin layer over RatchetClient and the worker.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import pc from 'picocolors';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { RatchetClient } from '../client.js';
import { RatchetError } from '../client.js';
import type { ApprovalPolicy } from '../shared/policy/policy.js';
import { approvalPolicies } from '../shared/policy/policy.js';
import { sessionStatuses } from '../shared/api/session-api.js';
import type { SessionStatus } from '../shared/api/session-api.js';
import { sandboxModes } from '../shared/policy/sandbox.js';
import type { SandboxMode } from '../shared/policy/sandbox.js';
import { searchAttributeDefinitions } from '../shared/api/search-attributes.js';
import { registerSearchAttributes } from '../temporal/search-attribute-setup.js';
import { escapeControl } from '../shared/util/escape.js';
import {
  checkpointDiff,
  forkSession,
  rewindSession,
  rewoundStatus,
  sessionCheckpoints,
} from './checkpoints.js';
import { diffStat, preparedWorkspace, workspaceDiff } from './diff.js';
import { followSession } from './follow.js';
import { registerBudgetCommand } from './budget.js';
import type { InboxFlags } from './inbox-command.js';
import { inboxOptions, serveInbox } from './inbox-command.js';
import { colorsFor, renderAgentLine, statusColor } from './render.js';
import type { SessionConfigInput } from '../shared/api/session-config.js';
import { ScriptedModel } from '../testing/scripted-model.js';
import { DEMO_TASK, createDemoRepo, demoResponder } from './demo.js';
import type { WorkerGroup } from '../worker.js';
import { cachedWorkflowBundle } from '../worker.js';
import type { Settings } from './settings.js';
import { DEFAULT_MODEL, resolveSettings, settingHelp } from './settings.js';
import type { WorkerSettings } from './services.js';
import type { RunServices, Services } from './services.js';
import {
  DEFAULT_SHUTDOWN_GRACE_SECONDS,
  connect,
  connectForRun,
  dataDir,
  startEmbeddedServer,
  startInProcessWorker,
} from './services.js';

export { DEFAULT_MODEL };

interface Io {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

function print(io: Io, text: string): void {
  io.out.write(`${text}\n`);
}

function json(io: Io, value: unknown): void {
  io.out.write(`${JSON.stringify(value, null, 2)}\n`);
}

async function withClient<T>(fn: (ratchet: RatchetClient, services: Services) => Promise<T>): Promise<T> {
  const services = await connect();
  try {
    return await fn(services.ratchet, services);
  } finally {
    await services.close();
  }
}

function parsePolicy(value: string): ApprovalPolicy {
  if (!(approvalPolicies as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${approvalPolicies.join(', ')}`);
  }
  return value as ApprovalPolicy;
}

function parseSandbox(value: string): SandboxMode {
  if (!(sandboxModes as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${sandboxModes.join(', ')}`);
  }
  return value as SandboxMode;
}

function parseStatus(value: string): SessionStatus {
  if (!(sessionStatuses as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${sessionStatuses.join(', ')}`);
  }
  return value as SessionStatus;
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number, 0 or more');
  return n;
}

/** A turn number: 0 (the workspace as the session found it) or more. */
function parseTurn(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a turn number (0 or more)');
  return Number(value);
}

function userName(): string | undefined {
  return process.env.USER || process.env.LOGNAME || undefined;
}

function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

/**
 * Resolves and checks --repo before anything is started. A detached session may name a path that
 * exists only where its worker runs (an absolute path); the worker checks it then.
 */
function workspacePath(repo: string, detached: boolean, warn: (message: string) => void): string {
  const dir = path.resolve(repo);
  if (!existsSync(dir)) {
    if (detached && path.isAbsolute(repo)) {
      warn(`--repo ${repo} is not on this machine; the worker will check it`);
      return repo;
    }
    throw new RatchetError(`--repo ${repo}: no such directory`);
  }
  if (!statSync(dir).isDirectory()) throw new RatchetError(`--repo ${repo}: not a directory`);
  if (!existsSync(path.join(dir, '.git'))) {
    // A subdirectory of a repository is fine; the worker checks with git.
    let up = dir;
    while (up !== path.dirname(up) && !existsSync(path.join(up, '.git'))) up = path.dirname(up);
    if (!existsSync(path.join(up, '.git'))) {
      throw new RatchetError(`--repo ${repo}: not inside a git working copy (run git init there first)`);
    }
  }
  return dir;
}

/**
 * Graceful shutdown of a worker on SIGTERM or SIGINT: it stops taking work and lets running
 * activities finish within the grace time, then the command exits 0. A second signal exits at
 * once (130); activities still running are abandoned, and their sessions find out through the
 * heartbeat timeout (a mutating command is reported as interrupted, effect unknown).
 */
function shutdownOnSignals(io: Io, worker: WorkerGroup, graceSeconds: number): () => void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      io.err.write(`ratchet: second ${signal}: exiting now, abandoning running activities\n`);
      process.exit(130);
    }
    stopping = true;
    io.err.write(
      `${signal}: taking no new work; waiting up to ${graceSeconds} s for running activities (again to exit now)\n`,
    );
    if (worker.getState() === 'RUNNING') worker.shutdown();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

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
function workerSettings(settings: Settings): WorkerSettings {
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

function waitForSignal(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/**
 * Exit codes of `ratchet run` and `ratchet demo` when they stop following a session at rest:
 * 0 completed, 1 failed or cancelled, 2 idle (waiting for a message), 3 waiting for an approval
 * nobody can give here (no terminal, or --json).
 */
export const EXIT_IDLE = 2;
export const EXIT_AWAITING_APPROVAL = 3;

/**
 * Starts a session and, unless detached, follows it until it ends, the user leaves, or — without
 * a person at a terminal — it comes to rest.
 */
async function startAndFollow(
  io: Io,
  services: RunServices | Services,
  config: SessionConfigInput,
  opts: { detach: boolean; json: boolean },
): Promise<void> {
  try {
    const { sessionId } = await services.ratchet.start(config);
    const uiUrl = services.ratchet.uiUrl(sessionId) ?? null;
    if (opts.detach) {
      if (opts.json) json(io, { sessionId, uiUrl });
      else {
        print(io, sessionId);
        if (uiUrl) print(io, pc.dim(uiUrl));
      }
      return;
    }
    if (!opts.json) {
      const c = colorsFor(io.out);
      print(io, `${c.bold('session')} ${sessionId}${uiUrl ? c.dim(`  ${uiUrl}`) : ''}`);
    }
    const stop = waitForSignal();
    try {
      const interactive = Boolean(process.stdin.isTTY) && !opts.json;
      const result = await followSession(services.ratchet, sessionId, {
        json: opts.json,
        format: 'exec',
        // Without a person at a terminal nobody here can move a resting session: stop following.
        exitAtRest: !interactive,
        interactive,
        out: io.out,
        signal: stop.signal,
      });
      const inProcess = 'worker' in services && services.worker !== undefined;
      const needsWorker = inProcess ? ' (a worker must be running: ratchet server, or ratchet worker)' : '';
      if (result.status === 'idle') {
        process.exitCode = EXIT_IDLE;
        io.err.write(
          `Session ${sessionId} is idle${result.view?.notice ? `: ${result.view.notice}` : ''}. ` +
            `Continue it with: ratchet send ${sessionId} "<message>"${needsWorker}\n`,
        );
      } else if (result.status === 'awaiting_approval') {
        process.exitCode = EXIT_AWAITING_APPROVAL;
        const calls = result.view?.pendingApprovals ?? [];
        const first = calls[0]?.callId ?? '<call id>';
        io.err.write(
          `Session ${sessionId} waits for approval of ${calls.map((c) => `${c.callId} (${c.summary})`).join(', ') || 'a call'}. ` +
            `Decide with: ratchet approve ${sessionId} ${first} (or ratchet deny …), then ratchet watch ${sessionId}${needsWorker}\n`,
        );
      } else if (result.status === 'awaiting_budget') {
        process.exitCode = EXIT_AWAITING_APPROVAL;
        io.err.write(
          `Session ${sessionId} spent its token budget and waits for your decision: ratchet budget ${sessionId} --add N (or --stop), then ratchet watch ${sessionId}${needsWorker}\n`,
        );
      } else if (result.status === 'detached') {
        io.err.write(
          `\nLeft session ${sessionId}; it is saved. Follow it again with: ratchet watch ${sessionId}` +
            (inProcess ? ' (it continues once a worker runs: ratchet server, or ratchet worker)' : '') +
            '\n',
        );
      } else if (result.status === 'failed' || result.status === 'cancelled') {
        process.exitCode = 1;
      }
    } finally {
      stop.dispose();
    }
  } finally {
    await services.close();
  }
}

export function buildProgram(io: Io = { out: process.stdout, err: process.stderr }): Command {
  const program = new Command('ratchet')
    .description(
      'A durable coding agent: each session is a Temporal workflow that survives crashes and waits for your approval.',
    )
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (text) => io.out.write(text),
      writeErr: (text) => {
        // Errors on one line (commander puts "(Did you mean …?)" on a line of its own); help
        // written to stderr stays as it is.
        if (!text.startsWith('error:')) return void io.err.write(text);
        io.err.write(`ratchet: ${text.trim().replace(/\s*\n\s*/g, ' ')}\n`);
      },
    })
    .exitOverride();

  program
    .command('run')
    .description('start a session on a git repository and follow it (starts Temporal and a worker if needed)')
    .argument('<task...>', 'what the agent should do')
    .option('--repo <dir>', 'the git working copy to work in', '.')
    .addOption(
      new Option(
        '--approval <policy>',
        settingHelp('approval', `approval policy: ${approvalPolicies.join(', ')} (default untrusted)`),
      ).argParser(parsePolicy),
    )
    .addOption(
      new Option(
        '--sandbox <mode>',
        settingHelp(
          'sandbox',
          `where commands may write: ${sandboxModes.join(', ')} (default workspace-write)`,
        ),
      ).argParser(parseSandbox),
    )
    .option('--model <name>', settingHelp('model', `model name (default ${DEFAULT_MODEL})`))
    .option(
      '--max-turns <n>',
      settingHelp('max_turns', 'stop and wait for a message after this many model turns'),
      parsePositiveInt,
    )
    .option('--command-timeout <seconds>', settingHelp('command_timeout', 'default timeout of one command'))
    .option(
      '--checkpoint-keep <n>',
      settingHelp(
        'checkpoint_keep',
        "checkpoints of the workspace kept: the latest n turns' (0: all; default 100)",
      ),
    )
    .option(
      '--checkpoint-prune-at-end',
      settingHelp(
        'checkpoint_prune_at_end',
        'delete the checkpoints when the session completes (no rewind after)',
      ),
    )
    .option(
      '--compact-at <ratio>',
      settingHelp('compact_at', 'compact the transcript at this share of the context window'),
    )
    .option('--context-window <tokens>', settingHelp('context_window', "the model's context window"))
    .option(
      '--worker <id>',
      'run the session on the worker with this RATCHET_WORKER_ID (where the repository is)',
    )
    .option(
      '--provider-state',
      settingHelp(
        'provider_state',
        'keep the conversation on the provider (previous_response_id): smaller requests, not zero data retention',
      ),
    )
    .option(
      '--agents <n>',
      settingHelp(
        'max_agents',
        'let the session fan out to this many child sessions at once (default 0: none)',
      ),
      parseCount,
    )
    .option(
      '--agent-depth <n>',
      settingHelp('agent_depth', 'how deep the tree of sessions may grow (default 1)'),
      parsePositiveInt,
    )
    .option(
      '--keep-worktrees',
      settingHelp('keep_worktrees', "keep the children's worktrees and branches when their session ends"),
    )
    .option(
      '--budget-tokens <n>',
      settingHelp(
        'budget_tokens',
        'tokens the session and its agents may spend before they park for your decision',
      ),
    )
    .option(
      '--background',
      settingHelp(
        'background',
        "create model responses in the provider's background mode: a lost worker's call is re-attached to, not paid twice; kept by the provider ~10 minutes",
      ),
    )
    .option('--detach', 'start the session and return (needs a running server and worker)')
    .option('--json', 'machine-readable output (JSON lines when following)')
    .option('--config <file>', `settings file (default ./${'ratchet.toml'}; env RATCHET_CONFIG)`)
    .option('--base-url <url>', settingHelp('base_url', 'model endpoint, for a worker this command starts'))
    .option(
      '--api <api>',
      settingHelp('api', 'responses or chat (Chat Completions), for a worker this command starts'),
    )
    .option(
      '--stream <yes|no>',
      settingHelp('stream', 'no: never stream model requests, for a worker this command starts'),
    )
    .option(
      '--max-output-tokens <n>',
      settingHelp(
        'max_output_tokens',
        'cap on each model reply (0: none; default none for OpenAI, 4096 elsewhere), for a worker this command starts',
      ),
    )
    .action(
      async (
        words: string[],
        opts: {
          repo: string;
          worker?: string;
          providerState?: boolean;
          detach?: boolean;
          json?: boolean;
        } & Record<string, unknown>,
      ) => {
        const task = words.join(' ').trim();
        if (!task) throw new RatchetError('the task is empty');
        // --agents is the max_agents setting.
        const { agents, ...rest } = opts;
        const settings = resolveSettings({ ...rest, ...(agents !== undefined ? { maxAgents: agents } : {}) });
        const log = (message: string) => {
          if (!opts.json) io.err.write(pc.dim(`${message}\n`));
        };
        const workspace = workspacePath(opts.repo, Boolean(opts.detach), log);
        const services = opts.detach
          ? await connect()
          : await connectForRun({
              log,
              worker: true,
              workerSettings: workerSettings(settings),
              workerLogToFile: true,
            });
        await startAndFollow(io, services, sessionConfig(task, workspace, settings, opts.worker), {
          detach: Boolean(opts.detach),
          json: Boolean(opts.json),
        });
      },
    );

  program
    .command('demo')
    .description('a whole session on a sample repository with a scripted model (no API key needed)')
    .addOption(
      new Option('--approval <policy>', `approval policy: ${approvalPolicies.join(', ')}`)
        .default('untrusted')
        .argParser(parsePolicy),
    )
    .option('--json', 'JSON lines')
    .action(async (opts: { approval: ApprovalPolicy; json?: boolean }) => {
      const log = (message: string) => {
        if (!opts.json) io.err.write(pc.dim(`${message}\n`));
      };
      const workspace = await createDemoRepo();
      log(`Sample repository: ${workspace}`);
      const model = await ScriptedModel.start({ responder: demoResponder });
      try {
        const services = await connectForRun({
          log,
          worker: true,
          // A queue of its own, so that the demo's scripted model is the one that answers.
          taskQueue: `ratchet-demo-${process.pid}`,
          workerSettings: { endpoint: { apiKey: 'demo', baseURL: model.baseUrl } },
          workerLogToFile: true,
        });
        await startAndFollow(
          io,
          services,
          { task: DEMO_TASK, workspace, model: { name: 'ratchet-demo' }, approvalPolicy: opts.approval },
          { detach: false, json: Boolean(opts.json) },
        );
        if (!opts.json) log(`The changed repository is ${workspace}`);
      } finally {
        await model.close();
      }
    });

  program
    .command('status')
    .description("show a session's status")
    .argument('<id>', 'session id')
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { json?: boolean }) =>
      withClient(async (ratchet) => {
        const view = await ratchet.status(id);
        if (opts.json) return json(io, view);
        print(io, `${pc.bold(id)}  ${statusColor(view.status)(view.status)}`);
        print(io, `task       ${escapeControl(view.task)}`);
        print(io, `repository ${view.workspace}`);
        print(io, `model      ${view.model} · policy ${view.approvalPolicy}`);
        print(io, `sandbox    ${view.sandbox}`);
        print(io, `turn       ${view.turn} · runs ${view.runs} · compactions ${view.compactions}`);
        print(
          io,
          `tokens     ${view.usage.inputTokens} in (${view.usage.cachedInputTokens} cached) · ${view.usage.outputTokens} out`,
        );
        if (view.current) print(io, `now        ${escapeControl(view.current.label)}`);
        if (view.notice) print(io, `notice     ${escapeControl(view.notice)}`);
        for (const step of view.plan)
          print(
            io,
            `plan       [${step.status === 'completed' ? 'x' : step.status === 'in_progress' ? '>' : ' '}] ${escapeControl(step.step)}`,
          );
        for (const p of view.pendingApprovals)
          print(io, pc.yellow(escapeControl(`pending    ${p.callId} · ${p.summary} · ${p.reason}`)));
        if (view.parent) print(io, `parent     ${view.parent}`);
        if (view.budget)
          print(
            io,
            `budget     ${view.budget.spent} of ${view.budget.limit} tokens${view.budget.parked ? pc.yellow(` · parked: ratchet budget ${id} --add N, or --stop`) : ''}`,
          );
        if (view.agents?.length || view.agentsRetired) {
          const retired = view.agentsRetired ? ` (and ${view.agentsRetired} merged and retired)` : '';
          print(io, `agents     ${view.agents?.length ?? 0}${retired}`);
          for (const agent of view.agents ?? [])
            print(io, `  ${renderAgentLine(agent, pc)}  ${pc.dim(agent.sessionId)}`);
          // Calls waiting anywhere below: `ratchet approve ${id}` decides them.
          const below = (await ratchet.treeApprovals(id)).filter((p) => p.sessionId !== id);
          for (const p of below)
            print(
              io,
              pc.yellow(
                escapeControl(`pending    ${p.approval.callId} · ${p.sessionId} · ${p.approval.summary}`),
              ),
            );
        }
        if (view.lastMessage) print(io, `last message\n${escapeControl(view.lastMessage)}`);
        const uiUrl = ratchet.uiUrl(id);
        if (uiUrl) print(io, pc.dim(uiUrl));
      }),
    );

  program
    .command('list')
    .description('list sessions')
    .addOption(
      new Option('--status <status>', `only sessions in this state: ${sessionStatuses.join(', ')}`).argParser(
        parseStatus,
      ),
    )
    .option('--limit <n>', 'most sessions to show', parsePositiveInt, 50)
    .option('--json', 'machine-readable output')
    .action(async (opts: { status?: SessionStatus; limit: number; json?: boolean }) =>
      withClient(async (ratchet) => {
        const sessions = await ratchet.list({ status: opts.status, limit: opts.limit });
        if (opts.json) return json(io, sessions);
        if (sessions.length === 0) return print(io, pc.dim('no sessions'));
        // Trees: a child follows its parent, indented, when both are listed.
        const listed = new Set(sessions.map((s) => s.sessionId));
        const childrenOf = new Map<string, typeof sessions>();
        for (const s of sessions) {
          if (s.parent && listed.has(s.parent))
            childrenOf.set(s.parent, [...(childrenOf.get(s.parent) ?? []), s]);
        }
        const show = (s: (typeof sessions)[number], depth: number): void => {
          const indent = depth === 0 ? '' : `${'  '.repeat(depth - 1)}${pc.dim('└ ')}`;
          print(
            io,
            `${indent}${s.sessionId}  ${statusColor(s.status)(s.status.padEnd(17))} turn ${String(s.turn ?? '-').padStart(3)}  ` +
              `${s.pendingApprovals ? pc.yellow(`${s.pendingApprovals} pending  `) : ''}${pc.dim(escapeControl(s.task || s.repo || '', { newlines: false }))}`,
          );
          for (const child of (childrenOf.get(s.sessionId) ?? []).slice().reverse()) show(child, depth + 1);
        };
        for (const s of sessions) if (!s.parent || !listed.has(s.parent)) show(s, 0);
      }),
    );

  program
    .command('watch')
    .description('follow a session as it works')
    .argument('<id>', 'session id')
    .option('--json', 'JSON lines')
    .action(async (id: string, opts: { json?: boolean }) =>
      withClient(async (ratchet) => {
        await ratchet.session(id);
        const stop = waitForSignal();
        try {
          const result = await followSession(ratchet, id, {
            json: Boolean(opts.json),
            interactive: Boolean(process.stdin.isTTY) && !opts.json,
            out: io.out,
            signal: stop.signal,
          });
          if (result.status === 'detached') {
            io.err.write(`\nStopped watching ${id}; the session goes on (ratchet status ${id}).\n`);
          } else if (result.status === 'failed' || result.status === 'cancelled') process.exitCode = 1;
        } finally {
          stop.dispose();
        }
      }),
    );

  const decision = (name: string, kind: 'approve' | 'deny' | 'abort', description: string) => {
    const command = program
      .command(name)
      .description(description)
      .argument('<id>', 'session id')
      .argument('[callId]', 'the pending call (optional when only one is pending)')
      .option('--reason <text>', 'why (the model reads it)')
      .option('--json', 'machine-readable output');
    if (kind === 'approve')
      command.option('--for-session', 'also approve the same command for the rest of the session');
    command.action(
      async (
        id: string,
        callId: string | undefined,
        opts: { reason?: string; forSession?: boolean; json?: boolean },
      ) =>
        withClient(async (ratchet) => {
          const decided = kind === 'approve' && opts.forSession ? 'approve_for_session' : kind;
          const ack = await ratchet.decide(id, decided, {
            callId,
            reason: opts.reason,
            by: process.env.USER ?? 'cli',
          });
          if (opts.json) return json(io, ack);
          print(
            io,
            `${ack.decision.replace(/_/g, ' ')}: ${ack.callId}${ack.alsoApproved.length ? ` (also approved ${ack.alsoApproved.join(', ')})` : ''}`,
          );
        }),
    );
  };
  decision('approve', 'approve', 'approve a pending tool call');
  decision('deny', 'deny', 'deny a pending tool call (the model is told, with your reason)');
  decision('abort', 'abort', 'deny a pending call and stop the turn; the session waits for your message');

  registerBudgetCommand(program, io);

  program
    .command('send')
    .description('send a message to a session (delivered at the next turn boundary)')
    .argument('<id>', 'session id')
    .argument('<text...>', 'the message')
    .action(async (id: string, words: string[]) =>
      withClient(async (ratchet) => {
        await ratchet.send(id, words.join(' '));
        print(io, 'sent');
      }),
    );

  program
    .command('interrupt')
    .description('stop what the session is doing now; it waits for your message')
    .argument('<id>', 'session id')
    .option('--reason <text>', 'why')
    .action(async (id: string, opts: { reason?: string }) =>
      withClient(async (ratchet) => {
        await ratchet.interrupt(id, opts.reason);
        print(io, 'interrupt sent');
      }),
    );

  program
    .command('move')
    .description(
      'hand a session to another worker (its RATCHET_WORKER_ID) that has the repository at the same path',
    )
    .argument('<id>', 'session id')
    .requiredOption('--worker <id>', "the worker's RATCHET_WORKER_ID")
    .action(async (id: string, opts: { worker: string }) =>
      withClient(async (ratchet) => {
        const queue = await ratchet.moveToWorker(id, opts.worker);
        print(io, `moved: tool calls now go to ${queue}; send a message (ratchet send ${id} …) to continue`);
      }),
    );

  program
    .command('cancel')
    .description('end a session (running commands are stopped)')
    .argument('<id>', 'session id')
    .action(async (id: string) =>
      withClient(async (ratchet) => {
        await ratchet.cancel(id);
        print(io, 'cancellation requested');
      }),
    );

  program
    .command('diff')
    .description(
      'what a session changed in its workspace, or with --turn what one turn changed (run it where the workspace is)',
    )
    .argument('<id>', 'session id')
    .option('--stat', 'only the names of the changed files and how much changed')
    .option('--turn <n>', "the turn's checkpoint: what that turn changed", parseTurn)
    .option('--to <m>', 'with --turn: from turn n’s checkpoint to turn m’s', parseTurn)
    .action(async (id: string, opts: { stat?: boolean; turn?: number; to?: number }) =>
      withClient(async (ratchet) => {
        const color = !opts.stat && Boolean((io.out as { isTTY?: boolean }).isTTY) && !process.env.NO_COLOR;
        if (opts.to !== undefined && opts.turn === undefined) throw new RatchetError('--to needs --turn');
        if (opts.turn !== undefined) {
          const text = await checkpointDiff(ratchet, id, {
            turn: opts.turn,
            ...(opts.to === undefined ? {} : { to: opts.to }),
            color,
            stat: opts.stat ?? false,
          });
          if (!text) return print(io, pc.dim('no changes'));
          io.out.write(text);
          return;
        }
        const prepared = await preparedWorkspace(ratchet, id);
        const text = await workspaceDiff(prepared, { color });
        if (!text) return print(io, pc.dim('no changes'));
        io.out.write(opts.stat ? diffStat(text) : text);
      }),
    );

  program
    .command('checkpoints')
    .description("a session's checkpoints: turn, time, what the turn did, files changed")
    .argument('<id>', 'session id')
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { json?: boolean }) =>
      withClient(async (ratchet) => {
        const { checkpoints } = await sessionCheckpoints(ratchet, id);
        if (opts.json) return json(io, checkpoints);
        if (checkpoints.length === 0) return print(io, pc.dim('no checkpoints yet'));
        for (const c of checkpoints) {
          const files = c.files.length + c.filesOmitted;
          print(
            io,
            `${pc.bold(`turn ${c.turn}`)}  ${pc.dim(c.at.replace('T', ' ').slice(0, 19))}  ${c.commit.slice(0, 12)}  ` +
              `${files} ${files === 1 ? 'file' : 'files'}  ${escapeControl(c.did)}`,
          );
          for (const f of c.files.slice(0, 10))
            print(io, `    ${f.status.padEnd(2)} ${escapeControl(f.path)}`);
          if (files > 10) print(io, pc.dim(`    … ${files - 10} more`));
        }
      }),
    );

  program
    .command('rewind')
    .description(
      'put a session back to the end of a turn: its conversation, plan, approvals and usage as they were, and its workspace restored to that checkpoint',
    )
    .argument('<id>', 'session id')
    .requiredOption('--turn <n>', 'the turn to go back to (ratchet checkpoints lists them)', parseTurn)
    .option('--force', 'even over changes made outside the session since its last checkpoint, or mid-turn')
    .action(async (id: string, opts: { turn: number; force?: boolean }) =>
      withClient(async (ratchet) => {
        const by = userName();
        const done = await rewindSession(ratchet, id, opts.turn, {
          force: opts.force ?? false,
          ...(by ? { by } : {}),
          workflowBundle: await cachedWorkflowBundle(path.join(dataDir(), 'bundles')),
        });
        print(
          io,
          `rewound ${id} to the end of turn ${done.turn} (checkpoint ${done.commit.slice(0, 12)}, run ${done.runId})`,
        );
        if (!done.checkedHere)
          print(io, pc.dim('the workspace is not on this machine: its worker checks it for outside changes'));
        const view = await rewoundStatus(ratchet, id);
        print(
          io,
          view?.notice ?? 'the session is restoring its workspace; ratchet status shows when it is done',
        );
      }),
    );

  program
    .command('fork')
    .description(
      'start a new session from the end of a turn of another, in a new worktree (or --repo) holding that checkpoint; the original is untouched',
    )
    .argument('<id>', 'session id')
    .requiredOption('--turn <n>', 'the turn to fork from', parseTurn)
    .option('--repo <dir>', 'a git working copy to use instead of a new worktree beside the repository')
    .option('--worker <id>', 'run the fork on this worker (its RATCHET_WORKER_ID); it must see the directory')
    .option(
      '-m, --message <text>',
      'a message to start the fork with (without one it waits for ratchet send)',
    )
    .action(async (id: string, opts: { turn: number; repo?: string; worker?: string; message?: string }) =>
      withClient(async (ratchet) => {
        const fork = await forkSession(ratchet, id, opts.turn, {
          ...(opts.repo === undefined ? {} : { repo: path.resolve(opts.repo) }),
          ...(opts.worker === undefined ? {} : { worker: opts.worker }),
          ...(opts.message === undefined ? {} : { message: opts.message }),
          workflowBundle: await cachedWorkflowBundle(path.join(dataDir(), 'bundles')),
        });
        print(io, `forked ${id} at turn ${fork.turn} as ${fork.sessionId}`);
        print(io, `workspace: ${fork.workspace}`);
        const url = ratchet.uiUrl(fork.sessionId);
        if (url) print(io, `web UI: ${url}`);
      }),
    );

  program
    .command('history')
    .description("a session's recorded steps, from Temporal's event history")
    .argument('<id>', 'session id')
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { json?: boolean }) =>
      withClient(async (ratchet) => {
        const lines = await ratchet.history(id);
        if (opts.json) return json(io, lines);
        for (const line of lines)
          print(io, `${pc.dim(line.time.replace('T', ' ').slice(0, 19))}  ${line.text}`);
      }),
    );

  inboxOptions(
    program
      .command('server')
      .description(
        'run the embedded Temporal dev server (SQLite, Web UI), a worker and the approvals inbox, in the foreground',
      )
      .option('--no-worker', 'do not run a worker in this process')
      .option('--no-inbox', 'do not serve the approvals inbox'),
    'inbox-',
  ).action(
    async (opts: {
      worker: boolean;
      inbox: boolean;
      inboxHost: string;
      inboxPort: number;
      inboxToken?: string;
    }) => {
      const log = (message: string) => io.err.write(pc.dim(`${message}\n`));
      const server = await startEmbeddedServer(log);
      print(io, `Temporal server  ${server.address}`);
      print(io, `Web UI           ${server.uiUrl ?? '(off)'}`);
      const stop = waitForSignal();
      const services = await connect({ ...process.env, TEMPORAL_ADDRESS: server.address });
      const flags: InboxFlags = { host: opts.inboxHost, port: opts.inboxPort };
      if (opts.inboxToken !== undefined) flags.token = opts.inboxToken;
      const inbox = opts.inbox
        ? await serveInbox(services.ratchet, flags, (line) => print(io, line))
        : undefined;
      try {
        if (opts.worker) {
          const settings = workerSettings(resolveSettings({}));
          // Links in notifications point at this inbox unless inbox_url names another.
          if (settings.notify && !settings.notify.inboxUrl && inbox) settings.notify.inboxUrl = inbox.origin;
          const { worker, run } = await startInProcessWorker(
            services.target,
            services.client,
            services.ratchet.taskQueue,
            settings,
          );
          print(io, `Worker           task queue ${services.ratchet.taskQueue}`);
          stop.signal.addEventListener('abort', () => worker.shutdown(), { once: true });
          await run;
        } else {
          await new Promise<void>((resolve) =>
            stop.signal.addEventListener('abort', () => resolve(), { once: true }),
          );
        }
      } finally {
        stop.dispose();
        await inbox?.close();
        await services.close();
        await server.stop();
      }
    },
  );

  inboxOptions(
    program
      .command('inbox')
      .description('serve the approvals inbox for the configured cluster, in the foreground'),
  ).action(async (opts: InboxFlags) =>
    withClient(async (ratchet) => {
      const inbox = await serveInbox(ratchet, opts, (line) => print(io, line));
      const stop = waitForSignal();
      await new Promise<void>((resolve) =>
        stop.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      stop.dispose();
      await inbox.close();
    }),
  );

  program
    .command('setup')
    .description(
      "register Ratchet's search attributes on the configured cluster's namespace (safe to repeat)",
    )
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) =>
      withClient(async (ratchet, services) => {
        const result = await registerSearchAttributes(services.client.connection, ratchet.namespace);
        if (opts.json) return json(io, result);
        for (const [name, type] of Object.entries(searchAttributeDefinitions)) {
          const state = result.added.includes(name) ? 'registered' : 'already registered';
          print(io, `${name.padEnd(24)} ${type.padEnd(8)} ${state}`);
        }
        print(io, pc.dim(`namespace ${result.namespace} at ${services.target.address}`));
      }),
    );

  program
    .command('worker')
    .description('run a worker for the configured Temporal service (TEMPORAL_ADDRESS, profiles)')
    .option(
      '--shutdown-grace <seconds>',
      settingHelp(
        'shutdown_grace',
        `on SIGTERM/SIGINT, how long running activities may take to finish (default ${DEFAULT_SHUTDOWN_GRACE_SECONDS})`,
      ),
    )
    .option('--worker-id <id>', settingHelp('worker_id', "this worker's id (default: the host name)"))
    .option(
      '--workspace-roots <dirs>',
      settingHelp('workspace_roots', 'colon-separated directories sessions may work in'),
    )
    .option('--metrics-port <port>', settingHelp('metrics_port', 'serve Prometheus metrics on this port'))
    .option('--base-url <url>', settingHelp('base_url', 'model endpoint (OpenAI-compatible)'))
    .option('--api <api>', settingHelp('api', 'responses (default) or chat (Chat Completions)'))
    .option('--stream <yes|no>', settingHelp('stream', 'no: never stream model requests'))
    .option(
      '--max-output-tokens <n>',
      settingHelp(
        'max_output_tokens',
        'cap on each model reply (0: none; default none for OpenAI, 4096 elsewhere)',
      ),
    )
    .option('--config <file>', 'settings file (default ./ratchet.toml; env RATCHET_CONFIG)')
    .action(async (opts: Record<string, unknown>) => {
      const options = workerSettings(resolveSettings(opts));
      const grace = options.shutdownGraceSeconds ?? DEFAULT_SHUTDOWN_GRACE_SECONDS;
      const services = await connect();
      const { worker, run, toolQueue, metricsUrl } = await startInProcessWorker(
        services.target,
        services.client,
        services.ratchet.taskQueue,
        options,
      );
      print(
        io,
        `worker polling task queue ${services.ratchet.taskQueue} (tools: ${toolQueue}) at ${services.target.address} (Ctrl-C stops it)`,
      );
      if (metricsUrl) print(io, `metrics at ${metricsUrl}`);
      const dispose = shutdownOnSignals(io, worker, grace);
      try {
        await run;
      } finally {
        dispose();
        await services.close();
      }
    });

  return program;
}
