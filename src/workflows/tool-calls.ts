/**
 * Turns the model's function calls into work the session can schedule: arguments parsed and
 * validated, the tool's kind looked up, the policy asked. Pure; the workflow runs it.
 */
import type { FunctionCallItem } from '../shared/prompt/items.js';
import { parsePatch, patchPaths } from '../shared/tools/patch.js';
import type { PolicyDecision, ToolRequest } from '../shared/policy/policy.js';
import { isKnownSafeCommand } from '../shared/policy/read-only-commands.js';
import { CUT_CALL_OUTPUT } from '../shared/prompt/instructions.js';
import { joinDir, patchFromCommand } from '../shared/tools/shell-patch.js';
import { toolCallSummary } from '../shared/tools/summary.js';
import type { ToolName, ToolArgs } from '../shared/tools/specs.js';
import { isToolName, toolSpecs } from '../shared/tools/specs.js';
import { invalidArgumentsOutput, malformedArgumentsOutput, unknownToolOutput } from './model-text.js';

/** A call that goes back to the model as an error without running anything. */
export interface RejectedCall {
  kind: 'rejected';
  call: FunctionCallItem;
  output: string;
  display: string;
}

export interface PlanCall {
  kind: 'plan';
  call: FunctionCallItem;
  args: ToolArgs<'update_plan'>;
}

export interface ToolCall {
  kind: 'tool';
  call: FunctionCallItem;
  tool: Exclude<ToolName, 'update_plan'>;
  args: unknown;
  request: ToolRequest;
  /** Safe to run concurrently with other read-only calls and to retry. */
  readOnly: boolean;
  /** One line for people: "shell · npm test", "apply_patch · 3 files". */
  summary: string;
  decision: PolicyDecision;
}

export type PreparedCall = RejectedCall | PlanCall | ToolCall;

function editPaths(tool: ToolName, args: Record<string, unknown>, workdir?: string): string[] | undefined {
  if (tool !== 'apply_patch') return undefined;
  try {
    return patchPaths(parsePatch(args.input as string)).map((p) => joinDir(workdir, p) ?? p);
  } catch {
    return undefined;
  }
}

/**
 * Validates one call and asks the policy about it. `decide` is the session's policy (with its
 * rules), passed in so that this stays a plain function.
 */
export function prepareCall(
  call: FunctionCallItem,
  decide: (request: ToolRequest) => PolicyDecision,
  /**
   * Whether a shell call that only applies a patch (src/shared/tools/shell-patch.ts) runs as apply_patch;
   * asked only when a call has that shape (the workflow answers with a patch marker).
   */
  runShellPatches: () => boolean = () => true,
): PreparedCall {
  if (!isToolName(call.name)) {
    return {
      kind: 'rejected',
      call,
      output: unknownToolOutput(call.name),
      display: `${call.name} · unknown tool`,
    };
  }
  if (call.status === 'incomplete') {
    return {
      kind: 'rejected',
      call,
      output: CUT_CALL_OUTPUT,
      display: `${call.name} · cut off by the output limit`,
    };
  }
  let raw: unknown;
  try {
    raw = call.arguments.trim() === '' ? {} : JSON.parse(call.arguments);
  } catch (err) {
    return {
      kind: 'rejected',
      call,
      output: malformedArgumentsOutput(call.name, (err as Error).message),
      display: `${call.name} · malformed arguments`,
    };
  }
  const spec = toolSpecs[call.name];
  const parsed = spec.parameters.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((issue) => `${issue.path.length ? issue.path.join('.') : 'arguments'}: ${issue.message}`)
      .join('; ');
    return {
      kind: 'rejected',
      call,
      output: invalidArgumentsOutput(call.name, problems),
      display: `${call.name} · invalid arguments`,
    };
  }
  if (call.name === 'update_plan') {
    return { kind: 'plan', call, args: parsed.data as ToolArgs<'update_plan'> };
  }
  let tool: Exclude<ToolName, 'update_plan'> = call.name;
  let args = parsed.data as Record<string, unknown>;
  let workdir: string | undefined;
  if (tool === 'shell') {
    const shellPatch = patchFromCommand(args.command as string[], args.workdir as string | undefined);
    if (shellPatch !== undefined && runShellPatches()) {
      tool = 'apply_patch';
      workdir = shellPatch.workdir;
      // The workdir is shown with the patch (and in its summary); the activity reads the call's own arguments.
      args = workdir === undefined ? { input: shellPatch.patch } : { input: shellPatch.patch, workdir };
    }
  }
  const kind = toolSpecs[tool].kind;
  const command = tool === 'shell' ? (args.command as string[]) : undefined;
  const request: ToolRequest = { tool, kind, command, paths: editPaths(tool, args, workdir) };
  const readOnly = kind === 'read' || (command !== undefined && isKnownSafeCommand(command));
  return {
    kind: 'tool',
    call,
    tool,
    args,
    request,
    readOnly,
    summary: toolCallSummary(tool, args),
    decision: decide(request),
  };
}
