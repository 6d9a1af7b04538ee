// The web page as the relay serves it: headers, hashed assets, caching, compression and traversal over HTTPS, and the page under its CSP in a real Chromium.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, relayPage } from './chromium.js';
import { WS_PATH } from '../src/protocol/limits.js';
import type { ManifestEntry } from '../src/server/web-assets.js';
import { Harness } from './terminal-harness.js';

/** Spelled out here, not imported: a change to the relay's policy must fail this test. */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** The build's output (scripts/build-web.mjs), relative to dist/test/. */
const WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url));
const BROWSER_TEST = { timeout: 60_000 }; // ms

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One request with `path` sent as written (no URL normalisation on our side), over TLS without
 * verifying the loopback relay's self-signed certificate, or over the plaintext listener.
 */
function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  { method = 'GET', plain = false }: { method?: string; plain?: boolean } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, path, method, headers, agent: false };
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    };
    const req = plain
      ? httpRequest(options, onResponse)
      : httpsRequest({ ...options, rejectUnauthorized: false }, onResponse);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The values of every src= and href= in the page. */
function references(html: string): string[] {
  return [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1] ?? '');
}

function assertPageHeaders(headers: IncomingHttpHeaders, what: string): void {
  assert.equal(headers['content-security-policy'], CSP, what);
  assert.equal(headers['x-content-type-options'], 'nosniff', what);
  assert.equal(headers['referrer-policy'], 'no-referrer', what);
  assert.equal(headers['cross-origin-opener-policy'], 'same-origin', what);
}

