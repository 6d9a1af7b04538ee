// Bundles the browser build (src/crypto/browser.ts: noble provider, handshake, records, prekeys, vectors, terminal codecs) into dist/browser/ as one ES module.
//
// Two plugins: `default-provider.ts` (node:crypto) is swapped for `default-provider.browser.ts`
// (@noble), and any Node built-in that is still reached fails the build, naming the importer, so
// Node-only code cannot slip into what the browser runs (platform 'browser' refuses them too,
// with a vaguer message).
import { build } from 'esbuild';
import { builtinModules } from 'node:module';
import { dirname, resolve } from 'node:path';

const NODE_BUILTINS = new Set(builtinModules);

/** @type {import('esbuild').Plugin} */
const browserDefaults = {
  name: 'browser-defaults',
  setup(b) {
    b.onResolve({ filter: /\/default-provider\.js$/ }, (args) => ({
      path: resolve(dirname(args.importer), 'default-provider.browser.ts'),
    }));
  },
};

/** @type {import('esbuild').Plugin} */
const noNodeBuiltins = {
  name: 'no-node-builtins',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      const name = args.path.startsWith('node:') ? args.path.slice(5) : args.path;
      if (!args.path.startsWith('node:') && !NODE_BUILTINS.has(name.split('/')[0])) return;
      return {
        errors: [
          {
            text: `"${args.path}" is a Node built-in; the browser build cannot use it (imported by ${args.importer})`,
          },
        ],
      };
    });
  },
};

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
