/**
 * 1. Overhead per turn: 50-turn sessions, each turn one model call and one read_file, through
 * (a) Ratchet on Temporal, (b) the same client and tool code in a plain loop, and (c) the floor:
 * a workflow with two empty activities per turn on the same worker. Where a turn of (a) and of
 * (c) goes is read from each measured session's event times (phases.ts).
 */
import { randomUUID } from 'node:crypto';
import { openaiClientFactory } from '../../src/activities/openai-client.js';
import type { SessionResult } from '../../src/shared/api/session-api.js';
import { plainLoop } from '../activities.js';
import type { BenchEnv } from '../env.js';
import { sessionConfig, withModel } from '../env.js';
import { turnPhases } from '../phases.js';
import { benchResponder, benchTask } from '../script.js';
import type { Spread } from '../stats.js';
import { round, spread } from '../stats.js';

export interface OverheadResult {
  turns: number;
  /** Milliseconds per turn. */
  ratchet: Spread;
  plain: Spread;
  floor: Spread;
  /** Per run: ratchet − plain, and ratchet ÷ floor (ratios from the same run). */
  overAbovePlain: Spread;
  ratioToFloor: Spread;
  /** Ms per turn in each phase, from the event times of (a)'s and (c)'s histories ("floor: …"). */
  phases?: Record<string, Spread>;
}

export async function overhead(
  env: BenchEnv,
  options: { runs: number; turns: number; log: (message: string) => void },
): Promise<OverheadResult> {
  const { turns, log } = options;
  return withModel({ responder: benchResponder() }, async (model) => {
    const taskQueue = `bench-overhead-${randomUUID()}`;
    const { worker } = await env.worker(taskQueue, model);
    const ratchet = env.ratchet(taskQueue);
    const openai = openaiClientFactory({ apiKey: 'bench-key', baseURL: model.baseUrl })();
    const task = benchTask('small.txt', turns);

    const runRatchet = async () => {
      const started = performance.now();
      const { sessionId } = await ratchet.start(sessionConfig(task, env.repo));
      const result = (await env.client.workflow.getHandle(sessionId).result()) as SessionResult;
      if (result.turns !== turns) throw new Error(`ratchet session ran ${result.turns} turns, not ${turns}`);
      lastIds.ratchet = sessionId;
      return (performance.now() - started) / turns;
    };
    const lastIds = { ratchet: '', floor: '' };
    const phaseSamples: Record<string, number[]> = {};
    const addPhases = async (prefix: string, workflowId: string) => {
      const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
      for (const [phase, ms] of Object.entries(turnPhases(history.events ?? [], turns))) {
        (phaseSamples[`${prefix}${phase}`] ??= []).push(ms);
      }
    };
    const runPlain = async () => {
      const started = performance.now();
      const done = await plainLoop(openai, {
        task,
        workspace: env.repo,
        model: 'scripted-model',
        maxTurns: turns + 1,
        sessionId: `plain-${randomUUID()}`,
      });
      if (done !== turns) throw new Error(`plain loop ran ${done} turns, not ${turns}`);
      return (performance.now() - started) / turns;
    };
    const runFloor = async () => {
      const started = performance.now();
      lastIds.floor = `floor-${randomUUID()}`;
      await env.client.workflow.execute('floorSession', {
        taskQueue,
        workflowId: lastIds.floor,
        args: [turns],
      });
      return (performance.now() - started) / turns;
    };

    const samples = { ratchet: [] as number[], plain: [] as number[], floor: [] as number[] };
    const above: number[] = [];
    const ratio: number[] = [];
    await worker.runUntil(async () => {
      // One warm-up of each (JIT, connections, the worker's workflow cache), not counted.
      await runRatchet();
      await runPlain();
      await runFloor();
      for (let run = 0; run < options.runs; run += 1) {
        const r = await runRatchet();
        const p = await runPlain();
        const f = await runFloor();
        samples.ratchet.push(r);
        samples.plain.push(p);
        samples.floor.push(f);
        above.push(r - p);
        ratio.push(r / f);
        await addPhases('', lastIds.ratchet);
        await addPhases('floor: ', lastIds.floor);
        log(
          `overhead run ${run + 1}/${options.runs}: ratchet ${round(r)} ms/turn, plain ${round(p)}, floor ${round(f)}`,
        );
      }
    });
    return {
      turns,
      ratchet: spread(samples.ratchet),
      plain: spread(samples.plain),
      floor: spread(samples.floor),
      overAbovePlain: spread(above),
      ratioToFloor: spread(ratio),
      phases: Object.fromEntries(Object.entries(phaseSamples).map(([phase, ms]) => [phase, spread(ms)])),
    };
  });
}
