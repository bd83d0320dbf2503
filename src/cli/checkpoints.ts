/**
 * `ratchet checkpoints`, `diff --turn`, `rewind` and `fork`: a session's checkpoints read from its
 * history (checkpoint-history.ts), and the operations on them (docs/ARCHITECTURE.md, "Checkpoints,
 * rewind and fork"): the diff a turn made here, rewind in rewind.ts, fork in fork.ts.
 */
import type { RatchetClient } from '../client.js';
import { RatchetError } from '../client.js';
import { diffCheckpoints } from '../activities/checkpoint.js';
import { pick, sessionCheckpoints } from './checkpoint-history.js';
import { requireLocal, wrap } from './checkpoint-local.js';

export type { CheckpointEntry } from './checkpoint-history.js';
export { sessionCheckpoints } from './checkpoint-history.js';
export type { ForkOutcome } from './fork.js';
export { forkSession } from './fork.js';
export type { RewindOutcome } from './rewind.js';
export { rewindSession, rewoundStatus } from './rewind.js';

/** The diff a turn made (from the checkpoint before it), or between two turns' checkpoints. */
export async function checkpointDiff(
  ratchet: RatchetClient,
  sessionId: string,
  options: { turn: number; to?: number; color: boolean; stat?: boolean },
): Promise<string> {
  if (options.to !== undefined && options.to < options.turn) {
    throw new RatchetError(
      `--to ${options.to} is before --turn ${options.turn}: the diff goes from the earlier turn to the later`,
    );
  }
  const { checkpoints, runs } = await sessionCheckpoints(ratchet, sessionId);
  const at = pick(checkpoints, sessionId, options.turn);
  let from: string;
  let to: string;
  if (options.to !== undefined) {
    from = at.commit;
    to = pick(checkpoints, sessionId, options.to).commit;
  } else {
    const before = checkpoints.filter((c) => c.turn < at.turn).at(-1);
    from = before?.commit ?? at.head ?? '';
    to = at.commit;
    if (!from) {
      throw new RatchetError(`turn ${at.turn} is the session's first checkpoint; name another with --to`);
    }
  }
  const scope = await requireLocal(runs, sessionId, 'diff --turn');
  return wrap(() => diffCheckpoints(scope, from, to, { color: options.color, stat: options.stat ?? false }));
}
