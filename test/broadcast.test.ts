// Broadcasts (issue 11, part 6): signed, pushed to everyone online, offered until the window
// closes (injected clock), once per user across reconnects; forged ones and floods refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { generateDeviceKey } from '../src/crypto/device-key.js';
import { openBroadcast, signBroadcast, type BroadcastBody } from '../src/protocol/broadcast.js';
import { ErrorCode } from '../src/protocol/errors.js';
import { BROADCAST_PER_HOUR } from '../src/protocol/limits.js';
import type { BroadcastView } from '../src/protocol/messages.js';
import { codeOf } from './helpers.js';
import { Harness, type TestUser } from './terminal-harness.js';

describe('broadcasts', () => {
  let clock = Date.now();
  const h = new Harness({ now: () => clock });
  let sam: TestUser;
  before(async () => {
    await h.start();
    sam = await h.user('bcsam');
  });
  after(() => h.close());

  const body = (text: string, from = 'bcsam'): BroadcastBody => ({
    v: 1,
    id: randomBytes(16).toString('base64'),
    from,
    sentAt: new Date(clock).toISOString(),
    text,
  });

  const fetchAs = async (user: TestUser, ack: boolean) => {
    const c = await user.connect();
    try {
      const { broadcasts } = await c.request('broadcast.fetch', {});
      if (ack && broadcasts.length > 0)
        await c.request('broadcast.ack', { ids: broadcasts.map((b) => b.id) });
      return broadcasts;
    } finally {
      c.close();
    }
  };

  it('reaches who is online now, who comes within the window, once; not after it', async () => {
    const [ann, bea, cid] = await Promise.all([h.user('bcann'), h.user('bcbea'), h.user('bccid')]);
    const live = await ann.connect();
    h.defer(() => live.close());
    const pushed = new Promise<BroadcastView>((resolve) =>
      live.on('event', (e: { type: string } & BroadcastView) => {
        if (e.type === 'broadcast') resolve(e);
      }),
    );
    const s = await sam.connect();
    h.defer(() => s.close());
    const sent = await s.request('broadcast.send', signBroadcast(sam.key, body('all hands at 3')));
    assert.ok(sent.online >= 2, `online: ${sent.online}`); // ann and sam himself
    const got = await pushed;
    assert.equal(
      openBroadcast(Buffer.from(got.key, 'base64'), got.body, got.sig)?.text,
      'all hands at 3',
    );
    clock += 29 * 60_000;
    const late = await fetchAs(bea, true);
    assert.deepEqual(
      late.map((b) => b.id),
      [sent.id],
    );
    assert.deepEqual(await fetchAs(bea, false), [], 'not twice, across reconnects');
    clock += 2 * 60_000; // 31 minutes after it was sent
    assert.deepEqual(await fetchAs(cid, false), [], 'not after the window');
  });

  it('refuses a forged or misattributed broadcast, and a flood', async () => {
    const s = await sam.connect();
    h.defer(() => s.close());
    const forged = signBroadcast(generateDeviceKey(), body('not from sam'));
    assert.equal(await codeOf(s.request('broadcast.send', forged)), ErrorCode.SIGNATURE_INVALID);
    const other = signBroadcast(sam.key, body('as someone else', 'bcann'));
    assert.equal(await codeOf(s.request('broadcast.send', other)), ErrorCode.SIGNATURE_INVALID);
    clock += 2 * 3600_000;
    for (let i = 0; i < BROADCAST_PER_HOUR; i++)
      await s.request('broadcast.send', signBroadcast(sam.key, body(`news ${i}`)));
    assert.equal(
      await codeOf(s.request('broadcast.send', signBroadcast(sam.key, body('one too many')))),
      ErrorCode.RATE_LIMITED,
    );
  });
});
