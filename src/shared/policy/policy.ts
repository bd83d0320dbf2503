/**
 * The approval policy: whether a tool call runs, waits for a person, or is refused. Rules are
 * data (from configuration, and added by "approve for this session"); `decide` is a pure function
 * of the request, the session's policy and its rules, so that the workflow can run it.
 */
import {
  commandPrefix,
  argumentsDecideWhatRuns,
  runsChosenCode,
  type PrefixStyle,
} from './session-rule-prefix.js';
import { commandWords, displayCommand } from './shell-unwrap.js';
import { isKnownSafeCommand } from './read-only-commands.js';
import type { ToolKind } from '../tools/specs.js';

/**
 * untrusted: ask before anything but reads and known read-only commands (the default).
 * auto-edit: also allow edits inside the workspace.
 * never: never ask.
 * always: ask before every command and edit, known read-only commands included.
 */
export type ApprovalPolicy = 'untrusted' | 'auto-edit' | 'never' | 'always';

export const approvalPolicies: readonly ApprovalPolicy[] = ['untrusted', 'auto-edit', 'never', 'always'];

export type PolicyAction = 'allow' | 'ask' | 'deny';

/**
 * A standing decision. `tool` is a tool name or `*`. With a `prefix`, the rule is about shell
 * commands that start with those words: an `allow` rule covers what was approved and nothing
 * more (see coversCommand); `deny` and `ask` rules catch any command that starts with them.
 */
export interface PolicyRule {
  tool: string;
  prefix?: string[];
  action: PolicyAction;
}

export interface ToolRequest {
  tool: string;
  kind: ToolKind;
  /** The shell argv, for commands. */
  command?: string[];
  /** Workspace paths an edit touches, when they are known. */
  paths?: string[];
}

export interface PolicyDecision {
  action: PolicyAction;
  /** One sentence for a person. */
  reason: string;
}

function toolMatches(rule: PolicyRule, request: ToolRequest): boolean {
  return rule.tool === '*' || rule.tool === request.tool;
}

function startsWith(words: readonly string[], prefix: readonly string[]): boolean {
  return prefix.length <= words.length && prefix.every((word, i) => words[i] === word);
}

/**
 * Whether an allow rule's prefix covers one command: the command as approved, or with more words
 * that are not options (`npm test foo.test.ts`, `npm test -- a.test.ts`, but not
 * `npm test --node-options=…` or `npm test -- --watch`). A prefix that holds options or whose
 * arguments decide what runs was a whole command (`rm -rf build`, `python -c …`, `xargs rm`):
 * it takes no more words. A package manager told by an option to run chosen code is never
 * covered, not even as approved (runsChosenCode).
 */
function coversCommand(words: readonly string[], prefix: readonly string[]): boolean {
  if (!startsWith(words, prefix) || runsChosenCode(words)) return false;
  if (words.length === prefix.length) return true;
  const whole = prefix.some((word) => word.startsWith('-')) || argumentsDecideWhatRuns(prefix);
  return !whole && words.slice(prefix.length).every((word) => word === '--' || !word.startsWith('-'));
}

/**
 * The allow rules that together cover a request, or null. A rule without a prefix covers every
 * call of its tool. Prefix rules cover a shell command when each of its commands starts with one
 * of their prefixes or is known safe, and at least one starts with a prefix (a script of only
 * known-safe commands is the policy's business, not the rules').
 */
function coveringAllowRules(request: ToolRequest, rules: readonly PolicyRule[]): PolicyRule[] | null {
  const allows = rules.filter((rule) => rule.action === 'allow' && toolMatches(rule, request));
  const whole = allows.find((rule) => rule.prefix === undefined);
  if (whole !== undefined) return [whole];
  const commands = request.command === undefined ? null : commandWords(request.command);
  if (commands === null || commands.length === 0) return null;
  const used = new Set<PolicyRule>();
  for (const words of commands) {
    const rule = allows.find((candidate) => coversCommand(words, candidate.prefix!));
    if (rule !== undefined) used.add(rule);
    else if (!isKnownSafeCommand(words)) return null;
  }
  return used.size > 0 ? [...used] : null;
}

/**
 * Whether one rule applies to a request. The tool must match (or the rule say `*`). A prefix rule
 * needs a shell command that parses; a `deny` or `ask` rule then applies when any of its commands
 * starts with the prefix (`ls && rm x` is caught by a rule about `rm`), an `allow` rule when it
 * covers each command (coversCommand) or the command is known safe. `decide` lets several allow rules share the
 * commands of one script.
 */
export function ruleMatches(rule: PolicyRule, request: ToolRequest): boolean {
  if (!toolMatches(rule, request)) return false;
  if (rule.prefix === undefined) return true;
  if (rule.action === 'allow') return coveringAllowRules(request, [rule]) !== null;
  const commands = request.command === undefined ? null : commandWords(request.command);
  return commands !== null && commands.some((words) => startsWith(words, rule.prefix!));
}

