/**
 * The Temporal runtime of a `ratchet` process: its logger and, for a worker with a metrics port,
 * a Prometheus endpoint for Temporal's own metrics (`temporal_…`) and Ratchet's (`ratchet_…`,
 * emitted through the activities' and workflow's metric meter). It is installed once, before the
 * first worker connection; commands that run no worker never install it.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { RatchetError } from '../client.js';

let installed: { metricsPort?: number } | undefined;

export function installRuntime(options: { metricsPort?: number } = {}): void {
  if (installed) {
    if (options.metricsPort !== undefined && installed.metricsPort !== options.metricsPort) {
      throw new RatchetError('the metrics port can be set once per process');
    }
    return;
  }
  const logger = new DefaultLogger(process.env.RATCHET_LOG_LEVEL === 'debug' ? 'DEBUG' : 'WARN', (entry) => {
    // A worker's own tool queue has activities only, as intended; the SDK warns about it.
    if (entry.message.startsWith('No workflows registered')) return;
    console.error(`[${entry.level}] ${entry.message}`, entry.meta ?? '');
  });
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
