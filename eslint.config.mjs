import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The SDK runs in browsers: no Node built-in, no Node global (its ESM build is loaded as is by the demo page).
    files: ['packages/sdk/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^node:|^(fs|net|tls|http|https|events|stream|buffer|crypto|os|path|url|util|zlib|child_process)$',
              message: 'the SDK has no Node-only import (it runs in browsers)',
            },
          ],
        },
      ],
      'no-restricted-globals': ['error', 'Buffer', 'process', 'require', '__dirname', '__filename', 'global', 'setImmediate'],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    // The demo page's script runs in the browser.
    files: ['packages/demo/web/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    // CommonJS entry points that run before (or without) a build, and the packed-app test's CommonJS app files: require() is their import.
    files: ['packages/cli/bin/*.js', 'examples/**/*.cjs', 'packages/cli/test/packed-app/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
