/**
 * `ratchet worker`: a worker for the configured Temporal service, in the foreground, that shuts
 * down gracefully on SIGTERM or SIGINT.
 */
import type { Command } from 'commander';
import { allocatorNotice } from '../../allocator.js';
import type { WorkerGroup } from '../../worker.js';
import { workerSettings } from '../from-settings.js';
import type { Io } from '../io.js';
import { print } from '../io.js';
import { DEFAULT_SHUTDOWN_GRACE_SECONDS, connect, startInProcessWorker } from '../services.js';
import { resolveSettings, settingHelp } from '../settings.js';

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

export function registerWorker(program: Command, io: Io): void {
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
      const allocator = allocatorNotice();
      if (allocator) print(io, allocator);
      const dispose = shutdownOnSignals(io, worker, grace);
      try {
        await run;
      } finally {
        dispose();
        await services.close();
      }
    });
}
