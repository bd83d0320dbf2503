import type { LogEntry } from '@temporalio/worker';
import { DefaultLogger, Runtime } from '@temporalio/worker';

/**
 * Every log line of this test process at INFO and above (workflow, activity and SDK logs). Kept
 * on globalThis: the runtime is installed once per process, this module may be loaded again.
 */
const holder = globalThis as { ratchetCapturedLogs?: LogEntry[] };
export const capturedLogs: LogEntry[] = (holder.ratchetCapturedLogs ??= []);

const shown = new Set(['WARN', 'ERROR']);

// Worker logs at WARN keep test output readable; INFO and above are kept for tests that read them.
try {
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry) => {
      capturedLogs.push(entry);
      if (capturedLogs.length > 20_000) capturedLogs.splice(0, 10_000);
      // A worker's own tool queue has activities only; the SDK says so at WARN.
      if (shown.has(entry.level) && !entry.message.startsWith('No workflows registered')) {
        console.error(`[${entry.level}] ${entry.message}`, entry.meta ?? '');
      }
    }),
  });
} catch {
  // Already installed in this process.
}