describe('the web page served by the relay', () => {
  let h: Harness;
  let files: Record<string, ManifestEntry>;
  /** The manifest's assets by their URL path. */
  let assets: Map<string, ManifestEntry>;

  before(async () => {
    h = await new Harness({ plainPort: 0 }).start();
    files = (
      JSON.parse(readFileSync(join(WEB_DIR, 'manifest.json'), 'utf8')) as {
        files: Record<string, ManifestEntry>;
      }
    ).files;
    assets = new Map(
      Object.values(files)
        .filter((e) => e.path.startsWith('assets/'))
        .map((e) => [`/${e.path}`, e]),
    );
  });

  after(() => h?.close());

  it('GET / is the built index.html with the CSP, nosniff, no-referrer, COOP and no-cache', async () => {
    const res = await get(h.port, '/');
    assert.equal(res.status, 200);
    assertPageHeaders(res.headers, '/');
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(sha256(res.body), files['index.html']?.sha256);
    const html = res.body.toString('utf8');
    assert.match(html, /<title>Switchboard<\/title>/);
    assert.match(html, /<html lang="en">/);
    assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1" \/>/);
    assert.match(html, /<noscript>/);
    assert.doesNotMatch(html, /\{\{/, 'every placeholder is filled');
    // The CSP forbids inline code: every script has a src, and there is no style element or attribute.
    assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/);
    assert.doesNotMatch(html, /<style|\sstyle=/);
  });

  it('the index names only hashed /assets/ files of the manifest (and an inline data: icon)', async () => {
    const html = (await get(h.port, '/')).body.toString('utf8');
    const refs = references(html);
    assert.deepEqual(
      refs.filter((r) => !r.startsWith('/assets/')),
      ['data:,'],
    );
    const named = refs.filter((r) => r.startsWith('/assets/')).sort();
    assert.deepEqual(named, [`/${files['app.css']?.path}`, `/${files['app.js']?.path}`].sort());
    for (const ref of named) {
      assert.match(ref, /^\/assets\/app-[A-Z0-9]{8}\.(js|css)$/, ref);
      assert.ok(assets.has(ref), ref);
    }
  });

  it('every asset is served with immutable caching, its content type, and its sha256 as ETag', async () => {
    const types: Record<string, string> = {
      js: 'text/javascript; charset=utf-8',
      css: 'text/css; charset=utf-8',
      map: 'application/json',
      // The licences of bundled code (@noble's MIT notice), linked from the bundle.
      txt: 'text/plain; charset=utf-8',
    };
    assert.ok(assets.size >= 2);
    for (const [path, entry] of assets) {
      const res = await get(h.port, path);
      assert.equal(res.status, 200, path);
      assertPageHeaders(res.headers, path);
      assert.equal(res.headers['cache-control'], IMMUTABLE, path);
      assert.equal(res.headers['content-type'], types[path.split('.').pop() ?? ''], path);
      assert.equal(res.headers['content-encoding'], undefined, path);
      assert.equal(res.headers.etag, `"${entry.sha256}"`, path);
      assert.equal(sha256(res.body), entry.sha256, path);
      assert.equal(res.body.length, entry.size, path);
    }
  });

  it('If-None-Match with the ETag gets 304; another ETag gets 200', async () => {
    for (const path of ['/', `/${files['app.js']?.path}`]) {
      const first = await get(h.port, path);
      const etag = first.headers.etag ?? '';
      const again = await get(h.port, path, { 'if-none-match': etag });
      assert.equal(again.status, 304, path);
      assert.equal(again.headers.etag, etag, path);
      assertPageHeaders(again.headers, path);
      const weak = await get(h.port, path, { 'if-none-match': `"other", W/${etag}` });
      assert.equal(weak.status, 304, `${path} (weak comparison, in a list)`);
      const other = await get(h.port, path, { 'if-none-match': `"${'0'.repeat(64)}"` });
      assert.equal(other.status, 200, path);
    }
  });

  it('sends gzip or brotli as the client accepts, and identity when it refuses both', async () => {
    for (const path of ['/', `/${files['app.js']?.path}`, `/${files['app.css']?.path}`]) {
      const plain = await get(h.port, path);
      const gz = await get(h.port, path, { 'accept-encoding': 'gzip' });
      assert.equal(gz.headers['content-encoding'], 'gzip', path);
      assert.equal(gz.headers.vary, 'Accept-Encoding', path);
      assert.ok(gz.body.length < plain.body.length, path);
      assert.deepEqual(gunzipSync(gz.body), plain.body, path);
      assert.equal(gz.headers.etag, `${plain.headers.etag?.slice(0, -1)}-gzip"`, path);
      const br = await get(h.port, path, { 'accept-encoding': 'gzip, deflate, br' });
      assert.equal(br.headers['content-encoding'], 'br', path);
      assert.deepEqual(brotliDecompressSync(br.body), plain.body, path);
      const preferGzip = await get(h.port, path, { 'accept-encoding': 'br;q=0.5, gzip' });
      assert.equal(preferGzip.headers['content-encoding'], 'gzip', path);
      const refused = await get(h.port, path, { 'accept-encoding': '*, gzip;q=0, br;q=0' });
      assert.equal(refused.headers['content-encoding'], undefined, path);
      assert.deepEqual(refused.body, plain.body, path);
    }
  });

  it('HEAD answers the headers of GET', async () => {
    const path = `/${files['app.js']?.path}`;
    const res = await get(h.port, path, {}, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(files['app.js']?.size));
    assert.equal(res.headers['cache-control'], IMMUTABLE);
    assert.equal(res.headers.etag, `"${files['app.js']?.sha256}"`);
  });

  it('traversal, encoded dots, precompressed files and unknown names get the 404 of unknown paths', async () => {
    const js = files['app.js']?.path ?? '';
    for (const path of [
      '/assets/../package.json',
      '/assets/%2e%2e/package.json',
      '/assets/..%2fpackage.json',
      '/assets/%2e%2e%2f%2e%2e%2fpackage.json',
      // From dist/web/assets/, three levels up is the repository's package.json.
      '/assets/..%2f..%2f..%2fpackage.json',
      '/assets/%2e%2e/%2e%2e/%2e%2e/package.json',
      '/assets/..%5c..%5cpackage.json',
      '/assets/app.js',
      '/assets/',
      `/${js}.gz`,
      `/${js}/`,
      '/assets/manifest.json',
      '/manifest.json',
      '/index.html',
      '/web/index.html',
    ]) {
      const res = await get(h.port, path);
      assert.equal(res.status, 404, path);
      assert.equal((JSON.parse(res.body.toString('utf8')) as { code: string }).code, 'NOT_FOUND');
      assert.doesNotMatch(res.body.toString('utf8'), /devDependencies/, path);
    }
  });

  it('the plaintext listener serves the same page and assets', async () => {
    const port = h.relay.plainPort ?? 0;
    const tls = await get(h.port, '/');
    const plain = await get(port, '/', {}, { plain: true });
    assert.equal(plain.status, 200);
    assertPageHeaders(plain.headers, 'plain /');
    assert.deepEqual(plain.body, tls.body);
    const css = await get(port, `/${files['app.css']?.path}`, {}, { plain: true });
    assert.equal(css.status, 200);
    assert.equal(css.headers['cache-control'], IMMUTABLE);
    assert.equal(sha256(css.body), files['app.css']?.sha256);
  });
});

describe('a relay whose web page is missing or damaged', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-web-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function withRelay(webDir: string, fn: (port: number) => Promise<void>): Promise<void> {
    const h = await new Harness({ webDir }).start();
    try {
      await fn(h.port);
    } finally {
      await h.close();
    }
  }

  it('not built: the relay starts, / answers 503 saying how to build it, assets 404', async () => {
    await withRelay(join(dir, 'no-such-dir'), async (port) => {
      assert.equal((await get(port, '/healthz')).status, 200);
      const res = await get(port, '/');
      assert.equal(res.status, 503);
      assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
      assert.match(res.body.toString('utf8'), /the web page is not built: run npm run build/);
      assertPageHeaders(res.headers, '503');
      assert.equal((await get(port, `/assets/app-AAAAAAAA.js`)).status, 404);
    });
  });

  it('an asset that does not match its manifest sha256: 503, nothing of it served', async () => {
    const copy = join(dir, 'damaged');
    cpSync(WEB_DIR, copy, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(copy, 'manifest.json'), 'utf8')) as {
      files: Record<string, ManifestEntry>;
    };
    const js = manifest.files['app.js']?.path ?? '';
    const original = readFileSync(join(copy, js));
    // Same size, one byte changed: only the hash tells.
    writeFileSync(join(copy, js), Buffer.concat([original.subarray(0, -1), Buffer.from('!')]));
    await withRelay(copy, async (port) => {
      assert.equal((await get(port, '/')).status, 503);
      assert.equal((await get(port, `/${js}`)).status, 404);
    });
  });

  type Manifest = { version: number; files: Record<string, ManifestEntry> };

  /** A copy of the built page under `name`, its manifest changed by `edit` (which may add files). */
  function tampered(name: string, edit: (m: Manifest, copy: string) => void): string {
    const copy = join(dir, name);
    cpSync(WEB_DIR, copy, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(copy, 'manifest.json'), 'utf8')) as Manifest;
    edit(manifest, copy);
    writeFileSync(join(copy, 'manifest.json'), JSON.stringify(manifest));
    return copy;
  }

  /** What a relay refusing its page answers: 503 at /, its assets 404, the API up. */
  async function assertRefused(copy: string, what: string, leaked?: Buffer): Promise<void> {
    await withRelay(copy, async (port) => {
      assert.equal((await get(port, '/healthz')).status, 200, what);
      const res = await get(port, '/');
      assert.equal(res.status, 503, what);
      assert.match(res.body.toString('utf8'), /the web page is not built/, what);
      const js = `/${(JSON.parse(readFileSync(join(WEB_DIR, 'manifest.json'), 'utf8')) as Manifest).files['app.js']?.path}`;
      assert.equal((await get(port, js)).status, 404, what);
      if (leaked)
        for (const path of ['/secret.txt', '/assets/secret.txt', '/assets/..%2fsecret.txt']) {
          const r = await get(port, path);
          assert.equal(r.body.includes(leaked), false, `${what}: ${path}`);
        }
    });
  }

  it('a manifest naming a path outside index.html and assets/NAME: 503, nothing served', async () => {
    // A file beside the copies, so `../secret.txt` from a copy exists and matches its entry: only
    // the manifest path check stands between it and the relay.
    const secret = Buffer.from('not part of the page: SECRET-MARKER\n');
    writeFileSync(join(dir, 'secret.txt'), secret);
    const entry = (path: string, body: Buffer): ManifestEntry => ({
      path,
      size: body.length,
      sha256: sha256(body),
    });
    const index = readFileSync(join(WEB_DIR, 'index.html'));
    const cases: Array<[string, (m: Manifest, copy: string) => void]> = [
      ['dotdot', (m) => (m.files['leak'] = entry('../secret.txt', secret))],
      ['assets-dotdot', (m) => (m.files['leak'] = entry('assets/../index.html', index))],
      [
        'gzip-dotdot',
        (m) => {
          const js = m.files['app.js'];
          if (js) js.gzip = { path: '../secret.txt', size: secret.length };
        },
      ],
      [
        'absolute',
        (m, copy) => {
          // Also put the file where join(copy, path) would look, so it is not merely missing.
          const abs = join(dir, 'secret.txt');
          mkdirSync(join(copy, dir), { recursive: true });
          writeFileSync(join(copy, abs), secret);
          m.files['leak'] = entry(abs, secret);
        },
      ],
    ];
    for (const [name, edit] of cases) await assertRefused(tampered(name, edit), name, secret);
  });

  it('a file whose size is not the manifest size: 503 (a build under way)', async () => {
    // A truncated compressed form: these have no sha256, only their size tells.
    const truncatedGzip = tampered('short-gzip', (m, copy) => {
      const gz = m.files['app.js']?.gzip?.path ?? '';
      const body = readFileSync(join(copy, gz));
      writeFileSync(join(copy, gz), body.subarray(0, body.length - 10));
    });
    await assertRefused(truncatedGzip, 'truncated gzip form');
    // The file intact (its sha256 matches), the manifest's size wrong.
    const wrongSize = tampered('wrong-size', (m) => {
      const js = m.files['app.js'];
      if (js) js.size += 1;
    });
    await assertRefused(wrongSize, 'manifest size off by one');
  });
});

