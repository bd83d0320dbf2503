/**
 * One line per tool call for people: "shell · npm test", "apply_patch · 3 files". Used for the
 * activity summaries in the Temporal UI and by the CLI.
 */
import { parsePatch, patchPaths } from './patch.js';
import { displayCommand } from '../policy/shell-unwrap.js';
import { joinDir } from './shell-patch.js';
import { shorten } from '../util/text.js';

/**
 * A command as people see it everywhere (the call's summary in the Web UI and the CLI, the shell
 * tool's own line): as a person would type it (policy/shell-unwrap.ts), on one line, cut to 80.
 */
export function commandSummary(argv: string[]): string {
  return shorten(displayCommand(argv));
}

/** The summary of a call from its tool name and (validated or raw) arguments. */
export function toolCallSummary(tool: string, args: Record<string, unknown>): string {
  switch (tool) {
    case 'shell':
      return Array.isArray(args.command) ? `shell · ${commandSummary(args.command.map(String))}` : 'shell';
    case 'apply_patch': {
      try {
        const workdir = typeof args.workdir === 'string' ? args.workdir : undefined;
        const paths = patchPaths(parsePatch(String(args.input))).map((p) => joinDir(workdir, p) ?? p);
        return paths.length === 1
          ? `apply_patch · ${shorten(paths[0]!, 60)}`
          : `apply_patch · ${paths.length} files`;
      } catch {
        return 'apply_patch · invalid patch';
      }
    }
    case 'read_file':
      return `read_file · ${shorten(String(args.file_path), 60)}`;
    case 'list_dir':
      return `list_dir · ${shorten(String(args.dir_path), 60)}`;
    case 'grep_files':
      return `grep_files · ${shorten(String(args.pattern), 40)}${typeof args.path === 'string' && args.path ? ` in ${shorten(args.path, 30)}` : ''}`;
    case 'update_plan':
      return `update_plan · ${Array.isArray(args.plan) ? args.plan.length : 0} steps`;
    default:
      return shorten(tool, 60);
  }
}

/** The summary from a function call's raw JSON arguments (which may be malformed). */
export function summarizeRawCall(tool: string, argumentsJson: string): string {
  try {
    const args: unknown = JSON.parse(argumentsJson);
    if (args && typeof args === 'object') return toolCallSummary(tool, args as Record<string, unknown>);
  } catch {
    // fall through
  }
  return shorten(tool, 60);
}
