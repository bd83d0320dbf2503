/** Files in a test's temporary directories: write one, read one, or take a whole tree to compare. */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A patch in the apply_patch format around the given lines. */
export function patch(...body: string[]): string {
  return ['*** Begin Patch', ...body, '*** End Patch'].join('\n');
}

export async function putFile(root: string, relative: string, content: string): Promise<void> {
  const absolute = path.join(root, relative);
  await mkdir(path.dirname(absolute), { recursive: true });
  await writeFile(absolute, content);
}

export async function readText(root: string, relative: string): Promise<string> {
  return readFile(path.join(root, relative), 'utf8');
}

/** Every file under `root` (links shown as such) with its content: compares whole trees. */
export async function fileTree(root: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    const absolute = path.join(entry.parentPath, entry.name);
    const relative = path.relative(root, absolute);
    if (entry.isSymbolicLink()) files[relative] = '<link>';
    else if (entry.isFile()) files[relative] = await readFile(absolute, 'utf8');
  }
  return files;
}
