/**
 * Every sentence the workflow writes for the model to read, one named constant or builder each:
 * the tool outputs for calls that did not run, were denied, were cut, or failed as
 * infrastructure. The words are part of the agent's behaviour (the base instructions in
 * src/shared/prompt/instructions.ts tell the model how to react to them), so they change here, on purpose,
 * and nowhere else. Text for people (notices, displays) stays with the code that shows it.
 */
import { toolNames } from '../shared/tools/specs.js';

// ── calls rejected before they run (tool-calls.ts) ──────────────────────────

export const unknownToolOutput = (name: string): string =>
  `Unknown tool "${name}". Available tools: ${toolNames.join(', ')}.`;

export const malformedArgumentsOutput = (name: string, problem: string): string =>
  `The arguments for ${name} are not valid JSON (${problem}). Send a JSON object.`;

export const invalidArgumentsOutput = (name: string, problems: string): string =>
  `Invalid arguments for ${name}: ${problems}.`;

// ── calls the policy or a person decided ────────────────────────────────────

export const PLAN_UPDATED_OUTPUT = 'Plan updated.';

export const policyDeniedOutput = (tool: string, reason: string): string =>
  `This ${tool} call is not allowed: ${reason}`;

export const userDeniedOutput = (tool: string, reason: string | undefined): string =>
  `The user denied this ${tool} call${reason ? `: ${reason}` : '.'} Do not retry it as it was; adapt your approach.`;

// ── calls an interrupt or abort cut ─────────────────────────────────────────

/** `label` is "interrupted" or "aborted"; `why` is "" or " (reason)". */
export const stoppedBeforeRunOutput = (label: string, why: string): string =>
  `The user ${label} this turn before this call ran${why}; it was not run.`;

export const stoppedWhileRunningOutput = (label: string, why: string, tool: string): string =>
  `The user ${label} this turn while this ${tool} call was running${why}; it was stopped before ` +
  'it reported a result, so its effect on the workspace is unknown. Check the state of the workspace ' +
  'before running it again.';

// ── calls the infrastructure failed ─────────────────────────────────────────

/** The worker holding the workspace did not pick this call up within `waitedSeconds`. */
export const workerLostOutput = (tool: string, waitedSeconds: number): string =>
  `The ${tool} call was not run: the worker that holds this workspace did not pick it up ` +
  `within ${waitedSeconds} s (it may have stopped). The user has been told.`;

/** A later call of a turn whose worker is already known to be gone. */
export const workerGoneOutput = (tool: string): string =>
  `The ${tool} call was not run: the worker that holds this workspace is unavailable ` +
  '(an earlier call of this turn was not picked up). The user has been told.';

/** A call that may have changed the workspace and was cut before it reported: never rerun. */
export const unknownEffectOutput = (tool: string, detail: string): string =>
  `The ${tool} call was interrupted before it reported a result (${detail}), so its effect on the ` +
  'workspace is unknown. It was not run again. Check the state of the workspace (for example git status, ' +
  'or read the files involved) before deciding whether to run it again.';

export const toolFailedOutput = (tool: string, detail: string): string =>
  `The ${tool} call failed: ${detail}`;
