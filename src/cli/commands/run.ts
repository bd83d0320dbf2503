/**
 * `ratchet run`: checks the repository, starts Temporal and a worker when none runs (unless
 * --detach), starts a session from the task and the settings, and follows it.
 */
import { Option } from 'commander';
import type { Command } from 'commander';
import pc from 'picocolors';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { RatchetError } from '../../client.js';
import { approvalPolicies } from '../../shared/policy/policy.js';
import { sandboxModes } from '../../shared/policy/sandbox.js';
import { sessionConfig, workerSettings } from '../from-settings.js';
import type { Io } from '../io.js';
import { parseCount, parsePolicy, parsePositiveInt, parseSandbox } from '../parse.js';
import { connect, connectForRun } from '../services.js';
import { DEFAULT_MODEL, resolveSettings, settingHelp } from '../settings.js';
import { startAndFollow } from '../start-and-follow.js';

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

export function registerRun(program: Command, io: Io): void {
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
}
