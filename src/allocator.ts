/**
 * Which memory allocator a worker runs on. With glibc's malloc, a worker that has parked a
 * thousand sessions keeps most of what the burst of parking allocated (the SDK's native core and
 * V8's off-heap buffers free it, but fragmented arenas are not returned); jemalloc returns freed
 * pages within seconds (docs/PERFORMANCE.md, "Parked sessions: the allocator"). Node cannot
 * switch allocators once running: jemalloc is preloaded (`LD_PRELOAD`), as the Docker image does.
 */
import { existsSync, readFileSync } from 'node:fs';

/** Where Debian and Ubuntu (libjemalloc2), Fedora and Alpine install jemalloc. */
const JEMALLOC_PATHS = [
  '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
  '/usr/lib64/libjemalloc.so.2',
  '/usr/lib/libjemalloc.so.2',
  '/usr/local/lib/libjemalloc.so.2',
];

/** The jemalloc library on this machine, or null when none is installed where it usually is. */
export function jemallocLibrary(exists: (file: string) => boolean = existsSync): string | null {
  return JEMALLOC_PATHS.find((file) => exists(file)) ?? null;
}

/** The allocator this process runs on: jemalloc when it is mapped, else the C library's malloc. */
export function runningAllocator(maps?: string): 'jemalloc' | 'malloc' {
  let text = maps;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/maps', 'utf8');
    } catch {
      return 'malloc'; // not Linux: nothing to say
    }
  }
  return /libjemalloc\.so/.test(text) ? 'jemalloc' : 'malloc';
}

/**
 * A line for the worker's start-up log: which allocator it runs on, and, when it is not jemalloc,
 * how to run it with jemalloc (or that none is installed). Null off Linux.
 */
export function allocatorNotice(
  allocator = runningAllocator(),
  library = jemallocLibrary(),
  platform: NodeJS.Platform = process.platform,
): string | null {
  if (platform !== 'linux') return null;
  if (allocator === 'jemalloc') return 'memory allocator: jemalloc';
  const how = library
    ? `start it with LD_PRELOAD=${library}`
    : 'install jemalloc (Debian and Ubuntu: apt-get install libjemalloc2) and start it with LD_PRELOAD';
  return (
    "memory allocator: the C library's malloc, which keeps what a burst of sessions allocated; " +
    `for a worker that holds many sessions awaiting approval, ${how} (docs/PERFORMANCE.md)`
  );
}
