import { describe, expect, it } from 'vitest';
import { commandPrefix } from '../../src/shared/policy/session-rule-prefix.js';
import { commandWords, displayCommand } from '../../src/shared/policy/shell-unwrap.js';
import { isKnownSafeCommand } from '../../src/shared/policy/read-only-commands.js';
import { splitShellScript } from '../../src/shared/policy/shell-tokenizer.js';

const bash = (script: string): string[] => ['bash', '-lc', script];

describe('splitShellScript', () => {
  it.each<[string, string[][]]>([
    ['ls -la', [['ls', '-la']]],
    ['  ls   -la  ', [['ls', '-la']]],
    ['grep \'a b\' "c d"', [['grep', 'a b', 'c d']]],
    ["echo 'it''s'", [['echo', 'its']]],
    ["echo '$HOME `x` \\n'", [['echo', '$HOME `x` \\n']]],
    ['echo "say \\"hi\\" \\\\ \\$ \\` \\a"', [['echo', 'say "hi" \\ $ ` \\a']]],
    ['echo a\\ b \\"c\\" \\$d', [['echo', 'a b', '"c"', '$d']]],
    ['echo \'\' ""', [['echo', '', '']]],
    ['echo a\\\nb', [['echo', 'ab']]],
    ['echo "a\\\nb"', [['echo', 'ab']]],
    ['echo x#y # a comment', [['echo', 'x#y']]],
    ['# only a comment\nls', [['ls']]],
    ['cat ~/notes.txt', [['cat', '~/notes.txt']]],
    ['ls src/*.ts', [['ls', 'src/*.ts']]],
    ['grep -r --include=*.ts x .', [['grep', '-r', '--include=*.ts', 'x', '.']]],
    ["rg -g '*.ts' foo", [['rg', '-g', '*.ts', 'foo']]],
  ])('reads words: %j', (script, expected) => {
    expect(splitShellScript(script)).toEqual(expected);
  });

  it.each<[string, string[][]]>([
    ['a && b', [['a'], ['b']]],
    ['a||b', [['a'], ['b']]],
    ['a;b; c', [['a'], ['b'], ['c']]],
    ['a | b|c', [['a'], ['b'], ['c']]],
    ['a\nb\n\n  c\n', [['a'], ['b'], ['c']]],
    ['a &&\n  b', [['a'], ['b']]],
    ['a |\n b', [['a'], ['b']]],
    ['a;', [['a']]],
    ["echo 'a && b; c | d'", [['echo', 'a && b; c | d']]],
    ['echo a\\;b', [['echo', 'a;b']]],
    ['', []],
    ['   \n  ', []],
  ])('splits at operators: %j', (script, expected) => {
    expect(splitShellScript(script)).toEqual(expected);
  });

  it.each<[string, string[][]]>([
    ['find . -name x 2>/dev/null', [['find', '.', '-name', 'x']]],
    ['ls >/dev/null', [['ls']]],
    ['ls > /dev/null', [['ls']]],
    ['ls 1>>/dev/null', [['ls']]],
    ['ls &>/dev/null', [['ls']]],
    [
      'npm test 2>&1 | tail -5',
      [
        ['npm', 'test'],
        ['tail', '-5'],
      ],
    ],
    ['echo oops >&2', [['echo', 'oops']]],
    ['echo a2>/dev/null', [['echo', 'a2']]],
  ])('drops redirections to /dev/null and between descriptors: %j', (script, expected) => {
    expect(splitShellScript(script)).toEqual(expected);
  });

  it.each([
    ['output redirection', 'echo hi > file'],
    ['appending redirection', 'echo hi >> file'],
    ['redirection without a space', 'echo hi>file'],
    ['stderr to a file', 'ls 2>errors'],
    ['both streams to a file', 'ls &> out'],
    ['clobbering redirection', 'ls >| /dev/null'],
    ['quoted /dev/null-like target', 'ls > "/dev/null"x'],
    ['a longer target', 'ls >/dev/nullx'],
    ['duplicating to a file', 'ls >&out'],
    ['closing a descriptor', 'ls 2>&-'],
    ['input redirection', 'cat < file'],
    ['here-document', 'cat <<EOF\nx\nEOF'],
    ['here-string', 'cat <<< x'],
    ['command substitution', 'cat $(whoami)'],
    ['command substitution in double quotes', 'echo "$(rm -rf x)"'],
    ['backticks', 'echo `rm -rf x`'],
    ['backticks in double quotes', 'echo "`id`"'],
    ['variable', 'echo $HOME'],
    ['braced variable', 'echo ${HOME}'],
    ['variable in double quotes', 'echo "$HOME"'],
    ['ANSI-C quoting', "echo $'\\x41'"],
    ['process substitution', 'diff <(ls a) <(ls b)'],
    ['output process substitution', 'ls >(cat)'],
    ['subshell', '(cd x && ls)'],
    ['grouping', '{ ls; }'],
    ['brace expansion', 'find . -{delete,name}'],
    ['background job', 'sleep 10 &'],
    ['background in a sequence', 'rm x & ls'],
    ['pipe of both streams', 'ls |& cat'],
    ['assignment before a command', 'FOO=bar ls'],
    ['appending assignment', 'PATH+=:/tmp ls'],
    ['lone assignment', 'x=1'],
    ['if', 'if true; then ls; fi'],
    ['for loop', 'for f in a b; do cat f; done'],
    ['negation', '! ls'],
    ['time', 'time ls'],
    ['double brackets', '[[ -f x ]]'],
    ['case terminator', 'a;; b'],
    ['unterminated single quote', "echo 'abc"],
    ['unterminated double quote', 'echo "abc'],
    ['trailing backslash', 'echo abc\\'],
    ['operator with nothing before it', '&& ls'],
    ['empty command between operators', 'ls && && ls'],
    ['empty command after ;', 'ls ; ; ls'],
    ['dangling operator', 'ls &&'],
    ['dangling pipe', 'ls |'],
    ['glob at the start of a word', 'ls *'],
    ['glob after a dash', 'find . -d*'],
    ['glob after empty quotes', "ls ''*"],
    ['question-mark glob', 'cat ?'],
    ['bracket at the start of a word', '[ -f x ]'],
  ])('rejects %s', (_name, script) => {
    expect(splitShellScript(script)).toBeNull();
  });
});

