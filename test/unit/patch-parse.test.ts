import { describe, expect, it } from 'vitest';
import type { Patch } from '../../src/shared/tools/patch.js';
import { PatchParseError, parsePatch, patchPaths } from '../../src/shared/tools/patch.js';

function patch(...body: string[]): string {
  return ['*** Begin Patch', ...body, '*** End Patch'].join('\n');
}

function parseError(text: string): PatchParseError {
  try {
    parsePatch(text);
  } catch (err) {
    if (err instanceof PatchParseError) return err;
    throw err;
  }
  throw new Error('expected a PatchParseError, but the patch parsed');
}

describe('parsePatch', () => {
  it('parses an added file, every line ending with a newline', () => {
    expect(parsePatch(patch('*** Add File: path/new.txt', '+first line', '+second line'))).toEqual({
      operations: [{ type: 'add', path: 'path/new.txt', contents: 'first line\nsecond line\n' }],
    });
  });

  it('parses an added file with no lines as an empty file', () => {
    expect(parsePatch(patch('*** Add File: empty.txt'))).toEqual({
      operations: [{ type: 'add', path: 'empty.txt', contents: '' }],
    });
  });

  it('keeps blank lines inside an added file and drops those before the next marker', () => {
    const parsed = parsePatch(
      patch('*** Add File: a.txt', '+one', '', '+three', '', '*** Delete File: b.txt'),
    );
    expect(parsed.operations).toEqual([
      { type: 'add', path: 'a.txt', contents: 'one\n\nthree\n' },
      { type: 'delete', path: 'b.txt' },
    ]);
  });

  it('parses a deleted file', () => {
    expect(parsePatch(patch('*** Delete File: path/old.txt'))).toEqual({
      operations: [{ type: 'delete', path: 'path/old.txt' }],
    });
  });

  it('parses an update with context, removed and added lines', () => {
    const parsed = parsePatch(
      patch('*** Update File: src/app.ts', '@@', ' context line', '-removed line', '+added line', ' after'),
    );
    expect(parsed).toEqual({
      operations: [
        {
          type: 'update',
          path: 'src/app.ts',
          hunks: [
            {
              lines: [
                { kind: 'context', text: 'context line' },
                { kind: 'remove', text: 'removed line' },
                { kind: 'add', text: 'added line' },
                { kind: 'context', text: 'after' },
              ],
              endOfFile: false,
            },
          ],
        },
      ],
    });
  });

  it('parses several hunks, with and without a header line', () => {
    const parsed = parsePatch(
      patch(
        '*** Update File: src/app.ts',
        '@@ function greet() {',
        ' const a = 1;',
        '-return a;',
        '+return a + 1;',
        '@@',
        '-another removed',
        '+another added',
        '@@ class Foo {',
        '+  bar = 2;',
      ),
    );
    const operation = parsed.operations[0];
    if (operation?.type !== 'update') throw new Error('expected an update');
    expect(operation.hunks).toEqual([
      {
        header: 'function greet() {',
        lines: [
          { kind: 'context', text: 'const a = 1;' },
          { kind: 'remove', text: 'return a;' },
          { kind: 'add', text: 'return a + 1;' },
        ],
        endOfFile: false,
      },
      {
        lines: [
          { kind: 'remove', text: 'another removed' },
          { kind: 'add', text: 'another added' },
        ],
        endOfFile: false,
      },
      { header: 'class Foo {', lines: [{ kind: 'add', text: '  bar = 2;' }], endOfFile: false },
    ]);
  });

  it('accepts a first hunk without an "@@" line', () => {
    const parsed = parsePatch(patch('*** Update File: a.txt', ' keep', '-old', '+new'));
    expect(parsed.operations).toEqual([
      {
        type: 'update',
        path: 'a.txt',
        hunks: [
          {
            lines: [
              { kind: 'context', text: 'keep' },
              { kind: 'remove', text: 'old' },
              { kind: 'add', text: 'new' },
            ],
            endOfFile: false,
          },
        ],
      },
    ]);
  });

  it('keeps an empty line inside a hunk as an empty context line, and drops blank lines between hunks', () => {
    const parsed = parsePatch(
      patch(
        '*** Update File: a.txt',
        '@@',
        ' one',
        '',
        '-two',
        '',
        '@@',
        '-three',
        '',
        '*** Delete File: b.txt',
      ),
    );
    const operation = parsed.operations[0];
    if (operation?.type !== 'update') throw new Error('expected an update');
    expect(operation.hunks.map((hunk) => hunk.lines)).toEqual([
      [
        { kind: 'context', text: 'one' },
        { kind: 'context', text: '' },
        { kind: 'remove', text: 'two' },
      ],
      [{ kind: 'remove', text: 'three' }],
    ]);
    expect(parsed.operations[1]).toEqual({ type: 'delete', path: 'b.txt' });
  });

  it('parses a move with its hunks', () => {
    const parsed = parsePatch(
      patch('*** Update File: src/app.ts', '*** Move to: src/main.ts', '@@', '-a', '+b'),
    );
    expect(parsed.operations).toEqual([
      {
        type: 'update',
        path: 'src/app.ts',
        moveTo: 'src/main.ts',
        hunks: [
          {
            lines: [
              { kind: 'remove', text: 'a' },
              { kind: 'add', text: 'b' },
            ],
            endOfFile: false,
          },
        ],
      },
    ]);
  });

  it('marks a hunk followed by "*** End of File", keeping empty lines before the marker', () => {
    const parsed = parsePatch(
      patch('*** Update File: a.txt', '@@', ' last', '+appended', '', '*** End of File', '@@ top', '-x'),
    );
    const operation = parsed.operations[0];
    if (operation?.type !== 'update') throw new Error('expected an update');
    expect(operation.hunks).toEqual([
      {
        lines: [
          { kind: 'context', text: 'last' },
          { kind: 'add', text: 'appended' },
          { kind: 'context', text: '' },
        ],
        endOfFile: true,
      },
      { header: 'top', lines: [{ kind: 'remove', text: 'x' }], endOfFile: false },
    ]);
  });

  it('treats a unified-diff range after "@@" as no header, keeping any text after it', () => {
    const parsed = parsePatch(
      patch(
        '*** Update File: a.txt',
        '@@ -1,3 +1,4 @@',
        '-a',
        '+b',
        '@@ -10,2 +11,2 @@ function f() {',
        '-c',
        '+d',
      ),
    );
    const operation = parsed.operations[0];
    if (operation?.type !== 'update') throw new Error('expected an update');
    expect(operation.hunks.map((hunk) => hunk.header)).toEqual([undefined, 'function f() {']);
  });

  it('reads CRLF patches like LF patches', () => {
    const lf = patch('*** Add File: a.txt', '+one', '*** Update File: b.txt', '@@ x', ' y', '-z', '+w');
    expect(parsePatch(lf.replaceAll('\n', '\r\n'))).toEqual(parsePatch(lf));
    expect(parsePatch(`${lf.replaceAll('\n', '\r\n')}\r\n`).operations[0]).toEqual({
      type: 'add',
      path: 'a.txt',
      contents: 'one\n',
    });
  });

  it('tolerates blank lines around the patch and whitespace around markers and paths', () => {
    const text = [
      '',
      '   ',
      '  *** Begin Patch  ',
      '*** Add File:   spaced/path.txt  ',
      '+x',
      '   *** Delete File: old.txt',
      '*** Update File: a.txt ',
      '  *** Move to:  b.txt ',
      '@@',
      '-a',
      '+b',
      ' *** End Patch ',
      '',
      '',
    ].join('\n');
    expect(parsePatch(text).operations).toEqual([
      { type: 'add', path: 'spaced/path.txt', contents: 'x\n' },
      { type: 'delete', path: 'old.txt' },
      {
        type: 'update',
        path: 'a.txt',
        moveTo: 'b.txt',
        hunks: [
          {
            lines: [
              { kind: 'remove', text: 'a' },
              { kind: 'add', text: 'b' },
            ],
            endOfFile: false,
          },
        ],
      },
    ]);
  });

  it.each([
    ["<<'EOF'", 'EOF'],
    ['<<EOF', 'EOF'],
    ['<<"PATCH"', 'PATCH'],
    ["apply_patch <<'EOF'", 'EOF'],
  ])('unwraps a heredoc opened with %s', (opening, closing) => {
    const inner = patch('*** Add File: a.txt', '+one');
    const expected: Patch = { operations: [{ type: 'add', path: 'a.txt', contents: 'one\n' }] };
    expect(parsePatch(`${opening}\n${inner}\n${closing}\n`)).toEqual(expected);
    expect(parsePatch(`\n  ${opening}\r\n\r\n${inner.replaceAll('\n', '\r\n')}\r\n ${closing} \r\n`)).toEqual(
      expected,
    );
  });

  it('keeps text that looks like a marker when it is a context or added line', () => {
    const parsed = parsePatch(
      patch('*** Update File: test.txt', '@@', ' *** End Patch', '-*** Add File: x', '+*** Delete File: y'),
    );
    const operation = parsed.operations[0];
    if (operation?.type !== 'update') throw new Error('expected an update');
    expect(operation.hunks[0]?.lines).toEqual([
      { kind: 'context', text: '*** End Patch' },
      { kind: 'remove', text: '*** Add File: x' },
      { kind: 'add', text: '*** Delete File: y' },
    ]);
  });
});

