/**
 * The Responses API's wire format as the scripted model writes it: the response object, the
 * server-sent events of a reply, and the plan of a whole reply worked out before anything is sent
 * (scripted-chat.ts writes the Chat Completions format from the same script).
 */
import { Buffer } from 'node:buffer';
import type {
  Response as ApiResponse,
  ResponseContentPartAddedEvent,
  ResponseContentPartDoneEvent,
  ResponseFunctionCallArgumentsDeltaEvent,
  ResponseFunctionCallArgumentsDoneEvent,
  ResponseFunctionToolCall,
  ResponseOutputItem,
  ResponseOutputItemAddedEvent,
  ResponseOutputItemDoneEvent,
  ResponseOutputMessage,
  ResponseReasoningItem,
  ResponseReasoningSummaryPartAddedEvent,
  ResponseReasoningSummaryPartDoneEvent,
  ResponseReasoningSummaryTextDeltaEvent,
  ResponseReasoningSummaryTextDoneEvent,
  ResponseTextDeltaEvent,
  ResponseTextDoneEvent,
  ResponseUsage,
} from 'openai/resources/responses/responses';
import type { CompactStep, ScriptedOutput, ScriptedUsage } from './scripted-script.js';
import { chunks, estimateInputTokens, nowSeconds, tokensOf } from './scripted-text.js';

/** A response as sent on the wire: `output_text` is computed by the SDK, and `usage` is null until completion. */
export type WireResponse = Omit<ApiResponse, 'output_text' | 'usage'> & { usage: ResponseUsage | null };

type Unsequenced<T> = T extends unknown ? Omit<T, 'sequence_number'> : never;

type StreamEvent =
  | {
      type:
        | 'response.created'
        | 'response.queued'
        | 'response.in_progress'
        | 'response.completed'
        | 'response.incomplete';
      response: WireResponse;
    }
  | Unsequenced<
      | ResponseOutputItemAddedEvent
      | ResponseOutputItemDoneEvent
      | ResponseContentPartAddedEvent
      | ResponseContentPartDoneEvent
      | ResponseTextDeltaEvent
      | ResponseTextDoneEvent
      | ResponseFunctionCallArgumentsDeltaEvent
      | ResponseFunctionCallArgumentsDoneEvent
      | ResponseReasoningSummaryPartAddedEvent
      | ResponseReasoningSummaryPartDoneEvent
      | ResponseReasoningSummaryTextDeltaEvent
      | ResponseReasoningSummaryTextDoneEvent
    >;

/**
 * A reply worked out in full before anything is sent: the final response (for a JSON request) and
 * its server-sent events, serialised. A cut stream sends fewer than `cutLimit` events, so the
 * event that completes the reply is never among them.
 */
export interface Plan {
  response: unknown;
  events: string[];
  cutLimit: number;
}

/** Builds a reply's plan from a request body, the scripted output and usage. */
export type Planner = (
  body: RequestBody,
  output: readonly ScriptedOutput[],
  usage: ScriptedUsage | undefined,
  cutByLimit?: boolean,
) => Plan;

