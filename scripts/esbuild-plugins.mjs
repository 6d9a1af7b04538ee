// esbuild plugins shared by the browser builds (build-browser.mjs, build-web.mjs): the @noble provider swap and the refusal of Node built-ins.
import { builtinModules } from 'node:module';
import { dirname, resolve } from 'node:path';

const NODE_BUILTINS = new Set(builtinModules);

/**
 * Resolves `default-provider.js` (node:crypto) to its sibling `default-provider.browser.ts`
 * (@noble), so handshake.ts and secure-channel.ts run unchanged in the browser.
 * tsconfig.web.json's `moduleSuffixes` makes the type checker see the same swap.
 * @type {import('esbuild').Plugin}
 */
export const browserDefaults = {
  name: 'browser-defaults',
  setup(b) {
    // Resolved as written (`./default-provider.js` from crypto/, `../crypto/default-provider.js`
    // from elsewhere), .js → .browser.ts.
    b.onResolve({ filter: /\/default-provider\.js$/ }, (args) => ({
      path: resolve(dirname(args.importer), args.path.replace(/\.js$/, '.browser.ts')),
    }));
  },
};

/**
 * Fails the build on any Node built-in still reached, naming the importer, so Node-only code
 * cannot slip into what the browser runs (platform 'browser' refuses them too, with a vaguer
 * message).
 * @type {import('esbuild').Plugin}
 */
export const noNodeBuiltins = {
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
