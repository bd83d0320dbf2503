/**
 * The Responses API request a session sends, and the conversion of the model's output back into
 * transcript items. Instructions and tools are fixed, so consecutive requests share their prefix.
 */
import type OpenAI from 'openai';
import type { ResponseCreateParamsBase, ResponseInputItem } from 'openai/resources/responses/responses';
import { z } from 'zod';
import type { TranscriptItem } from '../shared/prompt/items.js';
import { BASE_INSTRUCTIONS } from '../shared/prompt/instructions.js';
import type { Usage } from '../shared/api/session-config.js';
import type { ModelCallSettings } from '../shared/boundary/activity-types.js';
import { agentToolSpecs } from '../shared/tools/agent-tools.js';
import type { ToolSpec } from '../shared/tools/specs.js';
import { toolSpecs } from '../shared/tools/specs.js';

type FunctionTool = OpenAI.Responses.FunctionTool;

let cachedTools: FunctionTool[] | undefined;
let cachedAgentTools: FunctionTool[] | undefined;

function definition(spec: ToolSpec): FunctionTool {
  const { $schema: _schema, ...parameters } = z.toJSONSchema(spec.parameters, { io: 'input' }) as Record<
    string,
    unknown
  >;
  return { type: 'function', name: spec.name, description: spec.description, parameters, strict: false };
}

/**
 * The tool list, as the Responses API takes it (JSON schemas generated from the zod specs); with
 * `agents`, the multi-agent tools follow the others (a session that may fan out).
 */
export function toolDefinitions(agents = false): FunctionTool[] {
  cachedTools ??= Object.values(toolSpecs).map(definition);
  if (!agents) return cachedTools;
  cachedAgentTools ??= [...cachedTools, ...Object.values(agentToolSpecs).map(definition)];
  return cachedAgentTools;
}

/**
 * A call's arguments as they are sent back: the model's own text when it is a JSON object, else
 * that text wrapped in one (`{"invalid_arguments": "…"}`). Servers that render past calls through
 * a chat template (llama.cpp's, for both APIs) parse the arguments and refuse the whole request
 * when they are not JSON, and a small model does send such calls; the call's output already told
 * it that the arguments were invalid.
 */
export function sendableArguments(text: string): string {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return text;
  } catch {
    // not JSON
  }
  return JSON.stringify({ invalid_arguments: text });
}

/**
 * Items as they are sent back. Output-item ids and statuses are dropped: with `store: false` the
 * server keeps nothing they could refer to. Reasoning items travel whole (their encrypted content).
 */
export function requestItems(items: readonly TranscriptItem[]): ResponseInputItem[] {
  return items.map((item) => {
    if (item.type === 'message') {
      const { id: _id, status: _status, ...rest } = item;
      return rest as ResponseInputItem;
    }
    if (item.type === 'function_call') {
      const { id: _id, status: _status, ...rest } = item;
      return { ...rest, arguments: sendableArguments(rest.arguments) };
    }
    return item as unknown as ResponseInputItem;
  });
}

export function buildRequest(
  settings: ModelCallSettings,
  sessionId: string,
  items: readonly TranscriptItem[],
  maxOutputTokens?: number,
  agents = false,
): ResponseCreateParamsBase {
  return {
    model: settings.name,
    instructions: BASE_INSTRUCTIONS,
    input: requestItems(items),
    tools: toolDefinitions(agents),
    tool_choice: 'auto',
    parallel_tool_calls: true,
    // With provider state the response is stored, for the next request's previous_response_id.
    store: settings.providerState === true,
    prompt_cache_key: sessionId,
    ...(maxOutputTokens !== undefined ? { max_output_tokens: maxOutputTokens } : {}),
    ...(settings.reasoningEffort
      ? {
          reasoning: { effort: settings.reasoningEffort, summary: 'auto' },
          include: ['reasoning.encrypted_content'],
        }
      : {}),
  };
}

/** The model's output items as transcript items; items the session does not use are dropped. */
export function outputItems(output: readonly OpenAI.Responses.ResponseOutputItem[]): TranscriptItem[] {
  const items: TranscriptItem[] = [];
  for (const item of output) {
    if (item.type === 'message') {
      const text = item.content
        .map((part) => (part.type === 'output_text' ? part.text : `[refusal] ${part.refusal}`))
        .join('');
      items.push({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });
    } else if (item.type === 'function_call') {
      items.push({
        type: 'function_call',
        call_id: item.call_id,
        name: item.name,
        arguments: item.arguments,
      });
    } else if (item.type === 'reasoning') {
      const { status: _status, ...reasoning } = item;
      items.push({ ...reasoning, type: 'reasoning' });
    } else if (item.type === 'compaction') {
      items.push({ ...item, type: 'compaction' });
    }
  }
  return items;
}

export function usageOf(usage: OpenAI.Responses.ResponseUsage | undefined | null): Usage {
  return {
    inputTokens: usage?.input_tokens ?? 0,
    cachedInputTokens: usage?.input_tokens_details?.cached_tokens ?? 0,
    outputTokens: usage?.output_tokens ?? 0,
    reasoningTokens: usage?.output_tokens_details?.reasoning_tokens ?? 0,
    totalTokens: usage?.total_tokens ?? 0,
  };
}