describe('commandWords', () => {
  it.each<[string[], string[][] | null]>([
    [['ls', '-la'], [['ls', '-la']]],
    [
      ['bash', '-lc', 'ls && pwd'],
      [['ls'], ['pwd']],
    ],
    [['bash', '-c', 'ls'], [['ls']]],
    [['bash', '-l', '-c', 'ls'], [['ls']]],
    [
      ['sh', '-c', 'ls | wc -l'],
      [['ls'], ['wc', '-l']],
    ],
    [['zsh', '-lc', 'ls'], [['ls']]],
    [['/bin/bash', '-lc', 'ls'], [['ls']]],
    [
      ['bash', '-lc', "bash -lc 'rm x' && ls"],
      [['rm', 'x'], ['ls']],
    ],
    [['bash', '-lc', 'cat $(whoami)'], null],
    [['bash', 'script.sh'], [['bash', 'script.sh']]],
    [['bash', '-c', 'ls', 'extra'], [['bash', '-c', 'ls', 'extra']]],
    [['/tmp/bash', '-lc', 'ls'], [['/tmp/bash', '-lc', 'ls']]],
    [['echo', '$(whoami)'], [['echo', '$(whoami)']]],
    [[], null],
  ])('%j → %j', (argv, expected) => {
    expect(commandWords(argv)).toEqual(expected);
  });
});

/** Rows for it.each, titled with the argv as JSON. */
const titled = (list: string[][]): [string, string[]][] => list.map((argv) => [JSON.stringify(argv), argv]);

