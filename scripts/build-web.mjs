// Builds the web page into dist/web/: hashed, minified assets (esbuild), index.html pointing at them, their gzip and brotli forms, and manifest.json for the relay.
//
// dist/web/
//   index.html               src/web/index.html with each {{NAME}} replaced by /assets/<hashed name>
//   assets/app-HASH.js(.map) the bundle of src/web/app.ts (platform browser, es2022, esm)
//   assets/app-HASH.css      src/web/app.css
//   assets/*.gz, *.br        precompressed forms, only where smaller
//   manifest.json            NAME -> { path, size, sha256, gzip?, br? }: the only files the relay serves
//
// The relay (src/server/web-assets.ts) loads the manifest once at start and serves nothing else.
// Code enters through app.ts and styles through app.css (which may @import others, node_modules
// included): a stylesheet imported from TypeScript fails the build, as index.html would not link
// it. The manifest is written last, by rename, so a relay starting during a build sees the old
// page or the new one. Type checking is `tsc -p tsconfig.web.json`, run before this script.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, extname, join, relative } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { browserDefaults, noNodeBuiltins } from './esbuild-plugins.mjs';

const SRC = 'src/web';
const OUT = 'dist/web';
const ASSETS = join(OUT, 'assets');
/** Files worth compressing; fonts and images are compressed already. */
const COMPRESSIBLE = /\.(js|css|map|html|json|svg|txt)$/;

mkdirSync(ASSETS, { recursive: true });

const result = await build({
  // Two entries, both named "app": their outputs differ by extension and hash.
  entryPoints: [join(SRC, 'app.ts'), join(SRC, 'app.css')],
  outdir: OUT,
  entryNames: 'assets/[name]-[hash]',
  chunkNames: 'assets/[name]-[hash]',
  assetNames: 'assets/[name]-[hash]',
  bundle: true,
  // The @noble fallback (browsers without WebCrypto Ed25519) is a chunk loaded only where needed.
  splitting: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  // Linked: the .map sits next to its hashed file, so it is hashed too; the browser only fetches
  // it when developer tools are open.
  sourcemap: 'linked',
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  plugins: [browserDefaults, noNodeBuiltins],
});

/** Logical name ("app.js", "app.css", "app.js.map") of each output, from the metafile. */
const outputs = new Map();
const metaOutputs = result.metafile.outputs;
for (const [path, meta] of Object.entries(metaOutputs)) {
  if (meta.cssBundle !== undefined)
    throw new Error(
      `build-web: ${meta.entryPoint} imports CSS; styles enter through src/web/app.css (@import there), so index.html links them`,
    );
  if (meta.entryPoint === undefined) continue;
  const name = basename(meta.entryPoint).replace(/\.[^.]+$/, '') + extname(path);
  outputs.set(name, path);
  if (metaOutputs[`${path}.map`]) outputs.set(`${name}.map`, `${path}.map`);
}
// Anything else (a chunk, an asset, legal comments): served under its own hashed name.
const named = new Set(outputs.values());
for (const path of Object.keys(metaOutputs))
  if (!named.has(path)) outputs.set(relative(ASSETS, path), path);
for (const required of ['app.js', 'app.css'])
  if (!outputs.has(required)) throw new Error(`build-web: esbuild produced no ${required}`);

const files = {};
function record(name, path) {
  const body = readFileSync(path);
  const entry = {
    path: relative(OUT, path),
    size: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
  };
  if (COMPRESSIBLE.test(path)) {
    const gz = gzipSync(body, { level: 9 });
    if (gz.length < body.length) {
      writeFileSync(path + '.gz', gz);
      entry.gzip = { path: entry.path + '.gz', size: gz.length };
    }
    const br = brotliCompressSync(body, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
        [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
      },
    });
    if (br.length < body.length) {
      writeFileSync(path + '.br', br);
      entry.br = { path: entry.path + '.br', size: br.length };
    }
  }
  files[name] = entry;
}
for (const [name, path] of outputs) record(name, path);

// index.html: every {{NAME}} must name an output; anything left over fails the build.
// Comments are the template's own notes: they are not shipped.
const template = readFileSync(join(SRC, 'index.html'), 'utf8').replace(/<!--[\s\S]*?-->\s*/g, '');
const html = template.replace(/\{\{\s*([\w.-]+)\s*\}\}/g, (_, name) => {
  const entry = files[name];
  if (!entry)
    throw new Error(`build-web: index.html names {{${name}}}, which the build did not produce`);
  return '/' + entry.path;
});
writeFileSync(join(OUT, 'index.html.tmp'), html);
renameSync(join(OUT, 'index.html.tmp'), join(OUT, 'index.html'));
record('index.html', join(OUT, 'index.html'));

const manifest = { version: 1, files };
writeFileSync(join(OUT, 'manifest.json.tmp'), JSON.stringify(manifest, null, 2) + '\n');
renameSync(join(OUT, 'manifest.json.tmp'), join(OUT, 'manifest.json'));

// Earlier builds' assets: gone once the new manifest is in place.
const kept = new Set();
for (const entry of Object.values(files))
  for (const p of [entry.path, entry.gzip?.path, entry.br?.path]) if (p) kept.add(p);
for (const name of readdirSync(ASSETS)) {
  const path = join('assets', name);
  if (!kept.has(path)) rmSync(join(OUT, path), { force: true });
}

const weight = (name) =>
  `${files[name].size} B (gzip ${files[name].gzip?.size ?? '-'} B, br ${files[name].br?.size ?? '-'} B)`;
console.log(
  `web page: ${files['app.js'].path} ${weight('app.js')}, ${files['app.css'].path} ${weight('app.css')}`,
);
