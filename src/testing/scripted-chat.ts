/**
 * The scripted model's Chat Completions replies (`POST /v1/chat/completions`), built from the same
 * script steps as Responses replies. A stream is `data: <chunk>` events: the assistant role, the
 * text in pieces, each tool call (id and name first, then its arguments in pieces, by `index`),
 * a chunk with the finish reason, the usage chunk when `stream_options.include_usage` asks for it,
 * and `data: [DONE]`. Messages of one reply are joined (chat has one content per reply); reasoning
 * items have no chat form and are left out.
 */
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionMessageFunctionToolCall,
} from 'openai/resources/chat/completions/completions';
import type { CompletionUsage } from 'openai/resources/completions';
import type { Plan } from './scripted-responses.js';
import type { ScriptedOutput, ScriptedUsage } from './scripted-script.js';
import { chunks, estimateInputTokens, nowSeconds, tokensOf } from './scripted-text.js';

type ChunkChoice = ChatCompletionChunk.Choice;

export function chatCompletionPlan(
  body: Record<string, unknown>,
  output: readonly ScriptedOutput[],
  usage: ScriptedUsage | undefined,
  nextId: (prefix: string) => string,
  cutByLimit = false,
): Plan {
  const id = nextId('chatcmpl');
  const created = nowSeconds();
  const model = typeof body.model === 'string' ? body.model : 'scripted-model';
  const chunk = (choices: ChunkChoice[], extra: Partial<ChatCompletionChunk> = {}): ChatCompletionChunk => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model,
    choices,
    ...extra,
  });
  const delta = (d: ChunkChoice['delta']): ChunkChoice => ({ index: 0, delta: d, finish_reason: null });

  const chunksOut: ChatCompletionChunk[] = [chunk([delta({ role: 'assistant', content: '' })])];
  let text = '';
  const calls: ChatCompletionMessageFunctionToolCall[] = [];
  let reasoningTokens = 0;
  for (const scripted of output) {
    if (scripted.type === 'message') {
      text += scripted.text;
      for (const piece of chunks(scripted.text)) chunksOut.push(chunk([delta({ content: piece })]));
    } else if (scripted.type === 'function_call') {
      const index = calls.length;
      const callNumber = nextId('call');
      const args =
        typeof scripted.arguments === 'string' ? scripted.arguments : JSON.stringify(scripted.arguments);
      const call: ChatCompletionMessageFunctionToolCall = {
        id: scripted.callId ?? callNumber,
        type: 'function',
        function: { name: scripted.name, arguments: args },
      };
      calls.push(call);
      chunksOut.push(
        chunk([
          delta({
            tool_calls: [
              { index, id: call.id, type: 'function', function: { name: scripted.name, arguments: '' } },
            ],
          }),
        ]),
      );
      for (const piece of chunks(args)) {
        chunksOut.push(chunk([delta({ tool_calls: [{ index, function: { arguments: piece } }] })]));
      }
    } else {
      reasoningTokens += Math.max(1, tokensOf(scripted.summary ?? ''));
    }
  }
  const finishReason = cutByLimit ? 'length' : calls.length > 0 ? 'tool_calls' : 'stop';
  const cutLimit = chunksOut.length;
  chunksOut.push(chunk([{ index: 0, delta: {}, finish_reason: finishReason }]));

  const outputChars =
    text.length + calls.reduce((n, c) => n + c.function.name.length + c.function.arguments.length, 0);
  const inputTokens = usage?.inputTokens ?? estimateInputTokens(body.messages);
  const reasoning = usage?.reasoningTokens ?? reasoningTokens;
  const outputTokens = usage?.outputTokens ?? Math.ceil(outputChars / 4) + reasoning;
  const completionUsage: CompletionUsage = {
    prompt_tokens: inputTokens,
    completion_tokens: outputTokens,
    total_tokens: inputTokens + outputTokens,
    prompt_tokens_details: { cached_tokens: usage?.cachedTokens ?? 0 },
    completion_tokens_details: { reasoning_tokens: reasoning },
  };
  const streamOptions = body.stream_options as { include_usage?: unknown } | undefined;
  if (streamOptions?.include_usage === true) chunksOut.push(chunk([], { usage: completionUsage }));

  const response: ChatCompletion = {
    id,
    object: 'chat.completion',
    created,
    model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text || null,
          refusal: null,
          ...(calls.length > 0 ? { tool_calls: calls } : {}),
        },
        finish_reason: finishReason,
        logprobs: null,
      },
    ],
    usage: completionUsage,
  };
  return {
    response,
    events: [...chunksOut.map((c) => `data: ${JSON.stringify(c)}\n\n`), 'data: [DONE]\n\n'],
    cutLimit,
  };
}

/**
 * What a pydantic-validated chat server (llama-cpp-python's) refuses in a request's messages: an
 * assistant `content` that is not a string (null included), a tool message without a string
 * `tool_call_id`, a tool call whose arguments are not a string. One line per problem, as pydantic
 * reports them.
 */
export function strictChatProblems(body: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const messages = Array.isArray(body.messages) ? (body.messages as Array<Record<string, unknown>>) : [];
  messages.forEach((message, i) => {
    if ('content' in message && message.role === 'assistant' && typeof message.content !== 'string') {
      problems.push(
        `messages.${i}.content\n  Input should be a valid string [type=string_type, input_value=${JSON.stringify(message.content)}]`,
      );
    }
    if (message.role === 'tool' && typeof message.tool_call_id !== 'string') {
      problems.push(`messages.${i}.tool_call_id\n  Field required [type=missing]`);
    }
    const calls = Array.isArray(message.tool_calls)
      ? (message.tool_calls as Array<Record<string, unknown>>)
      : [];
    calls.forEach((call, j) => {
      const fn = call.function as Record<string, unknown> | undefined;
      if (typeof call.id !== 'string')
        problems.push(`messages.${i}.tool_calls.${j}.id\n  Field required [type=missing]`);
      if (typeof fn?.arguments !== 'string') {
        problems.push(
          `messages.${i}.tool_calls.${j}.function.arguments\n  Input should be a valid string [type=string_type]`,
        );
      }
    });
  });
  return problems;
}
