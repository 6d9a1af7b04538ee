// Unit tests for identity keys, signed prekey bundles and the offline key agreement.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from '../protocol/errors.js';
import { fromBase64, toBase64, toHex } from './bytes.js';
import { generateDeviceKey } from './device-key.js';
import { nobleCryptoProvider } from './noble-provider.js';
import { nodeCryptoProvider } from './node-provider.js';
import {
  MAX_CLOCK_SKEW,
  MAX_PREKEY_LIFETIME,
  PrekeyError,
  createIdentityKey,
  createSignedPrekey,
  encodeBundle,
  offlineAgree,
  offlineReceive,
  verifyBundle,
  type PrekeyBundleJson,
  type PrekeyFailure,
  type SignedPrekeyPair,
} from './prekeys.js';

const node = nodeCryptoProvider;
const NOW = 1_750_000_000_000; // ms since the epoch
const DAY = 24 * 60 * 60 * 1000; // ms

/** A device with an identity key and signed prekeys 1..count (the last one published). */
function makeDevice(count = 1) {
  const key = generateDeviceKey();
  const identity = createIdentityKey(node, key);
  const prekeys: SignedPrekeyPair[] = [];
  for (let id = 1; id <= count; id += 1) {
    prekeys.push(createSignedPrekey(node, key, identity.publicKey, { id, now: NOW - DAY }));
  }
  const current = prekeys[prekeys.length - 1] as SignedPrekeyPair;
  return {
    key,
    identity,
    prekeys,
    bundle: encodeBundle(key.publicKey, identity, current),
    recipient: {
      deviceKey: key.publicKey,
      identity,
      prekey: (id: number) => prekeys.find((p) => p.id === id),
    },
  };
}

function refusal(body: () => unknown): { code: string; reason: PrekeyFailure } {
  try {
    body();
  } catch (err) {
    assert.ok(err instanceof PrekeyError, `expected a PrekeyError, got ${String(err)}`);
    return { code: err.code, reason: err.reason };
  }
  assert.fail('expected a refusal');
}

/** A copy of the bundle with one edit applied. */
function edited(bundle: PrekeyBundleJson, edit: (b: PrekeyBundleJson) => void): PrekeyBundleJson {
  const copy = structuredClone(bundle);
  edit(copy);
  return copy;
}

function flipBase64(value: string): string {
  const raw = fromBase64(value);
  raw[3] = (raw[3] as number) ^ 1;
  return toBase64(raw);
}

