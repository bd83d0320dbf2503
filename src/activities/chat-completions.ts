/**
 * The Chat Completions fallback (`api = "chat"`), for endpoints that lack the Responses API: the
 * transcript as chat messages, the tools as chat tools, and a streamed reply assembled back into
 * the transcript items the workflow already consumes. The workflow does not know which API ran.
 *
 * What chat cannot carry, and what happens to it:
 * - reasoning items are dropped (chat has no field that takes them back);
 * - compaction items (the encrypted output of the Responses API's remote compaction) are dropped;
 *   with `api = "chat"` compaction is local, and its summary is a plain user message;
 * - the instructions and the developer messages before the first user message are one system
 *   message (many chat templates take one system message, and only first); a developer message
 *   later on is sent as a user message, since strict templates refuse a system message there;
 * - there is no `prompt_cache_key` and no `store: false` (chat completions are not stored unless
 *   asked to be).
 */
import { ApplicationFailure } from '@temporalio/activity';
import type OpenAI from 'openai';
import type {
  ChatCompletion,
  ChatCompletionAssistantMessageParam,
  ChatCompletionChunk,
  ChatCompletionCreateParamsBase,
  ChatCompletionFunctionTool,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import type { ModelCallSettings, ModelReply } from '../shared/boundary/activity-types.js';
import type { TranscriptItem } from '../shared/prompt/items.js';
import { messageText } from '../shared/prompt/items.js';
import { BASE_INSTRUCTIONS } from '../shared/prompt/instructions.js';
import type { Usage } from '../shared/api/session-config.js';
import { sendableArguments, toolDefinitions } from './model-request.js';
import { StreamRefused, isAnswer } from './stream-support.js';

/** The session's tools in the chat shape (the same JSON schemas as the Responses request). */
export function chatTools(agents = false): ChatCompletionFunctionTool[] {
  return toolDefinitions(agents).map((tool) => ({
    type: 'function',
    function: {
      name: tool.name,
      ...(tool.description ? { description: tool.description } : {}),
      ...(tool.parameters ? { parameters: tool.parameters } : {}),
    },
  }));
}

/**
 * The transcript as chat messages, in the shapes strict servers (llama.cpp, llama-cpp-python,
 * vLLM, Ollama, LM Studio) accept:
 * - one system message first: the instructions and any developer messages before the first other
 *   message; a later developer message becomes a user message;
 * - consecutive user messages joined into one (templates that want user and assistant turns to
 *   alternate refuse two in a row);
 * - consecutive function calls (one turn's calls) are one assistant message with `tool_calls`,
 *   joined to the assistant text just before them; its `content` is that text or '' — never null,
 *   which pydantic-validated servers refuse;
 * - a call's arguments are always a JSON object's text (see `sendableArguments`), since servers
 *   that render tool calls through a chat template parse them;
 * - each output is a `tool` message with its call id and non-empty content.
 */
export function chatMessages(
  items: readonly TranscriptItem[],
  instructions: string = BASE_INSTRUCTIONS,
): ChatCompletionMessageParam[] {
  const system: { role: 'system'; content: string } = { role: 'system', content: instructions };
  const messages: ChatCompletionMessageParam[] = [system];
  /** The assistant message that function calls may still join. */
  let open: ChatCompletionAssistantMessageParam | undefined;
  const pushUser = (text: string) => {
    open = undefined;
    const last = messages.at(-1);
    if (last && last.role === 'user' && typeof last.content === 'string' && messages.length > 1) {
      last.content = `${last.content}\n\n${text}`;
    } else messages.push({ role: 'user', content: text });
  };
  for (const item of items) {
    switch (item.type) {
      case 'message': {
        const text = messageText(item);
        if (item.role === 'assistant') {
          open = { role: 'assistant', content: text };
          messages.push(open);
        } else if (item.role === 'developer' || item.role === 'system') {
          if (messages.length === 1) system.content = `${system.content}\n\n${text}`;
          else pushUser(text);
        } else pushUser(text);
        break;
      }
      case 'function_call': {
        const call: ChatCompletionMessageFunctionToolCall = {
          id: item.call_id,
          type: 'function',
          function: { name: item.name, arguments: sendableArguments(item.arguments) },
        };
        if (open) {
          open.tool_calls = [...(open.tool_calls ?? []), call];
        } else {
          open = { role: 'assistant', content: '', tool_calls: [call] };
          messages.push(open);
        }
        break;
      }
      case 'function_call_output':
        open = undefined;
        messages.push({ role: 'tool', tool_call_id: item.call_id, content: item.output || '(no output)' });
        break;
      default:
        // Reasoning and compaction items: chat has nowhere to put them (see the module comment).
        break;
    }
  }
  return messages;
}

export interface ChatRequestOptions {
  /** Stream the reply (default); false asks for the whole reply at once. */
  stream: boolean;
  /** Cap on the reply's tokens (`max_tokens`); none when undefined. */
  maxOutputTokens?: number;
  /** Offer the multi-agent tools too. */
  agents?: boolean;
}

export function buildChatRequest(
  settings: ModelCallSettings,
  items: readonly TranscriptItem[],
  options: ChatRequestOptions = { stream: true },
): ChatCompletionCreateParamsBase {
  return {
    model: settings.name,
    messages: chatMessages(items),
    tools: chatTools(options.agents === true),
    tool_choice: 'auto',
    parallel_tool_calls: true,
    ...(options.stream ? { stream: true, stream_options: { include_usage: true } } : { stream: false }),
    ...(options.maxOutputTokens !== undefined ? { max_tokens: options.maxOutputTokens } : {}),
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
  reply(): AssembledReply {
    const text = this.refusal ? `${this.text}[refusal] ${this.refusal}` : this.text;
    const indexes = [...this.calls.keys()].sort((a, b) => a - b);
    return chatReply(
      this.id,
      text,
      indexes.map((index) => this.calls.get(index)!),
      this.usage,
      this.finishReason,
    );
  }
}

/** A reply, and whether the output token cap cut it (`finish_reason: "length"`). */
export interface AssembledReply {
  reply: ModelReply;
  cut: boolean;
}

function chatReply(
  id: string | undefined,
  text: string,
  calls: readonly PartialCall[],
  usage: CompletionUsage | undefined | null,
  finishReason: string | undefined | null,
): AssembledReply {
  const output: TranscriptItem[] = [];
  if (text) output.push({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });
  calls.forEach((call, index) => {
    if (!call.name) {
      throw ApplicationFailure.retryable(
        `the model sent tool call ${index} without a function name`,
        'ModelBadResponse',
      );
    }
    output.push({
      type: 'function_call',
      // Some servers leave the id out; model.ts also makes ids unique within the transcript.
      call_id: call.id || `call_${id ?? 'chat'}_${index}`,
      name: call.name,
      arguments: call.arguments || '{}',
    });
  });
  return {
    reply: { output, usage: chatUsageOf(usage), responseId: id ?? null },
    cut: finishReason === 'length',
  };
}

/** A whole (not streamed) chat completion as a reply. */
export function chatCompletionReply(completion: ChatCompletion): AssembledReply {
  const choice = completion.choices?.find((c) => c.index === 0) ?? completion.choices?.[0];
  if (!choice) {
    throw ApplicationFailure.retryable('the model answered without a choice', 'ModelEmptyResponse');
  }
  const { message } = choice;
  const text = message.refusal
    ? `${message.content ?? ''}[refusal] ${message.refusal}`
    : (message.content ?? '');
  const calls: PartialCall[] = (message.tool_calls ?? []).flatMap((call) =>
    call.type === 'function'
      ? [{ id: call.id ?? '', name: call.function?.name ?? '', arguments: call.function?.arguments ?? '' }]
      : [],
  );
  return chatReply(completion.id, text, calls, completion.usage, choice.finish_reason);
}

export interface ChatStreamObserver {
  /** The response headers arrived: from here on a broken connection is a cut stream. */
  opened(): void;
  /** A chunk arrived, carrying `text` (maybe ''). */
  chunk(text: string): void;
}

/**
 * Streams one chat completion and assembles it; throws what the SDK throws, a cut stream, or
 * StreamRefused when the stream ends or breaks before its first chunk (a server that cannot
 * stream this request: llama-cpp-python with tools sends its headers, then nothing).
 */
export async function streamChatCompletion(
  client: OpenAI,
  request: ChatCompletionCreateParamsBase,
  signal: AbortSignal,
  observer: ChatStreamObserver,
): Promise<AssembledReply> {
  const stream = await client.chat.completions.create({ ...request, stream: true }, { signal });
  observer.opened();
  const assembler = new ChatStreamAssembler();
  let chunks = 0;
  try {
    for await (const chunk of stream) {
      chunks += 1;
      observer.chunk(assembler.add(chunk));
    }
  } catch (err) {
    if (chunks === 0 && !signal.aborted && !isAnswer(err)) throw new StreamRefused(err);
    throw err;
  }
  // An aborted stream ends the loop without an error.
  if (signal.aborted) throw signal.reason;
  if (chunks === 0) throw new StreamRefused();
  if (assembler.finishReason === undefined) {
    throw ApplicationFailure.retryable(
      'the model stream ended before the completion was finished',
      'ModelStreamCut',
    );
  }
  return assembler.reply();
}

/** One chat completion without streaming: the whole reply in one response. */
export async function completeChat(
  client: OpenAI,
  request: ChatCompletionCreateParamsBase,
  signal: AbortSignal,
): Promise<AssembledReply> {
  const { stream: _stream, stream_options: _options, ...rest } = request;
  const completion = await client.chat.completions.create({ ...rest, stream: false }, { signal });
  return chatCompletionReply(completion);
}
