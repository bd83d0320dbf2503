/**
 * The benchmark's world: its own Temporal dev server, the workflow bundle (built once), client
 * and worker connections, a scripted model per scenario, and a temporary git repository for the
 * tools to read.
 */
import { Client, Connection } from '@temporalio/client';
import type { WorkerOptions } from '@temporalio/worker';
import { NativeConnection, bundleWorkflowCode } from '@temporalio/worker';
import { execa } from 'execa';
import { mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Activities } from '../src/activities/index.js';
import { openaiClientFactory } from '../src/activities/openai-client.js';
import type { SandboxInfo } from '../src/activities/tools/sandbox.js';
import { detectSandbox } from '../src/activities/tools/sandbox-detect.js';
import { RatchetClient } from '../src/client.js';
import type { SessionConfigInput } from '../src/shared/api/session-config.js';
import { DevServer } from '../src/temporal/dev-server.js';
import { ensureTemporalCli } from '../src/temporal/provision.js';
import type { ScriptedModelOptions } from '../src/testing/scripted-model.js';
import { ScriptedModel } from '../src/testing/scripted-model.js';
import type { RatchetWorker } from '../src/worker.js';
import { WORKFLOW_BUNDLE_OPTIONS, createRatchetWorker } from '../src/worker.js';
import { createBenchActivities } from './activities.js';

export const benchWorkflowsPath = fileURLToPath(new URL('./workflows.ts', import.meta.url));

/**
 * The history benchmark runs single runs of up to 400 turns (8 MB of tool output): Temporal's
 * suggestion to continue as new (4 MB, 4 Ki events) is raised so that each size is one run.
 * Nothing else is changed: the history size and payload limits stay at their defaults.
 */
const DYNAMIC_CONFIG = {
  'limit.historySize.suggestContinueAsNew': 256 * 1024 * 1024,
  'limit.historyCount.suggestContinueAsNew': 100_000,
};

export class BenchEnv {
  private constructor(
    readonly server: DevServer,
    readonly cliPath: string,
    readonly bundlePath: string,
    readonly client: Client,
    readonly connection: NativeConnection,
    readonly sandbox: SandboxInfo,
    readonly repo: string,
    private readonly tempDir: string,
  ) {}

  static async start(
    log: (message: string) => void,
    serverConfig: Record<string, string | number | boolean> = {},
  ): Promise<BenchEnv> {
    const cli = await ensureTemporalCli(log);
    const server = await DevServer.start({
      cliPath: cli.path,
      uiPort: false,
      dynamicConfig: { ...DYNAMIC_CONFIG, ...serverConfig },
    });
    log(`dev server at ${server.address}`);
    const tempDir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'ratchet-bench-')));
    const started = Date.now();
    const { code } = await bundleWorkflowCode({
      workflowsPath: benchWorkflowsPath,
      ...WORKFLOW_BUNDLE_OPTIONS,
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: (m) => log(m) },
    });
    const bundlePath = path.join(tempDir, 'workflows.js');
    await writeFile(bundlePath, code);
    log(`bundled the workflows in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const client = new Client({ connection: await Connection.connect({ address: server.address }) });
    const connection = await NativeConnection.connect({ address: server.address });
    const repo = path.join(tempDir, 'repo');
    await execa('git', ['init', '-q', '-b', 'main', repo]);
    // Tool outputs for the scenarios: 20 KB (400 lines of 50 bytes) and one short line.
    const line = 'the quick brown fox jumps over the lazy dog 0123';
    await writeFile(path.join(repo, 'big.txt'), Array.from({ length: 400 }, () => line).join('\n') + '\n');
    await writeFile(path.join(repo, 'small.txt'), 'alpha\n');
    // 4.5 KB: the size of a typical small tool output (90 lines of 50 bytes).
    await writeFile(path.join(repo, 'mid.txt'), Array.from({ length: 90 }, () => line).join('\n') + '\n');
    const git = (...args: string[]) => execa('git', ['-C', repo, ...args]);
    await git('-c', 'user.email=bench@example.com', '-c', 'user.name=bench', 'add', '-A');
    await git('-c', 'user.email=bench@example.com', '-c', 'user.name=bench', 'commit', '-q', '-m', 'bench');
    return new BenchEnv(
      server,
      cli.path,
      bundlePath,
      client,
      connection,
      await detectSandbox(),
      repo,
      tempDir,
    );
  }

  ratchet(taskQueue: string): RatchetClient {
    return new RatchetClient(this.client, { taskQueue });
  }

  /**
   * An in-process worker for every workflow in the bundle: Ratchet's own worker (its options and
   * activities) with the yardsticks' activities added.
   */
  async worker(
    taskQueue: string,
    model: ScriptedModel,
    workerOptions: Partial<WorkerOptions> = {},
  ): Promise<RatchetWorker> {
    const endpoint = { apiKey: 'bench-key', baseURL: model.baseUrl };
    const extra = createBenchActivities(openaiClientFactory(endpoint));
    return createRatchetWorker({
      connection: this.connection,
      client: this.client,
      taskQueue,
      workflowBundle: { codePath: this.bundlePath },
      endpoint,
      allowedRoots: [],
      sandbox: this.sandbox,
      // The yardsticks' activities ride along with Ratchet's (same worker, same options).
      activityOverrides: Object.assign({} as Partial<Activities>, extra),
      workerOptions,
    });
  }

  async close(): Promise<void> {
    await this.connection.close().catch(() => {});
    await this.client.connection.close().catch(() => {});
    await this.server.stop();
    await rm(this.tempDir, { recursive: true, force: true });
  }
}

/** A scripted model and the promise that it is closed when the scenario ends. */
export async function withModel<T>(
  options: ScriptedModelOptions,
  run: (model: ScriptedModel) => Promise<T>,
): Promise<T> {
  const model = await ScriptedModel.start(options);
  try {
    return await run(model);
  } finally {
    await model.close();
  }
}

/** Session settings for benchmark sessions: no approvals, no compaction unless asked for. */
export function sessionConfig(
  task: string,
  workspace: string,
  overrides: Partial<SessionConfigInput> = {},
): SessionConfigInput {
  return {
    task,
    workspace,
    model: { name: 'scripted-model', contextWindow: 1_000_000_000 },
    approvalPolicy: 'never',
    ...overrides,
    limits: { maxTurns: 100_000, maxTranscriptBytes: 64 * 1024 * 1024, ...overrides.limits },
  };
}
