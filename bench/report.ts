/**
 * The results as Markdown (tables for docs/PERFORMANCE.md) and the history chart as SVG. The
 * chart is written as text: a line chart needs a few dozen elements, and a charting library (and
 * a headless browser to render it) would be a large dependency for that.
 */
import type { ConcurrencyResult } from './scenarios/concurrency.js';
import type { Comparison } from './figures.js';
import { comparisonMarkdown } from './figures.js';
import type { HistorySeries } from './scenarios/history.js';
import { parkedMemoryRows } from './scenarios/concurrency.js';
import type { OverheadResult } from './scenarios/overhead.js';
import type { RecoveryResult } from './scenarios/recovery.js';
import type { CheckpointsResult } from './scenarios/checkpoints.js';
import type { RequestsResult } from './scenarios/requests.js';
import type { Spread } from './stats.js';
import { round } from './stats.js';

export interface BenchResults {
  startedAt: string;
  machine: Record<string, unknown>;
  options: {
    quick: boolean;
    runs: number;
    scenarios: string[];
    workerOptions?: Record<string, unknown>;
    /** The concurrency scenario's worker: on jemalloc (preloaded) or glibc malloc; older runs: malloc. */
    allocator?: 'jemalloc' | 'malloc';
  };
  overhead?: OverheadResult;
  history?: HistorySeries[];
  recovery?: RecoveryResult;
  requests?: RequestsResult;
  concurrency?: ConcurrencyResult;
  checkpoints?: CheckpointsResult;
  seconds?: number;
}

const fmt = (s: Spread, digits = 1) =>
  `${round(s.median, digits)} (${round(s.min, digits)}–${round(s.max, digits)})`;
const kib = (bytes: number) => `${(bytes / 1024).toLocaleString('en-US', { maximumFractionDigits: 0 })} KiB`;