export type RequestBody = Record<string, unknown>;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A Responses API reply in full: the final response and its server-sent events (created, queued
 * for a background response, in progress, each output item's deltas, completed or incomplete).
 * `id` numbers the ids per prefix (resp, msg, fc, call, rs), as the server counts them.
 */
export function responsesPlan(
  body: RequestBody,
  output: readonly ScriptedOutput[],
  usage: ScriptedUsage | undefined,
  id: (prefix: string) => string,
  cutByLimit?: boolean,
): Plan {
  const base: WireResponse = {
    id: id('resp'),
    object: 'response',
    created_at: nowSeconds(),
    status: 'in_progress',
    background: body.background === true,
    error: null,
    incomplete_details: null,
    instructions: typeof body.instructions === 'string' ? body.instructions : null,
    max_output_tokens: typeof body.max_output_tokens === 'number' ? body.max_output_tokens : null,
    metadata: isRecord(body.metadata) ? (body.metadata as Record<string, string>) : {},
    model: typeof body.model === 'string' ? body.model : 'scripted-model',
    output: [],
    parallel_tool_calls: typeof body.parallel_tool_calls === 'boolean' ? body.parallel_tool_calls : true,
    previous_response_id: typeof body.previous_response_id === 'string' ? body.previous_response_id : null,
    prompt_cache_key: typeof body.prompt_cache_key === 'string' ? body.prompt_cache_key : null,
    reasoning: isRecord(body.reasoning) ? body.reasoning : { effort: null, summary: null },
    temperature: 1,
    text: { format: { type: 'text' } },
    tool_choice: (body.tool_choice ?? 'auto') as WireResponse['tool_choice'],
    tools: Array.isArray(body.tools) ? (body.tools as WireResponse['tools']) : [],
    top_p: 1,
    truncation: 'disabled',
    usage: null,
  };
  // A background response is queued first (and says so), then runs.
  const events: StreamEvent[] =
    body.background === true
      ? [
          { type: 'response.created', response: { ...base, status: 'queued' } },
          { type: 'response.queued', response: { ...base, status: 'queued' } },
          { type: 'response.in_progress', response: base },
        ]
      : [
          { type: 'response.created', response: base },
          { type: 'response.in_progress', response: base },
        ];
  const items: ResponseOutputItem[] = [];
  let outputChars = 0;
  let reasoningTokens = 0;

  output.forEach((scripted, output_index) => {
    if (scripted.type === 'message') {
      const item_id = id('msg');
      const { text } = scripted;
      outputChars += text.length;
      const item: ResponseOutputMessage = {
        id: item_id,
        type: 'message',
        role: 'assistant',
        status: 'completed',
        content: [{ type: 'output_text', text, annotations: [], logprobs: [] }],
      };
      events.push(
        {
          type: 'response.output_item.added',
          output_index,
          item: { id: item_id, type: 'message', role: 'assistant', status: 'in_progress', content: [] },
        },
        {
          type: 'response.content_part.added',
          item_id,
          output_index,
          content_index: 0,
          part: { type: 'output_text', text: '', annotations: [], logprobs: [] },
        },
        ...chunks(text).map((delta): StreamEvent => ({
          type: 'response.output_text.delta',
          item_id,
          output_index,
          content_index: 0,
          delta,
          logprobs: [],
        })),
        { type: 'response.output_text.done', item_id, output_index, content_index: 0, text, logprobs: [] },
        {
          type: 'response.content_part.done',
          item_id,
          output_index,
          content_index: 0,
          part: { type: 'output_text', text, annotations: [], logprobs: [] },
        },
        { type: 'response.output_item.done', output_index, item },
      );
      items.push(item);
    } else if (scripted.type === 'function_call') {
      const item_id = id('fc');
      const callNumber = id('call');
      const args =
        typeof scripted.arguments === 'string' ? scripted.arguments : JSON.stringify(scripted.arguments);
      outputChars += args.length + scripted.name.length;
      const item: ResponseFunctionToolCall = {
        type: 'function_call',
        id: item_id,
        call_id: scripted.callId ?? callNumber,
        name: scripted.name,
        arguments: args,
        status: 'completed',
      };
      events.push(
        {
          type: 'response.output_item.added',
          output_index,
          item: { ...item, arguments: '', status: 'in_progress' },
        },
        ...chunks(args).map((delta): StreamEvent => ({
          type: 'response.function_call_arguments.delta',
          item_id,
          output_index,
          delta,
        })),
        {
          type: 'response.function_call_arguments.done',
          item_id,
          output_index,
          name: scripted.name,
          arguments: args,
        },
        { type: 'response.output_item.done', output_index, item },
      );
      items.push(item);
    } else {
      const item_id = id('rs');
      const summary = scripted.summary;
      const itemTokens = Math.max(1, tokensOf(summary ?? ''));
      reasoningTokens += itemTokens;
      const item: ResponseReasoningItem = {
        id: item_id,
        type: 'reasoning',
        summary: summary === undefined ? [] : [{ type: 'summary_text', text: summary }],
        encrypted_content: Buffer.from(`scripted reasoning ${item_id}: ${summary ?? ''}`, 'utf8').toString(
          'base64',
        ),
      };
      events.push({
        type: 'response.output_item.added',
        output_index,
        item: { id: item_id, type: 'reasoning', summary: [] },
      });
      if (summary !== undefined) {
        events.push(
          {
            type: 'response.reasoning_summary_part.added',
            item_id,
            output_index,
            summary_index: 0,
            part: { type: 'summary_text', text: '' },
          },
          ...chunks(summary).map((delta): StreamEvent => ({
            type: 'response.reasoning_summary_text.delta',
            item_id,
            output_index,
            summary_index: 0,
            delta,
          })),
          {
            type: 'response.reasoning_summary_text.done',
            item_id,
            output_index,
            summary_index: 0,
            text: summary,
          },
          {
            type: 'response.reasoning_summary_part.done',
            item_id,
            output_index,
            summary_index: 0,
            part: { type: 'summary_text', text: summary },
          },
        );
      }
      events.push({ type: 'response.output_item.done', output_index, item });
      items.push(item);
    }
  });

  const inputTokens = usage?.inputTokens ?? estimateInputTokens(body.input);
  const reasoning = usage?.reasoningTokens ?? reasoningTokens;
  const outputTokens = usage?.outputTokens ?? Math.ceil(outputChars / 4) + reasoning;
  const response: WireResponse = {
    ...base,
    ...(cutByLimit
      ? { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } }
      : { status: 'completed', completed_at: nowSeconds() }),
    output: items,
    usage: {
      input_tokens: inputTokens,
      input_tokens_details: { cached_tokens: usage?.cachedTokens ?? 0, cache_write_tokens: 0 },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: reasoning },
      total_tokens: inputTokens + outputTokens,
    },
  };
  events.push({ type: cutByLimit ? 'response.incomplete' : 'response.completed', response });
  return {
    response,
    // Each event's sequence number is its place in the full stream.
    events: events.map(
      (event, i) => `event: ${event.type}\ndata: ${JSON.stringify({ ...event, sequence_number: i })}\n\n`,
    ),
    cutLimit: events.length - 1,
  };
}

