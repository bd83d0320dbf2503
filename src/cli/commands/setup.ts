/** `ratchet setup`: registers Ratchet's search attributes on the cluster's namespace (safe to repeat). */
import type { Command } from 'commander';
import pc from 'picocolors';
import { searchAttributeDefinitions } from '../../shared/api/search-attributes.js';
import { registerSearchAttributes } from '../../temporal/search-attribute-setup.js';
import type { Io } from '../io.js';
import { json, print, withClient } from '../io.js';

export function registerSetup(program: Command, io: Io): void {
  program
    .command('setup')
    .description(
      "register Ratchet's search attributes on the configured cluster's namespace (safe to repeat)",
    )
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) =>
      withClient(async (ratchet, services) => {
        const result = await registerSearchAttributes(services.client.connection, ratchet.namespace);
        if (opts.json) return json(io, result);
        for (const [name, type] of Object.entries(searchAttributeDefinitions)) {
          const state = result.added.includes(name) ? 'registered' : 'already registered';
          print(io, `${name.padEnd(24)} ${type.padEnd(8)} ${state}`);
        }
        print(io, pc.dim(`namespace ${result.namespace} at ${services.target.address}`));
      }),
    );
}