describe('parsePatch errors', () => {
  it('names the line and what was expected there', () => {
    const error = parseError(patch('*** Delete File: a.txt', '', 'foo'));
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('PatchParseError');
    expect(error.line).toBe(4);
    expect(error.message).toBe(
      'line 4: expected "*** Add File:", "*** Update File:", "*** Delete File:" or "*** End Patch", got "foo"',
    );
  });

  it.each([
    ['an empty input', '', 1, 'got an empty patch'],
    ['blank lines only', '\n  \n', 1, 'got an empty patch'],
    [
      'a missing "*** Begin Patch"',
      '*** Add File: a.txt\n+x\n*** End Patch',
      1,
      'expected "*** Begin Patch"',
    ],
    ['a missing "*** End Patch"', '*** Begin Patch\n*** Add File: a.txt\n+x', 3, 'expected "*** End Patch"'],
    ['"*** Begin Patch" alone', '\n*** Begin Patch\n', 3, 'expected "*** End Patch"'],
    ['a patch with no operations', patch(), 2, 'the patch changes nothing'],
    ['an unknown marker', patch('*** Rename File: a.txt'), 2, 'got "*** Rename File: a.txt"'],
    [
      '"*** End Patch" before the end',
      patch('*** Delete File: a', '*** End Patch', '*** Delete File: b'),
      3,
      'must be the last line',
    ],
    [
      'an add line without "+"',
      patch('*** Add File: a.txt', '+one', 'two'),
      4,
      'expected a line starting with "+"',
    ],
    ['an empty add path', patch('*** Add File:   ', '+x'), 2, 'expected a path after "*** Add File:"'],
    ['an empty delete path', patch('*** Delete File:'), 2, 'expected a path after "*** Delete File:"'],
    [
      'an empty update path',
      patch('*** Update File: ', '@@', '-a'),
      2,
      'expected a path after "*** Update File:"',
    ],
    [
      'an empty move path',
      patch('*** Update File: a', '*** Move to:', '@@', '-a'),
      3,
      'expected a path after "*** Move to:"',
    ],
    [
      'an update with no hunk lines',
      patch('*** Update File: a.txt', '*** Delete File: b.txt'),
      2,
      'an update needs at least one hunk',
    ],
    [
      'an update with a move and no hunks',
      patch('*** Update File: a', '*** Move to: b'),
      2,
      'an update needs at least one hunk',
    ],
    [
      'an "@@" with no lines',
      patch('*** Update File: a.txt', '@@ x', '-a', '@@', '*** Delete File: b'),
      5,
      'after "@@"',
    ],
    ['a hunk line with an unknown prefix', patch('*** Update File: a.txt', '@@', ' a', 'b'), 5, 'got "b"'],
    [
      '"@@" glued to its text',
      patch('*** Update File: a.txt', '@@foo', '-a'),
      3,
      'expected "@@" alone or "@@ "',
    ],
    [
      '"*** End of File" without a hunk',
      patch('*** Update File: a.txt', '*** End of File'),
      3,
      'must follow the lines of a hunk',
    ],
    [
      'hunk lines after "*** End of File" without "@@"',
      patch('*** Update File: a', '-a', '*** End of File', '-b'),
      5,
      'a new hunk starts with "@@"',
    ],
    [
      '"*** Move to:" without an update',
      patch('*** Delete File: a', '*** Move to: b'),
      3,
      'got "*** Move to: b"',
    ],
    [
      'a heredoc that is not closed',
      "<<'EOF'\n" + patch('*** Delete File: a'),
      4,
      'to close the heredoc opened on line 1',
    ],
  ])('rejects %s', (_name, text, line, fragment) => {
    const error = parseError(text);
    expect(error.line).toBe(line);
    expect(error.message).toMatch(new RegExp(`^line ${line}: `));
    expect(error.message).toContain(fragment);
  });

  it('counts lines from the start of the text, heredoc and blank lines included', () => {
    const error = parseError(`\n<<'EOF'\n\n${patch('*** Update File: a', '@@', 'oops')}\nEOF`);
    expect(error.line).toBe(7);
  });
});

describe('patchPaths', () => {
  it('lists every path once, move targets included, in order', () => {
    const parsed = parsePatch(
      patch(
        '*** Update File: src/app.ts',
        '*** Move to: src/main.ts',
        '@@',
        '-a',
        '*** Add File: docs/new.md',
        '+x',
        '*** Delete File: old.txt',
        '*** Update File: docs/new.md',
        '@@',
        '-x',
        '+y',
      ),
    );
    expect(patchPaths(parsed)).toEqual(['src/app.ts', 'src/main.ts', 'docs/new.md', 'old.txt']);
  });
});
