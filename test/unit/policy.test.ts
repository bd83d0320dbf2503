import { describe, expect, it } from 'vitest';
import type {
  ApprovalPolicy,
  PolicyAction,
  PolicyRule,
  ToolRequest,
} from '../../src/shared/policy/policy.js';
import { approvalPolicies, decide, ruleMatches, sessionRuleFor } from '../../src/shared/policy/policy.js';

const shell = (...command: string[]): ToolRequest => ({ tool: 'shell', kind: 'execute', command });
const bash = (script: string): ToolRequest => shell('bash', '-lc', script);
const patch = (...paths: string[]): ToolRequest => ({ tool: 'apply_patch', kind: 'edit', paths });
const readFile: ToolRequest = { tool: 'read_file', kind: 'read' };
const plan: ToolRequest = { tool: 'update_plan', kind: 'plan' };

const safeShell = shell('ls', '-la');
const otherShell = shell('npm', 'test');
const edit = patch('src/a.ts');

function action(
  request: ToolRequest,
  policy: ApprovalPolicy = 'untrusted',
  rules: PolicyRule[] = [],
): PolicyAction {
  return decide(request, policy, rules).action;
}

describe('policy defaults', () => {
  it('lists every policy, the default first', () => {
    expect(approvalPolicies).toEqual(['untrusted', 'auto-edit', 'never', 'always']);
  });

  const table: [string, ToolRequest, Record<ApprovalPolicy, PolicyAction>][] = [
    ['read', readFile, { untrusted: 'allow', 'auto-edit': 'allow', never: 'allow', always: 'allow' }],
    ['plan', plan, { untrusted: 'allow', 'auto-edit': 'allow', never: 'allow', always: 'allow' }],
    [
      'known-safe shell',
      safeShell,
      { untrusted: 'allow', 'auto-edit': 'allow', never: 'allow', always: 'ask' },
    ],
    ['other shell', otherShell, { untrusted: 'ask', 'auto-edit': 'ask', never: 'allow', always: 'ask' }],
    [
      'edit in the workspace',
      edit,
      { untrusted: 'ask', 'auto-edit': 'allow', never: 'allow', always: 'ask' },
    ],
  ];
  for (const [name, request, expected] of table) {
    for (const policy of approvalPolicies) {
      it(`${name} under ${policy} → ${expected[policy]}`, () => {
        const decision = decide(request, policy, []);
        expect(decision.action).toBe(expected[policy]);
        expect(decision.reason).toContain(`(policy: ${policy})`);
      });
    }
  }

  it.each([
    ['an absolute path', patch('/etc/passwd')],
    ['a .. segment', patch('../outside.ts')],
    ['a .. segment in the middle', patch('src/../../outside.ts')],
    ['a Windows absolute path', patch('C:\\Windows\\x')],
    ['a backslash .. segment', patch('src\\..\\..\\x')],
    ['a file under .git', patch('.git/config')],
    ['a file under a nested .git', patch('vendor/lib/.git/hooks/pre-commit')],
    ['one bad path among good ones', patch('src/a.ts', '/tmp/x')],
    ['unknown paths', { tool: 'apply_patch', kind: 'edit' } satisfies ToolRequest],
    ['no paths', patch()],
  ])('auto-edit asks for an edit with %s', (_name, request) => {
    expect(action(request, 'auto-edit')).toBe('ask');
  });

  it('auto-edit allows names that only look like ..', () => {
    expect(action(patch('src/..hidden', 'a..b/c.ts', '.github/workflows/ci.yml'), 'auto-edit')).toBe('allow');
  });

  it('known-safe scripts are allowed and mixed scripts ask', () => {
    expect(action(bash('git status && git diff'))).toBe('allow');
    expect(action(bash('ls && rm -rf x'))).toBe('ask');
    expect(action(bash('cat $(whoami)'))).toBe('ask');
    expect(action(bash('cat $(whoami)'), 'never')).toBe('allow');
  });

  it('gives reasons a person can read', () => {
    expect(decide(otherShell, 'untrusted', []).reason).toBe(
      '`npm test` is not a known read-only command (policy: untrusted)',
    );
    expect(decide(safeShell, 'untrusted', []).reason).toBe(
      '`ls -la` is a known read-only command (policy: untrusted)',
    );
    expect(decide(bash('cat $(whoami)'), 'untrusted', []).reason).toContain(
      'shell syntax that is not checked',
    );
    expect(decide(patch('/etc/passwd'), 'auto-edit', []).reason).toBe(
      '`apply_patch` edits /etc/passwd, an absolute path (policy: auto-edit)',
    );
    expect(decide(edit, 'untrusted', []).reason).toBe(
      '`apply_patch` edits src/a.ts and needs approval (policy: untrusted)',
    );
    const long = decide(bash(`echo ${'x'.repeat(200)}\nrm -rf y`), 'untrusted', []).reason;
    expect(long).not.toContain('\n');
    expect(long.length).toBeLessThan(140);
  });
});

