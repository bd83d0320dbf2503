/**
 * Where the Temporal service is: `@temporalio/envconfig` (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_API_KEY, TLS settings, profiles in the temporal CLI's TOML file), so that one
 * configuration serves the `temporal` CLI and Ratchet. Nothing configured means the local
 * default, which `ratchet run` may start itself.
 */
import { Client, Connection } from '@temporalio/client';
import type { ConnectionOptions } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { NativeConnection } from '@temporalio/worker';

/** Ports of the embedded dev server (RATCHET_EMBEDDED_PORT / RATCHET_EMBEDDED_UI_PORT to move it). */
export function embeddedPorts(env: NodeJS.ProcessEnv = process.env): { port: number; uiPort: number } {
  return {
    port: Number(env.RATCHET_EMBEDDED_PORT) || 7233,
    uiPort: Number(env.RATCHET_EMBEDDED_UI_PORT) || 8233,
  };
}

export interface TemporalTarget {
  connectionOptions: ConnectionOptions;
  address: string;
  namespace: string;
  /** False when nothing was configured and the local default applies. */
  configured: boolean;
}

export function temporalTarget(env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  const loaded = loadClientConnectConfig({
    profile: env.TEMPORAL_PROFILE || undefined,
    overrideEnvVars: Object.fromEntries(
      Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
    ),
  });
  const configured = Boolean(loaded.connectionOptions.address);
  const address = loaded.connectionOptions.address ?? `127.0.0.1:${embeddedPorts(env).port}`;
  return {
    connectionOptions: { ...loaded.connectionOptions, address },
    address,
    namespace: loaded.namespace ?? 'default',
    configured,
  };
}

export async function connectClient(target: TemporalTarget, connectTimeoutMs = 5000): Promise<Client> {
  const connection = await Connection.connect({
    ...target.connectionOptions,
    connectTimeout: connectTimeoutMs,
  });
  return new Client({ connection, namespace: target.namespace });
}

export async function connectWorkerConnection(target: TemporalTarget): Promise<NativeConnection> {
  const { address, tls, apiKey, metadata } = target.connectionOptions;
  return NativeConnection.connect({
    address,
    tls,
    apiKey: typeof apiKey === 'function' ? apiKey() : apiKey,
    metadata,
  });
}
