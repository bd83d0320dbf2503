/**
 * `ratchet fork ID --turn N [--repo DIR]`: a new session from the end of turn N of another. The
 * sequence: refuse what cannot be done → replay the state of turn N → a working copy (a new
 * detached worktree beside the repository, or the given clone) → the checkpoint copied into it
 * and restored → a new session carrying the state, whose first run records the checkpoint it
 * started from. The original's refs and workspace are not touched.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { RatchetClient } from '../client.js';
import { RatchetError, newSessionId } from '../client.js';
import type { CheckpointScope } from '../activities/checkpoint.js';
import { importCheckpoint, restoreCheckpoint, turnRef } from '../activities/checkpoint.js';
import type { RepositoryLocation } from '../activities/workspace-git.js';
import { locateRepository } from '../activities/workspace-git.js';
import { userMessage } from '../shared/prompt/items.js';
import { workerTaskQueue } from '../shared/api/session-api.js';
import type { CarriedState, SessionConfig } from '../shared/api/session-config.js';
import { pick, runOf, sessionCheckpoints, startedInput, stateAt } from './checkpoint-history.js';
import { requireLocal, wrap } from './checkpoint-local.js';

/**
 * Run as root for someone else's repository, the worktree made here is theirs: its sessions'
 * commands run as the workspace's owner, and a root-owned workspace gets no sandbox.
 */
async function giveToOwnerOf(reference: string, paths: string[]): Promise<void> {
  if (process.geteuid?.() !== 0) return;
  const owner = await stat(reference);
  if (owner.uid === 0) return;
  for (const target of paths) await execa('chown', ['-R', `${owner.uid}:${owner.gid}`, target]);
}

/** The top of the work tree `repo` names, refused unless it is exactly that. */
async function givenRepository(repo: string): Promise<string> {
  if (!existsSync(repo)) throw new RatchetError(`--repo ${repo} does not exist`);
  const top = await realpath(repo);
  const located = await locateRepository(top);
  if ('problem' in located)
    throw new RatchetError(`--repo ${top} is not a git working copy: ${located.problem}`);
  if (located.workTree !== top)
    throw new RatchetError(`--repo ${top} is not the top of its work tree (${located.workTree})`);
  return top;
}

export interface ForkOutcome {
  sessionId: string;
  workspace: string;
  turn: number;
  commit: string;
}

/**
 * Starts a new session from the end of `turn`: its transcript, plan, approvals and usage as they
 * were then, in a new worktree of the repository (or `repo`) holding that checkpoint.
 */
export async function forkSession(
  ratchet: RatchetClient,
  sessionId: string,
  turn: number,
  options: { repo?: string; worker?: string; message?: string; workflowBundle: { codePath: string } },
): Promise<ForkOutcome> {
  const { checkpoints, runs } = await sessionCheckpoints(ratchet, sessionId);
  const target = pick(checkpoints, sessionId, turn);
  const source = await requireLocal(runs, sessionId, 'fork');
  const given = options.repo === undefined ? undefined : await givenRepository(options.repo);
  const config: SessionConfig = startedInput(runOf(runs, target)).config;
  const forkId = newSessionId(config.task);
  const sub = path.relative(source.location.workTree, source.root);
  const state = await stateAt(runs, target, options.workflowBundle);
  // The working copy: the given directory, or a new worktree beside the repository.
  let top: string;
  if (given !== undefined) {
    top = given;
  } else {
    top = `${source.location.workTree}-fork-${turn}-${forkId.slice(-8)}`;
    const add = await execa(
      'git',
      [
        '-C',
        source.location.workTree,
        'worktree',
        'add',
        '-q',
        '--detach',
        top,
        ...(target.head ? [target.head] : []),
      ],
      { reject: false },
    );
    if (add.exitCode !== 0)
      throw new RatchetError(`could not make a worktree at ${top}: ${add.stderr.trim()}`);
  }
  const location = (await locateRepository(top)) as RepositoryLocation;
  await giveToOwnerOf(source.location.workTree, [top, location.gitDir]);
  const root = path.join(top, sub);
  const scope: CheckpointScope = { location, root, sessionId: forkId };
  await wrap(async () => {
    await importCheckpoint(
      scope,
      source.location,
      turnRef(sessionId, turn),
      target.commit,
      turnRef(forkId, turn),
    );
    await restoreCheckpoint(scope, target.commit);
  });

  const note =
    `This session was forked from session ${sessionId} at the end of turn ${turn}. The workspace is now ` +
    `${root} (a copy of the workspace as it was then); work there from now on.`;
  const carried: CarriedState = {
    ...state,
    entries: [...state.entries, { item: userMessage(note), turn: state.turn }],
    workspace: {
      ...state.workspace,
      root,
      gitHead: target.head,
      initiallyDirty: {},
      git: location,
    },
    toolQueue: options.worker ? workerTaskQueue(ratchet.taskQueue, options.worker) : state.toolQueue,
    queuedMessages: options.message ? [options.message] : [],
    idle: options.message === undefined,
    notice:
      options.message === undefined
        ? `forked from ${sessionId} at turn ${turn}; send a message to continue`
        : null,
    runs: 1,
    lastResponse: null,
    lastCheckpoint: { turn, commit: target.commit },
    // The fork's history records the checkpoint it starts from: its turn N can be listed,
    // diffed against and rewound to like any other.
    base: {
      turn,
      commit: target.commit,
      head: target.head,
      at: new Date().toISOString(),
      did: `forked from ${sessionId} at turn ${turn}`,
      files: [],
      filesOmitted: 0,
      from: { sessionId, runId: target.runId },
    },
  };
  await ratchet.startCarried(
    { ...config, workspace: root, ...(options.worker ? { worker: options.worker } : {}) },
    carried,
    forkId,
    `forked from ${sessionId} at turn ${turn}`,
    { replace: false },
  );
  return { sessionId: forkId, workspace: root, turn, commit: target.commit };
}