describe('rules', () => {
  const allowNpmTest: PolicyRule = { tool: 'shell', prefix: ['npm', 'test'], action: 'allow' };
  const denyRm: PolicyRule = { tool: 'shell', prefix: ['rm'], action: 'deny' };
  const askGitPush: PolicyRule = { tool: 'shell', prefix: ['git', 'push'], action: 'ask' };

  it('a deny rule wins over allow rules and every policy, reads included', () => {
    const allowAll: PolicyRule = { tool: '*', action: 'allow' };
    expect(action(shell('rm', 'x'), 'never', [allowAll, denyRm])).toBe('deny');
    expect(
      action(readFile, 'never', [
        { tool: 'read_file', action: 'allow' },
        { tool: '*', action: 'deny' },
      ]),
    ).toBe('deny');
    expect(decide(shell('rm', '-rf', 'x'), 'never', [denyRm]).reason).toBe(
      'the rule shell `rm` refuses `rm -rf x`',
    );
  });

  it('an allow rule wins over an ask rule and over the policy', () => {
    const allowGit: PolicyRule = { tool: 'shell', prefix: ['git'], action: 'allow' };
    expect(action(shell('git', 'push'), 'untrusted', [askGitPush, allowGit])).toBe('allow');
    expect(action(otherShell, 'always', [allowNpmTest])).toBe('allow');
    expect(action(edit, 'untrusted', [{ tool: 'apply_patch', action: 'allow' }])).toBe('allow');
    expect(decide(otherShell, 'untrusted', [allowNpmTest]).reason).toBe(
      'the rule shell `npm test` allows `npm test`',
    );
  });

  it('an ask rule wins over the policy', () => {
    expect(action(shell('git', 'push', 'origin'), 'never', [askGitPush])).toBe('ask');
    expect(action(readFile, 'never', [{ tool: 'read_file', action: 'ask' }])).toBe('ask');
    expect(decide(shell('git', 'push'), 'never', [askGitPush]).reason).toBe(
      'the rule shell `git push` asks before `git push`',
    );
  });

  it('a rule applies to its tool, or to every tool with *', () => {
    expect(ruleMatches({ tool: 'apply_patch', action: 'deny' }, edit)).toBe(true);
    expect(ruleMatches({ tool: 'apply_patch', action: 'deny' }, otherShell)).toBe(false);
    expect(ruleMatches({ tool: '*', action: 'deny' }, otherShell)).toBe(true);
    expect(ruleMatches({ tool: '*', prefix: ['npm'], action: 'deny' }, otherShell)).toBe(true);
    expect(ruleMatches({ tool: '*', prefix: ['npm'], action: 'deny' }, edit)).toBe(false);
  });

  it('an allow prefix rule matches its words followed by more words that are not options', () => {
    expect(ruleMatches(allowNpmTest, shell('npm', 'test'))).toBe(true);
    expect(ruleMatches(allowNpmTest, shell('npm', 'test', '--', 'a.test.ts'))).toBe(true);
    expect(ruleMatches(allowNpmTest, shell('npm', 'test', '--', '--watch'))).toBe(false);
    expect(ruleMatches(allowNpmTest, bash('npm test -- --watch'))).toBe(false);
    expect(ruleMatches({ ...allowNpmTest, action: 'deny' }, bash('npm test -- --watch'))).toBe(true);
    expect(ruleMatches(allowNpmTest, shell('npm', 'testing'))).toBe(false);
    expect(ruleMatches(allowNpmTest, shell('npm', 'run', 'test'))).toBe(false);
    expect(ruleMatches(allowNpmTest, shell('npm'))).toBe(false);
    expect(ruleMatches(allowNpmTest, readFile)).toBe(false);
  });

  it('an allow prefix rule covers a script only when every other command is known safe', () => {
    expect(ruleMatches(allowNpmTest, bash('npm test && git status'))).toBe(true);
    expect(ruleMatches(allowNpmTest, bash('cd app && npm test 2>&1 | tail -20'))).toBe(true);
    expect(ruleMatches(allowNpmTest, bash('npm test && rm -rf dist'))).toBe(false);
    expect(ruleMatches(allowNpmTest, bash('ls && pwd'))).toBe(false);
    expect(action(bash('npm test && rm -rf dist'), 'untrusted', [allowNpmTest])).toBe('ask');
  });

  it('several allow rules together cover a script', () => {
    const allowBuild: PolicyRule = { tool: 'shell', prefix: ['npm', 'run', 'build'], action: 'allow' };
    const script = bash('npm run build && npm test && ls dist');
    expect(ruleMatches(allowNpmTest, script)).toBe(false);
    expect(ruleMatches(allowBuild, script)).toBe(false);
    const decision = decide(script, 'untrusted', [allowNpmTest, allowBuild]);
    expect(decision.action).toBe('allow');
    expect(decision.reason).toBe(
      'the rules shell `npm run build` and shell `npm test` allow `npm run build && npm test && ls dist`',
    );
  });

  it('a deny or ask prefix rule catches any command of a script', () => {
    expect(ruleMatches(denyRm, bash('ls && rm -rf x'))).toBe(true);
    expect(ruleMatches(denyRm, bash("echo ok; bash -lc 'rm x'"))).toBe(true);
    expect(action(bash('npm test && rm -rf x'), 'never', [allowNpmTest, denyRm])).toBe('deny');
    expect(action(bash('git fetch && git push'), 'never', [askGitPush])).toBe('ask');
  });

  it('an unparseable script never matches a prefix rule', () => {
    expect(ruleMatches(allowNpmTest, bash('npm test $(whoami)'))).toBe(false);
    expect(ruleMatches(denyRm, bash('rm $(whoami)'))).toBe(false);
    expect(action(bash('npm test > out.txt'), 'untrusted', [allowNpmTest])).toBe('ask');
  });

  it('a rule without a prefix covers every call of its tool', () => {
    expect(ruleMatches({ tool: 'shell', action: 'allow' }, bash('cat $(whoami)'))).toBe(true);
  });
});

