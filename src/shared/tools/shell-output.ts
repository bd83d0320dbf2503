/**
 * The shell's result as the model reads it: Codex's JSON, `{"output": …, "metadata": {…}}`. The
 * shell activity returns the parts and the workflow writes the text (`toolOutcome`), so that the
 * event history holds the command's output escaped once, as part of the activity's result, and
 * not as a JSON string escaped a second time inside the result's JSON. The text is written by
 * this one function on both sides (the activity offers it to its worker's transcript cache), and
 * with the metadata's keys in a fixed order, so it does not depend on how a result was encoded.
 * Pure; the workflow runs it.
 */
import type { SandboxMode } from '../policy/sandbox.js';
import type { ToolOutcome } from './specs.js';

/** How the command ended, as the model reads it (Codex's names). */
export interface ShellMetadata {
  exit_code: number;
  duration_seconds: number;
  timed_out?: true;
  /** Bytes of output left out of the middle. */
  truncated_bytes?: number;
  sandbox?: SandboxMode;
}

export interface ShellParts {
  /** What the command printed (stdout and stderr interleaved), cut to size, with Ratchet's notes. */
  output: string;
  metadata: ShellMetadata;
}

/**
 * What the shell activity returns when the command ran (since 2026-12). Failures before the
 * command runs, and results recorded by earlier workers, are plain ToolOutcomes.
 */
export interface ShellOutcome {
  shell: ShellParts;
  display: string;
  success: boolean;
}

/** What a tool activity returns. */
export type ToolActivityResult = ToolOutcome | ShellOutcome;

/** The text the model reads for a command that ran. */
export function shellOutputText(parts: ShellParts): string {
  const given = parts.metadata;
  const metadata: ShellMetadata = { exit_code: given.exit_code, duration_seconds: given.duration_seconds };
  if (given.timed_out === true) metadata.timed_out = true;
  if (given.truncated_bytes !== undefined) metadata.truncated_bytes = given.truncated_bytes;
  if (given.sandbox !== undefined) metadata.sandbox = given.sandbox;
  return JSON.stringify({ output: parts.output, metadata });
}

/** A tool activity's result as the session records it: the text the model reads, the person's line. */
export function toolOutcome(result: ToolActivityResult): ToolOutcome {
  if (!('shell' in result)) return result;
  return { output: shellOutputText(result.shell), display: result.display, success: result.success };
}
