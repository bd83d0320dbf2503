/**
 * read_file: a window of a text file, each line numbered as "L<n>: <text>" so that the model can
 * cite lines and ask for the next window by offset. The file is read in chunks and only the lines
 * shown are decoded, so a huge file costs time, never memory.
 */
import { stat } from 'node:fs/promises';
import type { ToolArgs, ToolOutcome } from '../../shared/tools/specs.js';
import type { ToolContext } from './context.js';
import {
  openInWorkspace,
  resolveInWorkspace,
  WorkspaceEscapeError,
  workspaceRelative,
} from './workspace-paths.js';
import { formatNumber } from '../../shared/util/text.js';
import { toolFailure } from '../../shared/tools/specs.js';

const DEFAULT_LIMIT = 2000;
const MAX_LINE_CHARS = 500;
const MAX_OUTPUT_BYTES = 64 * 1024;
/** Room kept under MAX_OUTPUT_BYTES for the note that says where to continue. */
const NOTE_RESERVE_BYTES = 256;
const BINARY_SNIFF_BYTES = 8 * 1024;
const CHUNK_BYTES = 64 * 1024;
/** Bytes of one line worth keeping: enough for MAX_LINE_CHARS characters of up to four bytes. */
const MAX_LINE_KEEP_BYTES = MAX_LINE_CHARS * 4 + 4;
const NEWLINE = 0x0a;

/** One numbered line, cut at MAX_LINE_CHARS characters with a note of what was cut. */
function formatLine(lineNumber: number, kept: Buffer, totalBytes: number): string {
  let text = kept.toString('utf8');
  if (text.endsWith('\r')) text = text.slice(0, -1);
  const chars = Array.from(text);
  if (chars.length <= MAX_LINE_CHARS) return `L${lineNumber}: ${text}`;
  const shown = chars.slice(0, MAX_LINE_CHARS).join('');
  const cutBytes = totalBytes - Buffer.byteLength(shown);
  return `L${lineNumber}: ${shown} [… line cut at ${MAX_LINE_CHARS} characters; ${formatNumber(cutBytes)} more bytes]`;
}

/** Builds the window line by line and says why it stopped. */
class Window {
  readonly lines: string[] = [];
  private bytes = 0;
  /** Lines read so far, shown or not. */
  lineCount = 0;
  stoppedBy: 'limit' | 'size' | undefined;

  constructor(
    private readonly offset: number,
    private readonly limit: number,
  ) {}

  /** Takes one complete line; false once the window is full. */
  add(kept: Buffer, totalBytes: number): boolean {
    this.lineCount += 1;
    if (this.lineCount < this.offset) return true;
    const line = formatLine(this.lineCount, kept, totalBytes);
    const lineBytes = Buffer.byteLength(line) + 1;
    if (this.bytes + lineBytes > MAX_OUTPUT_BYTES - NOTE_RESERVE_BYTES && this.lines.length > 0) {
      this.lineCount -= 1;
      this.stoppedBy = 'size';
      return false;
    }
    this.lines.push(line);
    this.bytes += lineBytes;
    if (this.lines.length >= this.limit) {
      this.stoppedBy = 'limit';
      return false;
    }
    return true;
  }
}

/** Collects the bytes of the line being read, keeping at most MAX_LINE_KEEP_BYTES of them. */
class LineAccumulator {
  private parts: Buffer[] = [];
  private keptBytes = 0;
  totalBytes = 0;

  append(segment: Buffer, keep: boolean): void {
    this.totalBytes += segment.length;
    if (!keep || this.keptBytes >= MAX_LINE_KEEP_BYTES) return;
    const part = segment.subarray(0, MAX_LINE_KEEP_BYTES - this.keptBytes);
    // Copied: the chunk buffer it came from is reused for the next read.
    this.parts.push(Buffer.from(part));
    this.keptBytes += part.length;
  }

  take(): { kept: Buffer; totalBytes: number } {
    const line = { kept: Buffer.concat(this.parts), totalBytes: this.totalBytes };
    this.parts = [];
    this.keptBytes = 0;
    this.totalBytes = 0;
    return line;
  }
}

interface ReadResult {
  window: Window;
  /** Bytes consumed up to the end of the last line taken. */
  consumed: number;
  binary: boolean;
}