describe('sessionRuleFor', () => {
  it('stores the command prefix for shell and the whole tool otherwise', () => {
    expect(sessionRuleFor(shell('npm', 'test', '--', '--watch'))).toEqual({
      tool: 'shell',
      prefix: ['npm', 'test'],
      action: 'allow',
    });
    expect(sessionRuleFor(bash('cargo build --release'))).toEqual({
      tool: 'shell',
      prefix: ['cargo', 'build'],
      action: 'allow',
    });
    expect(sessionRuleFor(edit)).toEqual({ tool: 'apply_patch', action: 'allow' });
  });

  it.each<[string, ToolRequest, ToolRequest[], ToolRequest[]]>([
    [
      'npm test',
      shell('npm', 'test'),
      [shell('npm', 'test'), shell('npm', 'test', 'a.test.ts'), bash('npm test 2>&1 | tail -5')],
      [
        shell('npm', 'run', 'build'),
        shell('npm', 'install'),
        bash('npm test && rm -rf x'),
        // Options after an approved prefix are a new command: these ran arbitrary code.
        shell('npm', 'test', '--', '--watch'),
        shell('npm', 'test', '--node-options=--import=data:text/javascript,process.exit(7)'),
        shell('npm', '--node-options=--require=./x.js', 'test'),
      ],
    ],
    [
      'a script',
      bash('cd app && npm test'),
      [bash('cd app && npm test'), bash('npm test -- a.test.ts')],
      [bash('cd app && npm run lint'), bash('cd app && npm test && git push')],
    ],
    [
      'git commit',
      shell('git', 'commit', '-m', 'first'),
      [shell('git', 'commit')],
      [
        shell('git', 'push'),
        shell('git', 'reset', '--hard'),
        shell('git', 'commit', '-m', 'second'),
        shell('git', 'commit', '--no-verify', '-m', 'x'),
      ],
    ],
    [
      'a whole command',
      shell('rm', '-rf', 'build'),
      [shell('rm', '-rf', 'build')],
      [shell('rm', '-rf', 'build', '/'), shell('rm', '-rf', 'build', '--', '/'), shell('rm', '-rf')],
    ],
    [
      'a package manager with a code-running option, even as approved',
      shell('npm', '--node-options=--require=./x.js', 'test'),
      [],
      [shell('npm', '--node-options=--require=./x.js', 'test'), shell('npm', 'test', '--require', 'x')],
    ],
    ['a launcher', shell('xargs', 'rm'), [shell('xargs', 'rm')], [shell('xargs', 'rm', 'important.txt')]],
    [
      'inline code',
      shell('python', '-c', 'print(1)'),
      [shell('python', '-c', 'print(1)')],
      [shell('python', '-c', 'x')],
    ],
    [
      'an unparseable script',
      bash('npm test > out.txt'),
      [],
      [bash('npm test > out.txt'), shell('npm', 'test')],
    ],
  ])(
    'approving %s for the session allows it again and still asks for others',
    (_name, first, same, others) => {
      expect(action(first)).toBe('ask');
      const rules = [sessionRuleFor(first)];
      for (const request of same)
        expect(action(request, 'untrusted', rules), JSON.stringify(request.command)).toBe('allow');
      for (const request of others)
        expect(action(request, 'untrusted', rules), JSON.stringify(request.command)).toBe('ask');
    },
  );

  it('approving an edit for the session allows later edits, even outside the workspace', () => {
    const rules = [sessionRuleFor(edit)];
    expect(action(patch('src/b.ts'), 'untrusted', rules)).toBe('allow');
    expect(action(patch('/etc/hosts'), 'auto-edit', rules)).toBe('allow');
    expect(action(otherShell, 'untrusted', rules)).toBe('ask');
  });

  it('a standing deny rule still wins over a session rule', () => {
    const rules: PolicyRule[] = [{ tool: 'shell', prefix: ['npm', 'publish'], action: 'deny' }];
    rules.push(sessionRuleFor(shell('npm', 'publish', '--dry-run')));
    expect(action(shell('npm', 'publish'), 'untrusted', rules)).toBe('deny');
  });
});
