// One lint configuration for the whole repository.
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/**
 * The floors of the code, bottom up. A file may import from its own floor and the floors below, never
 * above (not even `import type`): contract → lib → client → workflows | activities → api | workers.
 * Workflows and activities stand side by side: workflows take activities as types only (rule below),
 * activities never import workflows. Each table's SQL (lib/records/) stands on the lib floor, so activities,
 * the API and the workers share it and workflows cannot reach it.
 */
const APP_FOLDERS = ['./lib', './client', './activities', './workflows', './api', './workers'];
const TOOL_FOLDERS = ['./scripts', './temporal', './bench', './chaos', './cli', './test'];
const floors = [
  {
    target: './contract',
    from: [...APP_FOLDERS, ...TOOL_FOLDERS],
    message: 'The contract imports nothing of the project.',
  },
  { target: './lib', from: ['./client', './activities', './workflows', './api', './workers', ...TOOL_FOLDERS] },
  { target: './client', from: ['./activities', './workflows', './api', './workers', ...TOOL_FOLDERS] },
  { target: './activities', from: ['./workflows', './api', './workers', ...TOOL_FOLDERS] },
  {
    target: './workflows',
    from: ['./lib', './client', './api', './workers', ...TOOL_FOLDERS],
    message: 'Workflows import only the contract, @temporalio/workflow and activity types.',
  },
  { target: './api', from: ['./workers', ...TOOL_FOLDERS] },
  { target: './workers', from: ['./api', ...TOOL_FOLDERS] },
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'test-output/**', '.data/**', 'bench/tmp/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver()],
    },
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      'import-x/no-cycle': 'error',
      'import-x/no-restricted-paths': [
        'error',
        { zones: floors.map((zone) => ({ message: 'It would import from a floor above its own.', ...zone })) },
      ],
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'smart'],
      'no-console': ['error', { allow: ['error'] }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node modules, no I/O, no clients.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'path', 'crypto', 'child_process', 'http', 'https', 'net'],
              message: 'Workflows must be deterministic: do I/O in activities.',
            },
            {
              group: [
                '@temporalio/client',
                '@temporalio/worker',
                '@temporalio/activity',
                'pg',
                'pino',
                'openai',
                '@anthropic-ai/sdk',
                'zod',
              ],
              message:
                'Workflows may import only @temporalio/workflow, @temporalio/common, the contract and activity types.',
            },
            {
              group: ['../activities', '../activities/**'],
              allowTypeImports: true,
              message: 'Import activities as types only; call them through proxyActivities.',
            },
          ],
        },
      ],
    },
  },
  {
    // Command-line entry points and the test runner talk to a terminal.
    files: ['scripts/**/*.ts', 'temporal/start.ts', 'test/run.ts', 'bench/**/*.ts', 'cli/**/*.ts', 'chaos/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
