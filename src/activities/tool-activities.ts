/**
 * The tool activities: each takes a reference to a function call, gets its arguments (inline, or
 * from the transcript when large), checks the workspace is still there, runs the tool and returns
 * what the model and a person read. A tool's own failures are results; only infrastructure
 * faults throw.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { stat } from 'node:fs/promises';
import { z } from 'zod';
import type { ToolCallInput } from '../shared/boundary/activity-types.js';
import type { ToolName } from '../shared/tools/specs.js';
import {
  applyPatchArgs,
  grepFilesArgs,
  listDirArgs,
  readFileArgs,
  shellArgs,
  toolFailure,
} from '../shared/tools/specs.js';
import { joinDir, patchFromCommand } from '../shared/tools/shell-patch.js';
import { keepHeartbeating } from './heartbeat.js';
import { defaultJournalDir, PatchJournal } from './tools/patch-journal.js';
import { parsePatch, patchPaths } from '../shared/tools/patch.js';
import { giveToWorkspaceOwner } from './workspace-owner.js';
import type { SandboxMode } from '../shared/policy/sandbox.js';
import { applyPatch } from './tools/apply-patch.js';
import type { SandboxInfo } from './tools/sandbox.js';
import { sandboxIdentity } from './tools/sandbox.js';
import type { ToolContext } from './tools/context.js';
import { executeGrepFiles } from './tools/grep-files.js';
import { executeListDir } from './tools/list-dir.js';
import { executeReadFile } from './tools/read-file.js';
import { executeShell } from './tools/shell.js';
import { CommandRuns, defaultCommandJournalDir } from './tools/command-runs.js';
import { isKnownSafeCommand } from '../shared/policy/read-only-commands.js';
import { truncateMiddle } from './tools/truncate.js';
import type { TranscriptSource } from './transcript-source.js';
import { ActivityFailureType } from '../shared/boundary/failure-types.js';
import type { ToolActivityResult } from '../shared/tools/shell-output.js';
import { shellOutputText, toolOutcome } from '../shared/tools/shell-output.js';

export interface ToolDeps {
  transcript: TranscriptSource;
  /** The environment commands run with (secrets removed). */
  commandEnv: Record<string, string>;
  /** How this worker confines commands. */
  sandbox: SandboxInfo;
  /** This worker's own task queue: the one sessions whose workspace it holds route tools to. */
  toolQueue?: string;
  /** Where apply_patch journals its writes (default: the user's state directory). */
  patchJournalDir?: string;
  /** Where the shell records the commands it starts and their results (default: the same). */
  commandJournalDir?: string;
  /** How long a command whose attempt was abandoned runs on with no attempt waiting (default a minute). */
  commandOrphanGraceMs?: number;
}

/**
 * apply_patch's arguments: its own, or a shell call that only applies a patch, which the
 * workflow sends here (src/shared/tools/shell-patch.ts).
 */
const patchCallArgs = z.union([
  applyPatchArgs().transform((args) => ({ patch: args.input, workdir: undefined as string | undefined })),
  shellArgs().transform((args, ctx) => {
    const found = patchFromCommand(args.command, args.workdir);
    if (found === undefined) {
      ctx.addIssue({ code: 'custom', message: 'the command does not apply a patch' });
      return z.NEVER;
    }
    return { patch: found.patch, workdir: found.workdir };
  }),
]);

/**
 * The sandbox for one command, or why it must not run here. A root worker cannot sandbox a
 * workspace root owns (sandboxIdentity): the session was told so when it began, as if there were
 * no sandbox, and a command a person approved as it is runs unconfined.
 */
async function confinement(
  input: ToolCallInput,
  sandbox: SandboxInfo,
): Promise<{ sandbox?: { mode: SandboxMode; bwrapPath: string } } | { refused: string }> {
  const mode = input.sandbox ?? 'workspace-write';
  if (mode === 'danger-full-access') return {};
  const sessionUnconfined = input.sessionUnconfined ?? input.unconfinedApproved;
  if (sandbox.available) {
    if (sessionUnconfined && 'refused' in (await sandboxIdentity(input.workspace))) return {};
    return { sandbox: { mode, bwrapPath: sandbox.bwrapPath } };
  }
  if (sessionUnconfined) return {};
  return {
    refused:
      `This worker cannot confine commands (${sandbox.detail}), and the session asked for ${mode}; the ` +
      'command was not run. Tell the user: the operator can install bubblewrap on the worker.',
  };
}

type Runner<Args> = (args: Args, context: ToolContext, input: ToolCallInput) => Promise<ToolActivityResult>;

/**
 * Most bytes of one tool output, whatever the tool: reads run as local activities, whose results
 * travel inside the workflow task's completion, and a completion over 2 MB fails for ever. The
 * tools keep far less on their own (shell ~16 KiB, read_file 64 KiB); this is the backstop for
 * a listing of thousands of long names.
 */
export const MAX_TOOL_OUTPUT_BYTES = 128 * 1024;
const MAX_DISPLAY_BYTES = 1024;

/**
 * The result within the limits. A shell result whose text would be cut (never with the shell's
 * own limits) goes back as that cut text, as it did before the shell returned its parts.
 */