export function markdownReport(
  results: BenchResults,
  chartFile?: string,
  comparisons: readonly Comparison[] = [],
): string {
  const lines: string[] = [];
  const m = results.machine;
  lines.push(`# Ratchet benchmark — ${results.startedAt}`, '');
  lines.push(
    `Machine: ${String(m.cpus)} × ${String(m.cpuModel)}, ${String(m.memoryGiB)} GiB, ${String(m.platform)}, Node ${String(m.node)}; ` +
      `load average at start ${JSON.stringify(m.loadAverageAtStart)}. Shared and noisy: compare ratios from the same run.`,
    '',
    `Figures are medians of ${results.options.runs} runs with (min–max)${results.options.quick ? '; quick mode' : ''}.`,
    '',
  );
  const o = results.overhead;
  if (o) {
    lines.push(
      `## 1. Overhead per turn (${o.turns}-turn sessions, one model call and one read_file per turn)`,
      '',
    );
    lines.push('| | ms per turn |', '|---|---|');
    lines.push(`| (a) Ratchet through Temporal | ${fmt(o.ratchet)} |`);
    lines.push(`| (b) plain in-process loop, same client and tools | ${fmt(o.plain)} |`);
    lines.push(`| (c) floor: workflow with two empty activities per turn | ${fmt(o.floor)} |`);
    lines.push(`| (a) − (b), per run | ${fmt(o.overAbovePlain)} |`);
    lines.push(`| (a) ÷ (c), per run | ${fmt(o.ratioToFloor, 2)} |`, '');
    if (o.phases) {
      lines.push(
        'Where a turn of (a) goes (from the event times of each run’s session history, ms per turn):',
        '',
        '| phase | ms per turn |',
        '|---|---|',
      );
      for (const [phase, value] of Object.entries(o.phases)) lines.push(`| ${phase} | ${fmt(value)} |`);
      lines.push('');
    }
  }
  for (const series of results.history ?? []) {
    const by = series.tool === 'shell' ? ', from the shell' : '';
    lines.push(`## 2. History growth (${series.outputKB} KB tool output per turn${by})`, '');
    if (chartFile && series.outputKB === chartSeries(results.history ?? [])?.outputKB) {
      lines.push(`![history bytes against turns](${chartFile})`, '');
    }
    lines.push(
      '| turns | unique content | Ratchet history | events | Ratchet ÷ content | floor ÷ content | baseline history | baseline ÷ content |',
      '|---|---|---|---|---|---|---|---|',
    );
    for (const p of series.points) {
      const b = p.baseline;
      lines.push(
        `| ${p.turns} | ${kib(p.uniqueBytes)} | ${kib(p.ratchet.bytes)} | ${p.ratchet.events} | **${p.ratchet.ratio.toFixed(3)}** | ` +
          `${p.floor ? p.floor.ratio.toFixed(3) : '—'} | ` +
          (b
            ? `${kib(b.bytes)}${b.completed ? '' : ` (${b.note ?? 'stopped'})`} | ${b.ratio.toFixed(2)}`
            : '— | —') +
          ' |',
      );
    }
    lines.push('');
    const t = series.perTurn;
    if (t) {
      lines.push(
        `What a turn adds (the two longest sessions' difference ÷ their turns), against ${t.contentBytes} bytes of content:`,
        '',
        '| event | Ratchet: events | Ratchet: bytes | floor: events | floor: bytes |',
        '|---|---|---|---|---|',
      );
      const types = [...new Set([...Object.keys(t.ratchet), ...Object.keys(t.floor ?? {})])];
      const total = (by?: Record<string, { events: number; bytes: number }>) =>
        Object.values(by ?? {}).reduce(
          (sum, v) => ({ events: sum.events + v.events, bytes: sum.bytes + v.bytes }),
          {
            events: 0,
            bytes: 0,
          },
        );
      for (const type of types) {
        const r = t.ratchet[type];
        const f = t.floor?.[type];
        lines.push(
          `| ${type} | ${r?.events ?? 0} | ${r?.bytes ?? 0} | ${f?.events ?? 0} | ${f?.bytes ?? 0} |`,
        );
      }
      const r = total(t.ratchet);
      const f = total(t.floor);
      lines.push(
        `| **total** | ${round(r.events, 2)} | ${r.bytes} | ${round(f.events, 2)} | ${f.bytes} |`,
        '',
      );
    }
  }
  const q = results.requests;
  if (q) {
    const c = q.cache;
    lines.push(`## 3. Prompt-cache stability (${q.turns}-turn session, ${q.compactions} compactions)`, '');
    lines.push(
      `${c.cacheable} of ${c.compared} model requests after the first (${(c.share * 100).toFixed(1)} %) begin with the previous ` +
        `request's input and output. The others: requests ${c.breaks.join(', ') || 'none'}; the first requests after a ` +
        `compaction were ${c.afterCompaction.join(', ') || 'none'}.`,
      '',
    );
    lines.push(`## 6. Bytes to the model (the same ${q.turns}-turn session)`, '');
    lines.push(
      '| mode | model requests | total | per request: median (min–max) | compaction requests |',
      '|---|---|---|---|---|',
    );
    for (const [name, b] of [
      ['whole input each request (default, store: false)', q.bytes.full],
      ['provider state (previous_response_id)', q.bytes.providerState],
    ] as const) {
      lines.push(
        `| ${name} | ${b.requests} | ${kib(b.totalBytes)} | ${kib(b.perTurn.median)} (${kib(b.perTurn.min)}–${kib(b.perTurn.max)}) | ` +
          `${b.compactionRequests}, ${kib(b.compactionBytes)} |`,
      );
    }
    lines.push('');
  }
  const k = results.concurrency;
  if (k) {
    const b = k.busy;
    const p = k.parked;
    const allocator =
      results.options.allocator === 'jemalloc'
        ? 'jemalloc (preloaded, as the Docker image runs it)'
        : 'glibc malloc';
    lines.push(`## 4. Concurrency (one worker, in a process of its own, on ${allocator})`, '');
    lines.push('| | |', '|---|---|');
    lines.push(
      `| ${b.sessions} sessions × ${b.turnsEach} turns started at once | ${b.seconds} s, **${b.turnsPerSecond} turns/s** |`,
      `| worker CPU while busy | ${b.workerCpuCores} cores |`,
      `| worker peak RSS | ${b.workerPeakRssMiB} MiB (${k.workerStartRssMiB} MiB at start) |`,
      `| false retries under this load (activity attempts after the first; timeouts) | **${b.retries}**; ${b.timeouts} |`,
      ...Object.entries(b.retryCauses ?? {}).map(
        ([cause, count]) => `| — retried after: ${cause.replaceAll('|', '\\|')} | ${count} |`,
      ),
      `| ${p.sessions} sessions parked awaiting approval | parked in ${p.secondsToPark} s |`,
      `| worker CPU while they wait (${p.idleSeconds} s) | ${p.idleCpuCores} cores |`,
      `| worker RSS while they wait | ${p.workerRssMiB} MiB (peak ${p.workerPeakRssMiB} MiB); **${round(p.workerRssMiB - k.workerStartRssMiB, 1)} MiB above the idle worker** |`,
      `| approve → next model request | ${fmt(p.approveToModel, 3)} s |`,
      ...parkedMemoryRows(k),
      '',
    );
  }
  const r = results.recovery;
  if (r) {
    lines.push('## 5. Recovery from a worker killed during a model call', '');
    lines.push('| seconds after the kill | |', '|---|---|');
    lines.push(`| interrupted model call retried on the new worker | ${fmt(r.retried)} |`);
    lines.push(`| next turn's model request | ${fmt(r.nextTurn)} |`, '');
    lines.push(
      'Timeouts in force: ' +
        Object.entries(r.timeouts)
          .map(([k, v]) => `${k} ${v}`)
          .join('; ') +
        '.',
      '',
    );
  }
  const c = results.checkpoints;
  if (c) {
    lines.push('## 7. Checkpoints (ms on the worker; objects written by the first)', '');
    lines.push(
      '| repository | first checkpoint | next, nothing changed | next, after a turn’s edits | restore | git status, for scale | objects +MiB |',
      '|---|---|---|---|---|---|---|',
    );
    for (const k of c.cases) {
      lines.push(
        `| ${k.name} | ${fmt(k.first, 0)} | ${fmt(k.unchanged, 0)} | ${fmt(k.afterEdit, 0)} | ${fmt(k.restore, 0)} | ${fmt(k.gitStatus, 0)} | ${round(k.objectBytesFirst / 2 ** 20, 1)} |`,
      );
    }
    lines.push('');
  }
  if (comparisons.length > 0) lines.push(...comparisonMarkdown(comparisons));
  if (results.seconds !== undefined) lines.push(`The run took ${results.seconds} s.`, '');
  return lines.join('\n');
}

