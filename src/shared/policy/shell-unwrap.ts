/**
 * Shell wrappers: the script inside `bash -c script` (also `-lc`, `-l -c`; sh, zsh), the
 * commands an argv really runs once nested wrappers are unwrapped, and the command as a person
 * would type it. Pure; the workflow runs it.
 */
import { escapeControl } from '../util/escape.js';
import { splitShellScript } from './shell-tokenizer.js';

export const SHELLS = new Set(
  ['bash', 'sh', 'zsh'].flatMap((name) => [name, `/bin/${name}`, `/usr/bin/${name}`]),
);

/** The script of `bash -c script`, `bash -lc script` or `bash -l -c script` (also sh, zsh); else null. */
export function shellScript(argv: readonly string[]): string | null {
  const [program, first, second, third] = argv;
  if (program === undefined || !SHELLS.has(program)) return null;
  if (argv.length === 3 && (first === '-c' || first === '-lc' || first === '-cl')) return second!;
  if (argv.length === 4 && first === '-l' && second === '-c') return third!;
  return null;
}

/**
 * The commands an argv runs: a shell's `-c` script split into its commands (nested shells
 * unwrapped too), any other argv as one command. Null when a script cannot be parsed.
 */
export function commandWords(argv: string[]): string[][] | null {
  if (argv.length === 0) return null;
  const script = shellScript(argv);
  if (script === null) return [[...argv]];
  const commands = splitShellScript(script);
  if (commands === null) return null;
  const result: string[][] = [];
  for (const command of commands) {
    const inner = commandWords(command);
    if (inner === null) return null;
    result.push(...inner);
  }
  return result;
}

const PLAIN_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

function quoteWord(word: string): string {
  if (PLAIN_WORD.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command as a person would type it: a shell's `-c` script as written, else the quoted argv;
 * control characters escaped (escape.ts), so that what a person approves is what runs.
 */
export function displayCommand(argv: string[]): string {
  const script = shellScript(argv);
  return escapeControl(script !== null ? script.trim() : argv.map(quoteWord).join(' '));
}
