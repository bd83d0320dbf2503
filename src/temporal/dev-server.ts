/**
 * Runs Temporal's own dev server (`temporal server start-dev`) as a child process: SQLite
 * persistence (a file, or memory), the Web UI, and Ratchet's search attributes registered.
 */
import { Connection } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { searchAttributeDefinitions } from '../shared/api/search-attributes.js';

export interface DevServerOptions {
  cliPath: string;
  /** gRPC port; a free one when omitted. */
  port?: number;
  /** Web UI port; a free one when omitted; false turns the UI off. */
  uiPort?: number | false;
  ip?: string;
  /** SQLite file; in memory when omitted (everything is lost when the server stops). */
  dbFile?: string;
  namespace?: string;
  /**
   * `--dynamic-config-value` entries, e.g. `{ 'limit.historyCount.suggestContinueAsNew': 40 }`,
   * added to (and overriding) DEFAULT_DYNAMIC_CONFIG.
   */
  dynamicConfig?: Record<string, string | number | boolean>;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Register Ratchet's search attributes at start (default true; `ratchet setup` can do it later). */
  searchAttributes?: boolean;
  /** How long to wait for the server to answer. */
  readyTimeoutMs?: number;
}

/**
 * Settings the embedded server starts with. The history service moves each new workflow or
 * activity task to the task queues through its transfer queue, whose reader polls at most
 * `history.transferProcessorMaxPollRPS` times a second (20 by default): on the dev server's single
 * shard every workflow task then waits ~40 ms before a worker can take it, which was most of a
 * turn's cost (docs/PERFORMANCE.md). A cluster's operator tunes their own.
 */
export const DEFAULT_DYNAMIC_CONFIG: Readonly<Record<string, string | number | boolean>> = {
  'history.transferProcessorMaxPollRPS': 1000,
};

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not find a free port'));
      });
    });
  });
}

/** True when a Temporal frontend answers at `address` within `timeoutMs`. */
export async function isTemporalReachable(address: string, timeoutMs = 1500): Promise<boolean> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: timeoutMs });
    await connection.workflowService.getSystemInfo({});
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => {});
  }
}

export class DevServer {
  private constructor(
    readonly address: string,
    readonly uiUrl: string | undefined,
    readonly namespace: string,
    private readonly child: ResultPromise,
    private readonly output: { text: string },
  ) {}

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The last lines the server printed (for error messages). */
  get recentOutput(): string {
    return this.output.text.slice(-2000);
  }

  static async start(options: DevServerOptions): Promise<DevServer> {
    const ip = options.ip ?? '127.0.0.1';
    const port = options.port ?? (await freePort(ip));
    const uiPort = options.uiPort === false ? undefined : (options.uiPort ?? (await freePort(ip)));
    const namespace = options.namespace ?? 'default';
    const args = ['server', 'start-dev', '--ip', ip, '--port', String(port), '--namespace', namespace];
    args.push('--log-level', options.logLevel ?? 'error');
    if (uiPort === undefined) args.push('--headless');
    else args.push('--ui-port', String(uiPort));
    if (options.dbFile) {
      await mkdir(path.dirname(options.dbFile), { recursive: true });
      args.push('--db-filename', options.dbFile);
    }
    if (options.searchAttributes !== false) {
      for (const [name, type] of Object.entries(searchAttributeDefinitions)) {
        args.push('--search-attribute', `${name}=${type}`);
      }
    }
    for (const [key, value] of Object.entries({ ...DEFAULT_DYNAMIC_CONFIG, ...options.dynamicConfig })) {
      args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
    }

    const child = execa(options.cliPath, args, { reject: false, stdin: 'ignore', all: true, buffer: false });
    const output = { text: '' };
    child.all?.on('data', (chunk: Buffer) => {
      output.text = (output.text + chunk.toString('utf8')).slice(-8000);
    });
    const address = `${ip}:${port}`;
    const server = new DevServer(
      address,
      uiPort === undefined ? undefined : `http://${ip === '0.0.0.0' ? '127.0.0.1' : ip}:${uiPort}`,
      namespace,
      child,
      output,
    );

    let exited = false;
    void child.then(() => {
      exited = true;
    });
    const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
    while (Date.now() < deadline) {
      if (exited) {
        throw new Error(`the Temporal dev server exited while starting: ${server.recentOutput.trim()}`);
      }
      if (await isTemporalReachable(address, 1000)) return server;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await server.stop();
    throw new Error(
      `the Temporal dev server did not answer at ${address} within ${options.readyTimeoutMs ?? 60_000} ms`,
    );
  }

  /** Stops the server (SIGTERM, then SIGKILL after `graceMs`). */
  async stop(graceMs = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.child;
    clearTimeout(timer);
  }
}
