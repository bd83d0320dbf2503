/**
 * What an integration test needs: a client and worker connection to the suite's dev server (or
 * another), a scripted model, a unique task queue, and helpers to start and watch sessions.
 */
import { Client, Connection } from '@temporalio/client';
import type { WorkflowHandle } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, inject } from 'vitest';
import { createTempRepo } from './git-repo.js';
import type { TempRepo } from './git-repo.js';
import { RatchetClient } from '../../src/client.js';
import type { StatusView } from '../../src/shared/api/session-api.js';
import { statusQuery } from '../../src/shared/api/session-api.js';
import type { SessionConfigInput } from '../../src/shared/api/session-config.js';
import type { ScriptedModelOptions } from '../../src/testing/scripted-model.js';
import { ScriptedModel } from '../../src/testing/scripted-model.js';
import type { RatchetWorker, RatchetWorkerOptions } from '../../src/worker.js';
import { createRatchetWorker } from '../../src/worker.js';

export interface HarnessOptions {
  address?: string;
  model?: ScriptedModelOptions;
}

export class Harness {
  readonly taskQueue = `test-${randomUUID()}`;
  readonly ratchet: RatchetClient;
  private readonly workers: RatchetWorker[] = [];

  private constructor(
    readonly address: string,
    readonly client: Client,
    readonly nativeConnection: NativeConnection,
    private scripted: ScriptedModel,
    private readonly modelOptions: ScriptedModelOptions | undefined,
  ) {
    this.ratchet = new RatchetClient(client, { taskQueue: this.taskQueue });
  }

  /** The scripted model that workers created from now on talk to. */
  get model(): ScriptedModel {
    return this.scripted;
  }

  /** A new scripted model (so that one test's leftovers cannot leak into the next). */
  async freshModel(options: ScriptedModelOptions | undefined = this.modelOptions): Promise<ScriptedModel> {
    await this.scripted.close();
    this.scripted = await ScriptedModel.start(options);
    return this.scripted;
  }

  static async create(options: HarnessOptions = {}): Promise<Harness> {
    const address = options.address ?? inject('temporalAddress');
    const connection = await Connection.connect({ address });
    const client = new Client({ connection, namespace: 'default' });
    const nativeConnection = await NativeConnection.connect({ address });
    const model = await ScriptedModel.start(options.model);
    return new Harness(address, client, nativeConnection, model, options.model);
  }

  /** A worker on this harness's task queue, using the suite's prebuilt workflow bundle. */
  async worker(options: Partial<RatchetWorkerOptions> = {}): Promise<RatchetWorker> {
    const worker = await createRatchetWorker({
      connection: this.nativeConnection,
      client: this.client,
      taskQueue: this.taskQueue,
      workflowBundle: { codePath: inject('workflowBundlePath') },
      endpoint: { apiKey: 'test-key', baseURL: this.model.baseUrl },
      allowedRoots: [],
      ...options,
    });
    this.workers.push(worker);
    return worker;
  }

  /** Session settings for tests: the scripted model, short timeouts. */
  config(overrides: Partial<SessionConfigInput> & { task: string; workspace: string }): SessionConfigInput {
    return {
      model: { name: 'scripted-model', contextWindow: 200_000 },
      approvalPolicy: 'untrusted',
      ...overrides,
      limits: {
        modelHeartbeatTimeoutMs: 3000,
        toolHeartbeatTimeoutMs: 3000,
        modelStreamIdleTimeoutMs: 5000,
        ...overrides.limits,
      },
    };
  }

  async start(
    overrides: Partial<SessionConfigInput> & { task: string; workspace: string },
  ): Promise<WorkflowHandle> {
    const { sessionId } = await this.ratchet.start(this.config(overrides));
    return this.client.workflow.getHandle(sessionId);
  }

  async close(): Promise<void> {
    await this.model.close();
    await this.nativeConnection.close();
    await this.client.connection.close();
  }
}

/** Polls the status query until `predicate` holds; fails with the last status seen. */
export async function waitForStatus(
  handle: WorkflowHandle,
  predicate: (status: StatusView) => boolean,
  timeoutMs = 30_000,
): Promise<StatusView> {
  const deadline = Date.now() + timeoutMs;
  let last: StatusView | undefined;
  while (Date.now() < deadline) {
    try {
      // A deadline of its own: a worker may drop a query (src/client-status.ts), and the server
      // would hold this one for 30 s, the whole wait.
      last = await handle.client.withDeadline(Math.min(deadline, Date.now() + 3_000), () =>
        handle.query(statusQuery),
      );
      if (predicate(last)) return last;
    } catch {
      // Not started yet, or between runs.
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for the session; last status: ${JSON.stringify(last)}`);
}

/** A test file's harness, and the repositories its tests made (removed after the file). */
export interface HarnessSuite {
  readonly harness: Harness;
  tempRepo(files?: Record<string, string>): Promise<TempRepo>;
}

/**
 * Registers a test file's hooks: one harness for the file, a fresh scripted model before each
 * test, and, after the file, the harness closed and every repository from `tempRepo` removed.
 */
export function useHarness(options: HarnessOptions = {}): HarnessSuite {
  let harness: Harness | undefined;
  const repos: TempRepo[] = [];
  beforeAll(async () => {
    harness = await Harness.create(options);
  });
  beforeEach(async () => {
    await harness!.freshModel();
  });
  afterAll(async () => {
    await harness?.close();
    await Promise.all(repos.map((repo) => repo.remove()));
  });
  return {
    get harness() {
      if (!harness) throw new Error('the harness is made in beforeAll; use it inside a test');
      return harness;
    },
    async tempRepo(files = { 'a.txt': 'alpha\n' }) {
      const repo = await createTempRepo(files);
      repos.push(repo);
      return repo;
    },
  };
}
