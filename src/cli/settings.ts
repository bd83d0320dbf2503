/**
 * Ratchet's own settings: defaults in a project file (`ratchet.toml`), each one also an environment
 * variable and a flag. Precedence: flag > environment > file > built-in default. Temporal's
 * connection is not here: it comes from `@temporalio/envconfig` (src/temporal/connection.ts), so
 * that the `temporal` CLI and Ratchet share one configuration.
 *
 * The file is parsed with smol-toml, which reports the line and column of a syntax error; a value
 * the schema rejects is reported with the line of its key.
 */
import { TomlError, parse } from 'smol-toml';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { RatchetError } from '../client.js';
import { approvalPolicies } from '../shared/policy/policy.js';
import { sandboxModes } from '../shared/policy/sandbox.js';
import { notificationEvents } from '../shared/api/notifications.js';
import { notifyFormats } from '../activities/notify.js';
import { MAX_BUDGET_TOKENS } from '../shared/api/session-config.js';

export const DEFAULT_MODEL = 'gpt-5.1-codex';
export const CONFIG_FILE = 'ratchet.toml';

const positiveInt = z.number().int('expected a whole number').positive('expected a positive number');

/**
 * A notification URL: a table `{ url, format, events }`, or (from RATCHET_NOTIFY) a URL with its
 * format in front, `slack+https://…` or `ntfy+https://ntfy.sh/topic` (plain: generic JSON).
 */
const notifyTargetSchema = z.preprocess(
  (value) => {
    if (typeof value !== 'string') return value;
    const match = /^(json|slack|ntfy)\+(.*)$/.exec(value);
    return match ? { url: match[2], format: match[1] } : { url: value };
  },
  z
    .object({
      url: z
        .url('expected a URL such as https://hooks.slack.com/services/…')
        .refine((url) => /^https?:/.test(url), 'expected an http or https URL'),
      format: z.enum(notifyFormats).default('json'),
      events: z.array(z.enum(notificationEvents)).min(1).optional(),
    })
    .strict(),
);