async function readWindow(
  workspace: string,
  absolute: string,
  offset: number,
  limit: number,
  signal: AbortSignal,
): Promise<ReadResult> {
  const window = new Window(offset, limit);
  const line = new LineAccumulator();
  const chunk = Buffer.alloc(CHUNK_BYTES);
  const handle = await openInWorkspace(workspace, absolute);
  try {
    let position = 0;
    for (;;) {
      signal.throwIfAborted();
      const { bytesRead } = await handle.read(chunk, 0, CHUNK_BYTES, position);
      if (position === 0 && chunk.subarray(0, Math.min(bytesRead, BINARY_SNIFF_BYTES)).includes(0)) {
        return { window, consumed: 0, binary: true };
      }
      if (bytesRead === 0) break;
      const data = chunk.subarray(0, bytesRead);
      let start = 0;
      for (;;) {
        const newline = data.indexOf(NEWLINE, start);
        const keep = window.lineCount + 1 >= offset;
        if (newline === -1) {
          line.append(data.subarray(start), keep);
          break;
        }
        line.append(data.subarray(start, newline), keep);
        const { kept, totalBytes } = line.take();
        if (!window.add(kept, totalBytes)) {
          const consumed = window.stoppedBy === 'size' ? position + start : position + newline + 1;
          return { window, consumed, binary: false };
        }
        start = newline + 1;
      }
      position += bytesRead;
    }
    if (line.totalBytes > 0) {
      const { kept, totalBytes } = line.take();
      window.add(kept, totalBytes);
    }
    return { window, consumed: position, binary: false };
  } finally {
    await handle.close();
  }
}

export async function executeReadFile(args: ToolArgs<'read_file'>, ctx: ToolContext): Promise<ToolOutcome> {
  const offset = args.offset ?? 1;
  const limit = args.limit ?? DEFAULT_LIMIT;
  let label = `read_file · ${args.file_path}`;

  let absolute: string;
  try {
    absolute = await resolveInWorkspace(ctx.workspace, args.file_path);
  } catch (err) {
    if (err instanceof WorkspaceEscapeError) {
      return toolFailure(
        label,
        `${err.message}: read_file only reads files inside the workspace (${ctx.workspace}).`,
      );
    }
    throw err;
  }
  const relative = workspaceRelative(ctx.workspace, absolute);
  label = `read_file · ${relative}`;

  let size: number;
  try {
    const stats = await stat(absolute);
    if (stats.isDirectory()) {
      return toolFailure(
        label,
        `${relative} is a directory, not a file. Use list_dir to see what it contains.`,
      );
    }
    if (!stats.isFile()) return toolFailure(label, `${relative} is not a regular file and cannot be read.`);
    size = stats.size;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return toolFailure(
        label,
        `File not found: ${relative}. Use list_dir or grep_files to find the right path.`,
      );
    }
    if (code === 'EACCES' || code === 'EPERM')
      return toolFailure(label, `Permission denied: cannot read ${relative}.`);
    throw err;
  }

  let result: ReadResult;
  try {
    result = await readWindow(ctx.workspace, absolute, offset, limit, ctx.signal);
  } catch (err) {
    if (err instanceof WorkspaceEscapeError) {
      return toolFailure(
        label,
        `${err.message}: read_file only reads files inside the workspace (${ctx.workspace}).`,
      );
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM')
      return toolFailure(label, `Permission denied: cannot read ${relative}.`);
    if (code === 'ENOTREG' || code === 'ENOENT')
      return toolFailure(label, `${relative} is not a regular file and cannot be read.`);
    throw err;
  }
  const { window, consumed } = result;
  if (result.binary) {
    return toolFailure(
      label,
      `${relative} is a binary file (${formatNumber(size)} bytes); read_file reads text only.`,
    );
  }
  if (window.lines.length === 0) {
    if (window.lineCount === 0)
      return { output: `[${relative} is empty.]`, display: `${label} · empty`, success: true };
    return toolFailure(
      label,
      `Offset ${offset} is past the end of ${relative}, which has ${formatNumber(window.lineCount)} lines. ` +
        `Use an offset between 1 and ${window.lineCount}.`,
    );
  }

  const last = window.lineCount;
  const output = [...window.lines];
  if (window.stoppedBy === 'size') {
    output.push(`[Output stopped after L${last} to stay under 64 KiB. Continue with offset ${last + 1}.]`);
  } else if (window.stoppedBy === 'limit' && consumed < size) {
    output.push(`[More lines follow. Continue with offset ${last + 1}.]`);
  }
  return { output: output.join('\n'), display: `${label} · L${offset}-${last}`, success: true };
}
