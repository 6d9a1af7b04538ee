// Lint configuration: typescript-eslint's recommended rules over src/, test/ and bench/, and the web page (src/web/) as browser code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', '.scratch/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
    },
  },
  {
    files: ['src/cli/**/*.ts', 'bench/**/*.ts', 'scripts/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // The web page runs in a browser: no Node built-ins or Node globals. Its browser globals
    // (document, location, WebSocket, indexedDB...) need no list here: typescript-eslint turns
    // no-undef off for .ts files, and `tsc -p tsconfig.web.json` checks them against the DOM lib.
    files: ['src/web/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['node:*'], message: 'src/web/ runs in the browser' }] },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'Buffer', message: 'src/web/ runs in the browser: use Uint8Array' },
        { name: 'process', message: 'src/web/ runs in the browser' },
        { name: 'require', message: 'src/web/ is an ES module' },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
