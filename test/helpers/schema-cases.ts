/**
 * Inputs for every schema the workflow validates with (session input, the handlers' messages,
 * tool and agent-tool arguments), good and bad, and what each schema answers for them, as plain
 * JSON: test/fixtures/schema-results.json holds the answers of the schemas as they were when they
 * were built once, at module load. The session inputs of every recorded history are among the
 * inputs, so defaults and every carried shape are covered (their answers are kept as a hash).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import {
  approvalSchema,
  budgetDecisionSchema,
  interruptSchema,
  moveToWorkerSchema,
  setPolicySchema,
  userMessageSchema,
} from '../../src/shared/api/session-api.js';
import { sessionConfigSchema, sessionInputSchema } from '../../src/shared/api/session-config.js';
import { agentToolSpecs } from '../../src/shared/tools/agent-tools.js';
import { toolSpecs } from '../../src/shared/tools/specs.js';
import { historiesDir } from './histories.js';

/** The schemas by name, each read as the workflow reads it. */
export const schemas: Record<string, () => z.ZodType> = {
  sessionInput: sessionInputSchema,
  sessionConfig: sessionConfigSchema,
  approval: approvalSchema,
  userMessage: userMessageSchema,
  interrupt: interruptSchema,
  moveToWorker: moveToWorkerSchema,
  setPolicy: setPolicySchema,
  budgetDecision: budgetDecisionSchema,
  ...Object.fromEntries(Object.values(toolSpecs).map((spec) => [`tool:${spec.name}`, () => spec.parameters])),
  ...Object.fromEntries(
    Object.values(agentToolSpecs).map((spec) => [`tool:${spec.name}`, () => spec.parameters]),
  ),
};

/** Every session input recorded in a history (first event of each run), by file. */
function recordedInputs(): Array<[string, unknown]> {
  const inputs: Array<[string, unknown]> = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.name.endsWith('.json')) {
        const history = JSON.parse(readFileSync(file, 'utf8')) as {
          events: Array<{
            workflowExecutionStartedEventAttributes?: { input?: { payloads?: Array<{ data: string }> } };
          }>;
        };
        const payload = history.events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
        if (payload) {
          const name = `recorded: ${path.relative(historiesDir, file)}`;
          inputs.push([name, JSON.parse(Buffer.from(payload.data, 'base64').toString())]);
        }
      }
    }
  };
  walk(historiesDir);
  return inputs;
}

const config = { task: 'rename foo to bar', workspace: '/tmp/repo', model: { name: 'm' } };
const carried = {
  entries: [{ item: { type: 'message', role: 'user', content: [] }, turn: 0 }],
  turn: 1,
  turnLimit: 200,
  usage: { inputTokens: 1, cachedInputTokens: 0, outputTokens: 1, reasoningTokens: 0, totalTokens: 2 },
  lastInputTokens: 1,
  plan: [{ step: 'a', status: 'pending' }],
  sessionRules: [{ tool: 'shell', prefix: ['npm', 'test'], action: 'allow' }],
  approvalPolicy: 'untrusted',
  queuedMessages: [],
  idle: false,
  lastMessage: null,
  notice: null,
  workspace: { root: '/tmp/repo', gitHead: null, initiallyDirty: {}, agentsMd: false },
  runs: 1,
  compactions: 0,
  contextEntries: 1,
  lastCompactionTurn: null,
};

