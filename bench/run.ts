/**
 * `npm run bench`: what durability costs, measured. Starts its own Temporal dev server and
 * scripted model, runs the selected scenarios, and writes bench/results/<date>.json, .md and .svg;
 * each figure is printed (and written to the .md) beside the previous run's (bench/figures.ts).
 *
 *   npm run bench -- --only overhead,history --quick
 */
import { jemallocLibrary } from '../src/allocator.js';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { Command, Option } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchEnv } from './env.js';
import type { BenchResults } from './report.js';
import { historyChart, markdownReport } from './report.js';
import { compare, comparisonText, earlierRuns, figuresOf } from './figures.js';
import { HISTORY_FILES, historyAll } from './scenarios/history.js';
import { overhead } from './scenarios/overhead.js';
import { recovery } from './scenarios/recovery.js';
import { modelRequests } from './scenarios/requests.js';
import { concurrency } from './scenarios/concurrency.js';
import { checkpoints } from './scenarios/checkpoints.js';

const SCENARIOS = ['overhead', 'history', 'requests', 'concurrency', 'recovery', 'checkpoints'] as const;
/** Scenarios that need no Temporal server (the server is started only for the others). */
const SERVERLESS = new Set<Scenario>(['checkpoints']);
type Scenario = (typeof SCENARIOS)[number];

const program = new Command('bench')
  .description(
    'Measure the cost of durability: Ratchet on Temporal against a plain loop and Temporal’s floor.',
  )
  .addOption(
    new Option('--only <scenarios>', `comma-separated subset of ${SCENARIOS.join(', ')}`).argParser((value) =>
      value.split(',').map((s) => s.trim()),
    ),
  )
  .option('--quick', 'fewer runs and smaller sessions, to iterate', false)
  .option('--runs <n>', 'runs per figure (default 5, quick 2)', (v) => Number(v))
  .option(
    '--worker-options <json>',
    'options for the concurrency and recovery workers (Worker.create), e.g. {"maxCachedWorkflows":250}',
    (value) => JSON.parse(value) as Record<string, unknown>,
  )
  .option(
    '--history-sizes <turns>',
    'history: session lengths, comma-separated (default 25,50,100,200,400; quick 25,50,100)',
    (value) => value.split(',').map(Number),
  )
  .option(
    '--baseline-sizes <turns>',
    'history: baseline lengths (default 25,50,100; quick 25,50; "" for none)',
    (value) => value.split(',').filter(Boolean).map(Number),
  )
  .option(
    '--history-output <kb>',
    'history: tool output per turn, KB, comma-separated: 4.5, 20 (default both; baselines at 20 only)',
    (value) => value.split(',').map((s) => s.trim()),
  )
  .addOption(
    new Option('--history-tool <tool>', 'history: the tool each turn calls on its file').choices([
      'read_file',
      'shell',
    ]),
  )
  .option('--parked <n>', 'concurrency: sessions parked awaiting approval (default 1000, quick 100)', (v) =>
    Number(v),
  )
  .option(
    '--floor <n>',
    'concurrency: bare workflows parked on a signal (default: as many as --parked; 0: none)',
    (v) => Number(v),
  )
  .option(
    '--heap-snapshots <dir>',
    'concurrency: write heap snapshots of the worker with the sessions parked',
  )
  .addOption(
    new Option(
      '--allocator <allocator>',
      'concurrency: the worker on jemalloc (preloaded, as the Docker image runs it) or on glibc malloc ' +
        '(default: jemalloc when installed)',
    ).choices(['jemalloc', 'malloc']),
  )
  .option('--out <dir>', 'where results go', fileURLToPath(new URL('./results', import.meta.url)))
  .option('--name <name>', 'file name for the results (default: the date and time)');

