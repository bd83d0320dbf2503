/**
 * The tools a session offers the model: names and argument shapes follow Codex, so that models
 * trained for Codex call them well. This module is pure (the workflow validates arguments and
 * decides approval with it); the implementations live in src/activities/tools/.
 *
 * Schemas are built on each call, as in session-config.ts.
 */
import { z } from 'zod';

/** What a tool does to the world; approval and parallelism derive from it. */
export type ToolKind = 'read' | 'edit' | 'execute' | 'plan';

export const shellArgs = () =>
  z
    .object({
      command: z
        .array(z.string())
        .min(1)
        .describe('The command and its arguments, e.g. ["bash", "-lc", "npm test"] or ["rg", "-n", "TODO"].'),
      workdir: z
        .string()
        .optional()
        .describe('Directory to run in, relative to the workspace root (default: the workspace root).'),
      timeout_ms: z
        .number()
        .int()
        .positive()
        .optional()
        .describe("Kill the command after this many milliseconds (default: the session's command timeout)."),
    })
    .strict();

export const applyPatchArgs = () =>
  z
    .object({
      input: z
        .string()
        .describe('The whole patch, from "*** Begin Patch" to "*** End Patch", in the apply_patch format.'),
    })
    .strict();

export const readFileArgs = () =>
  z
    .object({
      file_path: z.string().describe('Path of the file, relative to the workspace root.'),
      offset: z
        .number()
        .int()
        .min(1)
        .optional()
        .describe('First line to return, counting from 1 (default 1).'),
      limit: z.number().int().min(1).optional().describe('Most lines to return (default 2000).'),
    })
    .strict();

export const listDirArgs = () =>
  z
    .object({
      dir_path: z.string().describe('Directory to list, relative to the workspace root ("." for the root).'),
      depth: z
        .number()
        .int()
        .min(1)
        .optional()
        .describe('How many levels to descend (default 2; 1 lists only the directory itself).'),
      offset: z
        .number()
        .int()
        .min(1)
        .optional()
        .describe('First entry to return, counting from 1 (default 1).'),
      limit: z.number().int().min(1).optional().describe('Most entries to return (default 50).'),
    })
    .strict();

export const grepFilesArgs = () =>
  z
    .object({
      pattern: z.string().min(1).describe('Regular expression to search file contents for.'),
      path: z
        .string()
        .optional()
        .describe('Directory or file to search, relative to the workspace root (default: the root).'),
      include: z
        .string()
        .optional()
        .describe('Glob that file names must match, e.g. "*.ts" or "src/**/*.js".'),
      limit: z.number().int().min(1).optional().describe('Most matching files to return (default 100).'),
    })
    .strict();

export const planStepStatus = () => z.enum(['pending', 'in_progress', 'completed']);

export const updatePlanArgs = () =>
  z
    .object({
      explanation: z.string().optional().describe('Why the plan changed, in a sentence.'),
      plan: z
        .array(
          z
            .object({
              step: z.string().min(1).describe('One step, in a short sentence.'),
              status: planStepStatus().describe(
                'pending, in_progress or completed; at most one in_progress.',
              ),
            })
            .strict(),
        )
        .describe('The whole plan, in order.'),
    })
    .strict();

export interface ToolSpec<Name extends string = string, Args extends z.ZodType = z.ZodType> {
  name: Name;
  kind: ToolKind;
  description: string;
  /** Built anew on every read, so that a workflow holds none between calls (see the header). */
  readonly parameters: Args;
}

function spec<Name extends string, Args extends z.ZodType>(
  name: Name,
  kind: ToolKind,
  description: string,
  parameters: () => Args,
): ToolSpec<Name, Args> {
  return {
    name,
    kind,
    description,
    get parameters() {
      return parameters();
    },
  };
}

export const toolSpecs = {
  shell: spec(
    'shell',
    'execute',
    'Runs a command in the workspace and returns its exit code and output (long output is cut in the middle). ' +
      'Pass the program and its arguments as an array; use ["bash", "-lc", "..."] for pipes and redirection. ' +
      'Standard input is empty. Prefer read_file, list_dir and grep_files for reading.',
    shellArgs,
  ),
  apply_patch: spec(
    'apply_patch',
    'edit',
    'Edits files with a patch. Format: "*** Begin Patch", then for each file one of ' +
      '"*** Add File: path" (every following line starts with +), "*** Delete File: path", or ' +
      '"*** Update File: path" (optionally followed by "*** Move to: new/path") with hunks that start with "@@" ' +
      '(optionally "@@ text of a line above the change") and lines starting with " " (context), "-" (remove) or ' +
      '"+" (add); then "*** End Patch". Paths are relative to the workspace root. Give about three lines of ' +
      'context around each change.',
    applyPatchArgs,
  ),
  read_file: spec(
    'read_file',
    'read',
    'Reads a text file and returns its lines numbered as "L<number>: <text>".',
    readFileArgs,
  ),
  list_dir: spec(
    'list_dir',
    'read',
    'Lists a directory as an indented tree ("/" marks directories, "@" symbolic links), sorted by name.',
    listDirArgs,
  ),
  grep_files: spec(
    'grep_files',
    'read',
    'Finds files whose contents match a regular expression and returns their paths, most recently modified first.',
    grepFilesArgs,
  ),
  update_plan: spec(
    'update_plan',
    'plan',
    'Records the task plan: a short list of steps with their status. Call it when a task needs several steps ' +
      'and whenever a step is done.',
    updatePlanArgs,
  ),
} as const;

export type ToolName = keyof typeof toolSpecs;

/** A tool's arguments once its parameters schema has parsed them, e.g. `ToolArgs<'shell'>`. */
export type ToolArgs<Name extends ToolName> = z.infer<(typeof toolSpecs)[Name]['parameters']>;

export type PlanStep = ToolArgs<'update_plan'>['plan'][number];

export const toolNames = Object.keys(toolSpecs) as ToolName[];

export function isToolName(name: string): name is ToolName {
  return Object.hasOwn(toolSpecs, name);
}

/** What a tool returns: what the model reads, kept apart from what a person reads. */
export interface ToolOutcome {
  /** The function_call_output text the model receives. */
  output: string;
  /** One short line for a person (CLI, Web UI). */
  display: string;
  /** False when the tool could not do what was asked (an error the model can react to). */
  success: boolean;
}

/**
 * A tool call that did not do what was asked: `output` is what the model reads, the person's
 * line is the call's summary and what went wrong ("read_file · a.ts · error").
 */
export function toolFailure(summary: string, output: string, what = 'error'): ToolOutcome {
  return { output, display: `${summary} · ${what}`, success: false };
}
