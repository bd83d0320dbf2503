/**
 * Reading shell commands the way the policy needs them: a small tokenizer for the scripts the model
 * passes as `["bash", "-lc", script]`, the list of commands known to only read, the prefix a
 * session rule stores, and the command as a person would type it. Pure; the workflow runs it.
 *
 * Everything here errs towards "not safe": a construct the tokenizer does not understand makes
 * the whole script unparseable, and a command not on the list is not known safe.
 */

import { escapeControl } from './escape.js';

/** A set from a space-separated list. */
function wordSet(list: string): ReadonlySet<string> {
  return new Set(list.trim().split(/\s+/));
}

// ── tokenizer ───────────────────────────────────────────────────────────────────────────────

type Operator = '&&' | '||' | ';' | '|' | '\n';

type Token = { word: string; quoted: boolean } | { operator: Operator };

/** Words that start compound commands or change how the next command runs. */
const RESERVED_WORDS = wordSet(`
  ! [[ ]] case coproc do done elif else esac fi for foreach function if in
  nocorrect noglob repeat select then time until while`);

const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*\+?=/;

/** Characters that end an unquoted word. */
function endsWord(char: string | undefined): boolean {
  return char === undefined || ' \t\n;&|<>()'.includes(char);
}

/**
 * Splits a script into words and operators, or returns null at the first construct it does not
 * reason about. Accepted redirections are dropped from the words: output to /dev/null
 * (`>/dev/null`, `2>>/dev/null`, `&>/dev/null`) and duplicating one descriptor onto another
 * (`2>&1`, `>&2`); neither reads or writes a file.
 */
function tokenize(script: string): Token[] | null {
  const tokens: Token[] = [];
  let word = '';
  let started = false; // a word has begun (quotes alone start one: `''` is an empty word)
  let quoted = false; // part of the word was quoted or escaped
  const endWord = (): void => {
    if (started) tokens.push({ word, quoted });
    word = '';
    started = false;
    quoted = false;
  };

  let i = 0;
  while (i < script.length) {
    const char = script[i]!;
    const next = script[i + 1];
    if (char === ' ' || char === '\t') {
      endWord();
      i += 1;
    } else if (char === '\n') {
      endWord();
      tokens.push({ operator: '\n' });
      i += 1;
    } else if (char === '#' && !started) {
      while (i < script.length && script[i] !== '\n') i += 1;
    } else if (char === '\\') {
      if (next === undefined) return null;
      if (next !== '\n') {
        // backslash-newline joins lines; any other escaped character is literal
        word += next;
        started = quoted = true;
      }
      i += 2;
    } else if (char === "'") {
      const close = script.indexOf("'", i + 1);
      if (close < 0) return null;
      word += script.slice(i + 1, close);
      started = quoted = true;
      i = close + 1;
    } else if (char === '"') {
      const end = readDoubleQuoted(script, i + 1);
      if (end === null) return null;
      word += end.text;
      started = quoted = true;
      i = end.next;
    } else if (char === '*' || char === '?' || char === '[') {
      // A glob that could expand to a file named like an option (`*` matching `-delete`,
      // `-d*` matching `-delete`) would make the words differ from what runs. After literal
      // text that cannot start an option (`src/*.ts`, `--include=*.ts`) it is kept as written.
      if (word === '' || (word.startsWith('-') && !word.includes('='))) return null;
      word += char;
      started = true;
      i += 1;
    } else if (char === ';') {
      if (next === ';' || next === '&') return null; // `case` syntax
      endWord();
      tokens.push({ operator: ';' });
      i += 1;
    } else if (char === '&') {
      if (next === '&') {
        endWord();
        tokens.push({ operator: '&&' });
        i += 2;
      } else if (next === '>') {
        endWord();
        const after = readRedirectTarget(script, script[i + 2] === '>' ? i + 3 : i + 2, false);
        if (after === null) return null;
        i = after;
      } else {
        return null; // background job
      }
    } else if (char === '|') {
      if (next === '&') return null;
      endWord();
      tokens.push({ operator: next === '|' ? '||' : '|' });
      i += next === '|' ? 2 : 1;
    } else if (char === '>') {
      // `2>` names a descriptor only when the digits are the whole, unquoted word.
      const fd = started && !quoted && /^\d+$/.test(word);
      if (fd) {
        word = '';
        started = false;
      } else {
        endWord();
      }
      const append = next === '>';
      const after = readRedirectTarget(script, append ? i + 2 : i + 1, !append);
      if (after === null) return null;
      i = after;
    } else if ('<()`${}'.includes(char)) {
      // input redirection, subshells and grouping, substitutions and expansions, brace expansion
      return null;
    } else {
      word += char;
      started = true;
      i += 1;
    }
  }
  endWord();
  return tokens;
}