describe('isKnownSafeCommand', () => {
  it.each(
    titled([
      ['ls'],
      ['ls', '-la', 'src'],
      ['cat', 'package.json'],
      ['head', '-n', '20', 'a.ts'],
      ['tail', '-5', 'log.txt'],
      ['wc', '-l', 'a', 'b'],
      ['pwd'],
      ['echo', 'hello'],
      ['true'],
      ['false'],
      ['nl', 'a.ts'],
      ['cut', '-d:', '-f1', 'x'],
      ['tr', 'a-z', 'A-Z'],
      ['uniq', '-c', 'x'],
      ['uniq', '-f', '1', 'x'],
      ['sort', '-u', '-k', '2', 'x'],
      ['grep', '-rn', 'TODO', 'src'],
      ['egrep', 'a|b', 'x'],
      ['fgrep', 'x', 'y'],
      ['rg', '-n', 'TODO'],
      ['rg', '--files', '-g', '*.ts'],
      ['rg', '--pretty', 'x'],
      ['find', '.', '-name', '*.ts', '-type', 'f'],
      ['find', 'src', '-maxdepth', '2', '-print0'],
      ['sed', '-n', '10p', 'a.ts'],
      ['sed', '-n', '1,20p', 'a.ts'],
      ['sed', '-n', '5,$p', 'a.ts', 'b.ts'],
      ['sed', '-n', '$p'],
      ['which', 'node'],
      ['file', 'x.bin'],
      ['stat', 'x'],
      ['du', '-sh', '.'],
      ['df', '-h'],
      ['tree', '-L', '2'],
      ['date'],
      ['date', '+%Y-%m-%d'],
      ['date', '-u', '-d', 'next monday', '+%F'],
      ['basename', 'a/b.ts'],
      ['dirname', 'a/b.ts'],
      ['realpath', '.'],
      ['diff', '-u', 'a', 'b'],
      ['cmp', 'a', 'b'],
      ['cd', 'src'],
      ['git', 'status'],
      ['git', 'status', '--short'],
      ['git', 'log', '--oneline', '-n', '5'],
      ['git', 'log', '-c'],
      ['git', 'diff', 'HEAD~1', '--stat'],
      ['git', 'show', 'HEAD:src/a.ts'],
      ['git', 'rev-parse', 'HEAD'],
      ['git', 'ls-files'],
      ['git', 'blame', 'a.ts'],
      ['git', 'grep', '-n', 'TODO'],
      ['git', 'branch'],
      ['git', 'branch', '-a', '-vv'],
      ['git', 'branch', '--show-current'],
      ['git', 'branch', '--list', 'feat/*'],
      ['git', 'branch', '-l', 'feat/*'],
      ['git', 'remote'],
      ['git', 'remote', '-v'],
      ['git', 'describe', '--tags'],
      ['git', 'shortlog', '-sn'],
      ['git', '--no-pager', 'log'],
      bash('ls && pwd'),
      bash('cat a.ts | grep x | wc -l'),
      bash('cd src && ls -la'),
      bash('git status; git diff --stat'),
      bash("rg -n 'TODO' src | head -20"),
      bash('find . -name x 2>/dev/null | head'),
      bash('ls src/*.ts'),
      bash("sed -n '1,20p' a.ts"),
      bash("bash -lc 'ls'"),
      ['sh', '-c', 'ls'],
    ]),
  )('safe: %s', (_title, argv) => {
    expect(isKnownSafeCommand(argv)).toBe(true);
  });

  it.each(
    titled([
      // programs that are not on the list
      ['rm', '-rf', 'x'],
      ['env'],
      ['env', 'ls'],
      ['xargs', 'ls'],
      ['awk', '{print}', 'x'],
      ['python', '-c', 'print(1)'],
      ['node', '-e', '1'],
      ['npm', 'test'],
      ['make'],
      ['bash'],
      ['bash', 'script.sh'],
      ['tee', 'x'],
      ['/bin/ls'],
      ['./ls'],
      ['sudo', 'ls'],
      // read-only programs with options that write or run programs
      ['find', '.', '-delete'],
      ['find', '.', '-exec', 'rm', '{}', ';'],
      ['find', '.', '-execdir', 'ls', ';'],
      ['find', '.', '-ok', 'rm', '{}', ';'],
      ['find', '.', '-okdir', 'rm', '{}', ';'],
      ['find', '.', '-fls', 'out'],
      ['find', '.', '-fprint', 'out'],
      ['find', '.', '-fprint0', 'out'],
      ['find', '.', '-fprintf', 'out', '%p'],
      ['rg', '--pre', 'sh', 'x'],
      ['rg', '--pre=sh', 'x'],
      ['rg', '--pre-glob', '*.x', 'x'],
      ['rg', '-z', 'x'],
      ['rg', '-iz', 'x'],
      ['rg', '--search-zip', 'x'],
      ['rg', '--hostname-bin', 'evil', 'x'],
      ['rg', '-e', '--', '--pre=sh', 'x'],
      ['sort', '-o', 'out', 'x'],
      ['sort', '-uo', 'out', 'x'],
      ['sort', '--output=out', 'x'],
      ['sort', '--out=out', 'x'],
      ['sort', '--compress-program=sh', 'x'],
      ['sed', '-i', 's/a/b/', 'x'],
      ['sed', 's/a/b/', 'x'],
      ['sed', '-n', '1p', '-i', 'x'],
      ['sed', '-n', '1w out', 'x'],
      ['sed', '-n', '1p;w out', 'x'],
      ['sed', '-n', '1e ls', 'x'],
      ['uniq', 'in', 'out'],
      ['uniq', '--', '-a', '-b'],
      ['date', '-s', '2020-01-01'],
      ['date', '--set=2020-01-01'],
      ['date', '0101'],
      ['file', '-C', '-m', 'magic'],
      ['tree', '-o', 'out'],
      ['tree', '-R', '-H', '.'],
      ['git'],
      ['git', '-c', 'core.pager=evil', 'log'],
      ['git', '-C', 'other', 'status'],
      ['git', '--exec-path=/tmp', 'status'],
      ['git', '--git-dir=/tmp/x', 'log'],
      ['git', '-p', 'log'],
      ['git', 'commit', '-m', 'x'],
      ['git', 'push'],
      ['git', 'checkout', '.'],
      ['git', 'reset', '--hard'],
      ['git', 'clean', '-fdx'],
      ['git', 'stash'],
      ['git', 'config', 'core.pager', 'evil'],
      ['git', 'log', '--output=out'],
      ['git', 'diff', '--output', 'out'],
      ['git', 'diff', '--ext-diff'],
      ['git', 'diff', '--textconv'],
      ['git', 'grep', '-O', 'x'],
      ['git', 'grep', '-Ovim', 'x'],
      ['git', 'grep', '--open-files-in-pager=vim', 'x'],
      ['git', 'branch', 'new-branch'],
      ['git', 'branch', '-d', 'old'],
      ['git', 'branch', '-D', 'old'],
      ['git', 'branch', '-m', 'a', 'b'],
      ['git', 'branch', '-c', 'a', 'b'],
      ['git', 'branch', '--set-upstream-to=origin/x'],
      ['git', 'branch', '-a', 'new'],
      ['git', 'remote', 'add', 'x', 'url'],
      ['git', 'remote', 'show', 'origin'],
      // scripts
      bash('ls && rm -rf x'),
      bash('ls; rm x'),
      bash('cat $(whoami)'),
      bash('echo hi > file'),
      bash('echo hi | tee out'),
      bash('echo rm x | sh'),
      bash('ls *'),
      bash('find . -{delete,name}'),
      bash(''),
      bash("bash -lc 'rm x'"),
      bash('FOO=1 ls'),
      bash('ls &'),
    ]),
  )('not safe: %s', (_title, argv) => {
    expect(isKnownSafeCommand(argv)).toBe(false);
  });
});

