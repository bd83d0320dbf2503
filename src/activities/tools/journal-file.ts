/**
 * What the worker's journals share (apply_patch's write-ahead journal, the shell's command
 * journal): files on the worker's own disk, never in the workspace, written so that a crash
 * leaves either the old record or the new one, and pruned after a week.
 */
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const KEEP_MS = 7 * 24 * 60 * 60_000;
const PRUNE_EVERY_MS = 60 * 60_000;

/** A journal's directory when the worker names none: under the user's state directory. */
export function stateJournalDir(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'ratchet', name);
}

/** The file's text, or undefined when there is none. */
export async function readJournalFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const lastPrune = new Map<string, number>();

async function prune(dir: string, now: number): Promise<void> {
  if (now - (lastPrune.get(dir) ?? 0) < PRUNE_EVERY_MS) return;
  lastPrune.set(dir, now);
  for (const name of await readdir(dir).catch(() => [])) {
    const file = path.join(dir, name);
    const stats = await stat(file).catch(() => undefined);
    if (stats && now - stats.mtimeMs > KEEP_MS) await unlink(file).catch(() => undefined);
  }
}

/**
 * Replaces `file` (in `dir`) with `text`: whole or not at all, and on disk before it returns
 * unless `durable` is false (then a crash of the machine, not of the process, may lose it).
 */
export async function writeJournalFile(
  dir: string,
  file: string,
  text: string,
  durable = true,
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const scratch = `${file}.${process.pid}.tmp`;
  const handle = await open(scratch, 'w', 0o600);
  try {
    await handle.writeFile(text);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(scratch, file);
  if (durable) {
    const directory = await open(dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }
  await prune(dir, Date.now());
}
