/**
 * Which allocator a worker runs on, and what its start-up log says about it. The last test
 * preloads the machine's jemalloc into a real Node process, as the Docker image does, and reads
 * its memory map (`.ci/run` installs libjemalloc2).
 */
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { allocatorNotice, jemallocLibrary, runningAllocator } from '../../src/allocator.js';

const mapsOf = (preload?: string) =>
  execa(
    process.execPath,
    ['-e', "process.stdout.write(require('fs').readFileSync('/proc/self/maps', 'utf8'))"],
    {
      env: { LD_PRELOAD: preload ?? '' },
    },
  ).then((result) => result.stdout);

describe('allocator', () => {
  it('finds jemalloc where distributions install it, and nowhere else', () => {
    expect(jemallocLibrary((file) => file === '/usr/lib64/libjemalloc.so.2')).toBe(
      '/usr/lib64/libjemalloc.so.2',
    );
    expect(jemallocLibrary(() => false)).toBeNull();
  });

  it('tells jemalloc from malloc by what the process has mapped', () => {
    const jemalloc =
      '7f1c2a000000-7f1c2a02a000 r--p 00000000 fe:01 1234 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
    const libc = '7f1c2b000000-7f1c2b028000 r--p 00000000 fe:01 5678 /usr/lib/x86_64-linux-gnu/libc.so.6';
    expect(runningAllocator(`${libc}\n${jemalloc}\n`)).toBe('jemalloc');
    expect(runningAllocator(`${libc}\n`)).toBe('malloc');
  });

  it("says in the worker's log which allocator it runs on, and how to run it on jemalloc", () => {
    expect(allocatorNotice('jemalloc', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', 'linux')).toBe(
      'memory allocator: jemalloc',
    );
    expect(allocatorNotice('malloc', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', 'linux')).toMatch(
      /many sessions awaiting approval, start it with LD_PRELOAD=\/usr\/lib\/x86_64-linux-gnu\/libjemalloc\.so\.2 /,
    );
    expect(allocatorNotice('malloc', null, 'linux')).toMatch(
      /apt-get install libjemalloc2\) and start it with LD_PRELOAD/,
    );
    expect(allocatorNotice('malloc', null, 'darwin')).toBeNull();
  });

  it('sees a real Node process preloaded with this machine’s jemalloc, and one without it', async () => {
    const library = jemallocLibrary();
    expect(library, 'libjemalloc2 is not installed (.ci/run installs it)').not.toBeNull();
    expect(runningAllocator(await mapsOf(library!))).toBe('jemalloc');
    expect(runningAllocator(await mapsOf())).toBe('malloc');
  });
});
