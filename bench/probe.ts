/**
 * Where a benchmark worker's memory goes, asked of the worker itself and read from /proc.
 *
 * The worker (bench/worker-process.ts) answers SIGUSR2 by reading `request.json` from its probe
 * directory, optionally collecting garbage (its main thread and its workflow thread) and writing
 * heap snapshots, and writing `answer-<id>.json`: each thread's process.memoryUsage() (heap and
 * external figures are per thread; the workflow thread's V8 heap is not in the main thread's).
 * This side adds the process's resident memory by kind from /proc/<pid>/smaps.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { round, sleep } from './stats.js';

export interface ThreadMemory {
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  arrayBuffersMiB: number;
}

export interface WorkerMemory {
  rssMiB: number;
  peakRssMiB: number;
  /** Resident anonymous memory (heaps of V8, malloc, the Rust core) and file-backed (code). */
  anonMiB: number;
  fileMiB: number;
  /** Resident in glibc's main heap ([heap]) and in its per-thread arenas (64 MiB reservations). */
  mallocMainMiB: number;
  mallocArenasMiB: number;
  /** Resident in other anonymous mappings: V8's heap pages, thread stacks, large allocations. */
  otherAnonMiB: number;
  threads: number;
  main: ThreadMemory;
  workflowThread?: ThreadMemory;
}

export interface ProbeRequest {
  gc?: boolean;
  /** Directory to write heap snapshots of both threads into. */
  snapshotDir?: string;
}

export interface ProbeAnswer {
  main: NodeJS.MemoryUsage;
  workflowThread?: NodeJS.MemoryUsage;
  snapshots?: string[];
}

const mib = (bytes: number) => round(bytes / 2 ** 20, 1);

function thread(usage: NodeJS.MemoryUsage): ThreadMemory {
  return {
    heapUsedMiB: mib(usage.heapUsed),
    heapTotalMiB: mib(usage.heapTotal),
    externalMiB: mib(usage.external),
    arrayBuffersMiB: mib(usage.arrayBuffers),
  };
}

let requests = 0;

/** Asks the worker process `pid` (probe directory `dir`) for its memory, then reads /proc. */
export async function probeWorker(
  pid: number,
  dir: string,
  request: ProbeRequest = {},
): Promise<WorkerMemory> {
  const id = ++requests;
  await writeFile(path.join(dir, 'request.json'), JSON.stringify({ id, ...request }));
  process.kill(pid, 'SIGUSR2');
  const answerPath = path.join(dir, `answer-${id}.json`);
  const deadline = Date.now() + 300_000;
  let answer: ProbeAnswer | undefined;
  while (!answer) {
    answer = await readFile(answerPath, 'utf8').then(
      (text) => JSON.parse(text) as ProbeAnswer,
      () => undefined,
    );
    if (!answer) {
      if (Date.now() > deadline) throw new Error(`the worker did not answer probe ${id}`);
      await sleep(100);
    }
  }
  return {
    ...(await procMemory(pid)),
    main: thread(answer.main),
    ...(answer.workflowThread ? { workflowThread: thread(answer.workflowThread) } : {}),
  };
}

/** Resident memory by kind, from /proc/<pid>/status and /proc/<pid>/smaps. */
export async function procMemory(pid: number): Promise<Omit<WorkerMemory, 'main' | 'workflowThread'>> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  const smaps = await readFile(`/proc/${pid}/smaps`, 'utf8');
  // Each mapping: a header line (range perms offset dev inode [path]), then "Key: N kB" lines.
  const maps: { start: number; end: number; name: string; anon: boolean; rssKiB: number }[] = [];
  for (const line of smaps.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const name = head[4] ?? '';
      const anon = head[3] === '0' && (name === '' || name.startsWith('['));
      maps.push({ start: parseInt(head[1]!, 16), end: parseInt(head[2]!, 16), name, anon, rssKiB: 0 });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && maps.length > 0) maps.at(-1)!.rssKiB = Number(rss[1]);
  }
  // glibc's thread arenas: 64 MiB reservations aligned on 64 MiB (HEAP_MAX_SIZE), committed from
  // the start, the rest inaccessible: unnamed mappings that tile such a block exactly.
  const ARENA = 64 * 2 ** 20;
  const blocks = new Map<number, { covered: number; contiguous: boolean; end: number }>();
  for (const m of maps) {
    if (!m.anon || m.name !== '') continue;
    const base = m.start - (m.start % ARENA);
    const block = blocks.get(base) ?? { covered: 0, contiguous: true, end: base };
    block.contiguous &&= m.start === block.end && m.end <= base + ARENA;
    block.covered += m.end - m.start;
    block.end = m.end;
    blocks.set(base, block);
  }
  const isArena = (m: { start: number }) => {
    const block = blocks.get(m.start - (m.start % ARENA));
    return block !== undefined && block.contiguous && block.covered === ARENA;
  };
  let mallocMain = 0;
  let mallocArenas = 0;
  let otherAnon = 0;
  for (const m of maps) {
    if (m.name === '[heap]') mallocMain += m.rssKiB;
    else if (m.anon && m.name === '' && isArena(m)) mallocArenas += m.rssKiB;
    else if (m.anon) otherAnon += m.rssKiB;
  }
  return {
    rssMiB: round(field('VmRSS') / 1024, 1),
    peakRssMiB: round(field('VmHWM') / 1024, 1),
    anonMiB: round(field('RssAnon') / 1024, 1),
    fileMiB: round(field('RssFile') / 1024, 1),
    mallocMainMiB: round(mallocMain / 1024, 1),
    mallocArenasMiB: round(mallocArenas / 1024, 1),
    otherAnonMiB: round(otherAnon / 1024, 1),
    threads: field('Threads'),
  };
}
