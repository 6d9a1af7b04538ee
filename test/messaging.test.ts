// Messages through the relay (issue 11, offline delivery): sealed per device, stored until
// acknowledged, in order and once, across a relay restart; the relay keeps no plaintext.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { keysFileStore } from '../src/client/file-stores.js';
import { MessagingKeys } from '../src/client/messaging-keys.js';
import { openMessage, sealMessage, type MessageContent } from '../src/client/messaging.js';
import type { RelayClient } from '../src/client/relay-client.js';
import { defaultCryptoProvider as provider } from '../src/crypto/default-provider.js';
import { verifyBundle } from '../src/crypto/prekeys.js';
import { ErrorCode } from '../src/protocol/errors.js';
import { MAILBOX_MAX_PENDING } from '../src/protocol/limits.js';
import type { MailboxMessage } from '../src/protocol/messages.js';
import { createLogger } from '../src/server/logger.js';
import { codeOf } from './helpers.js';
import { Harness, type TestUser } from './terminal-harness.js';

const logFile = join(process.env['TMPDIR'] ?? '/tmp', `sb-msg-trace-${process.pid}.log`);

describe('messages through the relay', () => {
  const fd = openSync(logFile, 'w');
  const h = new Harness({ logger: createLogger('trace', fd) });
  let ana: TestUser;
  let ben: TestUser;
  let anaKeys: MessagingKeys;
  let benKeys: MessagingKeys;
  before(async () => {
    await h.start();
    ana = await h.user('msgana');
    ben = await h.user('msgben');
    anaKeys = new MessagingKeys(keysFileStore(join(ana.dir, 'messaging_keys.json')), ana.key);
    benKeys = new MessagingKeys(keysFileStore(join(ben.dir, 'messaging_keys.json')), ben.key);
    for (const [u, k] of [
      [ana, anaKeys],
      [ben, benKeys],
    ] as const) {
      const c = await u.connect();
      await k.publish(c);
      c.close();
    }
  });
  after(async () => {
    await h.close();
    closeSync(fd);
  });

  /** ana sends `text` to ben's devices, sealed for each against ben's key (as pinned). */
  async function send(client: RelayClient, text: string, id = randomBytes(16).toString('base64')) {
    const { devices } = await client.request('keys.bundles', { user: 'msgben' });
    const content: MessageContent = {
      v: 1,
      id,
      from: 'msgana',
      to: 'msgben',
      sentAt: new Date().toISOString(),
      text,
    };
    const envelopes = devices.map((d) => ({
      device: d.fingerprint,
      body: sealMessage(
        provider,
        { deviceKey: ana.key.publicKey, identity: anaKeys.identity },
        verifyBundle(provider, d.bundle, { deviceKey: Buffer.from(d.publicKey, 'base64') }),
        content,
      ),
    }));
    return client.request('message.send', { to: 'msgben', messageId: id, envelopes });
  }

  const open = (m: MailboxMessage) =>
    openMessage(
      provider,
      {
        deviceKey: ben.key.publicKey,
        identity: benKeys.identity,
        prekey: (id) => benKeys.prekey(id),
      },
      m.body,
      { from: m.from, to: 'msgben' },
    );

  it('stores sealed messages for an offline device, delivered in order and once, across a restart', async () => {
    const a = await ana.connect();
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) {
      const text = `hello ${i}`;
      sent.push(text);
      assert.equal((await send(a, text)).stored, 1);
    }
    // A retry with the same id (a lost reply) stores nothing new.
    const id = randomBytes(16).toString('base64');
    assert.equal((await send(a, 'once', id)).stored, 1);
    assert.equal((await send(a, 'once', id)).stored, 0);
    sent.push('once');
    a.close();
    await h.restart();
    const b = await ben.connect();
    h.defer(() => b.close());
    const { messages } = await b.request('message.fetch', {});
    assert.deepEqual(
      messages.map((m) => open(m).content.text),
      sent,
    );
    assert.ok(messages.every((m) => m.from === 'msgana'));
    await b.request('message.ack', { upTo: messages.at(-1)!.seq });
    assert.deepEqual((await b.request('message.fetch', {})).messages, []);
  });

  it('pushes a message to the device online now', async () => {
    const b = await ben.connect();
    h.defer(() => b.close());
    const pushed = new Promise<MailboxMessage>((resolve) =>
      b.on('event', (e: { type: string } & MailboxMessage) => {
        if (e.type === 'message') resolve(e);
      }),
    );
    const a = await ana.connect();
    h.defer(() => a.close());
    await send(a, 'live one');
    const m = await pushed;
    assert.equal(open(m).content.text, 'live one');
    await b.request('message.ack', { upTo: m.seq });
  });

  it('keeps no plaintext: not in the database files, nor in the trace log', async () => {
    const secret = `MSG-MARKER-${randomBytes(6).toString('hex')}`;
    const a = await ana.connect();
    await send(a, `the marker is ${secret}`);
    a.close();
    const files = readdirSync(h.dataDir).filter((f) => f.startsWith('switchboard.db'));
    assert.ok(files.length >= 1);
    for (const f of files)
      assert.ok(!readFileSync(join(h.dataDir, f)).includes(secret), `marker in ${f}`);
    assert.ok(!readFileSync(logFile, 'utf8').includes(secret), 'marker in the relay log');
    const b = await ben.connect();
    h.defer(() => b.close());
    const { messages } = await b.request('message.fetch', {});
    assert.ok(open(messages.at(-1)!).content.text.includes(secret));
    await b.request('message.ack', { upTo: messages.at(-1)!.seq });
  });

  it('refuses an unknown user, an envelope for another device, and a re-addressed message', async () => {
    const a = await ana.connect();
    h.defer(() => a.close());
    const id = randomBytes(16).toString('base64');
    assert.equal(
      await codeOf(
        a.request('message.send', {
          to: 'nobody',
          messageId: id,
          envelopes: [{ device: 'x', body: 'x' }],
        }),
      ),
      ErrorCode.UNKNOWN_USER,
    );
    assert.equal(
      await codeOf(
        a.request('message.send', {
          to: 'msgben',
          messageId: id,
          envelopes: [{ device: 'SHA256:not-a-device', body: 'x' }],
        }),
      ),
      ErrorCode.INVALID_MESSAGE,
    );
    // The relay says it came from someone else: the sealed content says otherwise.
    await send(a, 'who sent this?');
    const b = await ben.connect();
    h.defer(() => b.close());
    const { messages } = await b.request('message.fetch', {});
    const m = messages.at(-1)!;
    assert.throws(() => open({ ...m, from: 'mallory' }), { code: ErrorCode.DECRYPT_FAILED });
    // A flipped byte in the envelope: refused, nothing read.
    const body = Buffer.from(m.body, 'base64');
    body[body.length - 10]! ^= 1;
    assert.throws(() => open({ ...m, body: body.toString('base64') }), {
      code: ErrorCode.DECRYPT_FAILED,
    });
    await b.request('message.ack', { upTo: m.seq });
  });

  it('refuses a message for a device whose mailbox is full', async () => {
    const db = new Database(join(h.dataDir, 'switchboard.db'));
    h.defer(() => void db.close());
    const device = db
      .prepare(
        "select d.id from devices d join users u on u.id = d.user_id where u.name = 'msgben'",
      )
      .get() as { id: number };
    const insert = db.prepare(
      'insert into mailbox (device_id, sender_name, sender_fingerprint, message_id, body, created_at, expires_at) values (?, ?, ?, ?, ?, ?, ?)',
    );
    db.transaction(() => {
      for (let i = 0; i < MAILBOX_MAX_PENDING; i++)
        insert.run(
          device.id,
          'msgana',
          'fp',
          `filler-${i}`,
          'x',
          Date.now(),
          Date.now() + 3600_000,
        );
    })();
    const a = await ana.connect();
    h.defer(() => a.close());
    assert.equal(await codeOf(send(a, 'one too many')), ErrorCode.MAILBOX_FULL);
  });
});
