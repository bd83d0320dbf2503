/**
 * zod, loaded once by a worker and shared by every session in its cache (WORKFLOW_BUNDLE_OPTIONS
 * in src/worker.ts). Without it each cached session held its own copy of the library (about 180
 * schema classes and their closures). The SDK freezes a shared module once it is loaded, so zod's
 * one-time set-up, which the first schema made writes into zod's global configuration (the
 * default locale and memoizer), happens here, before the freeze. Schemas stay each session's own:
 * zod binds a schema's methods to it on first use, which a frozen schema refuses.
 */
import { z } from 'zod';

z.object({ shared: z.string() }).safeParse({ shared: '' });
