import { DefaultLogger, Runtime } from '@temporalio/worker';

// Worker logs at WARN keep test output readable; failures still show.
try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // Already installed in this process.
}
