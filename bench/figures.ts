/**
 * Figures: the benchmark's headline numbers as flat, comparable values (a name, a value, a unit),
 * grouped by scenario. This module owns the sequence "results → figures → beside the previous
 * run": each scenario's result gives its figures (the extractors below, plus any `figures` array
 * a scenario returns itself), and a new run's figures are put beside those of the most recent
 * earlier results file that measured the same scenario.
 *
 * A scenario adds a figure either here or by returning `figures: Figure[]` with its result; the
 * name is the key that matches it to the previous run, so keep names stable.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';

export interface Figure {
  name: string;
  value: number;
  unit: string;
}

/** A figure of this run beside the same figure of the previous run of its scenario. */
export interface Comparison {
  scenario: string;
  name: string;
  unit: string;
  value: number;
  previous?: { value: number; file: string; startedAt: string };
}

type Loose = Record<string, unknown>;

const num = (value: unknown): number | undefined =>
  typeof value === 'number' && Number.isFinite(value) ? value : undefined;
const at = (value: unknown, ...keys: string[]): unknown => {
  let current = value;
  for (const key of keys) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Loose)[key];
  }
  return current;
};
/** The median of a Spread, or a plain number. */
const median = (value: unknown): number | undefined => num(at(value, 'median')) ?? num(value);

function collect(entries: Array<[string, unknown, string]>): Figure[] {
  const figures: Figure[] = [];
  for (const [name, raw, unit] of entries) {
    const value = median(raw);
    if (value !== undefined) figures.push({ name, value, unit });
  }
  return figures;
}

/**
 * The series of the history scenario. Results written before 2026-12-02 hold one list of points
 * of one output size, not recorded: told apart by the content per turn (20 KB outputs add ~22 KB).
 */
function historySeries(history: unknown): Array<{ outputKB: number; tool?: string; points: Loose[] }> {
  if (!Array.isArray(history) || history.length === 0) return [];
  const turns = num(at(history[0], 'turns'));
  if (turns !== undefined) {
    const perTurn = (num(at(history[0], 'uniqueBytes')) ?? 0) / turns;
    return [{ outputKB: perTurn > 10_000 ? 20 : 4.5, points: history as Loose[] }];
  }
  return (history as Loose[]).map((series) => ({
    outputKB: num(series.outputKB) ?? NaN,
    ...(series.tool === 'shell' ? { tool: 'shell' } : {}),
    points: Array.isArray(series.points) ? (series.points as Loose[]) : [],
  }));
}

const EXTRACTORS: Record<string, (result: unknown) => Figure[]> = {
  overhead: (o) => [
    ...collect([
      ['Ratchet', at(o, 'ratchet'), 'ms/turn'],
      ['plain loop', at(o, 'plain'), 'ms/turn'],
      ['floor (two empty activities)', at(o, 'floor'), 'ms/turn'],
      ['Ratchet − plain loop', at(o, 'overAbovePlain'), 'ms/turn'],
      ['Ratchet ÷ floor', at(o, 'ratioToFloor'), '×'],
    ]),
    ...Object.entries((at(o, 'phases') ?? {}) as Loose).flatMap(([phase, value]) =>
      collect([[`phase: ${phase}`, value, 'ms/turn']]),
    ),
  ],
  history: (h) =>
    historySeries(h).flatMap(({ outputKB, tool, points }) =>
      points.flatMap((p) => {
        const label = `${outputKB} KB${tool === 'shell' ? ' shell' : ''}, ${String(p.turns)} turns`;
        return collect([
          [`${label}: Ratchet ÷ content`, at(p, 'ratchet', 'ratio'), '×'],
          [`${label}: floor ÷ content`, at(p, 'floor', 'ratio'), '×'],
          [`${label}: Ratchet events`, at(p, 'ratchet', 'events'), 'events'],
          [`${label}: baseline ÷ content`, at(p, 'baseline', 'ratio'), '×'],
        ]);
      }),
    ),
  requests: (q) =>
    collect([
      ['requests that extend the previous one', at(q, 'cache', 'share'), 'share'],
      ['bytes to the model, whole input', at(q, 'bytes', 'full', 'totalBytes'), 'bytes'],
      ['bytes to the model, provider state', at(q, 'bytes', 'providerState', 'totalBytes'), 'bytes'],
    ]),
  concurrency: (k) => {
    const idle = num(at(k, 'workerStartRssMiB'));
    const parked = num(at(k, 'parked', 'workerRssMiB'));
    const afterGc = num(at(k, 'parked', 'memoryAfterGc', 'rssMiB'));
    const idleRss = num(at(k, 'idle', 'rssMiB'));
    return collect([
      ['busy sessions', at(k, 'busy', 'turnsPerSecond'), 'turns/s'],
      ['worker CPU while busy', at(k, 'busy', 'workerCpuCores'), 'cores'],
      ['worker peak RSS while busy', at(k, 'busy', 'workerPeakRssMiB'), 'MiB'],
      ['false retries while busy', at(k, 'busy', 'retries'), 'attempts'],
      ['parked sessions: worker CPU', at(k, 'parked', 'idleCpuCores'), 'cores'],
      ['parked sessions: worker RSS', parked, 'MiB'],
      [
        'parked sessions: RSS above the idle worker',
        parked !== undefined && idle !== undefined ? parked - idle : undefined,
        'MiB',
      ],
      ['approve → next model request', at(k, 'parked', 'approveToModel'), 's'],
      [
        'parked sessions: RSS above the idle worker, after a GC',
        afterGc !== undefined && idleRss !== undefined ? afterGc - idleRss : undefined,
        'MiB',
      ],
      ['approve → next model request, evicted session, p95', at(k, 'parked', 'approveEvicted', 'p95'), 's'],
      ['approve → next model request, cached session, p95', at(k, 'parked', 'approveCached', 'p95'), 's'],
    ]);
  },
  recovery: (r) =>
    collect([
      ['killed worker → model call retried', at(r, 'retried'), 's'],
      ["killed worker → next turn's model request", at(r, 'nextTurn'), 's'],
    ]),
  checkpoints: (c) =>
    ((at(c, 'cases') ?? []) as Loose[]).flatMap((k) =>
      collect([
        [`${String(k.name)}: first checkpoint`, k.first, 'ms'],
        [`${String(k.name)}: next, nothing changed`, k.unchanged, 'ms'],
        [`${String(k.name)}: next, after edits`, k.afterEdit, 'ms'],
        [`${String(k.name)}: restore`, k.restore, 'ms'],
      ]),
    ),
};

