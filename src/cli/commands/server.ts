/**
 * `ratchet server`: the embedded Temporal dev server, a worker and the approvals inbox in one
 * foreground process, stopped together by Ctrl-C.
 */
import type { Command } from 'commander';
import pc from 'picocolors';
import { workerSettings } from '../from-settings.js';
import type { InboxFlags } from '../inbox-command.js';
import { inboxOptions, serveInbox } from '../inbox-command.js';
import type { Io } from '../io.js';
import { print, waitForSignal } from '../io.js';
import { connect, startEmbeddedServer, startInProcessWorker } from '../services.js';
import { resolveSettings } from '../settings.js';

export function registerServer(program: Command, io: Io): void {
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
}
