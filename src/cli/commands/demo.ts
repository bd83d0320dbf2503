/**
 * `ratchet demo`: a whole session on a sample repository, answered by a scripted model on a task
 * queue of its own, so no API key is needed.
 */
import { Option } from 'commander';
import type { Command } from 'commander';
import pc from 'picocolors';
import type { ApprovalPolicy } from '../../shared/policy/policy.js';
import { approvalPolicies } from '../../shared/policy/policy.js';
import { ScriptedModel } from '../../testing/scripted-model.js';
import { DEMO_TASK, createDemoRepo, demoResponder } from '../demo.js';
import type { Io } from '../io.js';
import { parsePolicy } from '../parse.js';
import { connectForRun } from '../services.js';
import { startAndFollow } from '../start-and-follow.js';

export function registerDemo(program: Command, io: Io): void {
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
}
