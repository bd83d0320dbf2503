/**
 * `ratchet diff`: what a session changed in its workspace, or with --turn what one turn changed
 * (from its checkpoints).
 */
import type { Command } from 'commander';
import pc from 'picocolors';
import { RatchetError } from '../../client.js';
import { checkpointDiff } from '../checkpoints.js';
import { diffStat, preparedWorkspace, workspaceDiff } from '../diff.js';
import type { Io } from '../io.js';
import { print, withClient } from '../io.js';
import { parseTurn } from '../parse.js';

export function registerDiff(program: Command, io: Io): void {
  program
    .command('diff')
    .description(
      'what a session changed in its workspace, or with --turn what one turn changed (run it where the workspace is)',
    )
    .argument('<id>', 'session id')
    .option('--stat', 'only the names of the changed files and how much changed')
    .option('--turn <n>', "the turn's checkpoint: what that turn changed", parseTurn)
    .option('--to <m>', 'with --turn: from turn n’s checkpoint to turn m’s', parseTurn)
    .action(async (id: string, opts: { stat?: boolean; turn?: number; to?: number }) =>
      withClient(async (ratchet) => {
        const color = !opts.stat && Boolean((io.out as { isTTY?: boolean }).isTTY) && !process.env.NO_COLOR;
        if (opts.to !== undefined && opts.turn === undefined) throw new RatchetError('--to needs --turn');
        if (opts.turn !== undefined) {
          const text = await checkpointDiff(ratchet, id, {
            turn: opts.turn,
            ...(opts.to === undefined ? {} : { to: opts.to }),
            color,
            stat: opts.stat ?? false,
          });
          if (!text) return print(io, pc.dim('no changes'));
          io.out.write(text);
          return;
        }
        const prepared = await preparedWorkspace(ratchet, id);
        const text = await workspaceDiff(prepared, { color });
        if (!text) return print(io, pc.dim('no changes'));
        io.out.write(opts.stat ? diffStat(text) : text);
      }),
    );
}
