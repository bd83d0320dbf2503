/**
 * The multi-agent tools a session offers when it may fan out (`agents` in its configuration):
 * Codex's multi-agent v1 names and argument shapes (`spawn_agent`, `send_input`, `wait`,
 * `close_agent`, as in openai/codex `codex-rs/core/src/tools/spec.rs`), so that a Codex-trained
 * model uses them without coaching, plus `merge_agent`, which brings a child's branch back into
 * the session's own workspace. The statuses `wait` and `close_agent` report have Codex's shape
 * (`"running"`, `{ "completed": message }`, `{ "errored": why }`, …) with Ratchet's additions
 * (a finished child's branch and changed files, `{ "idle": why }`). Pure: the workflow validates
 * calls with it, the model activity offers it.
 *
 * Schemas are built on each call, as in session-config.ts.
 */
import { z } from 'zod';
import type { ToolKind, ToolSpec } from './specs.js';

/** Codex's bounds for `wait`'s timeout, in milliseconds. */
export const WAIT_DEFAULT_MS = 30_000;
export const WAIT_MIN_MS = 10_000;
export const WAIT_MAX_MS = 300_000;

/** Most agents one session may have open at once, whatever the configuration says. */
export const MAX_AGENTS_LIMIT = 16;

const inputItem = () =>
  z
    .object({
      type: z.string().describe('Input item type; "text" is the one Ratchet reads.'),
      text: z.string().optional().describe('Text content when type is text.'),
    })
    .passthrough();

export const spawnAgentArgs = () =>
  z
    .object({
      message: z
        .string()
        .optional()
        .describe(
          'Initial task for the new agent. Include scope, constraints, and the expected output. Use either message or items.',
        ),
      items: z
        .array(inputItem())
        .optional()
        .describe(
          'Structured input items (text items are joined into the task). Use either message or items.',
        ),
      agent_type: z
        .string()
        .optional()
        .describe(
          'Optional type of agent to spawn; Ratchet has one type, which works in its own git worktree.',
        ),
    })
    .strict();

export const sendInputArgs = () =>
  z
    .object({
      id: z.string().min(1).describe('Agent id to message (from spawn_agent).'),
      message: z.string().optional().describe('Message to send to the agent. Use either message or items.'),
      items: z.array(inputItem()).optional().describe('Structured input items. Use either message or items.'),
      interrupt: z
        .boolean()
        .optional()
        .describe(
          "When true, stop the agent's current task and handle this immediately. When false (default), queue this message.",
        ),
    })
    .strict();

export const waitArgs = () =>
  z
    .object({
      ids: z
        .array(z.string())
        .min(1)
        .describe('Agent ids to wait on. Pass multiple ids to wait for whichever finishes first.'),
      timeout_ms: z
        .number()
        .optional()
        .describe(
          `Optional timeout in milliseconds. Defaults to ${WAIT_DEFAULT_MS}, min ${WAIT_MIN_MS}, max ${WAIT_MAX_MS}. Prefer longer waits (minutes) to avoid busy polling.`,
        ),
    })
    .strict();

export const closeAgentArgs = () =>
  z
    .object({
      id: z.string().min(1).describe('Agent id to close (from spawn_agent).'),
    })
    .strict();

export const mergeAgentArgs = () =>
  z
    .object({
      id: z
        .string()
        .min(1)
        .describe('Agent id whose branch to merge into your workspace (from spawn_agent).'),
    })
    .strict();

const AGENT_KIND: ToolKind = 'plan';

export const agentToolSpecs = {
  spawn_agent: {
    name: 'spawn_agent',
    kind: AGENT_KIND,
    description:
      'Spawn a sub-agent for a well-scoped task. Returns the agent id to use to communicate with this agent. ' +
      'The agent works in its own git worktree of this repository, on its own branch, starting from your ' +
      'workspace as it is now; its changes reach your workspace only through merge_agent. Give agents ' +
      'disjoint sets of files to change.',
    get parameters() {
      return spawnAgentArgs();
    },
  },
  send_input: {
    name: 'send_input',
    kind: AGENT_KIND,
    description:
      'Send a message to an existing agent. Use interrupt=true to redirect work immediately. A finished agent ' +
      'starts working again on the message.',
    get parameters() {
      return sendInputArgs();
    },
  },
  wait: {
    name: 'wait',
    kind: AGENT_KIND,
    description:
      "Wait for agents to reach a final status. Completed statuses include the agent's final message, its " +
      'branch and the files it changed. Returns empty status when timed out.',
    get parameters() {
      return waitArgs();
    },
  },
  close_agent: {
    name: 'close_agent',
    kind: AGENT_KIND,
    description:
      'Close an agent when it is no longer needed and return its last known status. A running agent is ' +
      'cancelled; its branch stays until this session ends, so it can still be merged.',
    get parameters() {
      return closeAgentArgs();
    },
  },
  merge_agent: {
    name: 'merge_agent',
    kind: 'edit',
    description:
      "Merge an agent's branch (everything it changed) into your workspace. A conflict leaves conflict " +
      'markers in the files it names; resolve them by editing those files like any other edit.',
    get parameters() {
      return mergeAgentArgs();
    },
  },
} as const satisfies Record<string, ToolSpec>;