/** The rule "approve for this session" adds: the command's prefix for shell, the whole tool otherwise. */
export function sessionRuleFor(request: ToolRequest, style: PrefixStyle = 'narrow'): PolicyRule {
  const { tool, command } = request;
  return command !== undefined
    ? { tool, prefix: commandPrefix(command, style), action: 'allow' }
    : { tool, action: 'allow' };
}

function oneLine(text: string, max = 80): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/** The call as a reason names it: the command for shell, else the tool. */
function subject(request: ToolRequest): string {
  return request.command !== undefined
    ? `\`${oneLine(displayCommand(request.command))}\``
    : `\`${request.tool}\``;
}

/** "the rule shell `npm test`", "the rule for every apply_patch call". */
function describeRules(rules: readonly PolicyRule[]): string {
  const names = rules.map((rule) => {
    if (rule.prefix !== undefined) return `${rule.tool} \`${oneLine(rule.prefix.join(' '), 60)}\``;
    return rule.tool === '*' ? 'for every call' : `for every ${rule.tool} call`;
  });
  return `the rule${names.length > 1 ? 's' : ''} ${names.join(' and ')}`;
}

function listPaths(paths: readonly string[]): string {
  const shown = paths.slice(0, 3).join(', ');
  return paths.length > 3 ? `${shown} and ${paths.length - 3} more` : shown;
}

/**
 * Why auto-edit should not allow an edit of this path by itself, or null: absolute paths and
 * `..` segments may leave the workspace, and files under `.git` (its config, its hooks) can make
 * later "read-only" git commands run programs.
 */
function pathConcern(path: string): string | null {
  if (/^([\\/]|[A-Za-z]:[\\/])/.test(path)) return 'an absolute path';
  const segments = path.split(/[\\/]/);
  if (segments.includes('..')) return 'a path that leaves the workspace';
  if (segments.some((segment) => segment.toLowerCase() === '.git'))
    return "inside the repository's .git directory";
  return null;
}

function editDecision(request: ToolRequest, policy: ApprovalPolicy): PolicyDecision {
  const what = subject(request);
  const paths = request.paths ?? [];
  const tag = `(policy: ${policy})`;
  if (policy === 'untrusted') {
    const target = paths.length > 0 ? ` ${listPaths(paths)}` : ' files';
    return { action: 'ask', reason: `${what} edits${target} and needs approval ${tag}` };
  }
  if (paths.length === 0) return { action: 'ask', reason: `the files ${what} edits are not known ${tag}` };
  for (const path of paths) {
    const concern = pathConcern(path);
    if (concern !== null) return { action: 'ask', reason: `${what} edits ${path}, ${concern} ${tag}` };
  }
  return { action: 'allow', reason: `${what} edits only files inside the workspace ${tag}` };
}

function policyDefault(request: ToolRequest, policy: ApprovalPolicy): PolicyDecision {
  const what = subject(request);
  const tag = `(policy: ${policy})`;
  if (request.kind === 'read') return { action: 'allow', reason: `${what} only reads ${tag}` };
  if (request.kind === 'plan') return { action: 'allow', reason: `${what} only records the plan ${tag}` };
  if (policy === 'never') return { action: 'allow', reason: `${what} runs without approval ${tag}` };
  if (policy === 'always')
    return { action: 'ask', reason: `${what} needs approval, as every command and edit does ${tag}` };
  if (request.kind === 'edit') return editDecision(request, policy);
  if (request.command !== undefined && isKnownSafeCommand(request.command)) {
    return { action: 'allow', reason: `${what} is a known read-only command ${tag}` };
  }
  if (request.command !== undefined && commandWords(request.command) === null) {
    return {
      action: 'ask',
      reason: `${what} uses shell syntax that is not checked, so it needs approval ${tag}`,
    };
  }
  return { action: 'ask', reason: `${what} is not a known read-only command ${tag}` };
}

/**
 * Decides a call: a matching `deny` rule wins over everything, then allow rules, then a matching
 * `ask` rule, then the policy's default for the tool's kind.
 */
export function decide(
  request: ToolRequest,
  policy: ApprovalPolicy,
  rules: readonly PolicyRule[],
): PolicyDecision {
  const deny = rules.find((rule) => rule.action === 'deny' && ruleMatches(rule, request));
  if (deny !== undefined)
    return { action: 'deny', reason: `${describeRules([deny])} refuses ${subject(request)}` };
  const allows = coveringAllowRules(request, rules);
  if (allows !== null) {
    return {
      action: 'allow',
      reason: `${describeRules(allows)} allow${allows.length > 1 ? '' : 's'} ${subject(request)}`,
    };
  }
  const ask = rules.find((rule) => rule.action === 'ask' && ruleMatches(rule, request));
  if (ask !== undefined)
    return { action: 'ask', reason: `${describeRules([ask])} asks before ${subject(request)}` };
  return policyDefault(request, policy);
}
