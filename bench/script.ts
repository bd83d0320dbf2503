/**
 * What the scripted model answers in the benchmark: a session whose task reads
 * `bench: read <file> for <N> turns` gets N-1 replies that each call read_file on the file, then a
 * final message; `bench: cat <file> for <N> turns` calls the shell (`cat <file>`) instead. Turns are counted per session (`prompt_cache_key`), not from the input, so the
 * count survives compaction and requests that carry only new items.
 */
import type { RecordedRequest, ScriptStep } from '../src/testing/scripted-model.js';

/** The tool each turn of a history session calls on its file. */
export type BenchTool = 'read_file' | 'shell';

export function benchTask(file: string, turns: number, tool: BenchTool = 'read_file'): string {
  return `bench: ${tool === 'shell' ? 'cat' : 'read'} ${file} for ${turns} turns`;
}

const TASK = /bench: (read|cat) (\S+) for (\d+) turns/;

/** A session that asks to run a command (which the policy sends to a person), then finishes. */
export const PARK_TASK = 'bench: park until approved';

export function benchResponder(): (request: RecordedRequest) => ScriptStep | undefined {
  const sessions = new Map<string, { file: string; turns: number; seen: number; shell?: boolean }>();
  return (request) => {
    const body = request.body as { prompt_cache_key?: string; input?: unknown };
    const key = body.prompt_cache_key ?? '';
    let session = sessions.get(key);
    if (!session && JSON.stringify(body.input ?? '').includes(PARK_TASK)) {
      session = { file: '', turns: 0, seen: 0 };
      sessions.set(key, session);
    }
    if (session?.turns === 0) {
      session.seen += 1;
      return session.seen === 1
        ? {
            kind: 'reply',
            output: [
              { type: 'function_call', name: 'shell', arguments: { command: ['touch', 'parked.txt'] } },
            ],
          }
        : { kind: 'reply', output: [{ type: 'message', text: 'Touched.' }] };
    }
    if (!session) {
      const match = TASK.exec(JSON.stringify(body.input ?? ''));
      if (!match) return undefined;
      session = { file: match[2]!, turns: Number(match[3]), seen: 0, shell: match[1] === 'cat' };
      sessions.set(key, session);
    }
    session.seen += 1;
    if (session.seen < session.turns) {
      const call = session.shell
        ? { name: 'shell', arguments: { command: ['cat', session.file] } }
        : { name: 'read_file', arguments: { file_path: session.file } };
      return { kind: 'reply', output: [{ type: 'function_call', ...call }] };
    }
    return {
      kind: 'reply',
      output: [{ type: 'message', text: `Read ${session.file} ${session.seen - 1} times.` }],
    };
  };
}