/** The request's input as a list of items (a string input is one user message). */
export function inputItems(input: unknown): unknown[] {
  if (typeof input === 'string') return [{ type: 'message', role: 'user', content: input }];
  return Array.isArray(input) ? input : [];
}

/**
 * A `/v1/responses/compact` answer: the user messages kept, then one compaction item holding the
 * summary, with usage.
 */
export function compactionResponse(
  body: RequestBody,
  compact: CompactStep | undefined,
  id: (prefix: string) => string,
): unknown {
  const items = inputItems(body.input);
  const users = items.filter(
    (item): item is Record<string, unknown> =>
      isRecord(item) && item.role === 'user' && (item.type === undefined || item.type === 'message'),
  );
  const summary =
    compact?.summary ??
    `Scripted compaction summary: ${items.length} items compacted, ${users.length} user messages kept.`;
  const output: unknown[] = users.map((item) => ({
    id: id('msg'),
    type: 'message',
    role: 'user',
    status: 'completed',
    content: typeof item.content === 'string' ? [{ type: 'input_text', text: item.content }] : item.content,
  }));
  output.push({
    id: id('cmp'),
    type: 'compaction',
    encrypted_content: Buffer.from(summary, 'utf8').toString('base64'),
  });
  const usage = compact?.usage;
  const inputTokens = usage?.inputTokens ?? estimateInputTokens(body.input);
  const outputTokens = usage?.outputTokens ?? tokensOf(summary);
  const response = {
    id: id('resp'),
    object: 'response.compaction',
    created_at: nowSeconds(),
    output,
    usage: {
      input_tokens: inputTokens,
      input_tokens_details: { cached_tokens: usage?.cachedTokens ?? 0, cache_write_tokens: 0 },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: usage?.reasoningTokens ?? 0 },
      total_tokens: inputTokens + outputTokens,
    } satisfies ResponseUsage,
  };
  return response;
}
