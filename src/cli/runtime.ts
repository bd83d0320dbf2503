/**
 * The Temporal runtime of a `ratchet` process: its logger (stderr, or a file for the worker that
 * `ratchet run` and `ratchet demo` run in-process, so that the terminal shows the session and not
 * the worker's warnings and stack traces) and, for a worker with a metrics port,
 * a Prometheus endpoint for Temporal's own metrics (`temporal_…`) and Ratchet's (`ratchet_…`,
 * emitted through the activities' and workflow's metric meter). It is installed once, before the
 * first worker connection; commands that run no worker never install it.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { RatchetError } from '../client.js';

export interface RuntimeOptions {
  metricsPort?: number;
  /** Append log entries to this file instead of writing them to stderr. */
  logFile?: string;
}

let installed: RuntimeOptions | undefined;

export function installRuntime(options: RuntimeOptions = {}): void {
  if (installed) {
    if (options.metricsPort !== undefined && installed.metricsPort !== options.metricsPort) {
      throw new RatchetError('the metrics port can be set once per process');
    }
    return;
  }
  const logger = new DefaultLogger(process.env.RATCHET_LOG_LEVEL === 'debug' ? 'DEBUG' : 'WARN', (entry) => {
    // A worker's own tool queue has activities only, as intended; the SDK warns about it.
    if (entry.message.startsWith('No workflows registered')) return;
    if (!options.logFile) {
      console.error(`[${entry.level}] ${entry.message}`, entry.meta ?? '');
      return;
    }
    const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
    const meta = entry.meta
      ? ` ${inspect(entry.meta, { depth: 4, breakLength: Infinity, colors: false })}`
      : '';
    try {
      appendFileSync(options.logFile, `${time} [${entry.level}] ${entry.message}${meta}\n`);
    } catch {
      // A log that cannot be written must not stop the worker.
    }
  });
  if (options.logFile) mkdirSync(path.dirname(options.logFile), { recursive: true });
  Runtime.install({
    logger,
    shutdownSignals: [],
    ...(options.metricsPort !== undefined
      ? {
          telemetryOptions: {
            metrics: {
              prometheus: { bindAddress: `0.0.0.0:${options.metricsPort}`, countersTotalSuffix: true },
            },
          },
        }
      : {}),
  });
  installed = options;
}