/** Reads a double-quoted string from just after its opening quote; null if it expands anything. */
function readDoubleQuoted(script: string, start: number): { text: string; next: number } | null {
  let text = '';
  let i = start;
  while (i < script.length) {
    const char = script[i]!;
    if (char === '"') return { text, next: i + 1 };
    if (char === '$' || char === '`') return null;
    if (char === '\\') {
      const next = script[i + 1];
      if (next === undefined) return null;
      if ('$`"\\\n'.includes(next)) {
        if (next !== '\n') text += next;
        i += 2;
        continue;
      }
    }
    text += char;
    i += 1;
  }
  return null;
}

/**
 * Reads what follows `>`, `>>` or `&>`: `/dev/null`, or (when `dupAllowed`) `&` and a descriptor
 * number. Returns the index after the target, or null for any other target.
 */
function readRedirectTarget(script: string, start: number, dupAllowed: boolean): number | null {
  let i = start;
  if (script[i] === '&') {
    if (!dupAllowed) return null;
    i += 1;
    const digits = /^\d+/.exec(script.slice(i))?.[0];
    if (digits === undefined) return null;
    i += digits.length;
    return endsWord(script[i]) ? i : null;
  }
  if (script[i] === '|') return null;
  while (script[i] === ' ' || script[i] === '\t') i += 1;
  if (!script.startsWith('/dev/null', i)) return null;
  i += '/dev/null'.length;
  return endsWord(script[i]) ? i : null;
}

/**
 * Splits a POSIX shell script into its commands, each an argv, or returns null when the script
 * uses anything beyond plain words, quotes, backslashes, the separators `&&` `||` `;` `|` and
 * newlines, comments, and the /dev/null and descriptor redirections `tokenize` accepts. Rejected:
 * other redirections, `$` in any form, backticks, `( )` and `{ }`, background `&`, assignments
 * before a command, reserved words such as `if` and `for`, and a glob where a word begins.
 * A `~` is kept as written (it expands to a directory, never to an option).
 */
export function splitShellScript(script: string): string[][] | null {
  const tokens = tokenize(script);
  if (tokens === null) return null;
  const commands: string[][] = [];
  let current: string[] = [];
  let needsCommand = false; // after `&&`, `||` or `|`, only a command may follow
  for (const token of tokens) {
    if ('word' in token) {
      if (current.length === 0) {
        if (!token.quoted && RESERVED_WORDS.has(token.word)) return null;
        if (ASSIGNMENT.test(token.word)) return null;
      }
      current.push(token.word);
      continue;
    }
    if (current.length === 0) {
      if (token.operator === '\n') continue; // blank line, or a line break after `&&`
      return null; // an operator with no command before it
    }
    commands.push(current);
    current = [];
    needsCommand = token.operator !== ';' && token.operator !== '\n';
  }
  if (current.length > 0) commands.push(current);
  else if (needsCommand) return null;
  return commands;
}

// ── shells ──────────────────────────────────────────────────────────────────────────────────

const SHELLS = new Set(['bash', 'sh', 'zsh'].flatMap((name) => [name, `/bin/${name}`, `/usr/bin/${name}`]));

/** The script of `bash -c script`, `bash -lc script` or `bash -l -c script` (also sh, zsh); else null. */
function shellScript(argv: readonly string[]): string | null {
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

// ── known-safe commands ─────────────────────────────────────────────────────────────────────

/**
 * True when any argument is one of the options: `short` letters anywhere in a cluster (`-uo`
 * counts as `-o`, and so does `-ko`, whose `o` is a value: a false alarm that only costs a
 * question), or a long option or any abbreviation of one (GNU tools accept `--out` for
 * `--output`). Every argument is checked, including those after `--`, because an option's value
 * can be `--` itself (`rg -e -- --pre=sh`).
 */
function hasOption(args: readonly string[], short: string, long: readonly string[]): boolean {
  return args.some((arg) => {
    if (arg.startsWith('--')) {
      const name = arg.split('=', 1)[0]!;
      return name.length > 2 && long.some((option) => option.startsWith(name));
    }
    return arg.startsWith('-') && [...arg.slice(1)].some((letter) => short.includes(letter));
  });
}

const FIND_ACTIONS = wordSet('-exec -execdir -ok -okdir -delete -fls -fprint -fprint0 -fprintf');

/** `sed -n 12p`, `sed -n 1,20p`, `sed -n '5,$p'` and `sed -n '$p'`, over files that are not options. */
function isPrintOnlySed(args: readonly string[]): boolean {
  const [flag, script, ...files] = args;
  return (
    flag === '-n' &&
    script !== undefined &&
    /^(\d+|\$)(,(\d+|\$))?p$/.test(script) &&
    files.every((file) => !file.startsWith('-'))
  );
}

/** `uniq [INPUT [OUTPUT]]` writes OUTPUT: at most one file operand is read-only. */
function isReadOnlyUniq(args: readonly string[]): boolean {
  const takesValue = new Set(['-f', '-s', '-w', '--skip-fields', '--skip-chars', '--check-chars']);
  let operands = 0;
  let optionsEnded = false;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i]!;
    if (optionsEnded || arg === '-' || !arg.startsWith('-')) operands += 1;
    else if (arg === '--') optionsEnded = true;
    else if (takesValue.has(arg)) i += 1;
  }
  return operands <= 1;
}

