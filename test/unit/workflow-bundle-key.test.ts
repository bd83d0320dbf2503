import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { workflowSourcesHash } from '../../src/worker.js';

let root: string;
let src: string;
let lock: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'ratchet-bundle-key-'));
  src = path.join(root, 'src');
  lock = path.join(root, 'package-lock.json');
  await mkdir(path.join(src, 'workflows'), { recursive: true });
  await mkdir(path.join(src, 'shared', 'api'), { recursive: true });
  await writeFile(path.join(src, 'workflows', 'index.ts'), 'export {};\n');
  await writeFile(path.join(src, 'shared', 'api', 'config.ts'), 'export const a = 1;\n');
  await writeFile(lock, '{"lockfileVersion":3}\n');
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('the cached workflow bundle’s key', () => {
  it('is the same for the same sources', async () => {
    expect(await workflowSourcesHash(src, lock)).toBe(await workflowSourcesHash(src, lock));
  });

  it('changes when a file in a subfolder of src/shared changes (a stale bundle would run old code)', async () => {
    const before = await workflowSourcesHash(src, lock);
    await writeFile(path.join(src, 'shared', 'api', 'config.ts'), 'export const a = 2;\n');
    expect(await workflowSourcesHash(src, lock)).not.toBe(before);
  });

  it('changes when a file moves to another folder with the same content', async () => {
    const before = await workflowSourcesHash(src, lock);
    await rm(path.join(src, 'shared', 'api', 'config.ts'));
    await mkdir(path.join(src, 'shared', 'util'));
    await writeFile(path.join(src, 'shared', 'util', 'config.ts'), 'export const a = 1;\n');
    expect(await workflowSourcesHash(src, lock)).not.toBe(before);
  });

  it('changes with the workflow code and the locked dependencies, not with other files', async () => {
    const before = await workflowSourcesHash(src, lock);
    await writeFile(path.join(src, 'shared', 'api', 'notes.md'), 'not code\n');
    expect(await workflowSourcesHash(src, lock)).toBe(before);
    await writeFile(path.join(src, 'workflows', 'index.ts'), 'export const b = 1;\n');
    const workflowChanged = await workflowSourcesHash(src, lock);
    expect(workflowChanged).not.toBe(before);
    await writeFile(lock, '{"lockfileVersion":3,"x":1}\n');
    expect(await workflowSourcesHash(src, lock)).not.toBe(workflowChanged);
  });
});
