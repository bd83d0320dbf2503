import { ApplicationFailure } from '@temporalio/activity';
import OpenAI from 'openai';

export const modelApis = ['responses', 'chat'] as const;
export type ModelApi = (typeof modelApis)[number];

export interface ModelEndpoint {
  apiKey?: string;
  baseURL?: string;
  /** Which API the endpoint speaks: the Responses API (default) or Chat Completions. */
  api?: ModelApi;
}

function isModelApi(value: string): value is ModelApi {
  return (modelApis as readonly string[]).includes(value);
}

/** The endpoint from the worker's environment: OPENAI_API_KEY, OPENAI_BASE_URL, RATCHET_API. */
export function endpointFromEnv(env: NodeJS.ProcessEnv = process.env): ModelEndpoint {
  const api = env.RATCHET_API?.trim() || undefined;
  if (api !== undefined && !isModelApi(api)) {
    throw new Error(`RATCHET_API: expected "responses" or "chat", got ${JSON.stringify(api)}`);
  }
  return {
    apiKey: env.OPENAI_API_KEY || undefined,
    baseURL: env.OPENAI_BASE_URL || undefined,
    ...(api ? { api } : {}),
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
        'ModelNotConfigured',
      );
    }
    client = new OpenAI({ apiKey, baseURL: endpoint.baseURL, maxRetries: 0, timeout: 30 * 60_000 });
    return client;
  };
}
