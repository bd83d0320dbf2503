/**
 * The environment a model-requested command runs with. It is built from an allowlist, because
 * whatever a command can read it can print, and what it prints goes to the model provider: an API
 * key or cloud credential in the worker's environment must never reach it.
 */

/**
 * Variable names that look like they hold a secret. Also matches a few harmless names (KEYMAP,
 * GIT_AUTHOR_NAME); for redaction, erring that way is right.
 */
export const SECRET_NAME_PATTERN =
  /KEY|SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|AUTH|PRIVATE|COOKIE|^(?:OPENAI|TEMPORAL|AWS|AZURE|GOOGLE|GH|GITHUB)_/i;

/** Variables a command may inherit: where things are, who runs them, locale and terminal. */
const ALLOWED_NAMES = new Set([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'TERM',
  'TZ',
  'TMPDIR',
  'TMP',
  'TEMP',
  'HOSTNAME',
  'XDG_CONFIG_HOME',
  'XDG_CACHE_HOME',
  'XDG_DATA_HOME',
  'XDG_STATE_HOME',
  'XDG_RUNTIME_DIR',
  // Where toolchains live, so that `go`, `cargo`, `java` or a virtualenv work as in the user's shell.
  'JAVA_HOME',
  'GOROOT',
  'GOPATH',
  'CARGO_HOME',
  'RUSTUP_HOME',
  'NVM_DIR',
  'PNPM_HOME',
  'VIRTUAL_ENV',
  // Certificate bundles for machines behind an intercepting proxy.
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'NODE_EXTRA_CA_CERTS',
]);

const ALLOWED_PREFIXES = ['LC_'];

/**
 * Proxies, in both spellings tools read, so that package managers work behind one. A proxy URL
 * can carry a user name and password (http://user:pass@host), so one with credentials is dropped.
 */
const PROXY_NAMES = new Set(
  ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'NO_PROXY'].flatMap((name) => [name, name.toLowerCase()]),
);

/**
 * Set for every command, overriding the parent: a command has no terminal and empty standard
 * input, so anything that would wait for a person must fail or carry on instead.
 *
 * CI is deliberately not set: besides quieting prompts it changes what tools do (pnpm refuses
 * to change the lockfile, some builds turn warnings into errors), which the model would not expect.
 */
const NON_INTERACTIVE: Readonly<Record<string, string>> = {
  // Pagers (man, git log, less) would wait for a key press: print straight through instead.
  PAGER: 'cat',
  GIT_PAGER: 'cat',
  // git would ask for a user name and password on the terminal: fail at once instead.
  GIT_TERMINAL_PROMPT: '0',
  // git commit, merge and rebase -i would open an editor: `true` leaves the prepared text as it
  // is, so a commit without -m aborts with "empty commit message" instead of hanging.
  GIT_EDITOR: 'true',
  // Colour escape codes cost tokens and mean nothing to the model.
  NO_COLOR: '1',
  // apt-get and other debconf users ask no questions.
  DEBIAN_FRONTEND: 'noninteractive',
  // pip fails instead of prompting (for a password, or to confirm an uninstall).
  PIP_NO_INPUT: '1',
};

function isAllowed(name: string, value: string): boolean {
  if (SECRET_NAME_PATTERN.test(name)) return false;
  if (PROXY_NAMES.has(name)) return !value.includes('@');
  return ALLOWED_NAMES.has(name) || ALLOWED_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/** The environment for a command the model asked to run, derived from the worker's own. */
export function commandEnvironment(parent: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(parent)) {
    if (value !== undefined && isAllowed(name, value)) env[name] = value;
  }
  return { ...env, ...NON_INTERACTIVE };
}
