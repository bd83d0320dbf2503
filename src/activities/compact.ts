/**
 * The compaction activity: replaces a long transcript with a short one that keeps the session's
 * fixed context, the user's own messages and a summary of the rest. Remote compaction uses the
 * endpoint's `responses.compact`; local compaction asks the model for a handover summary (the
 * fallback for endpoints without it, and the only way with `api = "chat"`, whose summary call
 * goes through Chat Completions).
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import OpenAI from 'openai';
import type { CompactInput, CompactResult } from '../shared/boundary/activity-types.js';
import type { TranscriptItem } from '../shared/prompt/items.js';
import { messageText, userMessage } from '../shared/prompt/items.js';
import { BASE_INSTRUCTIONS, COMPACTION_PROMPT, SUMMARY_PREFIX } from '../shared/prompt/instructions.js';
import type { Usage } from '../shared/api/session-config.js';
import { PAYLOAD_BUDGET_BYTES, jsonBytes } from '../shared/util/bytes.js';
import { chatMessages, chatTools, chatUsageOf } from './chat-completions.js';
import { keepHeartbeating } from './heartbeat.js';
import { classifyModelError } from './model-errors.js';
import { requestItems, toolDefinitions, usageOf } from './model-request.js';
import type { ModelApi } from './openai-client.js';
import type { TranscriptSource } from './transcript-source.js';
import { ActivityFailureType } from '../shared/boundary/failure-types.js';

export interface CompactDeps {
  openai: () => OpenAI;
  transcript: TranscriptSource;
  /** Which API the endpoint speaks; Chat Completions has no remote compaction. */
  api?: ModelApi;
}

interface Summary {
  text: string;
  usage: Usage;
}

/** One non-streamed summary request, through the endpoint's API; no tool may be called. */
async function requestSummary(
  client: OpenAI,
  api: ModelApi,
  input: CompactInput,
  items: readonly TranscriptItem[],
  signal: AbortSignal,
): Promise<Summary> {
  if (api === 'chat') {
    const completion = await client.chat.completions.create(
      {
        model: input.model.name,
        messages: chatMessages(items),
        tools: chatTools(),
        tool_choice: 'none',
      },
      { signal },
    );
    return {
      text: (completion.choices[0]?.message.content ?? '').trim(),
      usage: chatUsageOf(completion.usage),
    };
  }
  const response = await client.responses.create(
    {
      model: input.model.name,
      instructions: BASE_INSTRUCTIONS,
      input: requestItems(items),
      // The same tools as every request keep the cached prefix; none may be called.
      tools: toolDefinitions(),
      tool_choice: 'none',
      store: false,
      prompt_cache_key: input.sessionId,
    },
    { signal },
  );
  return { text: response.output_text.trim(), usage: usageOf(response.usage) };
}

/** Characters of the user's own messages kept verbatim by local compaction (beyond the task). */
const USER_MESSAGES_BUDGET = 24_000;
const SUMMARY_MAX_CHARS = 64_000;

/** Items of a compacted response as transcript items (user messages keep their role). */
function compactedItems(output: readonly unknown[]): TranscriptItem[] {
  const items: TranscriptItem[] = [];
  for (const raw of output) {
    const item = raw as { type?: string; role?: string; content?: Array<{ type?: string; text?: string }> };
    if (item.type === 'message' && Array.isArray(item.content)) {
      const role =
        item.role === 'assistant' || item.role === 'developer' || item.role === 'system' ? item.role : 'user';
      const text = item.content.map((part) => part.text ?? '').join('');
      const partType = role === 'assistant' ? 'output_text' : 'input_text';
      items.push({ type: 'message', role, content: [{ type: partType, text }] });
    } else if (item.type === 'compaction') {
      items.push(raw as TranscriptItem);
    }
  }
  return items;
}

/** Drops the older half of the history, cutting where an item can start a request. */
function dropOlderHalf(history: TranscriptItem[]): TranscriptItem[] {
  let cut = Math.floor(history.length / 2);
  while (cut < history.length && history[cut]!.type !== 'message') cut += 1;
  return history.slice(cut);
}

