/**
 * What must hold after every chaos session, whatever happened in it (issue 11):
 * - every function call has exactly one output, after it, in every request and in the transcript;
 * - each output tells the truth: a result means the command ran once, "not run" means it did not;
 * - no mutating command ran twice (each writes its own token to runs.log: it counts itself);
 * - no command ran that needed approval and was not approved;
 * - every message the person was told was sent is in what the model or the transcript saw.
 * Pure functions over what the run collected; the runner adds the checks that need the server
 * (status answered, came to rest in time, no workflow-task failure).
 */
import { tokenOf } from './plan.js';

type Item = Record<string, unknown>;

/** Function calls and outputs pair up one to one, each output after its call. */
export function pairingProblems(where: string, items: readonly Item[]): string[] {
  const problems: string[] = [];
  const calls = new Map<string, number>();
  const answered = new Map<string, number>();
  items.forEach((item, index) => {
    if (item.type === 'function_call') {
      const id = String(item.call_id);
      if (calls.has(id)) problems.push(`${where}: call id ${id} appears twice`);
      calls.set(id, index);
    } else if (item.type === 'function_call_output') {
      const id = String(item.call_id);
      if (!calls.has(id)) problems.push(`${where}: output for ${id} has no call before it`);
      answered.set(id, (answered.get(id) ?? 0) + 1);
    }
  });
  for (const [id, count] of answered)
    if (count > 1) problems.push(`${where}: call ${id} has ${count} outputs`);
  for (const id of calls.keys()) if (!answered.has(id)) problems.push(`${where}: call ${id} has no output`);
  return problems;
}

export type OutputClaim = 'result' | 'not_run' | 'unknown' | 'rejected';

/** What an output says became of a mutating command. */
export function claimOf(output: string): OutputClaim {
  try {
    const parsed = JSON.parse(output) as { metadata?: { exit_code?: unknown } };
    if (parsed.metadata && typeof parsed.metadata.exit_code === 'number') return 'result';
  } catch {
    // not a shell result
  }
  if (/effect on the workspace is unknown|effect is unknown/.test(output)) return 'unknown';
  if (/was not run|it was not run|not run:|denied|not allowed|did not pick it up|refused/i.test(output)) {
    return 'not_run';
  }
  if (/Invalid arguments|not valid JSON|Unknown tool/.test(output)) return 'rejected';
  return 'unknown';
}

export interface TruthInput {
  /** Every conversation seen: model requests, compaction inputs, the final transcript. */
  conversations: ReadonlyArray<{ where: string; items: readonly Item[] }>;
  /** Tokens in runs.log, one per line, as often as their command ran. */
  runsLog: readonly string[];
  approvedTokens: ReadonlySet<string>;
  /** A person approved a command "for the session": later ones may run without asking. */
  approvedForSession: boolean;
  ackedMessages: readonly string[];
}

export function truthProblems(input: TruthInput): string[] {
  const problems: string[] = [];
  const ran = new Map<string, number>();
  for (const token of input.runsLog) ran.set(token, (ran.get(token) ?? 0) + 1);
  const claims = new Map<string, Set<string>>();
  for (const { items } of input.conversations) {
    const outputs = new Map<string, string>();
    for (const item of items) {
      if (item.type === 'function_call_output') outputs.set(String(item.call_id), String(item.output));
    }
    for (const item of items) {
      if (item.type !== 'function_call' || item.name !== 'shell') continue;
      let args: unknown;
      try {
        args = JSON.parse(String(item.arguments));
      } catch {
        continue;
      }
      const token = tokenOf(args);
      const output = outputs.get(String(item.call_id));
      if (!token || output === undefined) continue;
      const seen = claims.get(token) ?? new Set<string>();
      seen.add(output);
      claims.set(token, seen);
    }
  }
  for (const [token, outputs] of claims) {
    if (outputs.size > 1) problems.push(`${token}: its output changed between requests`);
    const count = ran.get(token) ?? 0;
    for (const output of outputs) {
      const claim = claimOf(output);
      if (claim === 'result' && count !== 1) {
        problems.push(`${token}: output is a result but it ran ${count} times: ${output.slice(0, 200)}`);
      }
      if (claim === 'not_run' && count !== 0) {
        problems.push(`${token}: output says not run but it ran ${count} times: ${output.slice(0, 200)}`);
      }
    }
  }
  for (const [token, count] of ran) {
    if (count > 1) problems.push(`${token}: a mutating command ran ${count} times`);
    if (!input.approvedTokens.has(token) && !input.approvedForSession) {
      problems.push(`${token}: ran without being approved`);
    }
    if (!claims.has(token)) problems.push(`${token}: ran, but no output for it was ever seen`);
  }
  const everything = input.conversations.map(({ items }) => JSON.stringify(items)).join('\n');
  for (const message of input.ackedMessages) {
    if (!everything.includes(JSON.stringify(message).slice(1, -1))) {
      problems.push(`message "${message}" was acknowledged but never reached the transcript`);
    }
  }
  return problems;
}
