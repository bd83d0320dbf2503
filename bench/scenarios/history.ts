/**
 * 2. History growth: sessions of 25 … 400 turns whose every tool output is 20 KB (and, in the same
 * run, 4.5 KB). Ratchet's event history (as Temporal counts it: `historySizeBytes` in describe)
 * against the unique content of the transcript; beside it the floor (a bare workflow with two
 * activities per turn carrying the same content) and the baseline that passes the whole
 * transcript to the model activity. Per series, the events a turn adds, by type.
 */
import type { WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { randomUUID } from 'node:crypto';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { transcriptQuery } from '../../src/shared/api/session-api.js';
import type { BenchEnv } from '../env.js';
import { sessionConfig, withModel } from '../env.js';
import type { BenchTool } from '../script.js';
import { benchResponder, benchTask } from '../script.js';
import { round, sleep } from '../stats.js';
import type { BaselineInput, ContentFloorInput } from '../workflows.js';

type ByType = Record<string, { events: number; bytes: number }>;

export interface HistoryPoint {
  turns: number;
  /** Bytes of the transcript items (JSON), each counted once. */
  uniqueBytes: number;
  ratchet: {
    bytes: number;
    events: number;
    ratio: number;
    seconds: number;
    /** Events and their encoded bytes by type, over the whole history. */
    byType?: ByType;
  };
  /** Two activities per turn carrying the same content (bench/workflows.ts, contentFloorSession). */
  floor?: { bytes: number; events: number; ratio: number; byType?: ByType };
  /** Undefined when the baseline was not run at this size. */
  baseline?: { bytes: number; events: number; ratio: number; completed: boolean; note?: string };
}

async function uniqueBytes(handle: WorkflowHandle): Promise<number> {
  let total = 0;
  for (let from = 0; ;) {
    const page = await handle.query(transcriptQuery, { fromIndex: from });
    for (const entry of page.entries) total += Buffer.byteLength(JSON.stringify(entry.item));
    if (page.nextIndex >= page.total) return total;
    from = page.nextIndex;
  }
}

/**
 * What stopped a workflow that did not complete, from its last events (read newest first, one
 * at a time: the baseline's events are megabytes each, a page of them exceeds a gRPC message).
 */
async function whyStopped(env: BenchEnv, handle: WorkflowHandle): Promise<string> {
  const description = await handle.describe();
  let nextPageToken: Uint8Array | undefined;
  for (let i = 0; i < 10; i += 1) {
    const page = await env.client.workflowService.getWorkflowExecutionHistoryReverse({
      namespace: 'default',
      execution: { workflowId: handle.workflowId, runId: description.runId },
      maximumPageSize: 1,
      ...(nextPageToken ? { nextPageToken } : {}),
    });
    for (const event of page.history?.events ?? []) {
      const terminated = event.workflowExecutionTerminatedEventAttributes;
      if (terminated) return `terminated by the server: ${terminated.reason ?? ''}`.trim();
      const failed = event.workflowTaskFailedEventAttributes;
      if (failed) return `workflow task failed: ${failed.failure?.message ?? String(failed.cause)}`;
    }
    if (!page.nextPageToken?.length) break;
    nextPageToken = page.nextPageToken;
  }
  return `${description.status.name.toLowerCase()} after the time allowed`;
}

/** One tool-output size: its points, and what a turn adds (the two longest sessions' difference). */
export interface HistorySeries {
  outputKB: number;
  /** The tool every turn calls on the file (absent in results from before 2026-12-02: read_file). */
  tool?: BenchTool;
  file: string;
  points: HistoryPoint[];
  perTurn?: {
    /** Content bytes a turn adds, and Ratchet's and the floor's history bytes and events by type. */
    contentBytes: number;
    ratchet: ByType;
    floor?: ByType;
  };
}

export interface HistoryOptions {
  sizes: number[];
  baselineSizes: number[];
  baselineTimeoutMs: number;
  /** Tool output per turn, KB: 20 reads big.txt, 4.5 reads mid.txt. */
  outputKB: number;
  /**
   * read_file (a local activity), or the shell's `cat` (an activity whose output the model reads
   * as JSON, Codex's format), run without a sandbox so that no command asks for approval.
   */
  tool: BenchTool;
  log: (m: string) => void;
}

export const HISTORY_FILES: Record<string, string> = { '20': 'big.txt', '4.5': 'mid.txt' };

async function eventsByType(handle: WorkflowHandle): Promise<ByType> {
  const byType: ByType = {};
  for (const event of (await handle.fetchHistory()).events ?? []) {
    const type = String(proto.temporal.api.enums.v1.EventType[event.eventType ?? 0]).replace(
      'EVENT_TYPE_',
      '',
    );
    const bytes = proto.temporal.api.history.v1.HistoryEvent.encode(event).finish().length;
    byType[type] = { events: (byType[type]?.events ?? 0) + 1, bytes: (byType[type]?.bytes ?? 0) + bytes };
  }
  return byType;
}

/** (b − a) ÷ turns, by type. */
function perTurnOf(a: ByType, b: ByType, turns: number): ByType {
  const out: ByType = {};
  for (const type of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const events = ((b[type]?.events ?? 0) - (a[type]?.events ?? 0)) / turns;
    const bytes = ((b[type]?.bytes ?? 0) - (a[type]?.bytes ?? 0)) / turns;
    if (events !== 0 || bytes !== 0) out[type] = { events: round(events, 2), bytes: Math.round(bytes) };
  }
  return out;
}

/** "4.5 KB", or "4.5 KB shell" for a series whose turns run `cat`. */
export function seriesLabel(series: { outputKB: number; tool?: BenchTool }): string {
  return series.tool === 'shell' ? `${series.outputKB} KB shell` : `${series.outputKB} KB`;
}

export async function historyAll(env: BenchEnv, series: HistoryOptions[]): Promise<HistorySeries[]> {
  const out: HistorySeries[] = [];
  for (const options of series) out.push(await history(env, options));
  return out;
}

export async function history(env: BenchEnv, options: HistoryOptions): Promise<HistorySeries> {
  const file = HISTORY_FILES[String(options.outputKB)];
  if (!file) throw new Error(`history: no file for ${options.outputKB} KB outputs`);
  return withModel({ responder: benchResponder() }, async (model) => {
    const taskQueue = `bench-history-${randomUUID()}`;
    const { worker } = await env.worker(taskQueue, model);
    const ratchet = env.ratchet(taskQueue);
    const points: HistoryPoint[] = [];
    await worker.runUntil(async () => {
      for (const turns of options.sizes) {
        const started = performance.now();
        const { sessionId } = await ratchet.start(
          sessionConfig(
            benchTask(file, turns, options.tool),
            env.repo,
            options.tool === 'shell' ? { sandbox: 'danger-full-access' } : {},
          ),
        );
        const handle = env.client.workflow.getHandle(sessionId);
        const result = (await handle.result()) as SessionResult;
        const seconds = (performance.now() - started) / 1000;
        if (result.turns !== turns || result.runs !== 1) {
          throw new Error(
            `history: expected ${turns} turns in one run, got ${result.turns} in ${result.runs}`,
          );
        }
        const description = await handle.describe();
        const unique = await uniqueBytes(handle);
        const byType = await eventsByType(handle);
        const bytes = description.historySize ?? 0;
        const point: HistoryPoint = {
          turns,
          uniqueBytes: unique,
          ratchet: {
            bytes,
            events: description.historyLength,
            ratio: round(bytes / unique, 3),
            byType,
            seconds: round(seconds, 1),
          },
        };
        point.floor = await contentFloor(env, taskQueue, { turns, file, workspace: env.repo }, unique);
        const label = `history ${seriesLabel(options)}, ${turns} turns`;
        options.log(`${label}, events by type: ${JSON.stringify(byType)}`);
        options.log(
          `${label}: ratchet ${bytes} bytes ÷ content ${unique} = ${point.ratchet.ratio}, ` +
            `floor ${point.floor.bytes} ÷ content = ${point.floor.ratio} (${point.ratchet.seconds} s)`,
        );
        if (options.baselineSizes.includes(turns)) {
          point.baseline = await baseline(env, taskQueue, file, turns, unique, options.baselineTimeoutMs);
          options.log(
            `${label}: baseline ${point.baseline.bytes} bytes = ${point.baseline.ratio} × unique` +
              (point.baseline.note ? ` (${point.baseline.note})` : ''),
          );
        }
        points.push(point);
      }
    });
    const [a, b] = points.slice(-2);
    const result: HistorySeries = { outputKB: options.outputKB, tool: options.tool, file, points };
    if (a && b && a.ratchet.byType && b.ratchet.byType) {
      const turns = b.turns - a.turns;
      result.perTurn = {
        contentBytes: Math.round((b.uniqueBytes - a.uniqueBytes) / turns),
        ratchet: perTurnOf(a.ratchet.byType, b.ratchet.byType, turns),
        ...(a.floor?.byType && b.floor?.byType
          ? { floor: perTurnOf(a.floor.byType, b.floor.byType, turns) }
          : {}),
      };
      options.log(`history ${seriesLabel(options)}, per turn: ${JSON.stringify(result.perTurn)}`);
    }
    return result;
  });
}

async function contentFloor(
  env: BenchEnv,
  taskQueue: string,
  input: ContentFloorInput,
  unique: number,
): Promise<NonNullable<HistoryPoint['floor']>> {
  const handle = await env.client.workflow.start('contentFloorSession', {
    taskQueue,
    workflowId: `floor-${randomUUID()}`,
    args: [input],
  });
  await handle.result();
  const description = await handle.describe();
  const bytes = description.historySize ?? 0;
  return {
    bytes,
    events: description.historyLength,
    ratio: round(bytes / unique, 3),
    byType: await eventsByType(handle),
  };
}

async function baseline(
  env: BenchEnv,
  taskQueue: string,
  file: string,
  turns: number,
  unique: number,
  timeoutMs: number,
): Promise<NonNullable<HistoryPoint['baseline']>> {
  const input: BaselineInput = {
    task: benchTask(file, turns),
    workspace: env.repo,
    model: 'scripted-model',
    maxTurns: turns + 1,
    sessionId: `baseline-${randomUUID()}`,
  };
  const handle = await env.client.workflow.start('baselineSession', {
    taskQueue,
    workflowId: input.sessionId,
    args: [input],
  });
  let completed = false;
  let note: string | undefined;
  const outcome = await Promise.race([
    handle.result().then(
      () => 'completed' as const,
      () => 'failed' as const,
    ),
    sleep(timeoutMs).then(() => 'timeout' as const),
  ]);
  if (outcome === 'completed') completed = true;
  else {
    note = await whyStopped(env, handle).catch((err: unknown) => `stopped (${String(err)})`);
    await handle.terminate('benchmark: baseline stopped').catch(() => {});
  }
  const description = await handle.describe();
  const bytes = description.historySize ?? 0;
  return {
    bytes,
    events: description.historyLength,
    ratio: round(bytes / unique, 3),
    completed,
    ...(note ? { note } : {}),
  };
}
