/**
 * `npm run chaos -- --seeds N [--from F] [--batch B] [--no-faults] [--report FILE]`: runs the
 * randomized session harness (test/chaos/) for N seeds through the integration test project,
 * which provides the Temporal CLI and the workflow bundle.
 *
 * A batch with a problem leaves in RATCHET_CHAOS_DUMP (default: <tmp>/ratchet-chaos) each failing
 * seed's requests and transcript, every run's history (JSON that replays) and what each worker
 * process printed. RATCHET_CHAOS_WORKER_LOG=<file> keeps the workers' whole output;
 * RATCHET_CHAOS_WORKER_ENV='{"RATCHET_TEST_CORE_LOG":"temporalio_sdk_core=debug"}' passes test
 * hooks to them (test/helpers/worker-process.ts).
 */
import { execa } from 'execa';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '100' },
    from: { type: 'string', default: '1' },
    batch: { type: 'string', default: '8' },
    'no-faults': { type: 'boolean', default: false },
    report: { type: 'string' },
  },
});

const result = await execa(
  'npx',
  [
    'vitest',
    'run',
    '--project',
    'integration',
    'test/integration/chaos.test.ts',
    '-t',
    'keep every invariant',
  ],
  {
    stdio: 'inherit',
    reject: false,
    env: {
      RATCHET_CHAOS_SEEDS: values.seeds,
      RATCHET_CHAOS_FROM: values.from,
      RATCHET_CHAOS_BATCH: values.batch,
      RATCHET_CHAOS_FAULTS: values['no-faults'] ? '0' : '1',
      ...(values.report ? { RATCHET_CHAOS_REPORT: values.report } : {}),
    },
  },
);
process.exit(result.exitCode ?? 1);
