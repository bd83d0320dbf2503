/**
 * The prefix that "approve for this session" stores as a rule: the program and its subcommand
 * (`npm test`, `git commit`), never so broad that it covers code of the model's choosing
 * (launchers, inline code, package managers told to run chosen code). Pure.
 */
import { wordSet } from './shell-tokenizer.js';
import { isReadOnlyCommand } from './read-only-commands.js';
import { SHELLS, commandWords } from './shell-unwrap.js';

/** Programs whose arguments name the program or code that really runs. */
const LAUNCHERS = new Set([
  ...wordSet('env sudo doas xargs nohup nice timeout exec eval command builtin'),
  ...SHELLS,
]);

/** Inline code: `python -c`, `node -e`, `perl -e`, `node --eval`. */
const INLINE_CODE = new Set(['-c', '-e', '--eval']);

/** A subcommand such as `test` in `npm test`: not an option, not a path, not an assignment. */
const SUBCOMMAND = /^[A-Za-z0-9_][A-Za-z0-9_.:@+-]*$/;

/** Subcommands whose next word names what actually runs (`npm run lint`, `pnpm exec tsc`). */
const SCRIPT_RUNNERS = new Set(['run', 'run-script', 'exec', 'x', 'dlx']);
const PACKAGE_MANAGERS = new Set(['npm', 'pnpm', 'yarn', 'bun']);

/**
 * How prefixes are cut: `narrow` is current; `v0.1` is the first release's (the program alone
 * before an option, `npm run` without the script), kept so sessions approved under it replay.
 */
export type PrefixStyle = 'narrow' | 'v0.1';

/**
 * Whether a command's arguments decide what runs (a launcher such as `env`, `xargs` or a shell,
 * or inline code such as `python -c`): a rule for it covers that exact command only.
 */
export function argumentsDecideWhatRuns(command: readonly string[]): boolean {
  const [program, first] = command;
  return program !== undefined && (LAUNCHERS.has(program) || (first !== undefined && INLINE_CODE.has(first)));
}

function prefixOf(command: readonly string[], style: PrefixStyle): string[] {
  const [program, first, second] = command;
  if (program === undefined) return [];
  if (LAUNCHERS.has(program) || (first !== undefined && INLINE_CODE.has(first))) return [...command];
  if (first === undefined) return [program];
  if (style === 'v0.1') return SUBCOMMAND.test(first) ? [program, first] : [program];
  // Options before anything else (`git -C dir push`, `rm -rf build`) change what the rest means:
  // only the command as it was approved is safe to repeat.
  if (first.startsWith('-')) return [...command];
  if (!SUBCOMMAND.test(first)) return [program];
  if (PACKAGE_MANAGERS.has(program) && SCRIPT_RUNNERS.has(first) && second !== undefined) {
    return [program, first, second];
  }
  return [program, first];
}

/**
 * The prefix an "approve for this session" rule stores: the program, plus its first argument when
 * that is a subcommand (`npm test -- --watch` → `npm test`), and the script's name for package
 * managers' runners (`npm run lint`). A command whose first argument is an option (`ls -la`,
 * `git -C dir push`) gives itself whole, since options can redirect what follows. Shell scripts are
 * unwrapped first. For a compound script the prefix is that of the first command that is not
 * known safe (`cd app && npm test` → `npm test`), or of the first command when all are; the other
 * commands still need their own rule or to be known safe. Where the arguments decide what runs
 * (launchers such as `env`, `sudo`, `xargs`, and inline code such as `python -c`), the prefix is
 * the whole command. Later commands may add words after any prefix. An unparseable script gives
 * the argv itself; prefix rules never match an unparseable script, so approving one for the
 * session in effect approves only that call.
 */
export function commandPrefix(argv: string[], style: PrefixStyle = 'narrow'): string[] {
  const commands = commandWords(argv);
  if (commands === null || commands.length === 0) return [...argv];
  const chosen = commands.find((command) => !isReadOnlyCommand(command)) ?? commands[0]!;
  return prefixOf(chosen, style);
}

/** Package managers and the runtimes they start: their options below load code of the caller's choosing. */
const CODE_LOADERS = new Set([
  'npm',
  'npx',
  'pnpm',
  'pnpx',
  'yarn',
  'bun',
  'bunx',
  'node',
  'deno',
  'corepack',
]);

/**
 * Options of CODE_LOADERS that run code the arguments name, wherever they appear
 * (`npm test --node-options=--import=data:…`, `yarn --require x test`): a standing rule never
 * covers a command with one of them, even one approved with it.
 */
const CODE_RUNNING_OPTIONS = new Set([
  ...['--node-options', '--require', '-r', '--import', '--loader', '--experimental-loader'],
  ...['--eval', '-e', '--print', '-p', '--call', '-c', '--script-shell', '--shell'],
  ...['--userconfig', '--globalconfig', '--init-module', '--prefix', '--cwd', '--dir', '-C'],
  ...['--workspace', '-w', '--filter', '--config', '--rc', '--preload', '--env-file'],
]);

/** Whether a command is a package manager or runtime told, by an option, to run chosen code. */
export function runsChosenCode(command: readonly string[]): boolean {
  const [program, ...args] = command;
  if (program === undefined || !CODE_LOADERS.has(program.split('/').pop()!)) return false;
  return args.some((arg) => arg.startsWith('-') && CODE_RUNNING_OPTIONS.has(arg.split('=', 1)[0]!));
}
