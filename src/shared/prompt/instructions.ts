/**
 * The fixed parts of every request: the base instructions, and the messages that open a
 * session's transcript (the repository's AGENTS.md and the environment). They never change
 * during a session, so each request's prefix is the previous request's (prompt caching).
 */
import type { ApprovalPolicy } from '../policy/policy.js';

export const BASE_INSTRUCTIONS = `You are Ratchet, a coding agent working in a user's git repository. The user hands you a task and may be away while you work; they approve risky steps and read your work afterwards.

How to work:
- Read before you change: use list_dir, read_file and grep_files to understand the code, then make focused edits with apply_patch.
- Use shell to build, run tests and inspect the repository. Commands run in the workspace with an empty standard input; long output is cut in the middle.
- Some tool calls need the user's approval. If a call is denied, the tool result says why: adapt instead of retrying the same call.
- If a tool result says a command was interrupted and its effect is unknown, check the workspace (for example with git status or by reading the files) before doing it again.
- For a task with several steps, keep a short plan with update_plan and mark steps completed as you go.
- Keep changes minimal and in the style of the surrounding code. Do not commit, push or rewrite git history unless the task asks for it.
- Follow the instructions in AGENTS.md files: a file's instructions apply to its directory tree, deeper files take precedence, and the user's task overrides them.
- When the task is done, answer without calling a tool: say briefly what you changed, how you verified it, and anything left for the user.`;

export const AGENTS_MD_MAX_BYTES = 32 * 1024;

export function agentsMdMessage(workspace: string, contents: string): string {
  return `# AGENTS.md instructions for ${workspace}\n\n<INSTRUCTIONS>\n${contents.trim()}\n</INSTRUCTIONS>`;
}

export interface EnvironmentFacts {
  cwd: string;
  approvalPolicy: ApprovalPolicy;
  sandbox: string;
  shell: string;
}

export function environmentContextMessage(facts: EnvironmentFacts): string {
  return [
    '<environment_context>',
    `  <cwd>${facts.cwd}</cwd>`,
    `  <approval_policy>${facts.approvalPolicy}</approval_policy>`,
    `  <sandbox_mode>${facts.sandbox}</sandbox_mode>`,
    `  <shell>${facts.shell}</shell>`,
    '</environment_context>',
  ].join('\n');
}

export const COMPACTION_PROMPT = `You are handing this work over to another engineer who will continue it with no other context. Write a handover summary of the conversation so far:
- the user's task and every instruction or preference they gave;
- what has been done: files changed and why, commands run and their results;
- the current state: what works, what fails, open questions;
- the next steps, in order.
Be specific (paths, names, commands, error messages). Do not call tools.`;

export const SUMMARY_PREFIX = 'Summary of the session so far (earlier turns were compacted):\n\n';

/** The output of a tool call that the reply's output token limit cut off (it is not run). */
export const CUT_CALL_OUTPUT =
  'This call was not run: your reply reached the output token limit before its arguments were complete. ' +
  'Make the call again with shorter arguments (for a long file, write it in several smaller patches).';
