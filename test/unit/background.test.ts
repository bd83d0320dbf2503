/**
 * Background mode: the scripted model's (queued → in_progress → completed, retrieve, resume from a
 * sequence number, cancel, expiry), and the model activity's use of it (re-attach to the response
 * an earlier attempt created instead of generating it again; cancel at the provider; fall back).
 */
import { CancelledFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import OpenAI from 'openai';
import type { ResponseStreamEvent } from 'openai/resources/responses/responses';
import { describe, expect, it } from 'vitest';
import { backgroundProgress } from '../../src/activities/background.js';
import { createModelActivity } from '../../src/activities/model.js';
import { openaiClientFactory } from '../../src/activities/openai-client.js';
import type { ModelCallInput, ModelReply } from '../../src/shared/boundary/activity-types.js';
import { userMessage } from '../../src/shared/prompt/items.js';
import type { ScriptedModel } from '../../src/testing/scripted-model.js';
import { scriptedSettings, staticTranscript, useScriptedModel } from '../helpers/model-activities.js';
import { rejection, until } from '../helpers/waiting.js';

const startModel = useScriptedModel();
const input = [{ role: 'user' as const, content: 'hello' }];
const LONG = 'A reply long enough to stream in several pieces, so that a client can leave half-way.';

function clientOf(model: ScriptedModel): OpenAI {
  return new OpenAI({ apiKey: 'k', baseURL: model.baseUrl, maxRetries: 0, logLevel: 'off' });
}

async function collect(stream: AsyncIterable<ResponseStreamEvent>, limit = Infinity) {
  const events: ResponseStreamEvent[] = [];
  for await (const event of stream) {
    events.push(event);
    if (events.length >= limit) break;
  }
  return events;
}

describe('scripted model: background mode', () => {
  it('queues, runs and completes a background response, and keeps it for retrieval', async () => {
    const model = await startModel();
    model.reply(LONG);
    const client = clientOf(model);

    const events = await collect(
      await client.responses.create({ model: 'm', input, stream: true, background: true }),
    );

    expect(events.slice(0, 3).map((e) => e.type)).toEqual([
      'response.created',
      'response.queued',
      'response.in_progress',
    ]);
    expect(events[0]).toMatchObject({ response: { status: 'queued', background: true } });
    expect(events.at(-1)?.type).toBe('response.completed');
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const id = (events[0] as { response: { id: string } }).response.id;
    const retrieved = await client.responses.retrieve(id);
    expect(retrieved.status).toBe('completed');
    expect(retrieved.output_text).toBe(LONG);
    expect(model.generations).toBe(1);
    expect(model.backgroundResponse(id)).toMatchObject({ generated: events.length, sent: events.length });
  });

  it('goes on generating after the client leaves; a client resuming after N gets only the rest', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'reply', output: [{ type: 'message', text: LONG }], chunkDelayMs: 30 });
    const client = clientOf(model);

    const first = await collect(
      await client.responses.create({ model: 'm', input, stream: true, background: true }),
      5,
    );
    const id = (first[0] as { response: { id: string } }).response.id;
    const seen = first.at(-1)!.sequence_number;
    const response = model.backgroundResponse(id)!;
    // Generation carries on without a listener.
    await until(() => response.generated > seen + 2);
    expect(response.status).toBe('in_progress');

    const rest = await collect(await client.responses.retrieve(id, { stream: true, starting_after: seen }));

    expect(rest[0]?.sequence_number).toBe(seen + 1);
    expect(rest.map((e) => e.sequence_number)).toEqual(rest.map((_, i) => seen + 1 + i));
    expect(rest.at(-1)?.type).toBe('response.completed');
    expect(response.generated).toBe(response.total);
    expect(model.generations).toBe(1);
    expect(response.streams.map((s) => s.after)).toEqual([-1, seen]);
    expect(response.streams[1]!.sent).toBe(rest.length);
  });

  it('answers a JSON background request with the queued response, then its progress', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'reply', output: [{ type: 'message', text: LONG }], delayMs: 200 });
    const client = clientOf(model);

    const created = await client.responses.create({ model: 'm', input, background: true });
    expect(created.status).toBe('queued');
    expect(created.background).toBe(true);
    await until(() => model.backgroundResponse(created.id)?.status === 'completed');
    expect((await client.responses.retrieve(created.id)).status).toBe('completed');
  });

  it('cancels a running response: generation stops, followers end, retrieval says cancelled', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'hang', output: [{ type: 'message', text: LONG }] });
    const client = clientOf(model);
    const stream = await client.responses.create({ model: 'm', input, stream: true, background: true });
    const following = collect(stream);
    await until(
      () => model.backgroundResponses.length === 1 && model.backgroundResponses[0]!.generated === 3,
    );
    const id = model.backgroundResponses[0]!.id;

    const cancelled = await client.responses.cancel(id);
    const events = await following;

    expect(cancelled.status).toBe('cancelled');
    expect(events.at(-1)?.type).toBe('response.in_progress');
    expect((await client.responses.retrieve(id)).status).toBe('cancelled');
    expect(model.release()).toBe(1);
    expect(model.backgroundResponses[0]!.generated).toBe(3);
  });

  it('forgets a response after its time to live: 404', async () => {
    const model = await startModel({ backgroundTtlMs: 100 });
    model.reply('short');
    const client = clientOf(model);
    const created = await client.responses.create({ model: 'm', input, background: true });
    await new Promise((resolve) => setTimeout(resolve, 150));

    const err = await rejection(client.responses.retrieve(created.id));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(await rejection(client.responses.cancel(created.id))).toBeInstanceOf(OpenAI.NotFoundError);
    expect(await rejection(client.responses.retrieve('resp_never'))).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('refuses a starting_after that is not a sequence number', async () => {
    const model = await startModel();
    model.reply('short');
    const client = clientOf(model);
    const created = await client.responses.create({ model: 'm', input, background: true });
    const res = await fetch(`${model.baseUrl}/responses/${created.id}?stream=true&starting_after=-3`);
    expect(res.status).toBe(400);
  });

  it('as an endpoint without background mode: 400 naming the parameter, or an ordinary reply', async () => {
    const refusing = await startModel({ background: 'unsupported' });
    const err = await rejection(
      clientOf(refusing).responses.create({ model: 'm', input, stream: true, background: true }),
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('background');
  });
});

// ---------------------------------------------------------------------------------------------

const SESSION = 'session-bg';
const task = userMessage('Summarise the repository');

function environment(details?: unknown): MockActivityEnvironment {
  return new MockActivityEnvironment(
    { heartbeatTimeoutMs: 600, ...(details === undefined ? {} : { heartbeatDetails: details }) },
    { logger: new DefaultLogger('ERROR') },
  );
}

function activityFor(model: ScriptedModel) {
  return createModelActivity({
    openai: openaiClientFactory({ apiKey: 'k', baseURL: model.baseUrl }),
    transcript: staticTranscript([task]),
    streamIdleTimeoutMs: 120_000,
  });
}

function run(model: ScriptedModel, env: MockActivityEnvironment, input = callInput): Promise<ModelReply> {
  return env.run(activityFor(model), input);
}

const callInput: ModelCallInput = {
  sessionId: SESSION,
  epoch: 0,
  upTo: 1,
  model: scriptedSettings({ background: true }),
  turn: 3,
};

/** Starts a background response as an earlier attempt would, and leaves after `events` events. */
async function earlierAttempt(model: ScriptedModel, events: number) {
  const seen = await collect(
    await clientOf(model).responses.create({
      model: 'scripted-x',
      input: [{ role: 'user', content: 'Summarise the repository' }],
      stream: true,
      background: true,
    }),
    events,
  );
  const responseId = (seen[0] as { response: { id: string } }).response.id;
  return { responseId, after: seen.at(-1)!.sequence_number };
}

describe('model activity: background mode', () => {
  it('creates the response in background mode and heartbeats its id and last sequence number', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'reply', output: [{ type: 'message', text: LONG }], chunkDelayMs: 60 });
    const env = environment();
    const beats: unknown[] = [];
    env.on('heartbeat', (details: unknown) => beats.push(details));

    const reply = await run(model, env);

    expect(reply.output).toEqual([expect.objectContaining({ type: 'message' })]);
    expect(model.requests[0]!.body).toMatchObject({ stream: true, background: true });
    const progress = beats.map(backgroundProgress).filter((p) => p !== undefined);
    expect(progress[0]).toMatchObject({ responseId: reply.responseId });
    expect(progress.at(-1)!.after).toBeGreaterThan(progress[0]!.after);
  });

  it('re-attaches where the earlier attempt left off: one generation, no event sent twice', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'reply', output: [{ type: 'message', text: LONG }], chunkDelayMs: 40 });
    const earlier = await earlierAttempt(model, 4);

    const reply = await run(model, environment({ turn: 3, events: 4, background: earlier }));

    expect(reply.output).toEqual([
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: LONG }] },
    ]);
    expect(reply.responseId).toBe(earlier.responseId);
    expect(model.generations).toBe(1);
    expect(model.requests.filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(model.requests.map((r) => r.method)).toEqual(['POST', 'GET', 'GET']);
    const response = model.backgroundResponse(earlier.responseId)!;
    expect(response.streams.at(-1)?.after).toBe(earlier.after);
    // Every event reached a client once: the earlier attempt's and the rest.
    expect(response.sent).toBe(response.total);
  });

  it('takes a response that finished meanwhile from retrieval, without streaming', async () => {
    const model = await startModel();
    model.reply(LONG);
    const earlier = await earlierAttempt(model, 3);
    await until(() => model.backgroundResponse(earlier.responseId)?.status === 'completed');

    const reply = await run(model, environment({ background: earlier }));

    expect(reply.responseId).toBe(earlier.responseId);
    expect(model.generations).toBe(1);
    expect(model.requests.map((r) => r.method)).toEqual(['POST', 'GET']);
  });

  it('sends the request afresh when the response is gone (404)', async () => {
    const model = await startModel();
    model.reply('first').reply('second');
    const earlier = await earlierAttempt(model, 3);
    model.expireBackground();

    const reply = await run(model, environment({ background: earlier }));

    expect(reply.output[0]).toMatchObject({ content: [{ text: 'second' }] });
    expect(model.generations).toBe(2);
    expect(model.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /v1/responses',
      `GET /v1/responses/${earlier.responseId}`,
      'POST /v1/responses',
    ]);
  });

  it('sends the request afresh when the response was cancelled', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'hang', output: [{ type: 'message', text: 'never' }] }).reply('fresh');
    const earlier = await earlierAttempt(model, 3);
    await clientOf(model).responses.cancel(earlier.responseId);

    const reply = await run(model, environment({ background: earlier }));

    expect(reply.output[0]).toMatchObject({ content: [{ text: 'fresh' }] });
    model.release();
  });

  it('ignores heartbeat details that are not background progress', async () => {
    const model = await startModel();
    model.reply('fresh');
    for (const details of [
      { background: { responseId: 42, after: 1 } },
      { background: { responseId: 'r', after: -7 } },
    ]) {
      expect(backgroundProgress(details)).toBeUndefined();
    }
    const reply = await run(model, environment({ background: { responseId: '', after: 3 } }));
    expect(reply.output[0]).toMatchObject({ content: [{ text: 'fresh' }] });
    expect(model.requests.map((r) => r.method)).toEqual(['POST']);
  });

  it('cancels the response at the provider when the activity is cancelled', async () => {
    const model = await startModel();
    model.enqueue({ kind: 'hang', output: [{ type: 'message', text: 'never' }] });
    const env = environment();
    const outcome = rejection(env.run(activityFor(model), callInput));
    await until(() => model.backgroundResponses[0]?.generated === 3);

    env.cancel();

    expect(await outcome).toBeInstanceOf(CancelledFailure);
    const response = model.backgroundResponses[0]!;
    expect(response.status).toBe('cancelled');
    expect(model.requests.at(-1)).toMatchObject({
      method: 'POST',
      path: `/v1/responses/${response.id}/cancel`,
    });
    expect(model.release()).toBe(1);
  });

  it('falls back to an ordinary request when the endpoint refuses background, and remembers', async () => {
    const model = await startModel({ background: 'unsupported' });
    model.reply('one').reply('two');
    const activity = activityFor(model);

    await environment().run(activity, callInput);
    await environment().run(activity, { ...callInput, turn: 4 });

    expect(model.requests.map((r) => (r.body as { background?: boolean }).background)).toEqual([
      true,
      undefined,
      undefined,
    ]);
  });

  it('needs nothing from an endpoint that ignores background: an ordinary reply, no id to re-attach to', async () => {
    const model = await startModel({ background: 'ignored' });
    model.reply('plain');
    const env = environment();
    const beats: unknown[] = [];
    env.on('heartbeat', (details: unknown) => beats.push(details));

    const reply = await run(model, env);

    expect(reply.output[0]).toMatchObject({ content: [{ text: 'plain' }] });
    expect(beats.map(backgroundProgress).filter(Boolean)).toEqual([]);
  });
});