describe('commandPrefix', () => {
  it.each<[string[], string[]]>([
    [
      ['npm', 'test', '--', '--watch'],
      ['npm', 'test'],
    ],
    [
      ['git', 'commit', '-m', 'x'],
      ['git', 'commit'],
    ],
    [
      ['cargo', 'build', '--release'],
      ['cargo', 'build'],
    ],
    [
      ['ls', '-la'],
      ['ls', '-la'],
    ],
    [
      ['git', '-C', 'sub', 'push', '--force'],
      ['git', '-C', 'sub', 'push', '--force'],
    ],
    [
      ['rm', '-rf', 'build'],
      ['rm', '-rf', 'build'],
    ],
    [
      ['pnpm', 'exec', 'tsc', '--noEmit'],
      ['pnpm', 'exec', 'tsc'],
    ],
    [['ls'], ['ls']],
    [['cat', './a.ts'], ['cat']],
    [['cat', 'src/a.ts'], ['cat']],
    [['make', 'CC=clang'], ['make']],
    [
      ['npm', 'run', 'test:unit'],
      ['npm', 'run', 'test:unit'],
    ],
    [
      ['node', 'index.js'],
      ['node', 'index.js'],
    ],
    [bash('npm test'), ['npm', 'test']],
    [
      ['bash', '-l', '-c', 'cargo test --all'],
      ['cargo', 'test'],
    ],
    [bash('npm test && git status'), ['npm', 'test']],
    [bash('cd app && npm test'), ['npm', 'test']],
    [bash('npm test 2>&1 | tail -20'), ['npm', 'test']],
    [bash('ls -la && pwd'), ['ls', '-la']],
    [bash('npm test; npm run lint'), ['npm', 'test']],
    [
      ['python', '-c', 'print(1)'],
      ['python', '-c', 'print(1)'],
    ],
    [
      ['env', 'FOO=1', 'npm', 'test'],
      ['env', 'FOO=1', 'npm', 'test'],
    ],
    [
      ['xargs', 'rm'],
      ['xargs', 'rm'],
    ],
    [
      ['bash', 'script.sh', '-x'],
      ['bash', 'script.sh', '-x'],
    ],
    [bash('cat $(whoami)'), bash('cat $(whoami)')],
  ])('%j → %j', (argv, expected) => {
    expect(commandPrefix(argv)).toEqual(expected);
  });

  it.each<[string[], string[]]>([
    [['git', '-C', 'sub', 'push'], ['git']],
    [['ls', '-la'], ['ls']],
    [
      ['npm', 'run', 'lint'],
      ['npm', 'run'],
    ],
  ])("keeps the first release's broad prefixes for old sessions: %j → %j", (argv, expected) => {
    expect(commandPrefix(argv, 'v0.1')).toEqual(expected);
  });
});

describe('displayCommand', () => {
  it.each<[string[], string]>([
    [bash('npm test'), 'npm test'],
    [bash('  ls && pwd\n'), 'ls && pwd'],
    [['bash', '-l', '-c', 'cargo test'], 'cargo test'],
    [['ls', '-la', 'src/a.ts'], 'ls -la src/a.ts'],
    [['git', 'commit', '-m', 'fix the bug'], "git commit -m 'fix the bug'"],
    [['echo', "it's"], "echo 'it'\\''s'"],
    [['echo', ''], "echo ''"],
    [['rg', '$x', '*.ts'], "rg '$x' '*.ts'"],
    [['npm', 'run', 'test:unit', '--', '--grep=a,b'], 'npm run test:unit -- --grep=a,b'],
  ])('%j → %s', (argv, expected) => {
    expect(displayCommand(argv)).toBe(expected);
  });

  it('quotes words so that the tokenizer reads them back unchanged', () => {
    const argv = ['grep', '-e', 'it\'s a "test"', 'a b', '$HOME', '*', '~', ''];
    expect(splitShellScript(displayCommand(argv))).toEqual([argv]);
  });
});
