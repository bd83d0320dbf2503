/**
 * Starts a session and follows it: `ratchet run` and `ratchet demo` end here. This module owns
 * what the command says and which exit code it leaves when it stops following a session.
 */
import pc from 'picocolors';
import type { SessionConfigInput } from '../shared/api/session-config.js';
import { followSession } from './follow.js';
import type { Io } from './io.js';
import { json, print, waitForSignal } from './io.js';
import { colorsFor } from './render.js';
import type { RunServices, Services } from './services.js';

/**
 * Exit codes of `ratchet run` and `ratchet demo` when they stop following a session at rest:
 * 0 completed, 1 failed or cancelled, 2 idle (waiting for a message), 3 waiting for an approval
 * nobody can give here (no terminal, or --json).
 */
export const EXIT_IDLE = 2;
export const EXIT_AWAITING_APPROVAL = 3;

/**
 * Starts a session and, unless detached, follows it until it ends, the user leaves, or — without
 * a person at a terminal — it comes to rest.
 */
export async function startAndFollow(
  io: Io,
  services: RunServices | Services,
  config: SessionConfigInput,
  opts: { detach: boolean; json: boolean },
): Promise<void> {
  try {
    const { sessionId } = await services.ratchet.start(config);
    const uiUrl = services.ratchet.uiUrl(sessionId) ?? null;
    if (opts.detach) {
      if (opts.json) json(io, { sessionId, uiUrl });
      else {
        print(io, sessionId);
        if (uiUrl) print(io, pc.dim(uiUrl));
      }
      return;
    }
    if (!opts.json) {
      const c = colorsFor(io.out);
      print(io, `${c.bold('session')} ${sessionId}${uiUrl ? c.dim(`  ${uiUrl}`) : ''}`);
    }
    const stop = waitForSignal();
    try {
      const interactive = Boolean(process.stdin.isTTY) && !opts.json;
      const result = await followSession(services.ratchet, sessionId, {
        json: opts.json,
        format: 'exec',
        // Without a person at a terminal nobody here can move a resting session: stop following.
        exitAtRest: !interactive,
        interactive,
        out: io.out,
        signal: stop.signal,
      });
      const inProcess = 'worker' in services && services.worker !== undefined;
      const needsWorker = inProcess ? ' (a worker must be running: ratchet server, or ratchet worker)' : '';
      if (result.status === 'idle') {
        process.exitCode = EXIT_IDLE;
        io.err.write(
          `Session ${sessionId} is idle${result.view?.notice ? `: ${result.view.notice}` : ''}. ` +
            `Continue it with: ratchet send ${sessionId} "<message>"${needsWorker}\n`,
        );
      } else if (result.status === 'awaiting_approval') {
        process.exitCode = EXIT_AWAITING_APPROVAL;
        const calls = result.view?.pendingApprovals ?? [];
        const first = calls[0]?.callId ?? '<call id>';
        io.err.write(
          `Session ${sessionId} waits for approval of ${calls.map((c) => `${c.callId} (${c.summary})`).join(', ') || 'a call'}. ` +
            `Decide with: ratchet approve ${sessionId} ${first} (or ratchet deny …), then ratchet watch ${sessionId}${needsWorker}\n`,
        );
      } else if (result.status === 'awaiting_budget') {
        process.exitCode = EXIT_AWAITING_APPROVAL;
        io.err.write(
          `Session ${sessionId} spent its token budget and waits for your decision: ratchet budget ${sessionId} --add N (or --stop), then ratchet watch ${sessionId}${needsWorker}\n`,
        );
      } else if (result.status === 'detached') {
        io.err.write(
          `\nLeft session ${sessionId}; it is saved. Follow it again with: ratchet watch ${sessionId}` +
            (inProcess ? ' (it continues once a worker runs: ratchet server, or ratchet worker)' : '') +
            '\n',
        );
      } else if (result.status === 'failed' || result.status === 'cancelled') {
        process.exitCode = 1;
      }
    } finally {
      stop.dispose();
    }
  } finally {
    await services.close();
  }
}
