/**
 * The Chat Completions fallback (`api = "chat"`), for endpoints that lack the Responses API: the
 * transcript as chat messages, the tools as chat tools, and a streamed reply assembled back into
 * the transcript items the workflow already consumes. The workflow does not know which API ran.
 *
 * What chat cannot carry, and what happens to it:
 * - reasoning items are dropped (chat has no field that takes them back);
 * - compaction items (the encrypted output of the Responses API's remote compaction) are dropped;
 *   with `api = "chat"` compaction is local, and its summary is a plain user message;
 * - developer messages are sent as system messages, which every chat server accepts;
 * - there is no `prompt_cache_key` and no `store: false` (chat completions are not stored unless
 *   asked to be).
 */
import { ApplicationFailure } from '@temporalio/activity';
import type OpenAI from 'openai';
import type {
  ChatCompletionAssistantMessageParam,
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionFunctionTool,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import type { ModelReply } from '../shared/activity-types.js';
import type { TranscriptItem } from '../shared/items.js';
import { messageText } from '../shared/items.js';
import { BASE_INSTRUCTIONS } from '../shared/prompt.js';
import type { ModelSettings, Usage } from '../shared/session-config.js';
import { toolDefinitions } from './model-request.js';

/** The session's tools in the chat shape (the same JSON schemas as the Responses request). */
export function chatTools(): ChatCompletionFunctionTool[] {
  return toolDefinitions().map((tool) => ({
    type: 'function',
    function: {
      name: tool.name,
      ...(tool.description ? { description: tool.description } : {}),
      ...(tool.parameters ? { parameters: tool.parameters } : {}),
    },
  }));
}

/**
 * The transcript as chat messages, after a system message with the instructions. Consecutive
 * function calls (one turn's calls) become one assistant message with `tool_calls`, joined to the
 * assistant text just before them; each output becomes a `tool` message with its call id.
 */
export function chatMessages(
  items: readonly TranscriptItem[],
  instructions: string = BASE_INSTRUCTIONS,
): ChatCompletionMessageParam[] {
  const messages: ChatCompletionMessageParam[] = [{ role: 'system', content: instructions }];
  /** The assistant message that function calls may still join. */
  let open: ChatCompletionAssistantMessageParam | undefined;
  for (const item of items) {
    switch (item.type) {
      case 'message': {
        const text = messageText(item);
        if (item.role === 'assistant') {
          open = { role: 'assistant', content: text };
          messages.push(open);
        } else {
          open = undefined;
          messages.push({ role: item.role === 'developer' ? 'system' : item.role, content: text });
        }
        break;
      }
      case 'function_call': {
        const call: ChatCompletionMessageFunctionToolCall = {
          id: item.call_id,
          type: 'function',
          function: { name: item.name, arguments: item.arguments },
        };
        if (open) {
          open.tool_calls = [...(open.tool_calls ?? []), call];
        } else {
          open = { role: 'assistant', content: null, tool_calls: [call] };
          messages.push(open);
        }
        break;
      }
      case 'function_call_output':
        open = undefined;
        messages.push({ role: 'tool', tool_call_id: item.call_id, content: item.output });
        break;
      default:
        // Reasoning and compaction items: chat has nowhere to put them (see the module comment).
        break;
    }
  }
  return messages;
}

export function buildChatRequest(
  settings: ModelSettings,
  items: readonly TranscriptItem[],
): ChatCompletionCreateParamsStreaming {
  return {
    model: settings.name,
    messages: chatMessages(items),
    tools: chatTools(),
    tool_choice: 'auto',
    parallel_tool_calls: true,
    stream: true,
    stream_options: { include_usage: true },
    ...(settings.reasoningEffort ? { reasoning_effort: settings.reasoningEffort } : {}),
  };
}

export function chatUsageOf(usage: CompletionUsage | undefined | null): Usage {
  return {
    inputTokens: usage?.prompt_tokens ?? 0,
    cachedInputTokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
    outputTokens: usage?.completion_tokens ?? 0,
    reasoningTokens: usage?.completion_tokens_details?.reasoning_tokens ?? 0,
    totalTokens: usage?.total_tokens ?? 0,
  };
}

interface PartialCall {
  id: string;
  name: string;
  arguments: string;
}

/**
 * Assembles a streamed chat completion: text deltas in order, tool calls by their `index` (the
 * id and name come in a call's first delta, its arguments in pieces), the finish reason and the
 * usage chunk that `include_usage` adds at the end. Only the first choice is read.
 */
export class ChatStreamAssembler {
  private text = '';
  private refusal = '';
  private readonly calls = new Map<number, PartialCall>();
  private id: string | undefined;
  private usage: CompletionUsage | undefined;
  /** Set by the chunk that ends the choice (stop, tool_calls, length, content_filter). */
  finishReason: string | undefined;

  /** Adds a chunk; returns the text it carried (for progress estimates). */
  add(chunk: ChatCompletionChunk): string {
    this.id ??= chunk.id;
    if (chunk.usage) this.usage = chunk.usage;
    const choice = chunk.choices?.find((c) => c.index === 0);
    if (!choice) return '';
    let carried = '';
    const { delta } = choice;
    if (delta?.content) {
      this.text += delta.content;
      carried += delta.content;
    }
    if (delta?.refusal) {
      this.refusal += delta.refusal;
      carried += delta.refusal;
    }
    for (const part of delta?.tool_calls ?? []) {
      let call = this.calls.get(part.index);
      if (!call) {
        call = { id: '', name: '', arguments: '' };
        this.calls.set(part.index, call);
      }
      if (part.id) call.id = part.id;
      if (part.function?.name) call.name += part.function.name;
      if (part.function?.arguments) {
        call.arguments += part.function.arguments;
        carried += part.function.arguments;
      }
    }
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    return carried;
  }

  /** The reply as transcript items: the assistant's text (if any), then its calls in index order. */
  reply(): ModelReply {
    const output: TranscriptItem[] = [];
    const text = this.refusal ? `${this.text}[refusal] ${this.refusal}` : this.text;
    if (text) output.push({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });
    const indexes = [...this.calls.keys()].sort((a, b) => a - b);
    for (const index of indexes) {
      const call = this.calls.get(index)!;
      if (!call.name) {
        throw ApplicationFailure.retryable(
          `the model stream sent tool call ${index} without a function name`,
          'ModelBadResponse',
        );
      }
      output.push({
        type: 'function_call',
        // Some servers leave the id out; the transcript needs one to pair the call with its output.
        call_id: call.id || `call_${this.id ?? 'chat'}_${index}`,
        name: call.name,
        arguments: call.arguments || '{}',
      });
    }
    return { output, usage: chatUsageOf(this.usage), responseId: this.id ?? null };
  }
}

export interface ChatStreamObserver {
  /** The response headers arrived: from here on a broken connection is a cut stream. */
  opened(): void;
  /** A chunk arrived, carrying `text` (maybe ''). */
  chunk(text: string): void;
}

/** Streams one chat completion and assembles it; throws what the SDK throws, or a cut stream. */
export async function streamChatCompletion(
  client: OpenAI,
  request: ChatCompletionCreateParamsStreaming,
  signal: AbortSignal,
  observer: ChatStreamObserver,
): Promise<ModelReply> {
  const stream = await client.chat.completions.create(request, { signal });
  observer.opened();
  const assembler = new ChatStreamAssembler();
  for await (const chunk of stream) observer.chunk(assembler.add(chunk));
  // An aborted stream ends the loop without an error.
  if (signal.aborted) throw signal.reason;
  if (assembler.finishReason === undefined) {
    throw ApplicationFailure.retryable(
      'the model stream ended before the completion was finished',
      'ModelStreamCut',
    );
  }
  return assembler.reply();
}