/** Every setting: its schema, environment variable, flag and how a string (env, flag) becomes a value. */
export const settingFields = {
  model: { schema: z.string().min(1), env: 'RATCHET_MODEL', flag: '--model', from: 'string' },
  base_url: {
    schema: z.url('expected a URL such as http://localhost:11434/v1'),
    env: 'OPENAI_BASE_URL',
    flag: '--base-url',
    from: 'string',
  },
  api: { schema: z.enum(['responses', 'chat']), env: 'RATCHET_API', flag: '--api', from: 'string' },
  /** false: never stream model requests (for servers that cannot). */
  stream: { schema: z.boolean(), env: 'RATCHET_STREAM', flag: '--stream', from: 'boolean' },
  /** Cap on each model reply's tokens; 0 for none. */
  max_output_tokens: {
    schema: z.number().int('expected a whole number').min(0, 'expected 0 (no cap) or more'),
    env: 'RATCHET_MAX_OUTPUT_TOKENS',
    flag: '--max-output-tokens',
    from: 'number',
  },
  approval: {
    schema: z.enum(approvalPolicies),
    env: 'RATCHET_APPROVAL',
    flag: '--approval',
    from: 'string',
  },
  sandbox: {
    schema: z.enum(sandboxModes),
    env: 'RATCHET_SANDBOX_MODE',
    flag: '--sandbox',
    from: 'string',
  },
  /** Seconds. */
  command_timeout: {
    schema: positiveInt,
    env: 'RATCHET_COMMAND_TIMEOUT',
    flag: '--command-timeout',
    from: 'number',
  },
  /** Fraction of the context window at which the transcript is compacted. */
  compact_at: {
    schema: z.number().min(0.05, 'expected at least 0.05').max(1, 'expected at most 1'),
    env: 'RATCHET_COMPACT_AT',
    flag: '--compact-at',
    from: 'number',
  },
  context_window: {
    schema: positiveInt,
    env: 'RATCHET_CONTEXT_WINDOW',
    flag: '--context-window',
    from: 'number',
  },
  max_turns: { schema: positiveInt, env: 'RATCHET_MAX_TURNS', flag: '--max-turns', from: 'number' },
  /** Checkpoints of the workspace kept per session: the latest N turns (0: all). */
  checkpoint_keep: {
    schema: z.number().int('expected a whole number').min(0, 'expected 0 or more'),
    env: 'RATCHET_CHECKPOINT_KEEP',
    flag: '--checkpoint-keep',
    from: 'number',
  },
  /** Delete a session's checkpoints when it completes (it can no longer be rewound). */
  checkpoint_prune_at_end: {
    schema: z.boolean(),
    env: 'RATCHET_CHECKPOINT_PRUNE_AT_END',
    flag: '--checkpoint-prune-at-end',
    from: 'boolean',
  },
  /** Keep the conversation on the provider (previous_response_id); not zero data retention. */
  provider_state: {
    schema: z.boolean(),
    env: 'RATCHET_PROVIDER_STATE',
    flag: '--provider-state',
    from: 'boolean',
  },
  /** Create model responses in the provider's background mode, to re-attach after a lost worker. */
  background: {
    schema: z.boolean(),
    env: 'RATCHET_BACKGROUND',
    flag: '--background',
    from: 'boolean',
  },
  workspace_roots: {
    schema: z.array(z.string().min(1)),
    env: 'RATCHET_WORKSPACE_ROOTS',
    flag: '--workspace-roots',
    from: 'list',
  },
  worker_id: {
    schema: z.string().min(1).max(200),
    env: 'RATCHET_WORKER_ID',
    flag: '--worker-id',
    from: 'string',
  },
  /** Seconds. */
  shutdown_grace: {
    schema: positiveInt,
    env: 'RATCHET_SHUTDOWN_GRACE',
    flag: '--shutdown-grace',
    from: 'number',
  },
  /** Where this worker sends session notifications; sessions started with it ask for them. */
  notify: { schema: z.array(notifyTargetSchema), env: 'RATCHET_NOTIFY', flag: '--notify', from: 'urls' },
  /** The inbox's address, for links in notifications. */
  inbox_url: {
    schema: z.url('expected a URL such as http://ratchet.example:8234'),
    env: 'RATCHET_INBOX_URL',
    flag: '--inbox-url',
    from: 'string',
  },
  /** Child sessions a session may have open at once (0: no fan-out, the default). */
  max_agents: {
    schema: z.number().int('expected a whole number').min(0).max(16, 'expected at most 16'),
    env: 'RATCHET_MAX_AGENTS',
    flag: '--agents',
    from: 'number',
  },
  /** How deep a tree of sessions may grow (default 1: children start none of their own). */
  agent_depth: {
    schema: z.number().int('expected a whole number').min(1).max(4, 'expected at most 4'),
    env: 'RATCHET_AGENT_DEPTH',
    flag: '--agent-depth',
    from: 'number',
  },
  /** Keep children's worktrees and branches when their session ends. */
  keep_worktrees: {
    schema: z.boolean(),
    env: 'RATCHET_KEEP_WORKTREES',
    flag: '--keep-worktrees',
    from: 'boolean',
  },
  /** Tokens the session and every session it starts may spend before they park for a decision. */
  budget_tokens: {
    schema: z
      .number()
      .int('expected a whole number of tokens')
      .positive('expected a number of tokens above 0')
      .max(MAX_BUDGET_TOKENS, `expected at most ${MAX_BUDGET_TOKENS} tokens`),
    env: 'RATCHET_BUDGET_TOKENS',
    flag: '--budget-tokens',
    from: 'number',
  },
  metrics_port: {
    schema: z.number().int('expected a whole number').min(0).max(65535, 'expected a port (0–65535)'),
    env: 'RATCHET_METRICS_PORT',
    flag: '--metrics-port',
    from: 'number',
  },
} as const;

export type SettingKey = keyof typeof settingFields;
export type Settings = { [K in SettingKey]?: z.infer<(typeof settingFields)[K]['schema']> };

const fileSchema = z
  .object(
    Object.fromEntries(
      Object.entries(settingFields).map(([key, field]) => [key, field.schema.optional()]),
    ) as {
      [K in SettingKey]: z.ZodOptional<(typeof settingFields)[K]['schema']>;
    },
  )
  .strict();

