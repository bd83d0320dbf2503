import OpenAI from 'openai';
import type { ResponseInputItem, ResponseStreamEvent } from 'openai/resources/responses/responses';
import { afterEach, describe, expect, it } from 'vitest';
import { estimateInputTokens, ScriptedModel } from '../../src/testing/scripted-model.js';
import type { ScriptedModelOptions } from '../../src/testing/scripted-model.js';
import { rejection, until } from '../helpers/waiting.js';

let model: ScriptedModel | undefined;

async function start(options?: ScriptedModelOptions): Promise<{ model: ScriptedModel; client: OpenAI }> {
  model = await ScriptedModel.start(options);
  return { model, client: new OpenAI({ apiKey: 'test-key', baseURL: model.baseUrl, maxRetries: 0 }) };
}

afterEach(async () => {
  await model?.close();
  model = undefined;
});

const input = [{ role: 'user' as const, content: 'hello' }];

async function collect(stream: AsyncIterable<ResponseStreamEvent>): Promise<ResponseStreamEvent[]> {
  const events: ResponseStreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

describe('ScriptedModel replies', () => {
  it('streams a text reply as OpenAI does, ending with the complete response and usage', async () => {
    const { model, client } = await start();
    model.reply('Hello there, this is a scripted reply.');

    const stream = await client.responses.create({ model: 'scripted-x', input, stream: true });
    const events = await collect(stream);

    expect(events.map((event) => event.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events.map((event) => event.sequence_number)).toEqual(events.map((_, i) => i));
    const deltas = events.flatMap((event) =>
      event.type === 'response.output_text.delta' ? [event.delta] : [],
    );
    expect(deltas.join('')).toBe('Hello there, this is a scripted reply.');

    const completed = events.at(-1);
    if (completed?.type !== 'response.completed') throw new Error('no completed event');
    const response = completed.response;
    expect(response).toMatchObject({
      id: 'resp_1',
      object: 'response',
      status: 'completed',
      model: 'scripted-x',
    });
    expect(typeof response.created_at).toBe('number');
    expect(response.output).toEqual([
      {
        type: 'message',
        id: 'msg_1',
        role: 'assistant',
        status: 'completed',
        content: [
          {
            type: 'output_text',
            text: 'Hello there, this is a scripted reply.',
            annotations: [],
            logprobs: [],
          },
        ],
      },
    ]);
    const usage = response.usage!;
    expect(usage.input_tokens).toBe(estimateInputTokens(input));
    expect(usage.output_tokens).toBeGreaterThan(0);
    expect(usage.input_tokens_details.cached_tokens).toBe(0);
    expect(usage.total_tokens).toBe(usage.input_tokens + usage.output_tokens);
    model.assertDone();
  });

  it('streams a function call whose arguments round-trip', async () => {
    const { model, client } = await start();
    const args = { path: 'src/ä.ts', lines: [1, 2, 3], nested: { ok: true } };
    model.call('read_file', args).call('list_dir', { path: '.' }, 'call_custom');

    const first = await collect(await client.responses.create({ model: 'm', input, stream: true }));
    expect(first.map((event) => event.type)).toContain('response.function_call_arguments.delta');
    const done = first.find((event) => event.type === 'response.function_call_arguments.done');
    expect(done).toMatchObject({ name: 'read_file', item_id: 'fc_1' });
    const added = first.find((event) => event.type === 'response.output_item.added');
    expect(added).toMatchObject({ item: { type: 'function_call', arguments: '', status: 'in_progress' } });
    const completed = first.at(-1);
    if (completed?.type !== 'response.completed') throw new Error('no completed event');
    const call = completed.response.output[0];
    expect(call).toEqual({
      type: 'function_call',
      id: 'fc_1',
      call_id: 'call_1',
      name: 'read_file',
      arguments: JSON.stringify(args),
      status: 'completed',
    });
    if (call?.type !== 'function_call') throw new Error('not a call');
    expect(JSON.parse(call.arguments)).toEqual(args);

    const second = await client.responses.create({ model: 'm', input });
    expect(second.output[0]).toMatchObject({
      type: 'function_call',
      call_id: 'call_custom',
      name: 'list_dir',
    });
    model.assertDone();
  });

  it('answers JSON when the request does not stream', async () => {
    const { model, client } = await start();
    model.enqueue({
      kind: 'reply',
      output: [
        { type: 'message', text: 'first' },
        { type: 'function_call', name: 'shell', arguments: '{"cmd":"ls"}' },
      ],
      usage: { inputTokens: 1234, outputTokens: 56, cachedTokens: 1000 },
    });
    const response = await client.responses.create({ model: 'm', input });
    expect(response.object).toBe('response');
    expect(response.status).toBe('completed');
    expect(response.output_text).toBe('first');
    expect(response.output.map((item) => item.type)).toEqual(['message', 'function_call']);
    expect(response.usage).toMatchObject({
      input_tokens: 1234,
      output_tokens: 56,
      total_tokens: 1290,
      input_tokens_details: { cached_tokens: 1000 },
    });
  });

  it('streams a reasoning item with its summary and encrypted content', async () => {
    const { model, client } = await start();
    model.enqueue({
      kind: 'reply',
      output: [
        { type: 'reasoning', summary: 'Thinking about the files.' },
        { type: 'message', text: 'done' },
      ],
    });
    const events = await collect(await client.responses.create({ model: 'm', input, stream: true }));
    const summary = events.flatMap((event) =>
      event.type === 'response.reasoning_summary_text.delta' ? [event.delta] : [],
    );
    expect(summary.join('')).toBe('Thinking about the files.');
    expect(events.map((event) => event.type)).toContain('response.reasoning_summary_part.done');
    const completed = events.at(-1);
    if (completed?.type !== 'response.completed') throw new Error('no completed event');
    const [reasoning, message] = completed.response.output;
    expect(reasoning).toMatchObject({
      type: 'reasoning',
      id: 'rs_1',
      summary: [{ type: 'summary_text', text: 'Thinking about the files.' }],
    });
    expect(reasoning?.type === 'reasoning' && typeof reasoning.encrypted_content).toBe('string');
    expect(message).toMatchObject({ type: 'message', id: 'msg_1' });
    expect(completed.response.usage?.output_tokens_details.reasoning_tokens).toBeGreaterThan(0);
  });

  it('answers an empty response', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'empty' }, { kind: 'empty' });
    const events = await collect(await client.responses.create({ model: 'm', input, stream: true }));
    expect(events.map((event) => event.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.completed',
    ]);
    const completed = events.at(-1);
    expect(completed?.type === 'response.completed' && completed.response.output).toEqual([]);
    const json = await client.responses.create({ model: 'm', input });
    expect(json.output).toEqual([]);
    expect(json.status).toBe('completed');
  });

  it('uses the responder once the queue is empty', async () => {
    const { model, client } = await start({
      responder: (request) => {
        const body = request.body as { input: Array<{ content: string }> };
        return { kind: 'reply', output: [{ type: 'message', text: `echo ${body.input[0]?.content}` }] };
      },
    });
    model.reply('queued first');
    expect((await client.responses.create({ model: 'm', input })).output_text).toBe('queued first');
    expect((await client.responses.create({ model: 'm', input })).output_text).toBe('echo hello');
    expect(
      (await client.responses.create({ model: 'm', input: [{ role: 'user', content: 'again' }] }))
        .output_text,
    ).toBe('echo again');
    model.assertDone();
  });

  it('waits before answering and between events when told to', async () => {
    const { model, client } = await start();
    model.enqueue({
      kind: 'reply',
      output: [{ type: 'message', text: 'slow but alive' }],
      delayMs: 150,
      chunkDelayMs: 30,
    });
    const started = Date.now();
    const stream = await client.responses.create({ model: 'm', input, stream: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    const events = await collect(stream);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140 + 30 * (events.length - 1) - 20);
  });
});

