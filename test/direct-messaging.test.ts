// Messaging's direct path (issue 11, part 4) and receipts, over a real relay and real sockets on
// loopback: the direct path is used when both are online, the relay takes over when direct is
// unreachable, cut, or stops answering, with nothing lost or shown twice; a relay that swaps keys
// is caught, and one that sends a dialer elsewhere reaches nobody.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { acceptE2E } from '../src/channel/e2e.js';
import { SOCKET_MAX_FRAME_BYTES, SocketTransport } from '../src/channel/socket-transport.js';
import { Contacts } from '../src/client/contacts.js';
import { DirectListener, MAX_UNPROVEN_CONNECTIONS, connectDirect } from '../src/client/direct.js';
import { contactsFileStore, fileStores, keysFileStore } from '../src/client/file-stores.js';
import type { HistoryLine } from '../src/client/message-history.js';
import { Messenger } from '../src/client/messenger.js';
import { nodeLinks } from '../src/cli/commands/messages.js';
import { MessagingKeys } from '../src/client/messaging-keys.js';
import { sealMessage, type MessageContent } from '../src/client/messaging.js';
import { defaultCryptoProvider as provider } from '../src/crypto/default-provider.js';
import { verifyBundle } from '../src/crypto/prekeys.js';
import { RelayClient } from '../src/client/relay-client.js';
import { KnownServers } from '../src/client/known-servers.js';
import { generateDeviceKey } from '../src/crypto/device-key.js';
import { ErrorCode } from '../src/protocol/errors.js';
import { codeOf } from './helpers.js';
import { TamperProxy } from './tamper-proxy.js';
import { Harness, type TestUser } from './terminal-harness.js';

function messengerFor(u: TestUser, client: RelayClient, server: string, direct = true): Messenger {
  const knownPeersFile = join(u.dir, 'known_peers.json');
  return new Messenger({
    client,
    user: u.name,
    key: u.key,
    server,
    links: nodeLinks(client, { user: u.name, key: u.key, server, knownPeersFile }),
    stores: fileStores(
      {
        knownPeers: knownPeersFile,
        messagingKeys: join(u.dir, 'messaging_keys.json'),
        messages: join(u.dir, 'messages.jsonl'),
        contacts: join(u.dir, 'contacts.json'),
      },
      u.key,
    ),
    direct,
    directHost: '127.0.0.1',
  });
}

/** Resolves once my message `id` has reached `state` (now or later). */
function reached(m: Messenger, id: string, state: string): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (m.history.status(id)?.state !== state) return;
      m.off('status', check);
      resolve();
    };
    m.on('status', check);
    check();
  });
}

/** Resolves with the first `event` for which `pick` holds. */
function next<T>(m: Messenger, event: string, pick: (v: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve) => {
    const on = (v: T): void => {
      if (!pick(v)) return;
      m.off(event, on);
      resolve(v);
    };
    m.on(event, on);
  });
}

