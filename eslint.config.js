import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

/** What code that runs inside a workflow (and src/shared, which it imports) may not import. */
const workflowSafe = [
  { group: ['node:*'], message: 'Workflow code must not use Node built-ins.' },
  {
    group: ['fs', 'fs/*', 'path', 'os', 'child_process', 'crypto', 'http', 'https', 'net', 'process'],
    message: 'Workflow code must not use Node built-ins.',
  },
  { group: ['openai', 'openai/*', 'execa'], message: 'Side effects belong in activities.' },
  {
    group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity'],
    message: 'Not for workflow code.',
  },
  {
    group: ['**/activities/**', '**/activities', '../activities/*'],
    allowTypeImports: true,
    message: 'Import activities as types only.',
  },
  {
    group: ['**/temporal/**', '**/cli/**', '../client*', '../worker*', '../../client*', '../../worker*'],
    message: 'Not for workflow code.',
  },
];

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', 'dist/', 'test/fixtures/', 'bench/results/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', 'bin/*.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli.ts', 'src/cli/**'],
    rules: { 'no-console': 'error' },
  },
  {
    // Workflow code is replayed: no I/O, no clocks, no randomness from Node. Activities are
    // imported as types only.
    files: ['src/workflows/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: workflowSafe }] },
  },
  {
    // src/shared is what the workflow, the activities, the client and the CLI all import: it is
    // workflow-safe, and depends on nothing that imports it.
    files: ['src/shared/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...workflowSafe,
            {
              group: ['**/workflows/**', '**/workflows'],
              message: 'src/shared must not depend on the workflow.',
            },
          ],
        },
      ],
    },
  },
  {
    // The leaves: small helpers that know nothing of sessions, tools or the policy.
    files: ['src/shared/util/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...workflowSafe,
            {
              group: ['**/workflows/**', '**/workflows'],
              message: 'src/shared must not depend on the workflow.',
            },
            {
              group: ['../api/*', '../boundary/*', '../policy/*', '../prompt/*', '../tools/*'],
              message: 'src/shared/util is a leaf: it imports nothing else from src/shared.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
