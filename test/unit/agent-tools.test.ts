/**
 * The multi-agent tools: offered only to a session that may fan out, with Codex's names and
 * argument shapes, and their arguments checked the way the workflow checks them.
 */
import { describe, expect, it } from 'vitest';
import { chatTools } from '../../src/activities/chat-completions.js';
import { buildRequest, toolDefinitions } from '../../src/activities/model-request.js';
import {
  agentBranch,
  closeAgentArgs,
  inputText,
  modelStatus,
  refSafe,
  sendInputArgs,
  spawnAgentArgs,
  waitArgs,
  waitTimeout,
} from '../../src/shared/tools/agent-tools.js';
import { toolNames } from '../../src/shared/tools/specs.js';

const settings = {
  name: 'm',
  contextWindow: 1000,
  compactAtRatio: 0.8,
  compaction: 'auto' as const,
  providerState: false,
};

describe('multi-agent tools', () => {
  it('are not offered unless the session may fan out', () => {
    expect(toolDefinitions().map((tool) => tool.name)).toEqual(toolNames);
    expect(buildRequest(settings, 's', []).tools!.map((tool) => (tool as { name: string }).name)).toEqual(
      toolNames,
    );
    expect(chatTools().map((tool) => tool.function.name)).toEqual(toolNames);
  });

  it("are offered with Codex's names and argument shapes when it may", () => {
    const tools = new Map(toolDefinitions(true).map((tool) => [tool.name, tool]));
    expect([...tools.keys()]).toEqual([
      ...toolNames,
      'spawn_agent',
      'send_input',
      'wait',
      'close_agent',
      'merge_agent',
    ]);
    const schema = (name: string) => tools.get(name)!.parameters as Record<string, unknown>;
    expect(Object.keys(schema('spawn_agent').properties as object)).toEqual([
      'message',
      'items',
      'agent_type',
    ]);
    expect(schema('send_input')).toMatchObject({
      required: ['id'],
      properties: { id: { type: 'string' }, message: { type: 'string' }, interrupt: { type: 'boolean' } },
      additionalProperties: false,
    });
    expect(schema('wait')).toMatchObject({
      required: ['ids'],
      properties: { ids: { type: 'array', items: { type: 'string' } }, timeout_ms: { type: 'number' } },
    });
    expect(schema('close_agent')).toMatchObject({ required: ['id'], properties: { id: { type: 'string' } } });
    expect(buildRequest(settings, 's', [], undefined, true).tools).toHaveLength(toolNames.length + 5);
    expect(chatTools(true)).toHaveLength(toolNames.length + 5);
  });

  it('check arguments as Codex does', () => {
    expect(waitArgs().safeParse({ ids: [] }).success).toBe(false);
    expect(waitArgs().safeParse({ ids: ['a'], timeout_ms: 5 }).success).toBe(true);
    expect(waitArgs().safeParse({ ids: ['a'], extra: 1 }).success).toBe(false);
    expect(closeAgentArgs().safeParse({}).success).toBe(false);
    expect(sendInputArgs().safeParse({ id: 'a', message: 'go', interrupt: true }).success).toBe(true);
    expect(spawnAgentArgs().safeParse({ message: 'x', agent_type: 'worker' }).success).toBe(true);
    expect(waitTimeout(undefined)).toBe(30_000);
    expect(waitTimeout(1)).toBe(10_000);
    expect(waitTimeout(10 * 60_000)).toBe(300_000);
    expect(waitTimeout(0)).toEqual({ problem: 'timeout_ms must be greater than zero' });
    expect(waitTimeout(-5)).toHaveProperty('problem');
    expect(waitTimeout(Number.NaN)).toHaveProperty('problem');
  });

  it('take the task from the message, or from the text items', () => {
    expect(inputText({ message: 'do it' })).toBe('do it');
    expect(inputText({ items: [{ text: 'one' }, { text: ' ' }, { text: 'two' }] })).toBe('one\ntwo');
    expect(inputText({ message: '  ', items: [] })).toBe('');
  });

  it("report statuses in Codex's shape, with the branch and files of a finished child", () => {
    expect(modelStatus({ status: 'running', turn: 2 }, 'b')).toBe('running');
    expect(
      modelStatus(
        { status: 'completed', turn: 3, message: 'done', filesChanged: ['a.ts'] },
        'ratchet/p/agent-1',
      ),
    ).toEqual({ completed: 'done', branch: 'ratchet/p/agent-1', files_changed: ['a.ts'] });
    expect(modelStatus({ status: 'errored', why: 'boom' }, null)).toEqual({ errored: 'boom' });
    expect(modelStatus({ status: 'idle', turn: 1, why: 'turn limit' }, null)).toEqual({ idle: 'turn limit' });
  });

  it('name branches git accepts, whatever the session id', () => {
    expect(agentBranch('fix-bug-1a2b', 'agent-1')).toBe('ratchet/fix-bug-1a2b/agent-1');
    expect(refSafe('a b:c~d^e?f*g[h\\i')).toBe('a-b-c-d-e-f-g-h-i');
    expect(refSafe('..x..y.lock')).toBe('x.y-lock');
    expect(refSafe('///')).toBe('session');
    expect(refSafe('x'.repeat(300))).toHaveLength(100);
  });
});
