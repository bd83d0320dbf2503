/**
 * One line at the bottom of a terminal, redrawn in place (carriage return, clear line) with a
 * spinner and the time the current step has taken. Permanent lines go through `print`, which
 * clears the live line first, so the scrollback holds only finished steps.
 *
 * Written here rather than taken from ora or log-update: those redraw blocks of lines and own the
 * cursor, while this needs one line, an elapsed time that ticks, and printing above it — about
 * forty lines.
 */
import type { Colors } from './render.js';
import { renderLiveLine } from './render.js';

const CLEAR_LINE = '\r\x1b[2K';

export interface LiveStep {
  label: string;
  /** When the step started (ISO 8601). */
  since: string;
}

export class LiveLine {
  private step: LiveStep | null = null;
  private tick = 0;
  private drawn = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream & { columns?: number },
    private readonly colors: Colors,
    private readonly intervalMs = 100,
  ) {}

  /** Shows `step` (null hides the line) and keeps it ticking. */
  set(step: LiveStep | null): void {
    this.step = step;
    if (step && !this.timer) {
      this.timer = setInterval(() => this.draw(), this.intervalMs);
      this.timer.unref();
    } else if (!step) this.stop();
    this.draw();
  }

  /** Writes `text` as permanent lines above the live line. */
  print(text: string): void {
    this.clear();
    this.out.write(`${text}\n`);
    this.draw();
  }

  /** Hides the line and stops ticking (before a prompt, and at the end). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  private clear(): void {
    if (this.drawn) this.out.write(CLEAR_LINE);
    this.drawn = false;
  }

  private draw(): void {
    if (!this.step || !this.timer) return;
    const width = this.out.columns ?? 80;
    this.out.write(CLEAR_LINE + renderLiveLine(this.step, Date.now(), this.tick++, this.colors, width));
    this.drawn = true;
  }
}
