/**
 * The commands known to only read (ls, cat, grep, git status, `sed -n 12p`, …), each with the
 * options that would make it write ruled out. A read-only call runs without asking and
 * alongside other reads. Errs towards "not safe": a command not on the list, or a script the
 * tokenizer cannot read, is not known safe. Pure.
 */
import { wordSet } from './shell-tokenizer.js';
import { commandWords } from './shell-unwrap.js';

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
export function isReadOnlyCommand(command: readonly string[]): boolean {
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