/**
 * The figures of every scenario in a results file (this run's, or an earlier one's JSON): the
 * extractors' and those a scenario returned itself (`figures` beside its result).
 */
export function figuresOf(results: Loose): Record<string, Figure[]> {
  const out: Record<string, Figure[]> = {};
  for (const [scenario, result] of Object.entries(results)) {
    const extract = EXTRACTORS[scenario];
    const own = at(result, 'figures');
    const figures = [
      ...(extract ? extract(result) : []),
      ...(Array.isArray(own) ? (own as Figure[]).filter((f) => num(f.value) !== undefined) : []),
    ];
    if (figures.length > 0) out[scenario] = figures;
  }
  return out;
}

interface EarlierRun {
  file: string;
  startedAt: string;
  figures: Record<string, Figure[]>;
}

/** Every results file in `dir` (not its subfolders) that began before `before`, newest first. */
export async function earlierRuns(dir: string, before: string): Promise<EarlierRun[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
  const runs: EarlierRun[] = [];
  for (const name of names) {
    let parsed: Loose;
    try {
      parsed = JSON.parse(await readFile(path.join(dir, name), 'utf8')) as Loose;
    } catch {
      continue; // not a results file (or a half-written one): nothing to compare with
    }
    const startedAt = parsed.startedAt;
    if (typeof startedAt !== 'string' || startedAt >= before) continue;
    runs.push({ file: name, startedAt, figures: figuresOf(parsed) });
  }
  return runs.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
}

/** This run's figures, each beside the same figure of the newest earlier run of its scenario. */
export function compare(figures: Record<string, Figure[]>, earlier: readonly EarlierRun[]): Comparison[] {
  const comparisons: Comparison[] = [];
  for (const [scenario, list] of Object.entries(figures)) {
    const previous = earlier.find((run) => (run.figures[scenario]?.length ?? 0) > 0);
    for (const figure of list) {
      const match = previous?.figures[scenario]?.find(
        (f) => f.name === figure.name && f.unit === figure.unit,
      );
      comparisons.push({
        scenario,
        ...figure,
        ...(previous && match
          ? { previous: { value: match.value, file: previous.file, startedAt: previous.startedAt } }
          : {}),
      });
    }
  }
  return comparisons;
}

/** 1234.5 → "1,234.5"; small values keep three significant digits. */
export function formatValue(value: number, unit: string): string {
  if (unit === 'bytes') return `${(value / 1024).toLocaleString('en-US', { maximumFractionDigits: 0 })} KiB`;
  if (unit === 'share') return `${(value * 100).toFixed(1)} %`;
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : Math.abs(value) >= 1 ? 2 : 3;
  const text = value.toLocaleString('en-US', { maximumFractionDigits: digits });
  return unit === '×' ? `${text}×` : `${text} ${unit}`;
}

/** "+12.3 %" (or "±0" / "new"): the change from the previous run. */
export function formatChange(c: Comparison): string {
  if (!c.previous) return 'new';
  const delta = c.value - c.previous.value;
  if (delta === 0) return '±0';
  const relative =
    c.previous.value === 0
      ? ''
      : ` (${delta > 0 ? '+' : '−'}${Math.abs((delta / c.previous.value) * 100).toFixed(1)} %)`;
  const sign = delta > 0 ? '+' : '−';
  return `${sign}${formatValue(Math.abs(delta), c.unit)}${relative}`;
}

/** The comparison as Markdown tables, one per scenario. */
export function comparisonMarkdown(comparisons: readonly Comparison[]): string[] {
  const lines: string[] = ['## Beside the previous run', ''];
  const scenarios = [...new Set(comparisons.map((c) => c.scenario))];
  for (const scenario of scenarios) {
    const rows = comparisons.filter((c) => c.scenario === scenario);
    const file = rows.find((c) => c.previous)?.previous?.file;
    lines.push(`### ${scenario} (previous: ${file ?? 'none'})`, '');
    lines.push('| figure | this run | previous run | change |', '|---|---|---|---|');
    for (const c of rows) {
      lines.push(
        `| ${c.name} | ${formatValue(c.value, c.unit)} | ${c.previous ? formatValue(c.previous.value, c.unit) : '—'} | ${formatChange(c)} |`,
      );
    }
    lines.push('');
  }
  return lines;
}

/** The comparison as plain lines for the terminal. */
export function comparisonText(comparisons: readonly Comparison[]): string {
  return comparisons
    .map(
      (c) =>
        `${c.scenario} · ${c.name}: ${formatValue(c.value, c.unit)}` +
        (c.previous ? ` (previous ${formatValue(c.previous.value, c.unit)}, ${formatChange(c)})` : ' (new)'),
    )
    .join('\n');
}