describe('prekey bundles', () => {
  it('verify for the device that signed them, under both providers', () => {
    const bob = makeDevice();
    for (const provider of [node, nobleCryptoProvider]) {
      const verified = verifyBundle(provider, bob.bundle, {
        deviceKey: bob.key.publicKey,
        now: NOW,
      });
      assert.equal(verified.prekeyId, 1);
      assert.equal(toHex(verified.identityKey), toHex(bob.identity.publicKey));
    }
  });

  it('refuse a bundle presented as another device (a relay swapping in its own keys)', () => {
    const bob = makeDevice();
    const mallory = makeDevice();
    assert.deepEqual(
      refusal(() => verifyBundle(node, mallory.bundle, { deviceKey: bob.key.publicKey, now: NOW })),
      { code: ErrorCode.HANDSHAKE_FAILED, reason: 'device' },
    );
  });

  it("refuse another device's identity key or prekey spliced into the bundle", () => {
    const bob = makeDevice();
    const mallory = makeDevice();
    const opts = { deviceKey: bob.key.publicKey, now: NOW };
    const identitySwap = edited(bob.bundle, (b) => {
      b.identityKey = mallory.bundle.identityKey;
    });
    assert.equal(
      refusal(() => verifyBundle(node, identitySwap, opts)).reason,
      'identity-signature',
    );
    const prekeySwap = edited(bob.bundle, (b) => {
      b.prekey.publicKey = mallory.bundle.prekey.publicKey;
    });
    assert.equal(refusal(() => verifyBundle(node, prekeySwap, opts)).reason, 'prekey-signature');
  });

  it('refuse forged signatures and any signed field changed', () => {
    const bob = makeDevice();
    const opts = { deviceKey: bob.key.publicKey, now: NOW };
    const cases: [string, (b: PrekeyBundleJson) => void, PrekeyFailure][] = [
      [
        'identity signature',
        (b) => void (b.identitySignature = flipBase64(b.identitySignature)),
        'identity-signature',
      ],
      [
        'prekey signature',
        (b) => void (b.prekey.signature = flipBase64(b.prekey.signature)),
        'prekey-signature',
      ],
      ['prekey id', (b) => void (b.prekey.id += 1), 'prekey-signature'],
      ['creation time', (b) => void (b.prekey.createdAt -= 1), 'prekey-signature'],
      ['expiry extended', (b) => void (b.prekey.expiresAt += DAY), 'prekey-signature'],
    ];
    for (const [what, edit, reason] of cases) {
      assert.equal(
        refusal(() => verifyBundle(node, edited(bob.bundle, edit), opts)).reason,
        reason,
        what,
      );
    }
  });

  it('refuse a replayed older prekey id, and accept the current one', () => {
    const bob = makeDevice(3);
    const old = encodeBundle(bob.key.publicKey, bob.identity, bob.prekeys[0] as SignedPrekeyPair);
    const opts = { deviceKey: bob.key.publicKey, now: NOW, minPrekeyId: 3 };
    assert.deepEqual(
      refusal(() => verifyBundle(node, old, opts)),
      {
        code: ErrorCode.HANDSHAKE_FAILED,
        reason: 'stale',
      },
    );
    assert.equal(verifyBundle(node, bob.bundle, opts).prekeyId, 3);
  });

  it('refuse an expired prekey and one dated beyond the clock skew', () => {
    const bob = makeDevice();
    const opts = { deviceKey: bob.key.publicKey };
    const expiresAt = bob.bundle.prekey.expiresAt;
    assert.equal(
      refusal(() => verifyBundle(node, bob.bundle, { ...opts, now: expiresAt })).reason,
      'expired',
    );
    assert.equal(verifyBundle(node, bob.bundle, { ...opts, now: expiresAt - 1 }).prekeyId, 1);
    const createdAt = bob.bundle.prekey.createdAt;
    const early = { ...opts, now: createdAt - MAX_CLOCK_SKEW - 1 };
    assert.equal(refusal(() => verifyBundle(node, bob.bundle, early)).reason, 'not-yet-valid');
  });

  it('refuse malformed bundles as format errors', () => {
    const bob = makeDevice();
    const opts = { deviceKey: bob.key.publicKey, now: NOW };
    const bad: unknown[] = [
      null,
      'x',
      { ...bob.bundle, v: 2 },
      edited(bob.bundle, (b) => void (b.deviceKey = b.deviceKey.slice(0, -4))),
      edited(bob.bundle, (b) => void (b.identityKey = toBase64(new Uint8Array(32)))),
      edited(bob.bundle, (b) => void (b.prekey.id = -1)),
      edited(
        bob.bundle,
        (b) => void (b.prekey.expiresAt = b.prekey.createdAt + MAX_PREKEY_LIFETIME + 1),
      ),
    ];
    for (const bundle of bad) {
      assert.equal(
        refusal(() => verifyBundle(node, bundle, opts)).reason,
        'format',
        JSON.stringify(bundle),
      );
    }
  });

  it('refuse to sign a prekey that would outlive the maximum lifetime', () => {
    const key = generateDeviceKey();
    const identity = createIdentityKey(node, key);
    assert.throws(
      () =>
        createSignedPrekey(node, key, identity.publicKey, {
          id: 1,
          lifetime: MAX_PREKEY_LIFETIME + 1,
        }),
      RangeError,
    );
  });
});

