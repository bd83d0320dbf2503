/**
 * `ratchet inbox`: the approvals inbox on its own, next to any worker or anywhere that reaches
 * the cluster; `ratchet server` starts one too. Prints the address once (with the token, when the
 * inbox is reachable off this machine) and serves until interrupted.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { RatchetClient } from '../client.js';
import { DEFAULT_INBOX_PORT, isLoopback, startInbox } from '../inbox/serve.js';
import type { InboxServer } from '../inbox/serve.js';
import { preparedWorkspace, workspaceDiff } from './diff.js';

export interface InboxFlags {
  host: string;
  port: number;
  token?: string;
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError('expected a port number (0-65535)');
  return n;
}

/** The options `inbox` and `server` share. */
export function inboxOptions(command: Command, prefix = ''): Command {
  return command
    .option(
      `--${prefix}host <host>`,
      'address the inbox listens on (anything but loopback needs a token)',
      '127.0.0.1',
    )
    .option(`--${prefix}port <port>`, 'port of the inbox', parsePort, DEFAULT_INBOX_PORT)
    .option(
      `--${prefix}token <token>`,
      'token every request must carry (default RATCHET_INBOX_TOKEN; generated when listening off loopback)',
    );
}

/** Starts the inbox for `ratchet` and says where it is. */
export async function serveInbox(
  ratchet: RatchetClient,
  flags: InboxFlags,
  say: (line: string) => void,
): Promise<InboxServer> {
  const token = flags.token ?? (process.env.RATCHET_INBOX_TOKEN || undefined);
  const inbox = await startInbox({
    ratchet,
    host: flags.host,
    port: flags.port,
    ...(token === undefined ? {} : { token }),
    // The diff is shown where the workspace is on this machine.
    diff: async (sessionId) => workspaceDiff(await preparedWorkspace(ratchet, sessionId), { color: false }),
  });
  say(`Inbox            ${inbox.url}`);
  if (inbox.token !== undefined && flags.token === undefined && !process.env.RATCHET_INBOX_TOKEN) {
    say(
      `                 (token generated for this run: the link above carries it; set RATCHET_INBOX_TOKEN to keep one)`,
    );
  }
  if (!isLoopback(flags.host)) say('                 reachable off this machine: keep the link private');
  return inbox;
}