/** The task (first user message) and the most recent user messages within the budget, in order. */
function userMessagesToKeep(history: readonly TranscriptItem[]): TranscriptItem[] {
  const users = history.filter((item) => item.type === 'message' && item.role === 'user');
  if (users.length === 0) return [];
  const [task, ...rest] = users;
  const kept: TranscriptItem[] = [];
  let budget = USER_MESSAGES_BUDGET;
  for (let i = rest.length - 1; i >= 0; i--) {
    const size = messageText(rest[i]!).length;
    // A message over what is left is skipped; earlier, shorter ones may still fit.
    if (size > budget) continue;
    budget -= size;
    kept.unshift(rest[i]!);
  }
  return [task!, ...kept];
}

function isUnsupported(err: unknown): boolean {
  return (
    err instanceof OpenAI.NotFoundError ||
    (err instanceof OpenAI.APIError && (err.status === 405 || err.status === 501))
  );
}

/**
 * A compacted transcript that would not fit one payload is refused once (never retried): the
 * session comes to rest with the message instead of paying for the same compaction again.
 */
function checkSize(result: CompactResult): CompactResult {
  const bytes = jsonBytes(result);
  if (bytes > PAYLOAD_BUDGET_BYTES) {
    throw ApplicationFailure.nonRetryable(
      `the compacted transcript is ${bytes} bytes, over the ${PAYLOAD_BUDGET_BYTES}-byte limit of one step`,
      'CompactionTooLarge',
    );
  }
  return result;
}

export function createCompactActivity(deps: CompactDeps) {
  return async (input: CompactInput): Promise<CompactResult> =>
    checkSize(await compactTranscript(deps, input));
}

async function compactTranscript(deps: CompactDeps, input: CompactInput): Promise<CompactResult> {
  const context = Context.current();
  const client = deps.openai();
  const endpoint = client.baseURL;
  const signal = context.cancellationSignal;
  const stopHeartbeat = keepHeartbeating(context, () => ({ phase: 'compaction' }));
  try {
    const entries = await deps.transcript.entries(input, input.upTo);
    const items = entries.map((entry) => entry.item);
    const api = deps.api ?? 'responses';
    if (api === 'chat' && input.model.compaction === 'remote') {
      throw ApplicationFailure.nonRetryable(
        'remote compaction needs the Responses API; with api = "chat" the session compacts locally (compaction "auto" or "local")',
        'CompactionUnsupported',
      );
    }

    if (api === 'responses' && input.model.compaction !== 'local') {
      try {
        const response = await client.responses.compact(
          {
            model: input.model.name,
            input: requestItems(items),
            instructions: BASE_INSTRUCTIONS,
            prompt_cache_key: input.sessionId,
          },
          { signal },
        );
        const compacted = compactedItems(response.output);
        if (compacted.length === 0) {
          throw ApplicationFailure.retryable('remote compaction returned no items', 'CompactionEmpty');
        }
        return { items: compacted, method: 'remote', usage: usageOf(response.usage) };
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        if (input.model.compaction === 'remote' || !isUnsupported(err))
          throw classifyModelError(err, endpoint);
      }
    }

    const fixed = items.slice(0, input.contextEntries);
    let history = items.slice(input.contextEntries);
    let usage: Usage | undefined;
    let summary = '';
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await requestSummary(
          client,
          api,
          input,
          [...fixed, ...history, userMessage(COMPACTION_PROMPT)],
          signal,
        );
        summary = result.text;
        usage = result.usage;
        break;
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        const failure = classifyModelError(err, endpoint);
        if (failure.type === ActivityFailureType.ContextLengthExceeded && history.length > 2 && attempt < 8) {
          history = dropOlderHalf(history);
          continue;
        }
        throw failure;
      }
    }
    if (!summary) throw ApplicationFailure.retryable('the model wrote an empty summary', 'CompactionEmpty');
    if (summary.length > SUMMARY_MAX_CHARS) summary = `${summary.slice(0, SUMMARY_MAX_CHARS)}\n[summary cut]`;
    return {
      items: [
        ...fixed,
        ...userMessagesToKeep(items.slice(input.contextEntries)),
        userMessage(SUMMARY_PREFIX + summary),
      ],
      method: 'local',
      usage,
    };
  } finally {
    stopHeartbeat();
  }
}
