/**
 * `ratchet checkpoints`, `rewind` and `fork`: a session's checkpoints per turn, going back to one,
 * and starting a new session from one.
 */
import type { Command } from 'commander';
import pc from 'picocolors';
import path from 'node:path';
import { escapeControl } from '../../shared/util/escape.js';
import { cachedWorkflowBundle } from '../../worker.js';
import { forkSession, rewindSession, rewoundStatus, sessionCheckpoints } from '../checkpoints.js';
import type { Io } from '../io.js';
import { json, print, withClient } from '../io.js';
import { parseTurn } from '../parse.js';
import { dataDir } from '../services.js';

function userName(): string | undefined {
  return process.env.USER || process.env.LOGNAME || undefined;
}

export function registerCheckpoints(program: Command, io: Io): void {
  program
    .command('checkpoints')
    .description("a session's checkpoints: turn, time, what the turn did, files changed")
    .argument('<id>', 'session id')
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { json?: boolean }) =>
      withClient(async (ratchet) => {
        const { checkpoints } = await sessionCheckpoints(ratchet, id);
        if (opts.json) return json(io, checkpoints);
        if (checkpoints.length === 0) return print(io, pc.dim('no checkpoints yet'));
        for (const c of checkpoints) {
          const files = c.files.length + c.filesOmitted;
          print(
            io,
            `${pc.bold(`turn ${c.turn}`)}  ${pc.dim(c.at.replace('T', ' ').slice(0, 19))}  ${c.commit.slice(0, 12)}  ` +
              `${files} ${files === 1 ? 'file' : 'files'}  ${escapeControl(c.did)}`,
          );
          for (const f of c.files.slice(0, 10))
            print(io, `    ${f.status.padEnd(2)} ${escapeControl(f.path)}`);
          if (files > 10) print(io, pc.dim(`    … ${files - 10} more`));
        }
      }),
    );

  program
    .command('rewind')
    .description(
      'put a session back to the end of a turn: its conversation, plan, approvals and usage as they were, and its workspace restored to that checkpoint',
    )
    .argument('<id>', 'session id')
    .requiredOption('--turn <n>', 'the turn to go back to (ratchet checkpoints lists them)', parseTurn)
    .option('--force', 'even over changes made outside the session since its last checkpoint, or mid-turn')
    .action(async (id: string, opts: { turn: number; force?: boolean }) =>
      withClient(async (ratchet) => {
        const by = userName();
        const done = await rewindSession(ratchet, id, opts.turn, {
          force: opts.force ?? false,
          ...(by ? { by } : {}),
          workflowBundle: await cachedWorkflowBundle(path.join(dataDir(), 'bundles')),
        });
        print(
          io,
          `rewound ${id} to the end of turn ${done.turn} (checkpoint ${done.commit.slice(0, 12)}, run ${done.runId})`,
        );
        if (!done.checkedHere)
          print(io, pc.dim('the workspace is not on this machine: its worker checks it for outside changes'));
        const view = await rewoundStatus(ratchet, id);
        print(
          io,
          view?.notice ?? 'the session is restoring its workspace; ratchet status shows when it is done',
        );
      }),
    );

  program
    .command('fork')
    .description(
      'start a new session from the end of a turn of another, in a new worktree (or --repo) holding that checkpoint; the original is untouched',
    )
    .argument('<id>', 'session id')
    .requiredOption('--turn <n>', 'the turn to fork from', parseTurn)
    .option('--repo <dir>', 'a git working copy to use instead of a new worktree beside the repository')
    .option('--worker <id>', 'run the fork on this worker (its RATCHET_WORKER_ID); it must see the directory')
    .option(
      '-m, --message <text>',
      'a message to start the fork with (without one it waits for ratchet send)',
    )
    .action(async (id: string, opts: { turn: number; repo?: string; worker?: string; message?: string }) =>
      withClient(async (ratchet) => {
        const fork = await forkSession(ratchet, id, opts.turn, {
          ...(opts.repo === undefined ? {} : { repo: path.resolve(opts.repo) }),
          ...(opts.worker === undefined ? {} : { worker: opts.worker }),
          ...(opts.message === undefined ? {} : { message: opts.message }),
          workflowBundle: await cachedWorkflowBundle(path.join(dataDir(), 'bundles')),
        });
        print(io, `forked ${id} at turn ${fork.turn} as ${fork.sessionId}`);
        print(io, `workspace: ${fork.workspace}`);
        const url = ratchet.uiUrl(fork.sessionId);
        if (url) print(io, `web UI: ${url}`);
      }),
    );
}
