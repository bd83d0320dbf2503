/**
 * `ratchet demo`: a whole session on a small sample repository, with a scripted model on
 * loopback instead of a paid one, so that a new user sees the loop, the approvals and the
 * Temporal UI before configuring a model.
 */
import { execa } from 'execa';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { RecordedRequest, ScriptStep } from '../testing/scripted-model.js';

export const DEMO_TASK = 'Make average() return 0 for an empty list, and make the tests pass.';

const FILES: Record<string, string> = {
  'package.json': '{\n  "name": "stats",\n  "type": "module",\n  "scripts": { "test": "node test.js" }\n}\n',
  'src/stats.js': [
    'export function sum(xs) {',
    '  return xs.reduce((a, b) => a + b);',
    '}',
    '',
    'export function average(xs) {',
    '  return sum(xs) / xs.length;',
    '}',
    '',
  ].join('\n'),
  'test.js': [
    "import assert from 'node:assert/strict';",
    "import { average } from './src/stats.js';",
    '',
    'assert.equal(average([1, 2, 3]), 2);',
    'assert.equal(average([]), 0);',
    "console.log('all tests pass');",
    '',
  ].join('\n'),
  'AGENTS.md': '# Notes for agents\n\nRun the tests with `node test.js`. Keep functions small.\n',
};

const PATCH = [
  '*** Begin Patch',
  '*** Update File: src/stats.js',
  '@@',
  ' export function sum(xs) {',
  '-  return xs.reduce((a, b) => a + b);',
  '+  return xs.reduce((a, b) => a + b, 0);',
  ' }',
  '@@ export function average(xs) {',
  '-  return sum(xs) / xs.length;',
  '+  return xs.length === 0 ? 0 : sum(xs) / xs.length;',
  ' }',
  '*** End Patch',
].join('\n');

export async function createDemoRepo(parent = os.tmpdir()): Promise<string> {
  const dir = await mkdtemp(path.join(parent, 'ratchet-demo-'));
  for (const [file, contents] of Object.entries(FILES)) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), contents);
  }
  const git = (...args: string[]) => execa('git', args, { cwd: dir });
  await git('init', '-q', '-b', 'main');
  await git('add', '-A');
  await git(
    '-c',
    'user.name=Ratchet demo',
    '-c',
    'user.email=demo@ratchet.invalid',
    'commit',
    '-q',
    '-m',
    'sample',
  );
  return dir;
}

const call = (name: string, args: Record<string, unknown>, text?: string): ScriptStep => ({
  kind: 'reply',
  output: [
    ...(text ? [{ type: 'message' as const, text }] : []),
    { type: 'function_call', name, arguments: args },
  ],
  chunkDelayMs: 15,
});

const SCRIPT: ScriptStep[] = [
  call('update_plan', {
    plan: [
      { step: 'Read the code and reproduce the failure', status: 'in_progress' },
      { step: 'Fix average() for empty lists', status: 'pending' },
      { step: 'Run the tests', status: 'pending' },
    ],
  }),
  call('list_dir', { dir_path: '.' }),
  call('read_file', { file_path: 'src/stats.js' }),
  call('shell', { command: ['node', 'test.js'] }, 'Let me run the tests to see the failure.'),
  call('apply_patch', { input: PATCH }, 'average([]) divides by zero and sum([]) throws; fixing both.'),
  call('shell', { command: ['node', 'test.js'] }),
  {
    kind: 'reply',
    output: [
      {
        type: 'message',
        text:
          'Done. sum() now starts from 0, so it no longer throws on an empty list, and average() returns 0 ' +
          'for an empty list. `node test.js` passes.',
      },
    ],
    chunkDelayMs: 15,
  },
];

/**
 * Chooses the next reply from the request itself (how many tool results it carries), so that the
 * demo survives retries and restarts like a real model would. A denied or interrupted call ends it.
 */
export function demoResponder(request: RecordedRequest): ScriptStep {
  const input = ((request.body as { input?: unknown[] } | undefined)?.input ?? []) as Array<{
    type?: string;
    output?: string;
  }>;
  const outputs = input.filter((item) => item.type === 'function_call_output');
  const last = outputs.at(-1)?.output ?? '';
  if (/denied|interrupted|aborted/.test(last)) {
    return {
      kind: 'reply',
      output: [{ type: 'message', text: 'Understood, I stopped there. Nothing else was changed.' }],
    };
  }
  return SCRIPT[Math.min(outputs.length, SCRIPT.length - 1)]!;
}