export type AgentToolName = keyof typeof agentToolSpecs;

export const agentToolNames = Object.keys(agentToolSpecs) as AgentToolName[];

export function isAgentToolName(name: string): name is AgentToolName {
  return Object.hasOwn(agentToolSpecs, name);
}

/** The task text of a spawn or a message: `message`, or the text of its items. */
export function inputText(args: {
  message?: string | undefined;
  items?: { text?: string | undefined }[] | undefined;
}): string {
  if (args.message !== undefined && args.message.trim() !== '') return args.message;
  return (args.items ?? [])
    .map((item) => item.text ?? '')
    .filter((text) => text.trim() !== '')
    .join('\n');
}

/** Clamps `wait`'s timeout as Codex does; a timeout that is not positive is refused. */
export function waitTimeout(timeoutMs: number | undefined): number | { problem: string } {
  if (timeoutMs === undefined) return WAIT_DEFAULT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    return { problem: 'timeout_ms must be greater than zero' };
  return Math.min(WAIT_MAX_MS, Math.max(WAIT_MIN_MS, Math.round(timeoutMs)));
}

/**
 * What a child session last reported to its parent. `running` and `awaiting_approval` are not
 * final; the rest are (an idle child waits for a message: send_input starts it again).
 */
export type AgentState =
  | { status: 'pending_init' }
  | { status: 'running'; turn: number }
  | { status: 'awaiting_approval'; turn: number; pending: number }
  | { status: 'idle'; turn: number; why: string }
  /** Parked at a turn boundary until the tree's token budget is raised (not final). */
  | { status: 'awaiting_budget'; turn: number }
  | { status: 'completed'; turn: number; message: string; filesChanged: string[] }
  | { status: 'errored'; why: string }
  | { status: 'shutdown' };

export function isFinalAgentState(state: AgentState): boolean {
  return (
    state.status === 'idle' ||
    state.status === 'completed' ||
    state.status === 'errored' ||
    state.status === 'shutdown'
  );
}

/** An agent's status as the model reads it (Codex's AgentStatus, with Ratchet's additions). */
export function modelStatus(state: AgentState, branch: string | null): unknown {
  switch (state.status) {
    case 'pending_init':
    case 'running':
    case 'shutdown':
      return state.status;
    case 'awaiting_approval':
      return { running: `waiting for a person to approve ${state.pending} call(s)` };
    case 'awaiting_budget':
      return { running: 'paused: the token budget is spent; waiting for a person to add tokens or stop' };
    case 'idle':
      return { idle: state.why };
    case 'completed':
      return {
        completed: state.message,
        ...(branch !== null ? { branch } : {}),
        files_changed: state.filesChanged,
      };
    case 'errored':
      return { errored: state.why };
  }
}

/** One line for a person: "completed", "running · turn 3", … */
export function describeAgentState(state: AgentState): string {
  switch (state.status) {
    case 'running':
      return `running · turn ${state.turn}`;
    case 'awaiting_approval':
      return `awaiting approval · turn ${state.turn}`;
    case 'awaiting_budget':
      return `awaiting budget · turn ${state.turn}`;
    case 'idle':
      return `idle · ${state.why}`;
    case 'completed':
      return `completed · ${state.filesChanged.length} files changed`;
    case 'errored':
      return `errored · ${state.why}`;
    default:
      return state.status;
  }
}

/**
 * A branch name part from a session id: git refuses some characters and sequences in ref names
 * (`git check-ref-format`), so anything but letters, digits, `-`, `_` and single dots becomes `-`.
 */
export function refSafe(id: string): string {
  const cleaned = id
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/\.{2,}/g, '.')
    .replace(/^[.-]+|[.]+$/g, '')
    .replace(/\.lock$/i, '-lock');
  return cleaned === '' ? 'session' : cleaned.slice(0, 100);
}

/** The branch a child works on: `ratchet/<parent>/<child>`. */
export function agentBranch(parentId: string, childName: string): string {
  return `ratchet/${refSafe(parentId)}/${refSafe(childName)}`;
}
