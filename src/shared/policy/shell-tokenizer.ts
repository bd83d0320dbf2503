/**
 * A small tokenizer for the shell scripts the model passes as `["bash", "-lc", script]`: it
 * splits a script into its commands, each an argv, or gives up (null) on anything it does not
 * fully understand, so that a construct it cannot read is never taken for a safe one. Pure.
 */

/** A set from a space-separated list. */
export function wordSet(list: string): ReadonlySet<string> {
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