describe('offline agreement', () => {
  it('gives sender and recipient the same secret, across providers', () => {
    const alice = makeDevice();
    const bob = makeDevice();
    for (const [send, receive] of [
      [node, nobleCryptoProvider],
      [nobleCryptoProvider, node],
    ] as const) {
      const verified = verifyBundle(send, bob.bundle, { deviceKey: bob.key.publicKey, now: NOW });
      const sent = offlineAgree(
        send,
        { deviceKey: alice.key.publicKey, identity: alice.identity },
        verified,
      );
      const got = offlineReceive(receive, bob.recipient, sent.header);
      assert.equal(toHex(got.secret), toHex(sent.secret));
      assert.equal(toHex(got.senderDeviceKey), toHex(alice.key.publicKey));
      assert.equal(toHex(got.associatedData), toHex(sent.associatedData));
    }
  });

  it('uses a fresh ephemeral key per message', () => {
    const alice = makeDevice();
    const bob = makeDevice();
    const verified = verifyBundle(node, bob.bundle, { deviceKey: bob.key.publicKey, now: NOW });
    const sender = { deviceKey: alice.key.publicKey, identity: alice.identity };
    const a = offlineAgree(node, sender, verified);
    const b = offlineAgree(node, sender, verified);
    assert.notEqual(a.header.ephemeralKey, b.header.ephemeralKey);
    assert.notEqual(toHex(a.secret), toHex(b.secret));
  });

  it('refuse a header for another device, an unknown prekey or a forged sender identity', () => {
    const alice = makeDevice();
    const bob = makeDevice();
    const carol = makeDevice();
    const mallory = makeDevice();
    const verified = verifyBundle(node, bob.bundle, { deviceKey: bob.key.publicKey, now: NOW });
    const { header } = offlineAgree(
      node,
      { deviceKey: alice.key.publicKey, identity: alice.identity },
      verified,
    );
    assert.deepEqual(
      refusal(() => offlineReceive(node, carol.recipient, header)),
      {
        code: ErrorCode.DECRYPT_FAILED,
        reason: 'device',
      },
    );
    const retired = { ...bob.recipient, prekey: () => undefined };
    assert.equal(refusal(() => offlineReceive(node, retired, header)).reason, 'unknown-prekey');
    // Mallory claims Alice's device key but brings her own identity key and signature.
    const forged = {
      ...header,
      senderIdentityKey: toBase64(mallory.identity.publicKey),
      senderIdentitySignature: toBase64(mallory.identity.signature),
    };
    assert.equal(
      refusal(() => offlineReceive(node, bob.recipient, forged)).reason,
      'identity-signature',
    );
  });

  it('derives a different secret when the ephemeral key is swapped', () => {
    const alice = makeDevice();
    const bob = makeDevice();
    const verified = verifyBundle(node, bob.bundle, { deviceKey: bob.key.publicKey, now: NOW });
    const sent = offlineAgree(
      node,
      { deviceKey: alice.key.publicKey, identity: alice.identity },
      verified,
    );
    const other = {
      ...sent.header,
      ephemeralKey: toBase64(node.x25519PublicKey(node.randomBytes(32))),
    };
    assert.notEqual(toHex(offlineReceive(node, bob.recipient, other).secret), toHex(sent.secret));
  });

  it('refuse a low-order ephemeral key', () => {
    const alice = makeDevice();
    const bob = makeDevice();
    const verified = verifyBundle(node, bob.bundle, { deviceKey: bob.key.publicKey, now: NOW });
    const { header } = offlineAgree(
      node,
      { deviceKey: alice.key.publicKey, identity: alice.identity },
      verified,
    );
    const one = new Uint8Array(32);
    one[0] = 1;
    const lowOrder = { ...header, ephemeralKey: toBase64(one) };
    assert.equal(refusal(() => offlineReceive(node, bob.recipient, lowOrder)).reason, 'weak-key');
  });
});
