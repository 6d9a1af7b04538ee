// The browser build in a real Chromium: every known-answer vector, a prekey exchange, and E2E handshakes and records in the page and with Node.
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
import { ControllerHandshake, HostHandshake } from '../src/crypto/handshake.js';
import { decodeTerminal, encodeTerminal } from '../src/protocol/terminal.js';

/** The terminal's handshake prologue (channelPrologue in src/channel/e2e.ts), as both ends spell it. */
const PROLOGUE_TEXT = 'switchboard-e2e-v1\0k7m2-x9qp-4rtw-8nze-3vha\0alice\0bob';

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

  it('runs a handshake and terminal records between two parties in the page (noble, the bundle default)', async () => {
    const outcome = (await page.evaluate(`(() => {
      const sb = window.sb;
      const p = sb.nobleCryptoProvider;
      const prologue = sb.utf8(${JSON.stringify(PROLOGUE_TEXT)});
      const controllerKey = sb.seedSigner(p, p.randomBytes(32));
      const hostKey = sb.seedSigner(p, p.randomBytes(32));
      const controller = new sb.ControllerHandshake({ key: controllerKey, prologue, provider: p });
      // No provider: the bundle's default must be the noble one (node:crypto is not there).
      const host = new sb.HostHandshake({ key: hostKey, prologue });
      const msg1 = controller.start();
      const msg2 = host.respond(msg1);
      const seen = controller.receive(msg2).peerPublicKey;
      const { message: msg3, result: c } = controller.finish();
      const h = host.receive(msg3);
      // Records carried as the relay would: terminal message -> record -> channel frame and back.
      const wire = (from, to, msg) => {
        const frame = sb.encodeData(7, from.seal(sb.encodeTerminal(msg)));
        const decoded = sb.decodeData(frame);
        return sb.decodeTerminal(to.open(decoded.value.payload));
      };
      const got = [];
      got.push(wire(c.channel, h.channel, { type: 'hello', hello: { v: 1, cols: 80, rows: 24, readOnly: false } }).type);
      const out = wire(h.channel, c.channel, { type: 'output', offset: 0, data: sb.utf8('$ ') });
      got.push(out.type + ':' + new TextDecoder().decode(out.data));
      const input = wire(c.channel, h.channel, { type: 'input', offset: 0, data: sb.utf8('ls\\r') });
      got.push(input.type + ':' + input.offset);
      const replay = c.channel.seal(sb.encodeTerminal({ type: 'ack', offset: 2 }));
      h.channel.open(replay);
      let replayCode = 'opened twice';
      try { h.channel.open(replay); } catch (err) { replayCode = err.code; }
      return {
        sizes: [msg1.length, msg2.length, msg3.length],
        steps: [sb.handshakeStep(msg1), sb.handshakeStep(msg2), sb.handshakeStep(msg3)],
        hostProven: sb.toHex(seen) === sb.toHex(hostKey.publicKey),
        controllerProven: sb.toHex(h.peerPublicKey) === sb.toHex(controllerKey.publicKey),
        sameHash: sb.toHex(c.handshakeHash) === sb.toHex(h.handshakeHash),
        got,
        replayCode,
        seqs: [c.channel.nextSendSeq, h.channel.nextReceiveSeq, h.channel.nextSendSeq, c.channel.nextReceiveSeq],
      };
    })()`)) as Record<string, unknown>;
    assert.deepEqual(outcome, {
      sizes: [33, 145, 113],
      steps: [1, 2, 3],
      hostProven: true,
      controllerProven: true,
      sameHash: true,
      got: ['hello', 'output:$ ', 'input:0'],
      replayCode: 'RECORD_REPLAYED',
      seqs: [3, 3, 1, 1],
    });
  });

  for (const nodeRole of ['controller', 'host'] as const) {
    it(`completes a handshake with Node (node:crypto ${nodeRole}, noble in the page) and carries records both ways`, async () => {
      const nodeKey = generateDeviceKey();
      const prologue = new TextEncoder().encode(PROLOGUE_TEXT);
      const pageKey = (await page.evaluate(`(() => {
        const p = window.sb.nobleCryptoProvider;
        window.peer = { key: window.sb.seedSigner(p, p.randomBytes(32)), p };
        window.peer.prologue = window.sb.utf8(${JSON.stringify(PROLOGUE_TEXT)});
        return window.sb.toHex(window.peer.key.publicKey);
      })()`)) as string;
      /** Runs `body` in the page with its argument as hex, returning hex. */
      const inPage = async (body: string, arg: Uint8Array) =>
        fromHex(
          (await page.evaluate(
            `((arg) => window.sb.toHex((${body})(window.sb.fromHex(arg))))(${JSON.stringify(toHex(arg))})`,
          )) as string,
        );

      let channel;
      let hash;
      let proven;
      if (nodeRole === 'controller') {
        await page.evaluate(
          'window.peer.hs = new window.sb.HostHandshake({ key: window.peer.key, prologue: window.peer.prologue, provider: window.peer.p })',
        );
        const controller = new ControllerHandshake({ key: nodeKey, prologue });
        const msg2 = await inPage('(m) => window.peer.hs.respond(m)', controller.start());
        proven = controller.receive(msg2).peerPublicKey;
        const { message, result } = controller.finish();
        const provenByPage = await inPage(
          '(m) => { window.peer.result = window.peer.hs.receive(m); return window.peer.result.peerPublicKey; }',
          message,
        );
        assert.equal(toHex(provenByPage), toHex(nodeKey.publicKey));
        ({ channel, handshakeHash: hash } = result);
      } else {
        const host = new HostHandshake({ key: nodeKey, prologue });
        const msg1 = await inPage(
          '() => { window.peer.hs = new window.sb.ControllerHandshake({ key: window.peer.key, prologue: window.peer.prologue, provider: window.peer.p }); return window.peer.hs.start(); }',
          new Uint8Array(0),
        );
        const provenByPage = await inPage(
          '(m) => window.peer.hs.receive(m).peerPublicKey',
          host.respond(msg1),
        );
        assert.equal(toHex(provenByPage), toHex(nodeKey.publicKey));
        const msg3 = await inPage(
          '() => { const { message, result } = window.peer.hs.finish(); window.peer.result = result; return message; }',
          new Uint8Array(0),
        );
        const result = host.receive(msg3);
        proven = result.peerPublicKey;
        ({ channel, handshakeHash: hash } = result);
      }
      assert.equal(toHex(proven), pageKey);
      const pageHash = await inPage('() => window.peer.result.handshakeHash', new Uint8Array(0));
      assert.equal(toHex(pageHash), toHex(hash));

      for (let i = 0; i < 3; i++) {
        const down = encodeTerminal({
          type: 'output',
          offset: i,
          data: new TextEncoder().encode(`out ${i}`),
        });
        const echoed = await inPage(
          `(record) => {
            const msg = window.sb.decodeTerminal(window.peer.result.channel.open(record));
            return window.peer.result.channel.seal(window.sb.encodeTerminal({ type: 'input', offset: msg.offset, data: msg.data }));
          }`,
          channel.seal(down),
        );
        const back = decodeTerminal(channel.open(echoed));
        assert.equal(back.type, 'input');
        assert.ok(back.type === 'input');
        assert.equal(back.offset, i);
        assert.equal(new TextDecoder().decode(back.data), `out ${i}`);
      }
      assert.deepEqual([channel.nextSendSeq, channel.nextReceiveSeq], [3, 3]);
    });
  }
});
