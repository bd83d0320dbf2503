/**
 * The tests' own git calls (making repositories, checking what a session did) work in
 * repositories that belong to the test user while the tests run as root (test-user.ts): git
 * would otherwise refuse them as "dubious ownership". Ratchet's own git never sees this: it runs
 * with an environment of its own (workspace-git.ts).
 */
process.env.GIT_CONFIG_COUNT = '1';
process.env.GIT_CONFIG_KEY_0 = 'safe.directory';
process.env.GIT_CONFIG_VALUE_0 = '*';
