/**
 * Error classification at the model activity's edge, for errors that are awkward to produce over
 * HTTP (the common HTTP statuses are covered end to end in model-activity.test.ts).
 */
import { ApplicationFailure } from '@temporalio/activity';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { classifyModelError, retryAfterMs, withErrorBackoff } from '../../src/activities/model-errors.js';

const ENDPOINT = 'https://models.example.test/v1';

/** An SDK error as the client builds it from a response (status, JSON error body, headers). */
function apiError(
  status: number,
  error: { message: string; type?: string; code?: string | null; param?: string | null },
  headers: Record<string, string> = {},
): InstanceType<typeof OpenAI.APIError> {
  return OpenAI.APIError.generate(
    status,
    { error: { type: 'invalid_request_error', code: null, param: null, ...error } },
    undefined,
    new Headers({ 'x-request-id': 'req_1', ...headers }),
  );
}

describe('retryAfterMs', () => {
  const now = Date.parse('2025-03-01T12:00:00Z');

  it.each([
    ['7', 7000],
    ['0', 0],
    ['1.5', 1500],
    [' 12 ', 12_000],
  ])('reads retry-after: %j as seconds', (value, expected) => {
    expect(retryAfterMs(new Headers({ 'retry-after': value }), now)).toBe(expected);
  });

  it('prefers retry-after-ms, rounding up', () => {
    const headers = new Headers({ 'retry-after-ms': '250.2', 'retry-after': '7' });
    expect(retryAfterMs(headers, now)).toBe(251);
  });

  it('falls back to retry-after when retry-after-ms is not a number', () => {
    const headers = new Headers({ 'retry-after-ms': 'soon', 'retry-after': '3' });
    expect(retryAfterMs(headers, now)).toBe(3000);
  });

  it('reads an HTTP date as the time left until then', () => {
    const headers = new Headers({ 'retry-after': 'Sat, 01 Mar 2025 12:00:30 GMT' });
    expect(retryAfterMs(headers, now)).toBe(30_000);
  });

  it('treats an HTTP date in the past as "now"', () => {
    const headers = new Headers({ 'retry-after': 'Sat, 01 Mar 2025 11:59:00 GMT' });
    expect(retryAfterMs(headers, now)).toBe(0);
  });

  it.each(['soon', 'in a minute', ''])('ignores junk: %j', (value) => {
    expect(retryAfterMs(new Headers({ 'retry-after': value }), now)).toBeUndefined();
  });

  // V8's Date.parse is lenient: "-5" and "abc 1" would parse as dates in 2001.
  it.each(['-5', 'abc 1'])('ignores junk that V8 parses as a date: %j', (value) => {
    expect(retryAfterMs(new Headers({ 'retry-after': value }), now)).toBeUndefined();
  });

  it('is undefined without the headers, or without headers at all', () => {
    expect(retryAfterMs(new Headers({ 'content-type': 'application/json' }), now)).toBeUndefined();
    expect(retryAfterMs(undefined, now)).toBeUndefined();
  });
});