describe('ScriptedModel errors', () => {
  it('answers 429 with retry-after as a RateLimitError', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'error', status: 429, headers: { 'retry-after': '2' } });
    const err = await rejection(client.responses.create({ model: 'm', input, stream: true }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const rateLimit = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(rateLimit.status).toBe(429);
    expect(rateLimit.headers.get('retry-after')).toBe('2');
    expect(rateLimit.code).toBe('rate_limit_exceeded');
  });

  it('answers 500 and 503 as InternalServerError', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'error', status: 500 }, { kind: 'error', status: 503, message: 'overloaded now' });
    const first = await rejection(client.responses.create({ model: 'm', input }));
    expect(first).toBeInstanceOf(OpenAI.InternalServerError);
    expect((first as InstanceType<typeof OpenAI.APIError>).status).toBe(500);
    const second = await rejection(client.responses.create({ model: 'm', input, stream: true }));
    expect(second).toBeInstanceOf(OpenAI.InternalServerError);
    expect((second as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((second as Error).message).toContain('overloaded now');
  });

  it('answers 401 as an AuthenticationError', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'error', status: 401 });
    const err = await rejection(client.responses.create({ model: 'm', input }));
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('invalid_api_key');
  });

  it('answers a context-length 400 with its code', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'error', status: 400, code: 'context_length_exceeded' });
    const err = await rejection(client.responses.create({ model: 'm', input, stream: true }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const bad = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(bad.code).toBe('context_length_exceeded');
    expect(bad.type).toBe('invalid_request_error');
    expect(bad.message).toMatch(/context window/);
  });

  it('cuts a stream mid-way: the client iteration throws', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'cut', afterEvents: 4 });
    const stream = await client.responses.create({ model: 'm', input, stream: true });
    const seen: string[] = [];
    const err = await rejection(
      (async () => {
        for await (const event of stream) seen.push(event.type);
      })(),
    );
    expect(err).toBeInstanceOf(Error);
    expect(seen).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
    ]);
    expect(seen).not.toContain('response.completed');
  });

  it('cuts a JSON answer: the client throws', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'cut' });
    await expect(client.responses.create({ model: 'm', input })).rejects.toThrow();
  });

  it('hangs until the client aborts, and the server side ends cleanly', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'hang' });
    const signal = AbortSignal.timeout(200);
    const started = Date.now();
    const seen: string[] = [];
    let failure: unknown;
    try {
      const stream = await client.responses.create({ model: 'm', input, stream: true }, { signal });
      // The openai client ends the iteration quietly when its signal aborts mid-stream.
      for await (const event of stream) seen.push(event.type);
    } catch (err) {
      failure = err;
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(seen).toEqual(['response.created']);
    if (failure !== undefined) expect(failure).toBeInstanceOf(OpenAI.APIUserAbortError);
    expect(model.requests).toHaveLength(1);
    expect(model.requests[0]?.path).toBe('/v1/responses');
    await until(() => model.inFlight === 0 && model.hanging === 0);
    model.assertDone();
  });

  it('hangs a JSON request until aborted', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'hang' });
    const err = await rejection(
      client.responses.create({ model: 'm', input }, { signal: AbortSignal.timeout(200) }),
    );
    expect(err).toBeInstanceOf(OpenAI.APIUserAbortError);
    await until(() => model.inFlight === 0);
  });

  it('release() lets a hung stream finish with its scripted output, or ends it', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'hang', output: [{ type: 'message', text: 'late answer' }] }, { kind: 'hang' });

    const stream = await client.responses.create({ model: 'm', input, stream: true });
    await until(() => model.hanging === 1);
    expect(model.release()).toBe(1);
    const events = await collect(stream);
    expect(events[0]?.type).toBe('response.created');
    const completed = events.at(-1);
    expect(completed?.type === 'response.completed' && completed.response.output[0]).toMatchObject({
      type: 'message',
      content: [{ text: 'late answer' }],
    });
    expect(completed?.type === 'response.completed' && completed.response.id).toBe(
      events[0]?.type === 'response.created' && events[0].response.id,
    );

    const second = await client.responses.create({ model: 'm', input, stream: true });
    await until(() => model.hanging === 1);
    model.release();
    expect((await collect(second)).map((event) => event.type)).toEqual(['response.created']);
  });

  it('close() ends hung connections', async () => {
    const { model, client } = await start();
    model.enqueue({ kind: 'hang' });
    const pending = client.responses.create({ model: 'm', input });
    await model.waitForRequest(1);
    await until(() => model.hanging === 1);
    await model.close();
    expect(model.inFlight).toBe(0);
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIConnectionError);
  });

  it('answers garbage that the client cannot parse', async () => {
    const { model } = await start();
    // The client logs the unparsable chunk before throwing; keep the test output clean.
    const client = new OpenAI({ apiKey: 'test-key', baseURL: model.baseUrl, maxRetries: 0, logLevel: 'off' });
    model.enqueue({ kind: 'garbage' }, { kind: 'garbage' });
    await expect(client.responses.create({ model: 'm', input })).rejects.toBeInstanceOf(SyntaxError);
    const stream = await client.responses.create({ model: 'm', input, stream: true });
    await expect(collect(stream)).rejects.toBeInstanceOf(SyntaxError);
  });

  it('fails loudly when the script runs out', async () => {
    const { model, client } = await start({ responder: () => undefined });
    model.reply('only one');
    await client.responses.create({ model: 'm', input });
    const err = await rejection(client.responses.create({ model: 'm', input, stream: true }));
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect((err as Error).message).toContain('scripted model: no reply scripted for request 2');
    expect(() => model.assertDone()).toThrow(/no reply scripted for request 2/);
  });

  it('assertDone lists unconsumed steps', async () => {
    const { model } = await start();
    model.reply('never asked for').enqueue({ kind: 'error', status: 429 });
    model.enqueueCompaction({ kind: 'error', status: 500 });
    expect(model.remaining).toBe(2);
    expect(() => model.assertDone()).toThrow(
      /2 reply step\(s\) not consumed: reply \[message "never asked for"\]; error 429/,
    );
    expect(() => model.assertDone()).toThrow(/1 compaction step\(s\) not consumed/);
  });

  it('answers 404 for unknown paths and 400 for malformed JSON', async () => {
    const { model, client } = await start();
    await expect(client.models.list()).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const res = await fetch(`${model.baseUrl}/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model": ',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
    expect(model.requests.map((request) => [request.method, request.path])).toEqual([
      ['GET', '/v1/models'],
      ['POST', '/v1/responses'],
    ]);
    expect(model.requests[1]?.body).toBe('{"model": ');
    model.assertDone();
  });
});

describe('ScriptedModel compaction', () => {
  const history: ResponseInputItem[] = [
    { role: 'user', content: 'the task' },
    {
      type: 'message',
      role: 'assistant',
      content: [{ type: 'output_text', text: 'ok', annotations: [] }],
      id: 'msg_0',
      status: 'completed',
    },
    { type: 'function_call', call_id: 'c1', name: 'shell', arguments: '{}' },
    { type: 'function_call_output', call_id: 'c1', output: 'done' },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'more' }] },
  ];

  it('compacts to the user messages and a compaction item, independently of the reply queue', async () => {
    const { model, client } = await start();
    model.reply('for the model call');
    const compacted = await client.responses.compact({ model: 'm', input: history });
    expect(compacted.object).toBe('response.compaction');
    expect(compacted.output.map((item) => item.type)).toEqual(['message', 'message', 'compaction']);
    expect(compacted.output[0]).toMatchObject({
      role: 'user',
      content: [{ type: 'input_text', text: 'the task' }],
    });
    expect(compacted.output[1]).toMatchObject({
      role: 'user',
      content: [{ type: 'input_text', text: 'more' }],
    });
    const item = compacted.output[2] as unknown as { encrypted_content: string };
    expect(Buffer.from(item.encrypted_content, 'base64').toString('utf8')).toContain('5 items compacted');
    expect(compacted.usage.input_tokens).toBe(estimateInputTokens(history));
    expect(model.remaining).toBe(1);
    expect((await client.responses.create({ model: 'm', input })).output_text).toBe('for the model call');
    expect(model.requests.map((request) => request.path)).toEqual(['/v1/responses/compact', '/v1/responses']);
    model.assertDone();
  });

  it('serves scripted compaction steps first', async () => {
    const { model, client } = await start();
    model.enqueueCompaction(
      { kind: 'error', status: 400, code: 'context_length_exceeded' },
      { kind: 'compact', summary: 'custom summary' },
    );
    const err = await rejection(client.responses.compact({ model: 'm', input: history }));
    expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe('context_length_exceeded');
    const compacted = await client.responses.compact({ model: 'm', input: history });
    const item = compacted.output.at(-1) as unknown as { encrypted_content: string };
    expect(Buffer.from(item.encrypted_content, 'base64').toString('utf8')).toBe('custom summary');
    model.assertDone();
  });

  it('answers 404 when compaction is unsupported', async () => {
    const { model, client } = await start({ compact: 'unsupported' });
    await expect(client.responses.compact({ model: 'm', input: history })).rejects.toBeInstanceOf(
      OpenAI.NotFoundError,
    );
    expect(model.requests).toHaveLength(1);
    model.assertDone();
  });
});

describe('ScriptedModel recording', () => {
  it('records request bodies, headers and sizes before answering', async () => {
    const { model, client } = await start();
    model.reply('ok');
    const tools: OpenAI.Responses.FunctionTool[] = [
      {
        type: 'function',
        name: 'read_file',
        description: 'Read a file',
        parameters: { type: 'object' },
        strict: false,
      },
    ];
    await client.responses.create({
      model: 'scripted-model',
      instructions: 'be brief',
      input: [
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
        { type: 'function_call_output', call_id: 'call_9', output: 'file contents' },
      ],
      tools,
      prompt_cache_key: 'session-1',
      store: false,
    });
    const request = await model.waitForRequest(1);
    expect(request).toMatchObject({ index: 1, method: 'POST', path: '/v1/responses' });
    expect(request.headers.authorization).toBe('Bearer test-key');
    expect(request.rawBytes).toBe(JSON.stringify(request.body).length);
    expect(request.receivedAt).toBeLessThanOrEqual(Date.now());
    const body = request.body as Record<string, unknown>;
    expect(body.prompt_cache_key).toBe('session-1');
    expect(body.tools).toEqual(tools);
    expect(body.input).toEqual([
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
      { type: 'function_call_output', call_id: 'call_9', output: 'file contents' },
    ]);
  });

  it('waitForRequest resolves when the request arrives, and times out otherwise', async () => {
    const { model, client } = await start();
    model.reply('one').reply('two');
    const second = model.waitForRequest(2);
    await client.responses.create({ model: 'm', input });
    await client.responses.create({ model: 'm', input: 'second' });
    expect((await second).body).toMatchObject({ input: 'second' });
    await expect(model.waitForRequest(3, 50)).rejects.toThrow(
      /request 3 did not arrive within 50 ms \(2 arrived\)/,
    );
  });
});