/** `date` prints unless it sets the clock (`-s`, `--set`, or an operand not starting with `+`). */
function isReadOnlyDate(args: readonly string[]): boolean {
  const takesValue = new Set(['-d', '-f', '-r', '--date', '--file', '--reference']);
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i]!;
    if (takesValue.has(arg)) i += 1;
    else if (!arg.startsWith('-') && !arg.startsWith('+')) return false;
  }
  return !hasOption(args, 's', ['--set']);
}

const GIT_READ_ONLY = wordSet('status log diff show rev-parse ls-files blame grep describe shortlog');

/** `git branch` when it lists: only listing flags, and names only as `--list` patterns. */
function isListingGitBranch(args: readonly string[]): boolean {
  const listingFlags =
    /^-[arvl]+$|^--(all|remotes|verbose|list|show-current|no-color|color|no-column|column)$|^--(sort|format|contains|no-contains|merged|no-merged|points-at|color|column)=/;
  const listing = args.some((arg) => arg === '--list' || /^-[arv]*l[arvl]*$/.test(arg));
  return args.every((arg) => (arg.startsWith('-') ? listingFlags.test(arg) : listing));
}

/**
 * `git` with a read-only subcommand. Options before the subcommand other than `--no-pager` are
 * refused (`-c`, `--exec-path`, `-C` and `--git-dir` can run other programs or read other
 * repositories' configuration), and so are options that write a file or run a program.
 */
function isReadOnlyGit(args: readonly string[]): boolean {
  let index = 0;
  while (args[index] === '--no-pager' || args[index] === '-P') index += 1;
  const subcommand = args[index];
  const rest = args.slice(index + 1);
  if (subcommand === undefined) return false;
  const writesOrRuns = ['--output', '--ext-diff', '--textconv', '--exec', '--open-files-in-pager'];
  if (hasOption(rest, '', writesOrRuns)) return false;
  if (subcommand === 'grep' && hasOption(rest, 'O', [])) return false;
  if (subcommand === 'branch') return isListingGitBranch(rest);
  if (subcommand === 'remote') return rest.every((arg) => arg === '-v' || arg === '--verbose');
  return GIT_READ_ONLY.has(subcommand);
}

const ALWAYS_READ_ONLY = wordSet(`
  basename cat cd cmp cut df diff dirname du echo egrep false fgrep grep head ls nl pwd
  realpath stat tail tr true wc which`);

/** One command (no shell wrapper) that only reads. */
function isReadOnlyCommand(command: readonly string[]): boolean {
  const [program, ...args] = command;
  if (program === undefined) return false;
  if (ALWAYS_READ_ONLY.has(program)) return true;
  switch (program) {
    case 'sort':
      return !hasOption(args, 'o', ['--output', '--compress-program']);
    case 'rg':
      return !hasOption(args, 'z', ['--pre', '--pre-glob', '--search-zip', '--hostname-bin']);
    case 'find':
      return !args.some((arg) => FIND_ACTIONS.has(arg));
    case 'sed':
      return isPrintOnlySed(args);
    case 'uniq':
      return isReadOnlyUniq(args);
    case 'date':
      return isReadOnlyDate(args);
    case 'file': // -C compiles a magic file, writing it
      return !hasOption(args, 'C', ['--compile']);
    case 'tree': // -o writes the listing to a file; -R writes 00Tree.html into directories
      return !hasOption(args, 'oR', ['--output']);
    case 'git':
      return isReadOnlyGit(args);
    default:
      return false;
  }
}

/**
 * True only when every command the argv runs (a `bash -lc` script's commands included) is known
 * to only read. An unparseable script, or one with no commands, is not known safe.
 */
export function isKnownSafeCommand(argv: string[]): boolean {
  const commands = commandWords(argv);
  return commands !== null && commands.length > 0 && commands.every(isReadOnlyCommand);
}

// ── prefixes and display ────────────────────────────────────────────────────────────────────

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
