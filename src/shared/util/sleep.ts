/**
 * Waiting outside workflows (a workflow sleeps with Temporal's own timers): true after `ms`,
 * false as soon as `signal` aborts. The abort listener goes when the sleep ends, so a loop that
 * polls with one signal does not pile listeners up on it.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const finish = (slept: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(slept);
    };
    const onAbort = () => finish(false);
    const timer = setTimeout(() => finish(true), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