const keys = Object.keys(settingFields) as SettingKey[];

/** Flag name (camelCase, as commander stores it) of each setting. */
function optionName(key: SettingKey): string {
  return key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

function fromString(key: SettingKey, text: string): unknown {
  const kind = settingFields[key].from;
  if (kind === 'number') return text.trim() === '' ? Number.NaN : Number(text);
  if (kind === 'boolean') {
    const word = text.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(word)) return true;
    if (['0', 'false', 'no', 'off'].includes(word)) return false;
    return text;
  }
  if (kind === 'urls') return text.split(/[\s,]+/).filter(Boolean);
  if (kind === 'list') {
    return text
      .split(path.delimiter)
      .map((part) => part.trim())
      .filter(Boolean);
  }
  return text;
}

function check(key: SettingKey, value: unknown, where: string): unknown {
  const parsed = settingFields[key].schema.safeParse(value);
  if (!parsed.success) {
    throw new RatchetError(`${where}: ${parsed.error.issues.map((issue) => issue.message).join('; ')}`);
  }
  return parsed.data;
}

/** Line (1-based) of `key = …` in a TOML text, or undefined. */
function lineOf(text: string, key: string): number | undefined {
  const pattern = new RegExp(`^\\s*["']?${key}["']?\\s*=`);
  const index = text.split('\n').findIndex((line) => pattern.test(line));
  return index >= 0 ? index + 1 : undefined;
}

/** Reads and checks a config file; errors name the file and the line at fault. */
export function readConfigFile(file: string): Settings {
  const relative = path.relative(process.cwd(), file);
  const shown = relative && !relative.startsWith('..') ? relative : file;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new RatchetError(`${shown}: cannot read the config file`);
  }
  let data: unknown;
  try {
    data = parse(text);
  } catch (err) {
    if (err instanceof TomlError) {
      const message = err.message.split('\n')[0]!.replace(/^Invalid TOML document:\s*/, '');
      throw new RatchetError(`${shown}:${err.line}:${err.column}: ${message} (TOML syntax)`);
    }
    throw err;
  }
  const parsed = fileSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const unknownKey = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
    const key = unknownKey ?? String(issue.path[0] ?? '');
    const line = lineOf(text, key);
    const what = unknownKey
      ? `unknown setting "${unknownKey}" (known: ${keys.join(', ')})`
      : `${key}: ${issue.message}`;
    throw new RatchetError(`${shown}${line ? `:${line}` : ''}: ${what}`);
  }
  return parsed.data;
}

/** The config file to use: --config, RATCHET_CONFIG, or ratchet.toml in the working directory if present. */
export function configFilePath(flag: string | undefined, env: NodeJS.ProcessEnv, cwd: string): string | null {
  const named = flag ?? env.RATCHET_CONFIG;
  if (named) {
    const file = path.resolve(cwd, named);
    if (!existsSync(file)) throw new RatchetError(`${named}: no such config file`);
    return file;
  }
  const local = path.join(cwd, CONFIG_FILE);
  return existsSync(local) ? local : null;
}

/**
 * Settings from every layer: flags (commander's options, as strings or already parsed) over
 * environment over the config file. Keys without a value anywhere are left out (the caller's
 * defaults apply).
 */
export function resolveSettings(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): Settings {
  const file = configFilePath(flags.config as string | undefined, env, cwd);
  const fromFile = file ? readConfigFile(file) : {};
  const settings: Record<string, unknown> = {};
  for (const key of keys) {
    const field = settingFields[key];
    const flag = flags[optionName(key)];
    const envValue = env[field.env];
    if (flag !== undefined) {
      settings[key] = check(key, typeof flag === 'string' ? fromString(key, flag) : flag, field.flag);
    } else if (envValue !== undefined && envValue !== '') {
      settings[key] = check(key, fromString(key, envValue), `${field.env}=${envValue}`);
    } else if (fromFile[key] !== undefined) {
      settings[key] = fromFile[key];
    }
  }
  return settings;
}

/** Help text for a setting's flag: where else it can be set. */
export function settingHelp(key: SettingKey, text: string): string {
  return `${text} (env ${settingFields[key].env}, ${CONFIG_FILE}: ${key})`;
}
