// Bundles the browser build of src/crypto/ (noble provider, prekeys, vectors) into dist/browser/ as one ES module.
// platform 'browser' makes any node:* import a build error, so Node-only code cannot slip in.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/crypto/browser.ts'],
  outfile: 'dist/browser/switchboard-crypto.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
});
