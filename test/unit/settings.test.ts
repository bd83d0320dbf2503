import { parseTokens } from '../../src/cli/budget.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sessionConfig } from '../../src/cli/program.js';
import { resolveSettings } from '../../src/cli/settings.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ratchet-settings-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFile(text: string, name = 'ratchet.toml'): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

const FILE = [
  '# project defaults',
  'model = "from-file"',
  'approval = "auto-edit"',
  'sandbox = "read-only"',
  'command_timeout = 120',
  'compact_at = 0.5',
  'workspace_roots = ["/srv/a", "/srv/b"]',
  'api = "chat"',
  '',
].join('\n');

describe('settings', () => {
  it('default to nothing when no layer sets them', () => {
    expect(resolveSettings({}, {}, dir)).toEqual({});
    expect(sessionConfig('t', '/w', {})).toMatchObject({
      model: { name: 'gpt-5.1-codex' },
      approvalPolicy: 'untrusted',
      sandbox: 'workspace-write',
    });
  });

  it('come from ratchet.toml in the working directory', async () => {
    await configFile(FILE);
    const settings = resolveSettings({}, {}, dir);
    expect(settings).toEqual({
      model: 'from-file',
      approval: 'auto-edit',
      sandbox: 'read-only',
      command_timeout: 120,
      compact_at: 0.5,
      workspace_roots: ['/srv/a', '/srv/b'],
      api: 'chat',
    });
    expect(sessionConfig('t', '/w', settings)).toMatchObject({
      model: { name: 'from-file', compactAtRatio: 0.5 },
      approvalPolicy: 'auto-edit',
      sandbox: 'read-only',
      limits: { commandTimeoutMs: 120_000 },
    });
  });

  it('take the environment over the file, and flags over both', async () => {
    await configFile(FILE);
    const env = { RATCHET_MODEL: 'from-env', RATCHET_APPROVAL: 'never', RATCHET_WORKSPACE_ROOTS: '/x:/y' };
    expect(resolveSettings({}, env, dir)).toMatchObject({
      model: 'from-env',
      approval: 'never',
      sandbox: 'read-only',
      workspace_roots: ['/x', '/y'],
    });
    expect(resolveSettings({ model: 'from-flag', commandTimeout: '7' }, env, dir)).toMatchObject({
      model: 'from-flag',
      approval: 'never',
      command_timeout: 7,
    });
  });

  it('read the file named by --config or RATCHET_CONFIG', async () => {
    const file = await configFile('model = "named"\n', 'other.toml');
    expect(resolveSettings({ config: file }, {}, os.tmpdir())).toEqual({ model: 'named' });
    expect(resolveSettings({}, { RATCHET_CONFIG: file }, os.tmpdir())).toEqual({ model: 'named' });
    expect(() => resolveSettings({ config: 'missing.toml' }, {}, dir)).toThrow(
      'missing.toml: no such config file',
    );
  });

  it.each([
    ['a TOML syntax error', 'model = "x"\napproval = \n', /\/ratchet\.toml:2:\d+: .*TOML syntax/],
    ['a bad value', 'model = "x"\n\napproval = "sometimes"\n', /\/ratchet\.toml:3: approval: .*untrusted/],
    [
      'a value of the wrong type',
      'command_timeout = "ten"\n',
      /\/ratchet\.toml:1: command_timeout: .*number/,
    ],
    ['an unknown setting', 'model = "x"\nmodle = "y"\n', /\/ratchet\.toml:2: unknown setting "modle"/],
    [
      'a compaction threshold out of range',
      'compact_at = 3\n',
      /\/ratchet\.toml:1: compact_at: expected at most 1/,
    ],
  ])('name the file and line of %s', async (_, text, pattern) => {
    const file = await configFile(text);
    let message = '';
    try {
      resolveSettings({ config: file }, {}, dir);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(pattern);
    expect(message.split('\n')).toHaveLength(1);
  });

  it('name the variable or flag of a bad value', () => {
    expect(() => resolveSettings({}, { RATCHET_COMMAND_TIMEOUT: 'soon' }, dir)).toThrow(
      /^RATCHET_COMMAND_TIMEOUT=soon: /,
    );
    expect(() => resolveSettings({ compactAt: '2' }, {}, dir)).toThrow(/^--compact-at: expected at most 1/);
    expect(() => resolveSettings({ api: 'soap' }, {}, dir)).toThrow(/^--api: .*responses.*chat/);
    expect(() => resolveSettings({ metricsPort: '70000' }, {}, dir)).toThrow(/^--metrics-port: /);
  });

  it('carry the checkpoint settings into the session, and refuse a negative count', async () => {
    await configFile('checkpoint_keep = 5\ncheckpoint_prune_at_end = true\n');
    expect(sessionConfig('t', '/w', resolveSettings({}, {}, dir)).checkpoints).toEqual({
      keep: 5,
      afterEnd: 'prune',
    });
    expect(sessionConfig('t', '/w', {}).checkpoints).toBeUndefined();
    expect(() => resolveSettings({ checkpointKeep: '-1' }, {}, dir)).toThrow(
      /^--checkpoint-keep: expected 0 or more/,
    );
    expect(() => resolveSettings({}, { RATCHET_CHECKPOINT_KEEP: 'many' }, dir)).toThrow(
      /^RATCHET_CHECKPOINT_KEEP=many: /,
    );
  });
});

describe('notify', () => {
  it('reads URL tables from ratchet.toml, and marks the sessions it starts to notify', async () => {
    await configFile(
      [
        'inbox_url = "http://ratchet.example:8234"',
        '[[notify]]',
        'url = "https://hooks.slack.com/services/T/B/x"',
        'format = "slack"',
        'events = ["awaiting_approval"]',
        '[[notify]]',
        'url = "https://example.com/hook"',
      ].join('\n'),
    );
    const settings = resolveSettings({}, {}, dir);
    expect(settings.notify).toEqual([
      { url: 'https://hooks.slack.com/services/T/B/x', format: 'slack', events: ['awaiting_approval'] },
      { url: 'https://example.com/hook', format: 'json' },
    ]);
    expect(settings.inbox_url).toBe('http://ratchet.example:8234');
    expect(sessionConfig('t', '/w', settings).notify).toBe(true);
    expect(sessionConfig('t', '/w', {}).notify).toBeUndefined();
  });

  it('reads RATCHET_NOTIFY as URLs with the format in front', () => {
    const env = {
      RATCHET_NOTIFY:
        'slack+https://hooks.slack.com/services/x, ntfy+https://ntfy.sh/topic https://a.example/h',
    };
    expect(resolveSettings({}, env, dir).notify).toEqual([
      { url: 'https://hooks.slack.com/services/x', format: 'slack' },
      { url: 'https://ntfy.sh/topic', format: 'ntfy' },
      { url: 'https://a.example/h', format: 'json' },
    ]);
  });

  it.each([
    ['a format it does not know', '[[notify]]\nurl = "https://a.example"\nformat = "teams"'],
    ['an event it does not know', '[[notify]]\nurl = "https://a.example"\nevents = ["started"]'],
    ['a URL that is not http', '[[notify]]\nurl = "file:///etc/passwd"'],
  ])('refuses %s, naming the setting', async (_name, text) => {
    await configFile(text);
    expect(() => resolveSettings({}, {}, dir)).toThrow(/ratchet\.toml.*notify/);
  });
});

describe('fan-out settings', () => {
  it('are off by default: a session without max_agents has no agents setting at all', () => {
    expect(sessionConfig('t', '/w', {})).not.toHaveProperty('agents');
    expect(sessionConfig('t', '/w', { max_agents: 0, keep_worktrees: true })).not.toHaveProperty('agents');
  });

  it('come from ratchet.toml, the environment and flags, and give the session its agents', async () => {
    await configFile('max_agents = 4\nagent_depth = 2\nkeep_worktrees = true\n');
    const fromFile = resolveSettings({}, {}, dir);
    expect(fromFile).toEqual({ max_agents: 4, agent_depth: 2, keep_worktrees: true });
    expect(sessionConfig('t', '/w', fromFile).agents).toEqual({ max: 4, maxDepth: 2, keepWorktrees: true });
    expect(resolveSettings({}, { RATCHET_MAX_AGENTS: '3' }, dir).max_agents).toBe(3);
    expect(resolveSettings({ maxAgents: '2' }, { RATCHET_MAX_AGENTS: '3' }, dir).max_agents).toBe(2);
  });

  it('refuse a count that is not a whole number from 0 to 16, naming where it came from', async () => {
    expect(() => resolveSettings({}, { RATCHET_MAX_AGENTS: 'four' }, dir)).toThrow(/RATCHET_MAX_AGENTS=four/);
    expect(() => resolveSettings({ maxAgents: '17' }, {}, dir)).toThrow(/--agents: expected at most 16/);
    expect(() => resolveSettings({}, { RATCHET_AGENT_DEPTH: '0' }, dir)).toThrow(/RATCHET_AGENT_DEPTH/);
    await configFile('max_agents = 2.5\n');
    expect(() => resolveSettings({}, {}, dir)).toThrow(/ratchet.toml:1: max_agents: expected a whole number/);
  });
});

describe('the token budget setting', () => {
  it('comes from ratchet.toml, the environment and --budget-tokens, and gives the session its budget', async () => {
    expect(sessionConfig('t', '/w', {})).not.toHaveProperty('budget');
    await configFile('budget_tokens = 200000\n');
    const fromFile = resolveSettings({}, {}, dir);
    expect(fromFile).toEqual({ budget_tokens: 200_000 });
    expect(sessionConfig('t', '/w', fromFile).budget).toEqual({ tokens: 200_000 });
    expect(resolveSettings({}, { RATCHET_BUDGET_TOKENS: '5000' }, dir).budget_tokens).toBe(5000);
    expect(
      resolveSettings({ budgetTokens: '700' }, { RATCHET_BUDGET_TOKENS: '5000' }, dir).budget_tokens,
    ).toBe(700);
  });

  it.each([
    ['a negative number', '-5', /--budget-tokens: expected a number of tokens above 0/],
    ['zero', '0', /--budget-tokens: expected a number of tokens above 0/],
    ['a word', 'lots', /--budget-tokens: /],
    ['a fraction', '1.5', /--budget-tokens: expected a whole number of tokens/],
  ])('refuses %s, naming the flag', (_name, value, problem) => {
    expect(() => resolveSettings({ budgetTokens: value }, {}, dir)).toThrow(problem);
  });

  it('refuses a budget in ratchet.toml that is not a number, naming the line', async () => {
    await configFile('model = "m"\nbudget_tokens = "many"\n');
    expect(() => resolveSettings({}, {}, dir)).toThrow(/ratchet\.toml:2: budget_tokens/);
  });
});

describe('ratchet budget --add', () => {
  it('takes a whole number of tokens above 0 and refuses anything else', () => {
    expect(parseTokens('50000')).toBe(50_000);
    expect(parseTokens(' 7 ')).toBe(7);
    for (const bad of ['-5', '0', '1.5', 'abc', '', '50k', '1e6', '99999999999999999999'])
      expect(() => parseTokens(bad), bad).toThrow(/expected a whole number of tokens above 0/);
  });
});