describe('messaging: direct path, relay fallback, receipts', () => {
  const h = new Harness();
  let dia: TestUser;
  let dob: TestUser;
  let eve: TestUser;
  const running = new Map<Messenger, RelayClient>();

  async function online(u: TestUser, direct = true): Promise<Messenger> {
    const client = await u.connect();
    const m = messengerFor(u, client, h.server, direct);
    running.set(m, client);
    await m.start({ live: true });
    await m.catchUp();
    return m;
  }
  async function offline(m: Messenger): Promise<void> {
    await m.stop();
    running.get(m)?.close();
    running.delete(m);
  }

  before(async () => {
    await h.start();
    dia = await h.user('dmdia');
    dob = await h.user('dmdob');
    eve = await h.user('dmeve');
    // dia and dob know each other; eve is a stranger to both.
    new Contacts(contactsFileStore(join(dia.dir, 'contacts.json'))).set('dmdob', 'accepted');
    new Contacts(contactsFileStore(join(dob.dir, 'contacts.json'))).set('dmdia', 'accepted');
  });
  after(async () => {
    for (const m of [...running.keys()]) await offline(m).catch(() => undefined);
    await h.close();
  });

  it(
    'goes direct on loopback; a cut or silent connection hands over to the relay, nothing lost or repeated',
    { timeout: 60_000 },
    async () => {
      const a = await online(dia);
      const b = await online(dob);
      const got: string[] = [];
      b.on('message', (l: HistoryLine) => got.push(l.text));
      const first = await a.send('dmdob', 'one');
      assert.deepEqual([first.path, first.status, first.relayed], ['direct', 'delivered', 0]);
      assert.equal(a.linkPath('dmdob'), 'direct');
      assert.equal(b.linkPath('dmdia'), 'direct');
      // Cut mid-conversation (the connection resets): the next message goes through the relay.
      const relayNext = next(a, 'link', (e: { path: string }) => e.path === 'relay');
      (a.directSocket('dmdob') as Socket).resetAndDestroy();
      await relayNext;
      const second = await a.send('dmdob', 'two');
      assert.deepEqual([second.path, second.status], ['relay', 'stored']);
      await waitFor(() => got.includes('two'));
      // Asked again, the link is direct again; then the peer stops reading: the message
      // is not acknowledged in time, goes through the relay, and is shown once when both arrive.
      assert.equal(await a.link('dmdob'), true);
      assert.equal(a.linkPath('dmdob'), 'direct');
      await waitFor(() => b.directSocket('dmdia') !== undefined);
      const bSocket = b.directSocket('dmdia') as Socket;
      bSocket.pause();
      const third = await a.send('dmdob', 'three');
      assert.deepEqual([third.path, third.status], ['relay', 'stored']);
      bSocket.resume();
      await waitFor(() => got.includes('three'));
      const fourth = await a.send('dmdob', 'four');
      assert.equal(fourth.status, fourth.path === 'direct' ? 'delivered' : 'stored');
      await waitFor(() => got.includes('four'));
      assert.deepEqual(got, ['one', 'two', 'three', 'four']);
      // In order and once in dob's history too.
      assert.deepEqual(
        b.history.conversation('dmdia', 10).map((l) => l.text),
        ['one', 'two', 'three', 'four'],
      );
      await offline(a);
      await offline(b);
    },
  );

  it(
    'uses the relay when the peer cannot be reached directly (--no-direct), and receipts say read',
    { timeout: 60_000 },
    async () => {
      const a = await online(dia);
      const b = await online(dob, false);
      const shown: string[] = [];
      b.on('message', (l: HistoryLine) => {
        shown.push(l.text);
        b.shown([l]);
      });
      const sent = await a.send('dmdob', 'via relay');
      assert.deepEqual([sent.path, sent.status], ['relay', 'stored']);
      assert.equal(a.linkPath('dmdob'), 'relay');
      await reached(a, sent.id, 'read');
      assert.equal(a.history.status(sent.id)?.state, 'read');
      assert.deepEqual(shown, ['via relay']);
      await offline(a);
      await offline(b);
    },
  );

  it(
    'a stranger sees "pending" until accepted, then "read"; a blocked one sees "failed"',
    { timeout: 60_000 },
    async () => {
      const e = await online(eve);
      const bob = await online(dob);
      const request = next(bob, 'request');
      const sent = await e.send('dmdob', 'hi, it is eve');
      // No link for a stranger: the mailbox, held at dob's end.
      assert.equal(sent.path, 'relay');
      assert.equal(((await request) as { user: string }).user, 'dmeve');
      await reached(e, sent.id, 'pending');
      assert.deepEqual(
        bob.unshown().filter((l) => l.from === 'dmeve'),
        [],
      );
      // Accepted: shown, and eve learns it was read.
      bob.contacts().set('dmeve', 'accepted');
      const held = bob.unshown().filter((l) => l.from === 'dmeve');
      assert.deepEqual(
        held.map((l) => l.text),
        ['hi, it is eve'],
      );
      bob.shown(held);
      await reached(e, sent.id, 'read');
      // Accepted both ways, they link directly; then dob blocks eve: her next message, sent on
      // that link, is refused there, fails, and that is all she learns.
      assert.equal(await e.link('dmdob'), true);
      assert.equal(e.linkPath('dmdob'), 'direct');
      bob.contacts().set('dmeve', 'blocked');
      const again = await e.send('dmdob', 'still there?');
      await reached(e, again.id, 'failed');
      assert.equal(bob.history.has(again.id), false);
      await offline(e);
      await offline(bob);
    },
  );

  it(
    'a burst of 300 sends is paced, not refused; the recipient takes all 300 once, in order, and stays connected',
    { timeout: 60_000 },
    async () => {
      await offline(await online(dob, false)); // dob's prekeys published, dob offline
      const a = await online(dia, false);
      const texts = Array.from({ length: 300 }, (_, i) => `burst ${i}`);
      const results = await Promise.all(texts.map((t) => a.send('dmdob', t)));
      assert.ok(results.every((r) => r.status === 'stored'));
      const b = await online(dob, false);
      const mine = b.history.conversation('dmdia', 1000).map((l) => l.text);
      assert.deepEqual(
        mine.filter((t) => t.startsWith('burst ')),
        texts,
      );
      const client = running.get(b)!;
      assert.equal(client.closed, false);
      await b.stop();
      // Every one acknowledged: nothing waits at the relay any more.
      assert.deepEqual((await client.request('message.fetch', {})).messages, []);
      await offline(a);
      await offline(b);
    },
  );

  it(
    'a sealed message that is not a message, or a receipt with an unknown state, is refused; the ones behind it arrive',
    { timeout: 60_000 },
    async () => {
      /** `from` seals `content` for `to`'s devices as a client would, whatever it is. */
      const raw = async (from: TestUser, to: string, content: unknown) => {
        const client = await from.connect();
        const keys = new MessagingKeys(
          keysFileStore(join(from.dir, 'messaging_keys.json')),
          from.key,
        );
        await keys.publish(client);
        const { devices } = await client.request('keys.bundles', { user: to });
        await client.request('message.send', {
          to,
          messageId: randomBytes(16).toString('base64'),
          envelopes: devices.map((d) => ({
            device: d.fingerprint,
            body: sealMessage(
              provider,
              { deviceKey: from.key.publicKey, identity: keys.identity },
              verifyBundle(provider, d.bundle, { deviceKey: Buffer.from(d.publicKey, 'base64') }),
              content as MessageContent,
            ),
          })),
        });
        client.close();
      };
      await offline(await online(dob, false)); // dob's prekeys published, dob offline
      const a = await online(dia, false);
      const mine = await a.send('dmdob', 'mine, to be marked');
      await raw(dia, 'dmdob', null);
      await raw(dia, 'dmdob', { v: 1, id: 'x', from: 'dmdia', to: 'dmdob' }); // no text
      await a.send('dmdob', 'after the bad ones');
      const b = await online(dob, false);
      assert.ok(b.history.conversation('dmdia', 1000).some((l) => l.text === 'after the bad ones'));
      // A receipt whose state is none of the four marks nothing; a real one does.
      const receipt = (state: string) => ({
        v: 1,
        kind: 'receipt',
        state,
        ids: [mine.id],
        id: randomBytes(16).toString('base64'),
        from: 'dmdob',
        to: 'dmdia',
        sentAt: new Date().toISOString(),
        text: '',
      });
      await offline(a);
      await raw(dob, 'dmdia', receipt('shown'));
      await raw(dob, 'dmdia', receipt('read'));
      const again = await online(dia, false);
      assert.equal(again.history.status(mine.id)?.state, 'read');
      await offline(again);
      await offline(b);
    },
  );

  it(
    'a relay that announces another key for the peer is refused before anything is sent',
    { timeout: 60_000 },
    async () => {
      const proxy = await new TamperProxy(h.port).start();
      const forged = generateDeviceKey().publicKey.toString('base64');
      proxy.tamper.toClientJson = (msg) => {
        const result = msg['result'] as { devices?: Array<{ publicKey: string }> } | undefined;
        for (const d of result?.devices ?? []) d.publicKey = forged;
        return msg;
      };
      const client = await RelayClient.connect({
        server: `127.0.0.1:${proxy.port}`,
        trust: {
          knownServers: new KnownServers(join(dia.dir, 'proxy_servers.json')),
          fingerprint: proxy.fingerprint,
        },
      });
      await client.request('auth.token', { token: dia.token });
      // dia pinned dob's key in the tests above, under the relay's address: the proxy is that
      // relay for this messenger.
      const m = messengerFor(dia, client, h.server, false);
      await m.start();
      assert.equal(await codeOf(m.send('dmdob', 'to the wrong key')), ErrorCode.PEER_KEY_CHANGED);
      await m.stop();
      client.close();
      await proxy.close();
    },
  );

  it(
    'a dialer sent to another address reaches nobody: the stranger there cannot prove the key',
    { timeout: 60_000 },
    async () => {
      // The "peer" at the swapped address knows the token and runs the handshake with its own key.
      const impostor = generateDeviceKey();
      const sockets: Socket[] = [];
      const server = createServer((socket) => {
        sockets.push(socket);
        const t = new SocketTransport(socket);
        t.setHandlers({
          onMessage: () => {
            void acceptE2E(t, {
              key: impostor,
              prologue: new TextEncoder().encode('switchboard-direct-v1\0hash'),
              expected: {
                user: 'dmdia',
                publicKey: dia.key.publicKey.toString('base64'),
                fingerprint: '',
                deviceName: '',
              },
              verifyPin: () => undefined,
            }).catch(() => undefined);
          },
          onClose: () => undefined,
        });
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const port = (server.address() as { port: number }).port;
      const listener = await DirectListener.open('127.0.0.1');
      const made = await connectDirect({
        mine: listener.expect(),
        theirs: {
          token: Buffer.alloc(16).toString('base64'),
          candidates: [{ host: '127.0.0.1', port }],
        },
        key: dia.key,
        linkHash: 'hash',
        peer: {
          user: 'dmdob',
          publicKey: dob.key.publicKey.toString('base64'),
          fingerprint: '',
          deviceName: '',
        },
        leader: true,
        budgetMs: 1_000,
        handlers: () => ({ onMessage: () => undefined, onClose: () => undefined }),
      });
      assert.equal(made, undefined);
      assert.ok(sockets.length > 0, 'the dialer did reach the swapped address');
      listener.close();
      server.close();
    },
  );
});

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('direct connections: limits on what strangers can hold', () => {
  it(
    'a listener keeps at most 32 connections that sent no token; a frame past the limit ends the transport',
    { timeout: 30_000 },
    async () => {
      const listener = await DirectListener.open('127.0.0.1');
      const sockets: Socket[] = [];
      try {
        const open = async (): Promise<Socket> => {
          const s = connect({ host: '127.0.0.1', port: listener.port });
          s.on('error', () => undefined);
          sockets.push(s);
          await once(s, 'connect');
          return s;
        };
        for (let i = 0; i < MAX_UNPROVEN_CONNECTIONS; i++) await open();
        const extra = await open();
        await once(extra, 'close');
        assert.ok(sockets.slice(0, MAX_UNPROVEN_CONNECTIONS).every((s) => !s.destroyed));
      } finally {
        for (const s of sockets) s.destroy();
        listener.close();
      }
      // A length past SOCKET_MAX_FRAME_BYTES: FRAME_TOO_LARGE, before any of it is buffered.
      const closed = new Promise<string>((resolve) => {
        const server = createServer((socket) => {
          new SocketTransport(socket).setHandlers({
            onMessage: () => undefined,
            onClose: (code) => {
              server.close();
              resolve(code);
            },
          });
        });
        server.listen(0, '127.0.0.1', () => {
          const c = connect({
            host: '127.0.0.1',
            port: (server.address() as { port: number }).port,
          });
          c.on('error', () => undefined);
          const head = Buffer.alloc(4);
          head.writeUInt32BE(SOCKET_MAX_FRAME_BYTES + 1);
          // Then the end: a transport that waited for the rest would see PEER_GONE instead.
          c.end(head);
        });
      });
      assert.equal(await closed, ErrorCode.FRAME_TOO_LARGE);
    },
  );
});
