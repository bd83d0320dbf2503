/**
 * Model errors classified once, at the activity edge (DESIGN.md §7): whose fault it is decides
 * whether Temporal retries. 429/408/409/5xx and broken streams retry (honouring retry-after);
 * 400/401/403/404 do not; a context-length error is its own type, so the session compacts. A
 * request the endpoint cannot take as sent (a validation error) is not retried whatever its
 * status: local servers answer 500 or 422 for a body their schema refuses, and sending the same
 * body ten times changes nothing.
 */
import { ApplicationFailure } from '@temporalio/activity';
import OpenAI from 'openai';
import { ActivityFailureType } from '../shared/boundary/failure-types.js';

/** Delay the server asked for, from retry-after-ms or retry-after (seconds or an HTTP date). */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const value = headers.get('retry-after');
  if (value === null) return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.ceil(Number(value) * 1000);
  // Only an HTTP date counts: Date.parse accepts junk such as "-5" as a date.
  if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(value.trim()))
    return undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The parts of the SDK's APIError this module reads (its generic parameters are `any`). */
interface ApiErrorFields {
  status: number | undefined;
  headers: Headers | undefined;
  code: string | null | undefined;
  message: string;
}

/**
 * Words servers use when the request's shape is wrong: pydantic/FastAPI (llama-cpp-python, vLLM:
 * "7 validation errors for …", "Field required", "Input should be …"), JSON-schema validators,
 * llama.cpp's template errors on tool calls, and OpenAI's "unsupported parameter".
 */
const VALIDATION_WORDS =
  /\bvalidation errors?\b|field required|input should be|extra inputs are not permitted|is not valid under|failed to parse (the )?(tool call )?arguments|unsupported parameter|unrecognized request argument|unknown (parameter|field)|invalid (type|value) for/i;

function isValidationError(err: ApiErrorFields): boolean {
  if (err.status === 422) return true;
  return VALIDATION_WORDS.test(err.message) && !isContextLengthError(err);
}

function isContextLengthError(err: ApiErrorFields): boolean {
  if (err.code === 'context_length_exceeded') return true;
  return /context (length|window)|maximum context|too many tokens|prompt is too long/i.test(err.message);
}

function retryable(message: string, type: string, cause: unknown, delayMs?: number): ApplicationFailure {
  return ApplicationFailure.create({
    message,
    type,
    nonRetryable: false,
    cause: cause instanceof Error ? cause : undefined,
    ...(delayMs !== undefined ? { nextRetryDelay: delayMs } : {}),
  });
}

function fatal(message: string, type: string, cause: unknown): ApplicationFailure {
  return ApplicationFailure.create({
    message,
    type,
    nonRetryable: true,
    cause: cause instanceof Error ? cause : undefined,
  });
}

/** A model call (or compaction call) failure as an ApplicationFailure Temporal knows how to retry. */
export function classifyModelError(err: unknown, endpoint: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof OpenAI.APIConnectionTimeoutError) {
    return retryable(`the model endpoint ${endpoint} timed out`, 'ModelUnavailable', err);
  }
  if (err instanceof OpenAI.APIConnectionError) {
    return retryable(`cannot reach the model endpoint ${endpoint}: ${err.message}`, 'ModelUnavailable', err);
  }
  if (err instanceof OpenAI.APIError) {
    const fields: ApiErrorFields = {
      status: err.status as number | undefined,
      headers: err.headers as Headers | undefined,
      code: err.code,
      message: err.message,
    };
    const { status, headers } = fields;
    // The SDK's message starts with the status ("500 the GPU …"); the messages below name it once.
    const detail =
      status !== undefined ? fields.message.replace(new RegExp(`^${status} `), '') : fields.message;
    if (status === undefined) {
      // An error event inside a stream: the request was accepted, the generation failed.
      return retryable(`the model stream failed: ${detail}`, 'ModelStreamFailed', err);
    }
    if (status === 429) {
      if (fields.code === 'insufficient_quota') {
        return fatal(
          `the model endpoint refused the request: quota exceeded (429): ${detail}`,
          'ModelQuotaExceeded',
          err,
        );
      }
      return retryable(
        `rate limited by the model endpoint (429)`,
        'ModelRateLimited',
        err,
        retryAfterMs(headers),
      );
    }
    if (status !== 429 && isValidationError(fields)) {
      return fatal(
        `the model endpoint ${endpoint} cannot take the request as sent (${status}): ${detail} — not retried. ` +
          'Check that the endpoint serves the configured API (api = "responses" or "chat"), the model name, ' +
          'and that the server accepts tools (for llama-cpp-python, a tool-calling chat format such as ' +
          '--chat_format chatml-function-calling); max_output_tokens and stream = false are settings too',
        'ModelBadRequest',
        err,
      );
    }
    if (status === 408 || status === 409 || status >= 500) {
      return retryable(
        `the model endpoint failed (${status}): ${detail}`,
        'ModelUnavailable',
        err,
        retryAfterMs(headers),
      );
    }
    if (status === 401) {
      return fatal(
        `the model endpoint ${endpoint} rejected the API key (401): check OPENAI_API_KEY on the worker`,
        ActivityFailureType.ModelAuthenticationFailed,
        err,
      );
    }
    if (status === 403) {
      return fatal(
        `the model endpoint ${endpoint} refused access (403): ${detail}`,
        ActivityFailureType.ModelPermissionDenied,
        err,
      );
    }
    if (status === 404) {
      return fatal(
        `the model endpoint ${endpoint} answered 404 (${detail}): check the model name (RATCHET_MODEL) and that ` +
          'the endpoint serves the API it is configured for (api = "chat" for an endpoint with only Chat Completions)',
        ActivityFailureType.ModelNotFound,
        err,
      );
    }
    if (status === 400 && isContextLengthError(fields)) {
      return fatal(
        `the request is longer than the model's context window: ${detail}`,
        ActivityFailureType.ContextLengthExceeded,
        err,
      );
    }
    return fatal(`the model endpoint rejected the request (${status}): ${detail}`, 'ModelBadRequest', err);
  }
  if (err instanceof SyntaxError) {
    return retryable(`the model endpoint sent a malformed response: ${err.message}`, 'ModelBadResponse', err);
  }
  const message = err instanceof Error ? err.message : String(err);
  return retryable(`the model call failed: ${message}`, 'ModelCallFailed', err);
}

/** The first wait after a model error (then doubling, to at most a minute). */
const ERROR_BACKOFF_MS = 1_000;

/**
 * A retryable failure with the backoff after an error: 1 s, 2 s, 4 s … 60 s by attempt, unless
 * the server named a delay. The session's retry policy itself starts at 0.2 s, so that a call
 * whose worker was lost (a heartbeat timeout, which carries no failure of ours) is retried at
 * once; an error the endpoint returned still waits as it did.
 */
export function withErrorBackoff(failure: ApplicationFailure, attempt: number): ApplicationFailure {
  if (failure.nonRetryable || (failure.nextRetryDelay !== undefined && failure.nextRetryDelay !== null)) {
    return failure;
  }
  return new ApplicationFailure(
    failure.message,
    failure.type,
    false,
    failure.details,
    failure.cause,
    Math.min(60_000, ERROR_BACKOFF_MS * 2 ** Math.max(0, attempt - 1)),
    failure.category,
  );
}