describe('classifyModelError', () => {
  it('429 insufficient_quota → non-retryable ModelQuotaExceeded (waiting will not help)', () => {
    const err = apiError(
      429,
      { message: 'You exceeded your current quota.', type: 'insufficient_quota', code: 'insufficient_quota' },
      { 'retry-after': '20' },
    );

    const failure = classifyModelError(err, ENDPOINT);

    expect(failure.type).toBe('ModelQuotaExceeded');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('You exceeded your current quota.');
    expect(failure.cause).toBe(err);
  });

  it('a plain 429 → retryable ModelRateLimited, without a delay when the server names none', () => {
    const failure = classifyModelError(apiError(429, { message: 'slow down' }), ENDPOINT);

    expect(failure.type).toBe('ModelRateLimited');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.nextRetryDelay).toBeUndefined();
  });

  it.each([408, 409, 502, 529])('%i → retryable ModelUnavailable', (status) => {
    const failure = classifyModelError(apiError(status, { message: 'try later' }), ENDPOINT);

    expect(failure.type).toBe('ModelUnavailable');
    expect(failure.nonRetryable).toBe(false);
  });

  it('a 503 with retry-after-ms waits as asked', () => {
    const failure = classifyModelError(
      apiError(503, { message: 'overloaded' }, { 'retry-after-ms': '1500' }),
      ENDPOINT,
    );

    expect(failure.type).toBe('ModelUnavailable');
    expect(failure.nextRetryDelay).toBe(1500);
  });

  it('403 → non-retryable ModelPermissionDenied naming the endpoint', () => {
    const failure = classifyModelError(
      apiError(403, { message: 'Project does not have access to model' }),
      ENDPOINT,
    );

    expect(failure.type).toBe('ModelPermissionDenied');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain(ENDPOINT);
    expect(failure.message).toContain('Project does not have access to model');
  });

  it('a 400 whose message (not code) says the context is too long → ContextLengthExceeded', () => {
    const failure = classifyModelError(
      apiError(400, { message: "This model's maximum context length is 128000 tokens." }),
      ENDPOINT,
    );

    expect(failure.type).toBe('ContextLengthExceeded');
    expect(failure.nonRetryable).toBe(true);
  });

  it('422 → non-retryable ModelBadRequest', () => {
    const failure = classifyModelError(apiError(422, { message: 'unprocessable' }), ENDPOINT);

    expect(failure.type).toBe('ModelBadRequest');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('422');
  });

  it.each([
    [
      500,
      '7 validation errors for CreateChatCompletionRequest\nmessages.1.content\n  Input should be a valid string',
    ],
    [500, 'Failed to parse tool call arguments as JSON: [json.exception.parse_error.101]'],
    [400, "Unsupported parameter: 'max_tokens' is not supported with this model."],
    [503, '1 validation error for Request: body.stream_options: Extra inputs are not permitted'],
  ])(
    'a %i that says the request is malformed → non-retryable ModelBadRequest saying what to check',
    (status, message) => {
      const failure = classifyModelError(apiError(status, { message, type: 'server_error' }), ENDPOINT);

      expect(failure.type).toBe('ModelBadRequest');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toContain('not retried');
      expect(failure.message).toContain(message.split('\n')[0]!);
      expect(failure.message).toMatch(/api = "responses" or "chat"/);
    },
  );

  it('a 500 that does not say the request is malformed is still retried', () => {
    const failure = classifyModelError(apiError(500, { message: 'CUDA error: out of memory' }), ENDPOINT);

    expect(failure.type).toBe('ModelUnavailable');
    expect(failure.nonRetryable).toBe(false);
  });

  it('an error event inside a stream (no status) → retryable ModelStreamFailed', () => {
    // What the SDK throws for a server-sent event carrying an `error` object.
    const err = new OpenAI.APIError(undefined, { message: 'The server had an error' }, undefined, undefined);

    const failure = classifyModelError(err, ENDPOINT);

    expect(failure.type).toBe('ModelStreamFailed');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toContain('The server had an error');
  });

  it('a connection timeout → retryable ModelUnavailable saying it timed out', () => {
    const failure = classifyModelError(new OpenAI.APIConnectionTimeoutError(), ENDPOINT);

    expect(failure.type).toBe('ModelUnavailable');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toContain('timed out');
    expect(failure.message).toContain(ENDPOINT);
  });

  it('a connection error → retryable ModelUnavailable', () => {
    const cause = new Error('connect ECONNREFUSED 127.0.0.1:1');
    const failure = classifyModelError(new OpenAI.APIConnectionError({ cause }), ENDPOINT);

    expect(failure.type).toBe('ModelUnavailable');
    expect(failure.message).toContain('cannot reach');
  });

  it('a SyntaxError (a body that does not parse) → retryable ModelBadResponse', () => {
    const err = new SyntaxError('Unexpected token < in JSON at position 0');

    const failure = classifyModelError(err, ENDPOINT);

    expect(failure.type).toBe('ModelBadResponse');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.cause).toBe(err);
  });

  it('a plain Error → retryable ModelCallFailed carrying its message and cause', () => {
    const err = new Error('socket hang up');

    const failure = classifyModelError(err, ENDPOINT);

    expect(failure.type).toBe('ModelCallFailed');
    expect(failure.nonRetryable).toBe(false);
    expect(failure.message).toContain('socket hang up');
    expect(failure.cause).toBe(err);
  });

  it('a thrown non-Error → retryable ModelCallFailed with its text and no cause', () => {
    const failure = classifyModelError('weird', ENDPOINT);

    expect(failure.type).toBe('ModelCallFailed');
    expect(failure.message).toContain('weird');
    expect(failure.cause).toBeUndefined();
  });

  it('passes an ApplicationFailure through unchanged', () => {
    const original = ApplicationFailure.nonRetryable('already classified', 'ModelNotConfigured');

    expect(classifyModelError(original, ENDPOINT)).toBe(original);
  });
});

describe('backoff after a model error', () => {
  it('waits 1 s, 2 s, 4 s … by attempt, at most a minute, keeping type, message and cause', () => {
    const cause = new Error('503 overloaded');
    const failure = ApplicationFailure.create({ message: 'unavailable', type: 'ModelUnavailable', cause });

    const delays = [1, 2, 3, 7, 8, 50].map(
      (attempt): unknown => withErrorBackoff(failure, attempt).nextRetryDelay,
    );

    expect(delays).toEqual([1000, 2000, 4000, 60_000, 60_000, 60_000]);
    const backedOff = withErrorBackoff(failure, 2);
    expect(backedOff).toMatchObject({
      type: 'ModelUnavailable',
      message: 'unavailable',
      nonRetryable: false,
    });
    expect(backedOff.cause).toBe(cause);
  });

  it('keeps a delay the server named, and leaves non-retryable failures alone', () => {
    const rateLimited = ApplicationFailure.create({
      message: 'slow down',
      type: 'ModelRateLimited',
      nextRetryDelay: 7000,
    });
    const fatal = ApplicationFailure.nonRetryable('bad key', 'ModelAuthenticationFailed');

    expect(withErrorBackoff(rateLimited, 3)).toBe(rateLimited);
    expect(withErrorBackoff(fatal, 3)).toBe(fatal);
  });
});
