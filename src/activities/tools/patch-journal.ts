/**
 * apply_patch's write-ahead journal, on the worker's own disk (never in the workspace). Before an
 * attempt writes anything it records, per file, a digest of what is there, a digest of what will
 * be, and the new content. A retried attempt of the same call (its worker died mid-write, or
 * after writing but before reporting) reads the journal and finishes the job: a file that holds
 * the new content is done, one that still holds the old content is written now, one that holds
 * neither has been changed by someone else and is reported. So "already applied" is said only
 * on a retry, and only of a file whose whole new content is verifiably in place.
 *
 * Journals are keyed by session, call and patch text, and pruned after a week.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

const KEEP_MS = 7 * 24 * 60 * 60_000;
const PRUNE_EVERY_MS = 60 * 60_000;

export const journalRecord = z.object({
  version: z.literal(1),
  /** Each file the patch writes or removes, by canonical workspace-relative path. */
  files: z.array(
    z.object({
      path: z.string(),
      /** Digest of the content before, or null when there was no file. */
      before: z.string().nullable(),
      /** The content after, or null when the file is removed. */
      after: z.string().nullable(),
      mode: z.number().optional(),
    }),
  ),
  /** The report's lines, as the first attempt would have given them. */
  done: z.array(
    z.object({ letter: z.enum(['A', 'M', 'D']), path: z.string(), movedFrom: z.string().optional() }),
  ),
});
export type JournalRecord = z.infer<typeof journalRecord>;

export function digest(bytes: Buffer | string | null): string | null {
  return bytes === null ? null : createHash('sha256').update(bytes).digest('hex');
}

/** Where journals live when the worker names no directory: the user's state directory. */
export function defaultJournalDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'ratchet', 'patch-journal');
}

let lastPrune = 0;

async function prune(dir: string, now: number): Promise<void> {
  if (now - lastPrune < PRUNE_EVERY_MS) return;
  lastPrune = now;
  for (const name of await readdir(dir).catch(() => [])) {
    const file = path.join(dir, name);
    const stats = await stat(file).catch(() => undefined);
    if (stats && now - stats.mtimeMs > KEEP_MS) await unlink(file).catch(() => undefined);
  }
}

export class PatchJournal {
  private readonly file: string;
  /** Name of the temporary file written beside each target: the same in every attempt. */
  readonly temporarySuffix: string;

  constructor(
    private readonly dir: string,
    key: { sessionId: string; callId: string; patch: string },
  ) {
    const id = createHash('sha256')
      .update(`${key.sessionId}\0${key.callId}\0${key.patch}`)
      .digest('hex')
      .slice(0, 32);
    this.file = path.join(dir, `${id}.json`);
    this.temporarySuffix = `ratchet-${id.slice(0, 12)}.tmp`;
  }

  temporaryFor(canonical: string): string {
    return `.${path.posix.basename(canonical)}.${this.temporarySuffix}`;
  }

  /** The record an earlier attempt of this call left, if it got as far as writing one. */
  async load(): Promise<JournalRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return undefined;
    }
    const parsed = journalRecord.safeParse(json);
    // A record cut short by a crash was never acted on: nothing was written after it.
    return parsed.success ? parsed.data : undefined;
  }

  /** Durably records what the attempt is about to write. */
  async save(record: JournalRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const scratch = `${this.file}.${process.pid}.tmp`;
    const handle = await open(scratch, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(record));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(scratch, this.file);
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    await prune(this.dir, Date.now());
  }
}
