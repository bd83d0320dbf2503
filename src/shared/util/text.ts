/**
 * Small text helpers for what people read, shared by the workflow, the activities and the CLI:
 * a number with thousands separators, the first line of a text, one line cut to a length.
 * Pure and deterministic.
 */
import { escapeControl } from './escape.js';

/** 12,345 (en-US, whatever the machine's locale). */
export function formatNumber(n: number): string {
  return n.toLocaleString('en-US');
}

/** `text` cut to `max` characters, the last one an ellipsis when anything was cut. */
export function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The first non-blank line of `text`, cut to `max` characters. */
export function firstLine(text: string, max = 100): string {
  return cut(text.trim().split('\n')[0] ?? '', max);
}

/** One line of at most `max` characters, control characters escaped (escape.ts). */
export function shorten(text: string, max = 80): string {
  return cut(escapeControl(text).replace(/\s+/g, ' ').trim(), max);
}