/** Good and bad inputs for each schema, by schema name. */
export function schemaInputs(): Record<string, Array<[string, unknown]>> {
  const input = (over: object) => ({ schemaVersion: 1, config, ...over });
  return {
    sessionInput: [
      ...recordedInputs(),
      ['nothing', undefined],
      ['empty', {}],
      ['minimal', input({})],
      ['carried', input({ carried })],
      ['version 2', input({ schemaVersion: 2 })],
      ['unknown key', input({ extra: 1 })],
      ['empty task', input({ config: { ...config, task: '   ' } })],
      ['long task', input({ config: { ...config, task: 'é'.repeat(40_000) } })],
      [
        'bad model',
        input({ config: { ...config, model: { name: '', compactAtRatio: 2, compaction: 'x' } } }),
      ],
      [
        'bad limits',
        input({ config: { ...config, limits: { maxTurns: 0, commandTimeoutMs: 1.5, other: 1 } } }),
      ],
      ['bad rules', input({ config: { ...config, rules: [{ tool: '', action: 'maybe' }, 'x'] } })],
      [
        'bad settings',
        input({
          config: {
            ...config,
            approvalPolicy: 'never-ever',
            sandbox: 'x',
            worker: '',
            agents: { max: 17, maxDepth: 0 },
            parent: { id: 'p', name: '', depth: 0 },
            budget: { tokens: 1e13 },
            checkpoints: { keep: -1, afterEnd: 'drop' },
          },
        }),
      ],
      ['carried missing fields', input({ carried: { entries: [] } })],
      [
        'carried bad parts',
        input({
          carried: {
            ...carried,
            entries: [{ item: { role: 'user' }, turn: -1 }],
            plan: [{ step: 'a', status: 'done' }],
            workspace: { root: '/r', gitHead: 1, initiallyDirty: { a: 1 }, agentsMd: false, git: {} },
            agents: {
              counter: 1,
              children: [
                {
                  name: 'agent-1',
                  sessionId: 's',
                  branch: 'b',
                  worktree: 'w',
                  workspace: 'w',
                  base: 'b',
                  state: { status: 'sleeping' },
                  merged: false,
                  closed: false,
                },
              ],
              retired: {
                count: 0,
                tokens: 0,
                recent: new Array(21).fill({ name: 'a', sessionId: 's', status: '' }),
              },
            },
            budget: { limit: 0, parked: 'no', sent: 0, heard: 0 },
            lastCheckpoint: { turn: 1 },
            rewind: { turn: 1, commit: 'abc', latest: null, force: false },
            base: { turn: 0 },
            lastResponse: { id: 'r', upTo: -1 },
          },
        }),
      ],
    ],
    sessionConfig: [
      ['minimal', config],
      ['all set', { ...config, agents: { max: 2 }, budget: { tokens: 5 }, checkpoints: { enabled: false } }],
      ['not an object', 'task'],
    ],
    approval: [
      ['good', { callId: 'c', decision: 'approve', by: 'me' }],
      ['empty', {}],
      ['bad', { callId: '', decision: 'maybe', reason: 'x'.repeat(4001), extra: true }],
    ],
    userMessage: [
      ['good', { text: '  hi  ' }],
      ['empty', { text: ' ' }],
      ['long', { text: 'x'.repeat(64 * 1024 + 1) }],
      ['wrong type', { text: 3 }],
    ],
    interrupt: [
      ['good', { reason: 'stop' }],
      ['empty', {}],
      ['bad', { reason: 1, more: 2 }],
    ],
    moveToWorker: [
      ['good', { worker: ' w2 ' }],
      ['blank', { worker: '  ' }],
      ['missing', {}],
    ],
    setPolicy: [
      ['good', { policy: 'auto-edit' }],
      ['bad', { policy: 'yolo' }],
    ],
    budgetDecision: [
      ['add', { add: 5000 }],
      ['stop', { stop: true, by: 'me' }],
      ['both', { add: 1, stop: true }],
      ['neither', {}],
      ['bad add', { add: 1.5 }],
      ['negative add', { add: -1 }],
      ['huge add', { add: 2e12 }],
      ['string add', { add: '5' }],
      ['stop false', { stop: false }],
    ],
    'tool:shell': [
      ['good', { command: ['ls', '-la'], workdir: 'src', timeout_ms: 1000 }],
      ['empty command', { command: [] }],
      ['string command', { command: 'ls' }],
      ['bad timeout', { command: ['ls'], timeout_ms: -1.5 }],
      ['unknown key', { command: ['ls'], cwd: '/' }],
    ],
    'tool:apply_patch': [
      ['good', { input: '*** Begin Patch\n*** End Patch' }],
      ['missing', {}],
    ],
    'tool:read_file': [
      ['good', { file_path: 'a.ts', offset: 2, limit: 3 }],
      ['bad', { file_path: 1, offset: 0, limit: 'x' }],
    ],
    'tool:list_dir': [
      ['good', { dir_path: '.', depth: 1 }],
      ['bad', { depth: 0, offset: 1.5 }],
    ],
    'tool:grep_files': [
      ['good', { pattern: 'TODO', include: '*.ts' }],
      ['bad', { pattern: '', limit: 0 }],
    ],
    'tool:update_plan': [
      ['good', { plan: [{ step: 'a', status: 'in_progress' }] }],
      ['bad', { plan: [{ step: 1, status: 'done' }], explanation: 3 }],
      ['missing', {}],
    ],
    'tool:spawn_agent': [
      ['good', { message: 'do it', items: [{ type: 'text', text: 'more', extra: 1 }] }],
      ['bad', { items: [{ text: 1 }], agent_type: 2, other: 1 }],
    ],
    'tool:send_input': [
      ['good', { id: 'agent-1', message: 'hi', interrupt: true }],
      ['bad', { id: '', interrupt: 'yes' }],
    ],
    'tool:wait': [
      ['good', { ids: ['agent-1'], timeout_ms: 20_000 }],
      ['bad', { ids: [], timeout_ms: '1' }],
    ],
    'tool:close_agent': [
      ['good', { id: 'agent-1' }],
      ['bad', { id: '' }],
    ],
    'tool:merge_agent': [
      ['good', { id: 'agent-1' }],
      ['bad', {}],
    ],
  };
}

/** What each schema answers for each of its inputs: the parsed data, or the issues. */
export function schemaResults(): Record<string, Record<string, unknown>> {
  const results: Record<string, Record<string, unknown>> = {};
  for (const [name, inputs] of Object.entries(schemaInputs())) {
    const schema = schemas[name];
    if (!schema) throw new Error(`no schema named ${name}`);
    results[name] = Object.fromEntries(
      inputs.map(([label, value]) => {
        const parsed = schema().safeParse(value);
        const answer: unknown = parsed.success ? { data: parsed.data } : { issues: parsed.error.issues };
        if (!label.startsWith('recorded: ')) return [label, answer];
        return [label, { sha256: createHash('sha256').update(JSON.stringify(answer)).digest('hex') }];
      }),
    );
  }
  return JSON.parse(JSON.stringify(results)) as Record<string, Record<string, unknown>>;
}
