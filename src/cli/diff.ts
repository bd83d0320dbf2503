/**
 * `ratchet diff ID`: what the session changed in its workspace — the working tree against the
 * commit that was HEAD when the session prepared it (commits the session made included), plus new
 * untracked files. Git runs here, so this works where the workspace is (the worker's machine),
 * hardened as Ratchet's own git always is (workspace-git.ts): the repository's working tree is
 * the model's to write, and no diff driver, textconv, filter or fsmonitor it names may run.
 */
import { existsSync } from 'node:fs';
import { defaultPayloadConverter } from '@temporalio/common';
import type { RatchetClient } from '../client.js';
import { RatchetError } from '../client.js';
import type { PreparedWorkspace } from '../shared/boundary/activity-types.js';
import { sessionInputSchema } from '../shared/api/session-config.js';
import type { RepositoryLocation } from '../activities/workspace-git.js';
import { locateRepository, sessionGit } from '../activities/workspace-git.js';

export interface PreparedRepository {
  root: string;
  gitHead: string | null;
  /** The repository as located when the session began; absent for older sessions. */
  git?: RepositoryLocation;
}

function decodePayload(
  payload: Parameters<typeof defaultPayloadConverter.fromPayload>[0] | null | undefined,
): unknown {
  return payload ? defaultPayloadConverter.fromPayload<unknown>(payload) : undefined;
}

/** Git's empty tree: the base for a repository that had no commit yet. */
const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

/**
 * Where the session works and the commit it started from, read from the first run's history (the
 * workspace its input carried, or else the result of its prepareWorkspace activity): no worker
 * needs to answer a query, so it works for a finished session too.
 */
export async function preparedWorkspace(
  ratchet: RatchetClient,
  sessionId: string,
): Promise<PreparedRepository> {
  const handle = await ratchet.session(sessionId);
  const description = await handle.describe();
  const firstRunId = description.raw.workflowExecutionInfo?.firstRunId ?? description.runId;
  const history = await handle.client.getHandle(sessionId, firstRunId).fetchHistory();
  // A fork, or a run a rewind started, carries its workspace in: it prepared none of its own.
  const input = sessionInputSchema().safeParse(
    decodePayload(history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]),
  );
  const carried = input.success ? input.data.carried?.workspace : undefined;
  if (carried) {
    const { root, gitHead, git } = carried;
    return { root, gitHead, ...(git === undefined ? {} : { git }) };
  }
  const prepares = new Set<string>();
  for (const event of history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'prepareWorkspace') {
      prepares.add(String(event.eventId));
    }
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed && prepares.has(String(completed.scheduledEventId))) {
      const payload = completed.result?.payloads?.[0];
      if (payload) {
        const result = defaultPayloadConverter.fromPayload<PreparedWorkspace>(payload);
        const { root, gitHead, git } = result.info;
        return { root, gitHead, ...(git === undefined ? {} : { git }) };
      }
    }
  }
  throw new RatchetError(`session ${sessionId} has not prepared its workspace yet`);
}

export async function workspaceDiff(
  prepared: PreparedRepository,
  options: { color: boolean },
): Promise<string> {
  if (!existsSync(prepared.root)) {
    throw new RatchetError(
      `the workspace ${prepared.root} is not on this machine; run ratchet diff where the session's worker runs`,
    );
  }
  const location = prepared.git ?? (await locateRepository(prepared.root));
  if ('problem' in location) {
    throw new RatchetError(`${prepared.root} is not a git working copy: ${location.problem}`);
  }
  const color = options.color ? '--color=always' : '--color=never';
  const safe = ['--no-ext-diff', '--no-textconv', '--ignore-submodules=all'];
  const git = (args: string[]) => sessionGit(location, prepared.root, args);
  const tracked = await git(['diff', color, ...safe, prepared.gitHead ?? EMPTY_TREE, '--', '.']);
  if (tracked.exitCode !== 0) {
    throw new RatchetError(`git diff failed in ${prepared.root}: ${tracked.stderr.trim().split('\n')[0]}`);
  }
  const untracked = await git(['ls-files', '--others', '--exclude-standard', '-z', '--', '.']);
  let text = tracked.stdout;
  for (const file of untracked.stdout.split('\0').filter(Boolean)) {
    // --no-index exits 1 when the files differ, which they do.
    text += (await git(['diff', color, ...safe, '--no-index', '--', '/dev/null', file])).stdout;
  }
  return text;
}

/** One line per file of a unified diff (without colour): "+added -removed path". */
export function diffStat(diff: string): string {
  const lines: string[] = [];
  let current: { file: string; added: number; removed: number } | undefined;
  const flush = () => {
    if (current) lines.push(`+${current.added} -${current.removed} ${current.file}`);
  };
  for (const line of diff.split('\n')) {
    const header = /^diff --git a\/(.*) b\/(.*)$/.exec(line);
    if (header) {
      flush();
      current = { file: header[2]!, added: 0, removed: 0 };
    } else if (current && line.startsWith('+') && !line.startsWith('+++')) current.added += 1;
    else if (current && line.startsWith('-') && !line.startsWith('---')) current.removed += 1;
  }
  flush();
  return lines.length ? `${lines.join('\n')}\n` : '';
}
