/**
 * What a V8 heap snapshot holds, summed: `npx tsx bench/heap-summary.ts <file.heapsnapshot> [top]`.
 * Prints the self sizes by node type, and by type and name (constructor, or the string's kind),
 * largest first. Used on the snapshots `npm run bench -- --only concurrency --heap-snapshots <dir>`
 * writes.
 */
import { readFile } from 'node:fs/promises';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] }; node_count: number };
  nodes: number[];
  strings: string[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: npx tsx bench/heap-summary.ts <file.heapsnapshot> [top]\n');
  process.exit(2);
}
const top = Number(topArg ?? 40);
const data = JSON.parse(await readFile(file, 'utf8')) as Snapshot;
const fields = data.snapshot.meta.node_fields;
const types = data.snapshot.meta.node_types[0];
const stride = fields.length;
const at = { type: fields.indexOf('type'), name: fields.indexOf('name'), size: fields.indexOf('self_size') };

const byType = new Map<string, { count: number; bytes: number }>();
const byName = new Map<string, { count: number; bytes: number }>();
let total = 0;
const add = (map: typeof byType, key: string, bytes: number) => {
  const entry = map.get(key) ?? { count: 0, bytes: 0 };
  entry.count += 1;
  entry.bytes += bytes;
  map.set(key, entry);
};
for (let i = 0; i < data.nodes.length; i += stride) {
  const type = types[data.nodes[i + at.type]!] ?? '?';
  const bytes = data.nodes[i + at.size]!;
  total += bytes;
  add(byType, type, bytes);
  // Strings and code are named by their content; group those by type alone.
  const name = ['string', 'concatenated string', 'sliced string', 'number', 'code'].includes(type)
    ? `(${type})`
    : `${type}: ${(data.strings[data.nodes[i + at.name]!] ?? '?').slice(0, 80)}`;
  add(byName, name, bytes);
}
const mib = (b: number) => (b / 2 ** 20).toFixed(2).padStart(9);
const print = (title: string, map: typeof byType) => {
  process.stdout.write(`\n${title}\n`);
  for (const [key, { count, bytes }] of [...map].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) {
    process.stdout.write(`${mib(bytes)} MiB ${String(count).padStart(9)}  ${key}\n`);
  }
};
process.stdout.write(`${file}: ${data.snapshot.node_count} nodes, ${mib(total).trim()} MiB in all\n`);
print('by type', byType);
print('by type and name', byName);
