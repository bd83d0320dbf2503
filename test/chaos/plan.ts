/**
 * A chaos session's plan, worked out from its seed alone: the session's settings, the model's
 * replies turn by turn (parallel calls, repeated call ids, huge and non-ASCII text, garbage
 * arguments, failures of the model and of compaction) and the dice a person throws while the
 * session runs. The same seed always gives the same plan (the moments things happen at are real
 * time, so a run can differ from the last in when, not in what).
 */
import type { ScriptStep, ScriptedOutput } from '../../src/testing/scripted-model.js';

/** mulberry32: a small, fast, seedable generator; plenty for choosing test cases. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  /** One of the keys, with probability proportional to its weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as Array<[K, number]>;
    let roll = this.next() * entries.reduce((sum, [, w]) => sum + w, 0);
    for (const [key, weight] of entries) {
      roll -= weight;
      if (roll < 0) return key;
    }
    return entries.at(-1)![0];
  }
}

/** File in the workspace where every mutating command writes its own token: it counts itself. */
export const RUNS_FILE = 'runs.log';

export interface ChaosSettings {
  compaction: 'local' | 'remote';
  contextWindow: number;
  maxTranscriptBytes: number;
}

export interface ChaosPlan {
  seed: number;
  settings: ChaosSettings;
  /** Answers for model requests, in order; when they run out the model answers "done". */
  replies: ScriptStep[];
  /** Answers for local compaction's summary requests, in order; then a plain summary. */
  summaries: ScriptStep[];
  /** How many times the person sends a message to move an idle session on before leaving it. */
  resumes: number;
  /** Per status poll: how likely the person interrupts, or sends a message unprompted. */
  interruptChance: number;
  messageChance: number;
  rng: Rng;
}

const TEXTS = ['Done.', 'Fertig — alles erledigt.', '完成了，所有测试都通过。', 'Готово ✅', '🚀 shipped'];

function text(rng: Rng): string {
  const kind = rng.weighted({ short: 10, large: 2, huge: 1 });
  const base = rng.pick(TEXTS);
  if (kind === 'short') return base;
  // large: tens of KB of non-ASCII; huge: over the 1.5 MiB a step may carry (the reply is refused).
  if (kind === 'large') return `${base}\n${'漢字'.repeat(rng.int(5_000, 40_000))}`;
  return `${base}\n${'漢'.repeat(rng.int(560_000, 800_000))}`;
}

/** A command that writes its token when it runs, after an optional pause (a window for faults). */
export function mutatingCommand(token: string, pauseMs: number): string[] {
  const pause = pauseMs > 0 ? `sleep ${(pauseMs / 1000).toFixed(1)}; ` : '';
  return ['bash', '-lc', `${pause}echo ${token} >> ${RUNS_FILE}`];
}

/** The token a mutating command writes, or undefined for any other call. */
export function tokenOf(args: unknown): string | undefined {
  const command = (args as { command?: unknown } | undefined)?.command;
  if (!Array.isArray(command)) return undefined;
  const match = /echo (T\d+_\d+) >> /.exec(String(command.at(-1)));
  return match?.[1];
}

