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
import path from 'node:path';
import { z } from 'zod';
import { readJournalFile, stateJournalDir, writeJournalFile } from './journal-file.js';

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
  return stateJournalDir('patch-journal', env);
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
    const text = await readJournalFile(this.file);
    if (text === undefined) return undefined;
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
    await writeJournalFile(this.dir, this.file, JSON.stringify(record));
  }
}
