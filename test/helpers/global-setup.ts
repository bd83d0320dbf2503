/**
 * Once per test run: find or install the Temporal CLI, start one dev server for the suite, and
 * bundle the workflow code once. Test files that need a server of their own (restarts, special
 * dynamic config) start one with startTestServer().
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { removeStaleShadows } from '../../src/activities/checkpoint-git.js';
import { DevServer } from '../../src/temporal/dev-server.js';
import { ensureTemporalCli } from '../../src/temporal/provision.js';
import { WORKFLOW_BUNDLE_OPTIONS, workflowsPath } from '../../src/worker.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalCliPath: string;
    workflowBundlePath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cli = await ensureTemporalCli((message) => console.log(message));
  const server = await DevServer.start({ cliPath: cli.path, uiPort: false });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-bundle-'));
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    ...WORKFLOW_BUNDLE_OPTIONS,
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: (m) => console.error(m) },
  });
  const bundlePath = path.join(dir, 'workflows.js');
  await writeFile(bundlePath, code);
  project.provide('temporalAddress', server.address);
  project.provide('temporalCliPath', cli.path);
  project.provide('workflowBundlePath', bundlePath);
  return async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
    // Workers the tests killed mid-checkpoint leave their shadow git directories behind; the next
    // checkpoint on the machine would sweep them, the suite does it now.
    await removeStaleShadows();
  };
}
