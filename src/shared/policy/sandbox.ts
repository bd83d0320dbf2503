/**
 * How much a model-requested command may touch, as in Codex:
 * - read-only: read anything, write nothing (not even the workspace); no network.
 * - workspace-write (default): write only inside the workspace and a private temporary folder;
 *   no network.
 * - danger-full-access: no isolation at all.
 */
export const sandboxModes = ['read-only', 'workspace-write', 'danger-full-access'] as const;
export type SandboxMode = (typeof sandboxModes)[number];
