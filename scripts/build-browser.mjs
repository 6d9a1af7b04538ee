// Bundles the browser build (src/crypto/browser.ts: noble provider, handshake, records, prekeys, vectors, terminal codecs) into dist/browser/ as one ES module.
//
// Two plugins (esbuild-plugins.mjs, shared with build-web.mjs): `default-provider.ts`
// (node:crypto) is swapped for `default-provider.browser.ts` (@noble), and any Node built-in that
// is still reached fails the build, naming the importer.
import { build } from 'esbuild';
import { browserDefaults, noNodeBuiltins } from './esbuild-plugins.mjs';

await build({
  entryPoints: ['src/crypto/browser.ts'],
  outfile: 'dist/browser/switchboard-crypto.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
  plugins: [browserDefaults, noNodeBuiltins],
});
