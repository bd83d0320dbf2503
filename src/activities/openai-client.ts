import { ApplicationFailure } from '@temporalio/activity';
import OpenAI from 'openai';
import { ActivityFailureType } from '../shared/boundary/failure-types.js';

export const modelApis = ['responses', 'chat'] as const;
export type ModelApi = (typeof modelApis)[number];

export interface ModelEndpoint {
  apiKey?: string;
  baseURL?: string;
  /** Which API the endpoint speaks: the Responses API (default) or Chat Completions. */
  api?: ModelApi;
  /** false: never stream (for servers that cannot); default: stream until the endpoint refuses. */
  stream?: boolean;
  /** Cap on each reply's tokens; 0 for none; default: see `outputTokenCap`. */
  maxOutputTokens?: number;
}

/** The cap a local or in-house server gets unless `max_output_tokens` says otherwise. */
export const LOCAL_MAX_OUTPUT_TOKENS = 4096;

/**
 * The output token cap for an endpoint: the setting (0: none); else none for OpenAI and Azure
 * OpenAI (the model's own limit applies, as in Codex), and LOCAL_MAX_OUTPUT_TOKENS for any other
 * endpoint, where a small model may otherwise ramble for thousands of tokens on a CPU.
 */
export function outputTokenCap(endpoint: ModelEndpoint): number | undefined {
  if (endpoint.maxOutputTokens !== undefined) return endpoint.maxOutputTokens || undefined;
  if (!endpoint.baseURL) return undefined;
  let host: string;
  try {
    host = new URL(endpoint.baseURL).hostname;
  } catch {
    return LOCAL_MAX_OUTPUT_TOKENS;
  }
  return host === 'api.openai.com' || host.endsWith('.openai.azure.com')
    ? undefined
    : LOCAL_MAX_OUTPUT_TOKENS;
}

function isModelApi(value: string): value is ModelApi {
  return (modelApis as readonly string[]).includes(value);
}

/**
 * The endpoint from the worker's environment: OPENAI_API_KEY, OPENAI_BASE_URL, RATCHET_API,
 * RATCHET_STREAM, RATCHET_MAX_OUTPUT_TOKENS.
 */
export function endpointFromEnv(env: NodeJS.ProcessEnv = process.env): ModelEndpoint {
  const api = env.RATCHET_API?.trim() || undefined;
  if (api !== undefined && !isModelApi(api)) {
    throw new Error(`RATCHET_API: expected "responses" or "chat", got ${JSON.stringify(api)}`);
  }
  const stream = env.RATCHET_STREAM?.trim().toLowerCase() || undefined;
  if (stream !== undefined && !['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'].includes(stream)) {
    throw new Error(`RATCHET_STREAM: expected true or false, got ${JSON.stringify(stream)}`);
  }
  const cap = env.RATCHET_MAX_OUTPUT_TOKENS?.trim() || undefined;
  if (cap !== undefined && !/^\d+$/.test(cap)) {
    throw new Error(
      `RATCHET_MAX_OUTPUT_TOKENS: expected a whole number (0 for none), got ${JSON.stringify(cap)}`,
    );
  }
  return {
    apiKey: env.OPENAI_API_KEY || undefined,
    baseURL: env.OPENAI_BASE_URL || undefined,
    ...(api ? { api } : {}),
    ...(stream !== undefined ? { stream: ['true', '1', 'yes', 'on'].includes(stream) } : {}),
    ...(cap !== undefined ? { maxOutputTokens: Number(cap) } : {}),
  };
}

/**
 * A lazily created client. Temporal owns retries (they show in the UI and survive restarts), so
 * the client's own are off. A local endpoint (Ollama, vLLM) needs no key.
 */
export function openaiClientFactory(endpoint: ModelEndpoint): () => OpenAI {
  let client: OpenAI | undefined;
  return () => {
    if (client) return client;
    const apiKey = endpoint.apiKey ?? (endpoint.baseURL ? 'unused' : undefined);
    if (!apiKey) {
      throw ApplicationFailure.nonRetryable(
        'the worker has no model configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for another endpoint) where the worker runs',
        ActivityFailureType.ModelNotConfigured,
      );
    }
    client = new OpenAI({ apiKey, baseURL: endpoint.baseURL, maxRetries: 0, timeout: 30 * 60_000 });
    return client;
  };
}
