/** What every tool implementation receives besides its arguments. */
export interface ToolContext {
  /** Absolute, real path of the workspace root (validated by the workspace activity). */
  workspace: string;
  /** Aborted when the activity is cancelled (interrupt, session cancelled, timeout). */
  signal: AbortSignal;
  /** Reports progress; the activity turns it into a Temporal heartbeat. */
  heartbeat: (details: Record<string, unknown>) => void;
}