function bounded(result: ToolActivityResult): ToolActivityResult {
  const display = truncateMiddle(result.display, MAX_DISPLAY_BYTES);
  if ('shell' in result && Buffer.byteLength(shellOutputText(result.shell)) <= MAX_TOOL_OUTPUT_BYTES) {
    return { ...result, display };
  }
  const outcome = toolOutcome(result);
  return { ...outcome, output: truncateMiddle(outcome.output, MAX_TOOL_OUTPUT_BYTES), display };
}

export function createToolActivities(deps: ToolDeps) {
  const commands = new CommandRuns(
    deps.commandJournalDir ?? defaultCommandJournalDir(),
    deps.commandOrphanGraceMs,
  );

  async function argumentsOf(input: ToolCallInput): Promise<string> {
    if (input.arguments !== undefined) return input.arguments;
    const entries = await deps.transcript.entries(input, input.itemIndex + 1);
    const item = entries[input.itemIndex]?.item;
    if (item?.type !== 'function_call' || item.call_id !== input.callId) {
      throw ApplicationFailure.nonRetryable(
        `transcript entry ${input.itemIndex} of ${input.sessionId} is not call ${input.callId}`,
        'TranscriptMismatch',
      );
    }
    return item.arguments;
  }

  function tool<Args>(name: Exclude<ToolName, 'update_plan'>, schema: z.ZodType<Args>, run: Runner<Args>) {
    // `heartbeat: false`: run inside another activity (a read beside the model's reply), whose
    // heartbeat details (a background response to re-attach to) must stay as they are.
    return async (
      input: ToolCallInput,
      options: { heartbeat?: boolean } = {},
    ): Promise<ToolActivityResult> => {
      if (input.holder !== undefined && input.holder !== deps.toolQueue) {
        throw ApplicationFailure.nonRetryable(
          `this worker (${deps.toolQueue ?? 'no tool queue'}) does not hold the workspace (${input.holder})`,
          ActivityFailureType.NotWorkspaceHolder,
        );
      }
      const activity = Context.current();
      // Heartbeat on a timer as well as on the tool's own progress, so that cancellation is
      // delivered and a lost worker is noticed even when a tool reports nothing.
      let details: Record<string, unknown> = { tool: name };
      const beats = options.heartbeat !== false && !activity.info.isLocal;
      const stopHeartbeat = beats ? keepHeartbeating(activity, () => details) : () => undefined;
      try {
        let raw: unknown;
        try {
          raw = JSON.parse(await argumentsOf(input));
        } catch (err) {
          if (err instanceof ApplicationFailure) throw err;
          return toolFailure(
            name,
            `The arguments are not valid JSON: ${(err as Error).message}`,
            'malformed arguments',
          );
        }
        const parsed = schema.safeParse(raw);
        if (!parsed.success) {
          return toolFailure(
            name,
            `Invalid arguments: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
            'invalid arguments',
          );
        }
        try {
          if (!(await stat(input.workspace)).isDirectory()) throw new Error('not a directory');
        } catch {
          return toolFailure(
            name,
            `The workspace ${input.workspace} no longer exists on the worker (it was moved or deleted). ` +
              'Nothing was run. Tell the user; the task cannot continue without it.',
            'workspace missing',
          );
        }
        const context: ToolContext = {
          workspace: input.workspace,
          signal: activity.cancellationSignal,
          heartbeat: (progress) => {
            details = { tool: name, ...progress };
            if (beats) activity.heartbeat(details);
          },
        };
        const result = bounded(await run(parsed.data, context, input));
        deps.transcript.proposeOutput(input, input.callId, toolOutcome(result).output);
        return result;
      } catch (err) {
        if (activity.cancellationSignal.aborted) throw activity.cancellationSignal.reason;
        throw err;
      } finally {
        stopHeartbeat();
      }
    };
  }

  return {
    shell: tool('shell', shellArgs(), async (args, context, input) => {
      const confined = await confinement(input, deps.sandbox);
      if ('refused' in confined) return toolFailure('shell', confined.refused, 'not sandboxed: refused');
      const key = { sessionId: input.sessionId, callId: input.callId, command: JSON.stringify(args) };
      return commands.run(key, context, isKnownSafeCommand(args.command), (runContext) =>
        executeShell(args, runContext, {
          defaultTimeoutMs: input.timeoutMs ?? 10 * 60_000,
          env: deps.commandEnv,
          ...confined,
        }),
      );
    }),
    apply_patch: tool('apply_patch', patchCallArgs, async (args, context, input) => {
      const outcome = await applyPatch(args.patch, context, {
        journal: new PatchJournal(deps.patchJournalDir ?? defaultJournalDir(), {
          sessionId: input.sessionId,
          callId: input.callId,
          patch: args.patch,
        }),
        ...(args.workdir === undefined ? {} : { workdir: args.workdir }),
      });
      if (outcome.success) {
        let paths: string[] = [];
        try {
          paths = patchPaths(parsePatch(args.patch)).map((p) => joinDir(args.workdir, p) ?? p);
        } catch {
          // Applied, so it parsed; nothing to do otherwise.
        }
        await giveToWorkspaceOwner(context.workspace, paths);
      }
      return outcome;
    }),
    read_file: tool('read_file', readFileArgs(), (args, context) => executeReadFile(args, context)),
    list_dir: tool('list_dir', listDirArgs(), (args, context) => executeListDir(args, context)),
    grep_files: tool('grep_files', grepFilesArgs(), (args, context) => executeGrepFiles(args, context)),
  };
}