describe('the web page in Chromium', () => {
  let h: Harness;
  let browser: Browser;
  let page: Page;
  let origin: string;
  const requests: string[] = [];
  const consoleErrors: string[] = [];

  before(async () => {
    h = await new Harness({ plainPort: 0 }).start();
    origin = `https://${h.server}`;
    browser = await launchChromium();
    // The loopback test relay's certificate is self-signed: relayPage accepts it.
    page = await relayPage(browser, consoleErrors);
    page.on('request', (r) => requests.push(r.url()));
  });

  after(async () => {
    await browser?.close();
    await h?.close();
  });

  it(
    'renders the heading and the relay name, with no console error, every request to the relay',
    BROWSER_TEST,
    async () => {
      const response = await page.goto(`${origin}/`);
      assert.equal(response?.status(), 200);
      await page.waitForSelector('main#app h1', { timeout: 10_000 });
      assert.equal(await page.textContent('main#app h1'), 'Switchboard');
      assert.equal(await page.textContent('main#app p'), `Relay: ${h.server}`);
      // The stylesheet applied (style-src 'self' let it in): the system font stack.
      const font = await page.evaluate('getComputedStyle(document.documentElement).fontFamily');
      assert.match(String(font), /system-ui/);
      assert.ok(requests.length >= 3, requests.join(' '));
      assert.deepEqual(
        requests.filter((u) => new URL(u).origin !== origin),
        [],
      );
      // CSP violations are reported here too.
      assert.deepEqual(consoleErrors, []);
    },
  );

  it(
    `CSP lets the page open a WebSocket to the relay (wss:, ${WS_PATH})`,
    BROWSER_TEST,
    async () => {
      const outcome = (await page.evaluate(
        `new Promise((resolve) => {
        const violations = [];
        document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective));
        const ws = new WebSocket('wss://' + location.host + '${WS_PATH}');
        ws.onopen = () => { ws.close(); resolve({ state: 'open', violations }); };
        ws.onerror = () => resolve({ state: 'error', violations });
      })`,
      )) as { state: string; violations: string[] };
      assert.deepEqual(outcome, { state: 'open', violations: [] });
    },
  );

  it(
    'CSP blocks a fetch and a WebSocket to another origin, and an inline script',
    BROWSER_TEST,
    async () => {
      // Another origin that would answer: the relay's own plaintext listener, and its TLS port
      // under another host name.
      const other = `http://127.0.0.1:${h.relay.plainPort}/healthz`;
      const otherWs = `wss://localhost:${h.port}${WS_PATH}`;
      const outcome = (await page.evaluate(
        `(async () => {
        const violations = [];
        document.addEventListener('securitypolicyviolation', (e) =>
          violations.push(e.violatedDirective + ' ' + e.blockedURI));
        const fetched = await fetch(${JSON.stringify(other)}).then(() => 'answered', () => 'refused');
        // Chromium fails a blocked WebSocket after construction (older versions threw).
        const ws = await new Promise((resolve) => {
          try {
            const socket = new WebSocket(${JSON.stringify(otherWs)});
            socket.onopen = () => resolve('open');
            socket.onerror = () => resolve('failed');
          } catch (e) {
            resolve('failed');
          }
        });
        const script = document.createElement('script');
        script.textContent = 'window.inlineRan = true';
        document.head.append(script);
        // Violation reports are queued as tasks: wait for the three, or a second at most.
        for (let i = 0; i < 100 && violations.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
        return { fetched, ws, inlineRan: window.inlineRan === true, violations: violations.sort() };
      })()`,
      )) as { fetched: string; ws: string; inlineRan: boolean; violations: string[] };
      assert.equal(outcome.fetched, 'refused');
      assert.equal(outcome.ws, 'failed');
      assert.equal(outcome.inlineRan, false);
      assert.deepEqual(outcome.violations, [
        `connect-src ${other}`,
        `connect-src ${otherWs}`,
        'script-src-elem inline',
      ]);
    },
  );
});
