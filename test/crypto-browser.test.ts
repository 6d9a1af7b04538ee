// The browser build of src/crypto/ in a real Chromium: every known-answer vector, and a prekey exchange with Node.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { fromHex, toHex } from '../src/crypto/bytes.js';
import { nodeCryptoProvider } from '../src/crypto/node-provider.js';
import {
  createIdentityKey,
  offlineAgree,
  verifyBundle,
  type PrekeyBundleJson,
} from '../src/crypto/prekeys.js';
import { VECTOR_CHECK_COUNT, type VectorResult } from '../src/crypto/vector-check.js';
import { generateDeviceKey } from '../src/crypto/device-key.js';

/** Debian's chromium; .ci/run installs it. Missing is a failure, never a skip. */
const CHROMIUM = '/usr/bin/chromium';
/** The bundle `npm run build` writes (scripts/build-browser.mjs), relative to dist/test/. */
const BUNDLE_URL = new URL('../browser/switchboard-crypto.js', import.meta.url);
const LAUNCH_TIMEOUT = 15_000; // ms

const PAGE = `<!doctype html><meta charset="utf-8"><title>switchboard crypto</title>
<script type="module">
  import * as crypto from '/switchboard-crypto.js';
  window.sb = crypto;
  document.title = 'ready';
</script>`;

describe('crypto in Chromium (browser build, noble provider)', () => {
  let server: Server;
  let browser: Browser;
  let page: Page;

  before(async () => {
    const bundle = await readFile(BUNDLE_URL);
    server = createServer((req, res) => {
      if (req.url === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
      } else if (req.url === '/switchboard-crypto.js') {
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(bundle);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // CI runs as root, where Chromium refuses to start with its sandbox.
      args: ['--no-sandbox'],
      timeout: LAUNCH_TIMEOUT,
    });
    page = await browser.newPage();
    const { port } = server.address() as AddressInfo;
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForFunction("document.title === 'ready'", undefined, { timeout: 10_000 });
  });

  after(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('runs in a page without Node globals', async () => {
    const globals = await page.evaluate(
      '({ buffer: typeof Buffer, process: typeof process, subtle: typeof crypto.subtle })',
    );
    assert.deepEqual(globals, { buffer: 'undefined', process: 'undefined', subtle: 'object' });
  });

  it('reproduces every known-answer vector', async () => {
    const results = (await page.evaluate(
      'window.sb.checkVectors(window.sb.nobleCryptoProvider)',
    )) as VectorResult[];
    assert.deepEqual(
      results.filter((r) => !r.ok),
      [],
    );
    assert.equal(results.length, VECTOR_CHECK_COUNT);
  });

  it('agrees an offline secret with Node: bundle made in the page, sent from Node, received in the page', async () => {
    // The page is the recipient device: it makes its keys and publishes a bundle.
    const published = (await page.evaluate(`(() => {
      const { nobleCryptoProvider: p, seedSigner, createIdentityKey, createSignedPrekey, encodeBundle, toHex } = window.sb;
      const signer = seedSigner(p, p.randomBytes(32));
      const identity = createIdentityKey(p, signer);
      const prekey = createSignedPrekey(p, signer, identity.publicKey, { id: 5 });
      window.device = { deviceKey: signer.publicKey, identity, prekey: (id) => (id === 5 ? prekey : undefined) };
      return { deviceKey: toHex(signer.publicKey), bundle: encodeBundle(signer.publicKey, identity, prekey) };
    })()`)) as { deviceKey: string; bundle: PrekeyBundleJson };

    const alice = generateDeviceKey();
    const sender = {
      deviceKey: alice.publicKey,
      identity: createIdentityKey(nodeCryptoProvider, alice),
    };
    const verified = verifyBundle(nodeCryptoProvider, published.bundle, {
      deviceKey: fromHex(published.deviceKey),
    });
    const sent = offlineAgree(nodeCryptoProvider, sender, verified);

    const received = (await page.evaluate(
      `((header) => {
        const r = window.sb.offlineReceive(window.sb.nobleCryptoProvider, window.device, header);
        return { secret: window.sb.toHex(r.secret), sender: window.sb.toHex(r.senderDeviceKey) };
      })(${JSON.stringify(sent.header)})`,
    )) as { secret: string; sender: string };
    assert.deepEqual(received, { secret: toHex(sent.secret), sender: toHex(alice.publicKey) });
  });
});