/** The series the chart draws: the largest outputs (20 KB, where the baseline runs). */
function chartSeries(series: HistorySeries[]): HistorySeries | undefined {
  return [...series].sort((a, b) => b.outputKB - a.outputKB)[0];
}

/**
 * History bytes against turns for the 20 KB series: Ratchet, the floor, the unique content, and
 * the baseline (measured points). Undefined when there is nothing to draw.
 */
export function historyChart(all: HistorySeries[]): string | undefined {
  const chosen = chartSeries(all);
  if (!chosen || chosen.points.length === 0) return undefined;
  const points = chosen.points;
  const width = 720;
  const height = 420;
  const pad = { left: 80, right: 180, top: 40, bottom: 50 };
  const maxTurns = Math.max(...points.map((p) => p.turns));
  const series = [
    {
      name: 'baseline (whole transcript each turn)',
      color: '#d62728',
      values: points.flatMap((p) =>
        p.baseline ? [[p.turns, p.baseline.bytes, p.baseline.completed ? 1 : 0]] : [],
      ),
    },
    { name: 'Ratchet history', color: '#1f77b4', values: points.map((p) => [p.turns, p.ratchet.bytes, 1]) },
    {
      name: 'floor (two activities)',
      color: '#2ca02c',
      values: points.flatMap((p) => (p.floor ? [[p.turns, p.floor.bytes, 1]] : [])),
    },
    { name: 'unique content', color: '#7f7f7f', values: points.map((p) => [p.turns, p.uniqueBytes, 1]) },
  ];
  const maxBytes = Math.max(...series.flatMap((s) => s.values.map((v) => v[1]!)));
  const mib = maxBytes / 2 ** 20;
  const step = niceStep(mib / 5);
  const top = Math.ceil(mib / step) * step;
  const x = (turns: number) => pad.left + (turns / maxTurns) * (width - pad.left - pad.right);
  const y = (bytes: number) =>
    height - pad.bottom - (bytes / 2 ** 20 / top) * (height - pad.top - pad.bottom);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${pad.left}" y="22" font-size="14" font-weight="bold">Event history size against session length (${chosen.outputKB} KB per tool output)</text>`,
  );
  for (let v = 0; v <= top + 1e-9; v += step) {
    out.push(
      `<line x1="${pad.left}" x2="${width - pad.right}" y1="${y(v * 2 ** 20)}" y2="${y(v * 2 ** 20)}" stroke="#e5e5e5"/>`,
      `<text x="${pad.left - 8}" y="${y(v * 2 ** 20) + 4}" text-anchor="end">${round(v, 1)} MiB</text>`,
    );
  }
  for (const p of points) {
    out.push(
      `<text x="${x(p.turns)}" y="${height - pad.bottom + 18}" text-anchor="middle">${p.turns}</text>`,
    );
  }
  out.push(
    `<text x="${(pad.left + width - pad.right) / 2}" y="${height - 12}" text-anchor="middle">turns</text>`,
    `<line x1="${pad.left}" x2="${pad.left}" y1="${pad.top}" y2="${height - pad.bottom}" stroke="#333"/>`,
    `<line x1="${pad.left}" x2="${width - pad.right}" y1="${height - pad.bottom}" y2="${height - pad.bottom}" stroke="#333"/>`,
  );
  series.forEach((s, i) => {
    if (s.values.length === 0) return;
    const d = s.values.map((v, j) => `${j ? 'L' : 'M'}${round(x(v[0]!), 1)},${round(y(v[1]!), 1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const v of s.values) {
      out.push(
        `<circle cx="${round(x(v[0]!), 1)}" cy="${round(y(v[1]!), 1)}" r="3.5" fill="${v[2] ? s.color : 'white'}" stroke="${s.color}"/>`,
      );
    }
    const ly = pad.top + 10 + i * 20;
    out.push(
      `<line x1="${width - pad.right + 15}" x2="${width - pad.right + 35}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${width - pad.right + 40}" y="${ly + 4}">${s.name}</text>`,
    );
  });
  const stopped = points.some((p) => p.baseline && !p.baseline.completed);
  if (stopped) {
    out.push(
      `<text x="${width - pad.right + 15}" y="${pad.top + 100}" font-size="11">open circle: the server</text>`,
      `<text x="${width - pad.right + 15}" y="${pad.top + 114}" font-size="11">stopped the baseline there</text>`,
    );
  }
  out.push('</svg>', '');
  return out.join('\n');
}

function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}
