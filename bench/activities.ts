/**
 * Activities of the benchmark's yardstick workflows, and the plain in-process agent loop they are
 * compared with. They use the product's own request building, `openai` client and tool code, so
 * that differences in the figures are the orchestration's, not the work's.
 */
import type OpenAI from 'openai';
import { buildRequest, outputItems } from '../src/activities/model-request.js';
import { executeReadFile } from '../src/activities/tools/read-file.js';
import type { TranscriptItem } from '../src/shared/prompt/items.js';
import { assistantMessage, functionOutput, isFunctionCall, userMessage } from '../src/shared/prompt/items.js';
import { readFileArgs } from '../src/shared/tools/specs.js';

/** One streamed Responses API call, read to the end the way the model activity reads it. */
export async function streamedCall(
  client: OpenAI,
  model: string,
  sessionId: string,
  items: readonly TranscriptItem[],
): Promise<TranscriptItem[]> {
  const request = buildRequest({ name: model }, sessionId, items);
  const stream = await client.responses.create({ ...request, stream: true });
  let completed: OpenAI.Responses.Response | undefined;
  for await (const event of stream) {
    if (event.type === 'response.completed') completed = event.response;
  }
  if (!completed) throw new Error('the stream ended without response.completed');
  return outputItems(completed.output);
}

/** read_file as the tool activity runs it, minus Temporal. */
export async function plainReadFile(workspace: string, args: string): Promise<string> {
  const parsed = readFileArgs().parse(JSON.parse(args));
  const signal = new AbortController().signal;
  const outcome = await executeReadFile(parsed, { workspace, signal, heartbeat: () => {} });
  return outcome.output;
}

export function createBenchActivities(openai: () => OpenAI) {
  return {
    async emptyModel(): Promise<void> {},
    async emptyTool(): Promise<void> {},
    /** The reply the benchmark's scripted model gives on `turn` (bench/script.ts), without a call. */
    floorModel(input: { turn: number; turns: number; file: string }): Promise<TranscriptItem[]> {
      if (input.turn < input.turns) {
        const args = JSON.stringify({ file_path: input.file });
        return Promise.resolve([
          { type: 'function_call', call_id: `call_${input.turn}`, name: 'read_file', arguments: args },
        ]);
      }
      return Promise.resolve([assistantMessage(`Read ${input.file} ${input.turn - 1} times.`)]);
    },
    transcriptModel(input: { model: string; sessionId: string; items: TranscriptItem[] }) {
      return streamedCall(openai(), input.model, input.sessionId, input.items);
    },
    plainTool(input: { workspace: string; arguments: string }) {
      return plainReadFile(input.workspace, input.arguments);
    },
  };
}

export type BenchActivities = ReturnType<typeof createBenchActivities>;

/** (b) of the overhead benchmark: the same client and tools in a plain loop, no durability. */
export async function plainLoop(
  client: OpenAI,
  options: { task: string; workspace: string; model: string; maxTurns: number; sessionId: string },
): Promise<number> {
  const items: TranscriptItem[] = [userMessage(options.task)];
  for (let turn = 1; turn <= options.maxTurns; turn += 1) {
    const output = await streamedCall(client, options.model, options.sessionId, items);
    items.push(...output);
    const calls = output.filter(isFunctionCall);
    if (calls.length === 0) return turn;
    for (const call of calls) {
      items.push(functionOutput(call.call_id, await plainReadFile(options.workspace, call.arguments)));
    }
  }
  return options.maxTurns;
}
