/**
 * Starts the inbox on a port: on loopback by default, answering only to loopback host names; on
 * any other address only with a token (given, or generated here and printed once by the caller).
 */
import type { ServerType } from '@hono/node-server';
import { serve } from '@hono/node-server';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { InboxOptions } from './app.js';
import { createInboxApp } from './app.js';

export const DEFAULT_INBOX_PORT = 8234;
const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]', '::1'];

export interface InboxServer {
  /** The inbox's address, with the token in it when there is one (a link to open once). */
  url: string;
  /** The address without the token. */
  origin: string;
  token: string | undefined;
  close(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  return LOOPBACK_NAMES.includes(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export async function startInbox(
  options: Omit<InboxOptions, 'allowedHosts' | 'token'> & { host?: string; port?: number; token?: string },
): Promise<InboxServer> {
  const host = options.host ?? '127.0.0.1';
  const loopback = isLoopback(host);
  const token = options.token ?? (loopback ? undefined : randomBytes(24).toString('base64url'));
  const app = createInboxApp({
    ...options,
    ...(token === undefined ? {} : { token }),
    ...(loopback ? { allowedHosts: [...new Set([...LOOPBACK_NAMES, host])] } : {}),
  });
  const server: ServerType = await new Promise((resolve, reject) => {
    const started = serve(
      { fetch: app.fetch, hostname: host, port: options.port ?? DEFAULT_INBOX_PORT },
      () => resolve(started),
    );
    started.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  const origin = `http://${shownHost}:${port}`;
  return {
    url: token === undefined ? `${origin}/` : `${origin}/?token=${token}`,
    origin,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        if ('closeAllConnections' in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
