/**
 * Workflows bundled for the benchmark only: Ratchet's session, plus two yardsticks that are not
 * part of the product.
 *
 * - `floorSession`: two empty activities per turn. What Temporal itself costs per turn on this
 *   machine, the floor Ratchet's overhead is measured against.
 * - `contentFloorSession`: the same, but the two activities carry the content a Ratchet turn
 *   carries (the model's call, the file's text): the floor for the history's size.
 * - `parkedFloor`: a workflow that waits for one signal. What a parked workflow costs a worker
 *   whatever it is, the floor for a parked session's memory.
 * - `baselineSession`: the obvious design DESIGN.md §2 warns about. It passes the whole transcript
 *   as the model activity's input every turn, so every turn writes the transcript into history
 *   again.
 */
import { condition, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';
import type { TranscriptItem } from '../src/shared/prompt/items.js';
import { functionOutput, isFunctionCall, userMessage } from '../src/shared/prompt/items.js';
import type { BenchActivities } from './activities.js';

export { agentSession } from '../src/workflows/index.js';

const bench = proxyActivities<BenchActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', maximumAttempts: 3 },
});

export async function floorSession(turns: number): Promise<number> {
  for (let turn = 1; turn <= turns; turn += 1) {
    await bench.emptyModel();
    await bench.emptyTool();
  }
  return turns;
}

export interface ContentFloorInput {
  turns: number;
  file: string;
  workspace: string;
}

/** Two activities per turn carrying a Ratchet turn's content: the reply, then the tool's output. */
export async function contentFloorSession(input: ContentFloorInput): Promise<number> {
  for (let turn = 1; turn <= input.turns; turn += 1) {
    const output = await bench.floorModel({ turn, turns: input.turns, file: input.file });
    for (const call of output.filter(isFunctionCall)) {
      await bench.plainTool({ workspace: input.workspace, arguments: call.arguments });
    }
  }
  return input.turns;
}

export const releaseSignal = defineSignal('release');

export async function parkedFloor(): Promise<void> {
  let released = false;
  setHandler(releaseSignal, () => {
    released = true;
  });
  await condition(() => released);
}

export interface BaselineInput {
  task: string;
  workspace: string;
  model: string;
  maxTurns: number;
  sessionId: string;
}

export async function baselineSession(input: BaselineInput): Promise<number> {
  const items: TranscriptItem[] = [userMessage(input.task)];
  for (let turn = 1; turn <= input.maxTurns; turn += 1) {
    const output = await bench.transcriptModel({ model: input.model, sessionId: input.sessionId, items });
    items.push(...output);
    const calls = output.filter(isFunctionCall);
    if (calls.length === 0) return turn;
    for (const call of calls) {
      const result = await bench.plainTool({ workspace: input.workspace, arguments: call.arguments });
      items.push(functionOutput(call.call_id, result));
    }
  }
  return input.maxTurns;
}