function calls(rng: Rng, seed: number, counter: { n: number }, usedIds: string[]): ScriptedOutput[] {
  const count = rng.weighted({ 1: 5, 2: 3, 3: 2, 4: 1 });
  const out: ScriptedOutput[] = [];
  for (let i = 0; i < Number(count); i++) {
    const kind = rng.weighted({
      mutating: 6,
      reading: 2,
      read_file: 2,
      list_dir: 1,
      plan: 1,
      garbage: 1,
      unknown: 1,
      invalid: 1,
    });
    let call: ScriptedOutput;
    switch (kind) {
      case 'mutating': {
        counter.n += 1;
        const pause = rng.weighted({ 0: 4, 400: 2, 1500: 1 });
        call = {
          type: 'function_call',
          name: 'shell',
          arguments: { command: mutatingCommand(`T${seed}_${counter.n}`, Number(pause)) },
        };
        break;
      }
      case 'reading':
        call = { type: 'function_call', name: 'shell', arguments: { command: ['cat', 'a.txt'] } };
        break;
      case 'read_file':
        call = { type: 'function_call', name: 'read_file', arguments: { file_path: 'a.txt' } };
        break;
      case 'list_dir':
        call = { type: 'function_call', name: 'list_dir', arguments: { dir_path: '.' } };
        break;
      case 'plan':
        call = {
          type: 'function_call',
          name: 'update_plan',
          arguments: { plan: [{ step: 'überprüfen ✓', status: 'in_progress' }] },
        };
        break;
      case 'garbage':
        call = { type: 'function_call', name: 'shell', arguments: '{"command": ["echo", ' };
        break;
      case 'unknown':
        call = { type: 'function_call', name: 'rm_everything', arguments: {} };
        break;
      case 'invalid':
        call = { type: 'function_call', name: 'shell', arguments: { command: 'echo not an array' } };
        break;
    }
    // Repeated ids: chat endpoints without ids, or a careless server.
    if (usedIds.length > 0 && rng.chance(0.2)) call.callId = rng.pick(usedIds);
    else call.callId = `call_${rng.int(0, 5)}`;
    usedIds.push(call.callId);
    out.push(call);
  }
  return out;
}

export function planFor(seed: number): ChaosPlan {
  const rng = new Rng(seed * 2654435761);
  const small = rng.chance(0.3);
  const settings: ChaosSettings = {
    compaction: rng.chance(0.5) ? 'local' : 'remote',
    // A small context window makes the reported usage trigger compaction.
    contextWindow: small ? 20_000 : 200_000,
    maxTranscriptBytes: rng.chance(0.2) ? rng.int(4_000, 40_000) : 1024 * 1024,
  };
  const replies: ScriptStep[] = [];
  const counter = { n: 0 };
  const usedIds: string[] = [];
  const turns = rng.int(1, 6);
  for (let t = 0; t < turns; t++) {
    const kind = rng.weighted({ calls: 10, text: 1, error500: 1, error400: 1, cut: 1, garbage: 1, empty: 1 });
    const usage = small && rng.chance(0.4) ? { inputTokens: 19_000, outputTokens: 100 } : undefined;
    switch (kind) {
      case 'calls':
        replies.push({
          kind: 'reply',
          output: calls(rng, seed, counter, usedIds),
          ...(usage ? { usage } : {}),
        });
        break;
      case 'text':
        replies.push({ kind: 'reply', output: [{ type: 'message', text: text(rng) }] });
        break;
      case 'error500':
        replies.push({ kind: 'error', status: 500 });
        break;
      case 'error400':
        replies.push({ kind: 'error', status: 400, message: 'chaos: bad request' });
        break;
      case 'cut':
        replies.push({ kind: 'cut' });
        break;
      case 'garbage':
        replies.push({ kind: 'garbage' });
        break;
      case 'empty':
        replies.push({ kind: 'empty' });
        break;
    }
  }
  replies.push({ kind: 'reply', output: [{ type: 'message', text: text(rng) }] });
  const summaries: ScriptStep[] = [];
  for (let i = 0; i < 3; i++) {
    const kind = rng.weighted({ ok: 4, error400: 1, error500: 1 });
    if (kind === 'ok')
      summaries.push({ kind: 'reply', output: [{ type: 'message', text: `Zusammenfassung ${i} 摘要` }] });
    else if (kind === 'error400')
      summaries.push({ kind: 'error', status: 400, message: 'chaos: compaction refused' });
    else summaries.push({ kind: 'error', status: 500 });
  }
  return {
    seed,
    settings,
    replies,
    summaries,
    resumes: rng.int(1, 3),
    interruptChance: rng.pick([0, 0.01, 0.04]),
    messageChance: rng.pick([0, 0.02, 0.05]),
    rng,
  };
}
