/**
 * `npm run provision`: find or install the Temporal CLI (tests and `ratchet server` do this on
 * their own; this makes it explicit, e.g. in CI or before going offline).
 */
import { ensureTemporalCli, TEMPORAL_CLI_VERSION } from '../src/temporal/provision.js';

const cli = await ensureTemporalCli((message) => console.log(message));
console.log(`temporal CLI (${TEMPORAL_CLI_VERSION} wanted): ${cli.path} [${cli.source}]`);