program.parse();
const opts = program.opts<{
  only?: string[];
  quick: boolean;
  runs?: number;
  out: string;
  name?: string;
  workerOptions?: Record<string, unknown>;
  historySizes?: number[];
  baselineSizes?: number[];
  historyOutput?: string[];
  historyTool?: 'read_file' | 'shell';
  parked?: number;
  floor?: number;
  heapSnapshots?: string;
  allocator?: 'jemalloc' | 'malloc';
}>();
const jemalloc = jemallocLibrary();
const allocator = opts.allocator ?? (jemalloc ? 'jemalloc' : 'malloc');
if (allocator === 'jemalloc' && !jemalloc) {
  program.error('--allocator jemalloc: no libjemalloc.so.2 on this machine (apt-get install libjemalloc2)');
}
const historyOutputs = opts.historyOutput ?? ['4.5', '20'];
for (const kb of historyOutputs) {
  if (!HISTORY_FILES[kb]) program.error(`--history-output: expected 4.5 or 20, not "${kb}"`);
}
const selected = new Set<Scenario>((opts.only ?? SCENARIOS) as Scenario[]);
for (const name of selected) {
  if (!SCENARIOS.includes(name)) program.error(`unknown scenario "${name}" (known: ${SCENARIOS.join(', ')})`);
}
const quick = opts.quick;
const runs = opts.runs ?? (quick ? 2 : 5);

const began = Date.now();
const log = (message: string) => {
  process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);
};

// The baseline's large payloads make the SDK's native side warn on every turn; keep the output readable.
Runtime.install({
  logger: new DefaultLogger('WARN'),
  telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } },
});
const needsServer = [...selected].some((name) => !SERVERLESS.has(name));
const env = needsServer ? await BenchEnv.start(log) : undefined;
const results: BenchResults = {
  startedAt: new Date(began).toISOString(),
  machine: {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  },
  options: { quick, runs, scenarios: [...selected], workerOptions: opts.workerOptions ?? {}, allocator },
};
try {
  if (selected.has('checkpoints')) {
    log('7. checkpoints');
    results.checkpoints = await checkpoints({ runs, log });
  }
  if (env && selected.has('overhead')) {
    log('1. overhead per turn');
    results.overhead = await overhead(env, { runs, turns: quick ? 20 : 50, log });
  }
  if (env && selected.has('history')) {
    log('2. history growth');
    results.history = await historyAll(
      env,
      historyOutputs.map((kb) => ({
        outputKB: Number(kb),
        tool: opts.historyTool ?? 'read_file',
        sizes: opts.historySizes ?? (quick ? [25, 50, 100] : [25, 50, 100, 200, 400]),
        // The baseline (quadratic) only where it was always measured: 20 KB outputs.
        baselineSizes: kb === '20' ? (opts.baselineSizes ?? (quick ? [25, 50] : [25, 50, 100])) : [],
        baselineTimeoutMs: 120_000,
        log,
      })),
    );
  }
  if (env && selected.has('requests')) {
    log('3 and 6. prompt-cache stability and bytes to the model');
    results.requests = await modelRequests(env, { turns: quick ? 100 : 200, log });
  }
  if (env && selected.has('concurrency')) {
    log('4. concurrency');
    const parked = opts.parked ?? (quick ? 100 : 1000);
    results.concurrency = await concurrency(env, {
      sessions: quick ? 20 : 100,
      turns: 20,
      parked,
      approvals: quick ? 5 : 20,
      floor: opts.floor ?? parked,
      ...(opts.heapSnapshots ? { heapSnapshotDir: path.resolve(opts.heapSnapshots) } : {}),
      workerOptions: opts.workerOptions,
      preload: allocator === 'jemalloc' ? jemalloc : null,
      log,
    });
  }
  if (env && selected.has('recovery')) {
    log('5. recovery after a killed worker');
    results.recovery = await recovery(env, { runs: quick ? 1 : 3, log });
  }
} finally {
  await env?.close();
}
results.seconds = Math.round((Date.now() - began) / 1000);

await mkdir(opts.out, { recursive: true });
const name = opts.name ?? new Date(began).toISOString().slice(0, 16).replace(':', '');
const base = path.join(opts.out, name);
const comparisons = compare(
  figuresOf(results as unknown as Record<string, unknown>),
  await earlierRuns(opts.out, results.startedAt),
);
process.stdout.write(`${comparisonText(comparisons)}\n`);
await writeFile(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
const chart = results.history ? historyChart(results.history) : undefined;
if (chart) await writeFile(`${base}.svg`, chart);
await writeFile(`${base}.md`, markdownReport(results, chart ? `${name}.svg` : undefined, comparisons));
log(`wrote ${base}.json, .md${chart ? ', .svg' : ''}`);
