// Runs the known-answer vectors (test-vectors.ts) against one CryptoProvider; shared by the Node and browser tests.
import { bytesEqual, fromHex, toHex, utf8 } from './bytes.js';
import {
  createIdentityKey,
  createSignedPrekey,
  encodeBundle,
  offlineAgree,
  offlineReceive,
  seedSigner,
  verifyBundle,
} from './prekeys.js';
import type { CryptoProvider } from './provider.js';
import { SecureChannel } from './secure-channel.js';
import {
  AES_GCM_VECTORS,
  ED25519_VECTORS,
  HKDF_VECTOR,
  HMAC_VECTOR,
  RECORD_VECTOR,
  SHA256_VECTOR,
  SWITCHBOARD_VECTOR,
  X25519_DH_VECTOR,
  X25519_VECTORS,
} from './test-vectors.js';

/** How many checks checkVectors runs; tests assert it, so a vector cannot be dropped silently. */
export const VECTOR_CHECK_COUNT = 48;

/** One check's outcome; `detail` says what differed. */
export interface VectorResult {
  name: string;
  ok: boolean;
  detail?: string;
}

/**
 * Every vector, positive and negative, against `provider`. Never throws: a throwing check is a
 * failed result, so a page can report all of them.
 * @example checkVectors(nobleCryptoProvider).filter((r) => !r.ok) // []
 */
export function checkVectors(provider: CryptoProvider): VectorResult[] {
  const results: VectorResult[] = [];
  const check = (name: string, body: () => string | true): void => {
    try {
      const outcome = body();
      results.push(outcome === true ? { name, ok: true } : { name, ok: false, detail: outcome });
    } catch (err) {
      results.push({ name, ok: false, detail: `threw ${(err as Error).message}` });
    }
  };
  const same = (what: string, got: Uint8Array, want: string): string | true =>
    toHex(got) === want ? true : `${what}: got ${toHex(got)}, want ${want}`;
  const throws = (body: () => unknown): boolean => {
    try {
      body();
      return false;
    } catch {
      return true;
    }
  };

  check(SHA256_VECTOR.name, () =>
    same('digest', provider.sha256(fromHex(SHA256_VECTOR.data)), SHA256_VECTOR.digest),
  );
  check(`${SHA256_VECTOR.name} in parts`, () =>
    same('digest', provider.sha256(utf8('a'), utf8(''), utf8('bc')), SHA256_VECTOR.digest),
  );
  check(HMAC_VECTOR.name, () =>
    same(
      'mac',
      provider.hmacSha256(fromHex(HMAC_VECTOR.key), fromHex(HMAC_VECTOR.data)),
      HMAC_VECTOR.mac,
    ),
  );
  check(HKDF_VECTOR.name, () => {
    const { ikm, salt, info, length, okm } = HKDF_VECTOR;
    return same(
      'okm',
      provider.hkdfSha256(fromHex(ikm), fromHex(salt), fromHex(info), length),
      okm,
    );
  });

  for (const v of ED25519_VECTORS) {
    check(`${v.name}: public key`, () =>
      same('public key', provider.ed25519PublicKey(fromHex(v.seed)), v.publicKey),
    );
    check(`${v.name}: sign`, () =>
      same('signature', provider.ed25519Sign(fromHex(v.seed), fromHex(v.message)), v.signature),
    );
    check(`${v.name}: verify`, () =>
      provider.ed25519Verify(fromHex(v.publicKey), fromHex(v.message), fromHex(v.signature))
        ? true
        : 'valid signature refused',
    );
    check(`${v.name}: tampered signature refused`, () => {
      const signature = fromHex(v.signature);
      signature[5] = (signature[5] as number) ^ 1;
      return provider.ed25519Verify(fromHex(v.publicKey), fromHex(v.message), signature)
        ? 'tampered signature accepted'
        : true;
    });
    check(`${v.name}: other message refused`, () =>
      provider.ed25519Verify(fromHex(v.publicKey), utf8('other'), fromHex(v.signature))
        ? 'signature accepted for another message'
        : true,
    );
  }
  const rfc1 = ED25519_VECTORS[0];
  check('Ed25519: S >= L (non-canonical scalar) refused', () => {
    // S + L has the same value mod L; RFC 8032 requires S < L, and both providers enforce it.
    const signature = fromHex(rfc1.signature);
    let s = 0n;
    for (let i = 63; i >= 32; i -= 1) s = (s << 8n) | BigInt(signature[i] as number);
    s += 2n ** 252n + 27742317777372353535851937790883648493n;
    for (let i = 32; i < 64; i += 1) {
      signature[i] = Number(s & 0xffn);
      s >>= 8n;
    }
    return provider.ed25519Verify(fromHex(rfc1.publicKey), fromHex(rfc1.message), signature)
      ? 'non-canonical S accepted'
      : true;
  });
  check('Ed25519: small-order key with zero signature refused', () =>
    provider.ed25519Verify(new Uint8Array(32), utf8('x'), new Uint8Array(64))
      ? 'small-order key accepted'
      : true,
  );
  check('Ed25519: short signature refused', () =>
    provider.ed25519Verify(
      fromHex(rfc1.publicKey),
      fromHex(rfc1.message),
      fromHex(rfc1.signature).subarray(0, 63),
    )
      ? 'short signature accepted'
      : true,
  );

  for (const v of X25519_VECTORS) {
    check(v.name, () =>
      same('shared', provider.x25519(fromHex(v.privateKey), fromHex(v.peerPublicKey)), v.shared),
    );
  }
  const d = X25519_DH_VECTOR;
  check(`${d.name}: public keys`, () => {
    const a = same('alice', provider.x25519PublicKey(fromHex(d.alicePrivate)), d.alicePublic);
    return a === true
      ? same('bob', provider.x25519PublicKey(fromHex(d.bobPrivate)), d.bobPublic)
      : a;
  });
  check(`${d.name}: shared secret both ways`, () => {
    const a = same(
      'alice',
      provider.x25519(fromHex(d.alicePrivate), fromHex(d.bobPublic)),
      d.shared,
    );
    return a === true
      ? same('bob', provider.x25519(fromHex(d.bobPrivate), fromHex(d.alicePublic)), d.shared)
      : a;
  });
  check('X25519: low-order peer point (u = 0) refused', () =>
    throws(() => provider.x25519(fromHex(d.alicePrivate), new Uint8Array(32)))
      ? true
      : 'all-zero shared secret returned',
  );
  check('X25519: low-order peer point (u = 1) refused', () => {
    const one = new Uint8Array(32);
    one[0] = 1;
    return throws(() => provider.x25519(fromHex(d.alicePrivate), one))
      ? true
      : 'all-zero shared secret returned';
  });

  for (const v of AES_GCM_VECTORS) {
    const key = fromHex(v.key);
    const nonce = fromHex(v.nonce);
    const aad = fromHex(v.aad);
    check(`${v.name}: seal`, () =>
      same('sealed', provider.aes256GcmSeal(key, nonce, fromHex(v.plaintext), aad), v.sealed),
    );
    check(`${v.name}: open`, () =>
      same('plaintext', provider.aes256GcmOpen(key, nonce, fromHex(v.sealed), aad), v.plaintext),
    );
    check(`${v.name}: tampered tag refused`, () => {
      const sealed = fromHex(v.sealed);
      sealed[sealed.length - 1] = (sealed[sealed.length - 1] as number) ^ 0x80;
      return throws(() => provider.aes256GcmOpen(key, nonce, sealed, aad))
        ? true
        : 'tampered record opened';
    });
  }
  check('GCM test case 16: sealed with its AAD as a header in front', () => {
    const v = AES_GCM_VECTORS[3];
    const record = provider.aes256GcmSealWithHeader(
      fromHex(v.key),
      fromHex(v.nonce),
      fromHex(v.aad),
      fromHex(v.plaintext),
    );
    return same('header || sealed', record, `${v.aad}${v.sealed}`);
  });
  check(`${RECORD_VECTOR.name}: sealed`, () => {
    const r = RECORD_VECTOR;
    const channel = new SecureChannel(fromHex(r.sendKey), fromHex(r.receiveKey), { provider });
    const got = r.plaintexts.map((p) => toHex(channel.seal(fromHex(p))));
    return got.join() === r.records.join() ? true : `records: got ${got.join()}`;
  });
  check(`${RECORD_VECTOR.name}: opened in order, a replay refused`, () => {
    const r = RECORD_VECTOR;
    const peer = new SecureChannel(fromHex(r.receiveKey), fromHex(r.sendKey), { provider });
    const opened = r.records.map((record) => toHex(peer.open(fromHex(record))));
    if (opened.join() !== r.plaintexts.join()) return `plaintexts: got ${opened.join()}`;
    return throws(() => peer.open(fromHex(r.records[0]))) ? true : 'a replayed record opened';
  });
  check('AES-GCM: wrong AAD refused', () => {
    const v = AES_GCM_VECTORS[3];
    return throws(() =>
      provider.aes256GcmOpen(fromHex(v.key), fromHex(v.nonce), fromHex(v.sealed), utf8('x')),
    )
      ? true
      : 'opened under other associated data';
  });

  check('randomBytes: length and not constant', () => {
    const a = provider.randomBytes(70_000);
    const b = provider.randomBytes(32);
    if (a.length !== 70_000 || b.length !== 32) return 'wrong length';
    return bytesEqual(a.subarray(0, 32), b) || a.subarray(65_536).every((x) => x === 0)
      ? 'not random'
      : true;
  });

  const s = SWITCHBOARD_VECTOR;
  const fixture = switchboardFixture(provider);
  check(`${s.name}: bundle`, () => {
    const got = JSON.stringify(fixture.bundle);
    return got === JSON.stringify(s.bundle) ? true : `bundle: got ${got}`;
  });
  check(`${s.name}: header and secret`, () => {
    const got = JSON.stringify(fixture.agreement.header);
    if (got !== JSON.stringify(s.header)) return `header: got ${got}`;
    return same('secret', fixture.agreement.secret, s.secret);
  });
  check(`${s.name}: recipient derives the same secret`, () => {
    const received = offlineReceive(provider, fixture.recipient, s.header);
    return same('secret', received.secret, s.secret);
  });
  return results;
}

/** The fixed-key bundle and agreement of SWITCHBOARD_VECTOR, computed with `provider`. */
export function switchboardFixture(provider: CryptoProvider) {
  const s = SWITCHBOARD_VECTOR;
  const sender = seedSigner(provider, fromHex(s.senderDeviceSeed));
  const recipientSigner = seedSigner(provider, fromHex(s.recipientDeviceSeed));
  const senderIdentity = createIdentityKey(provider, sender, fromHex(s.senderIdentityPrivate));
  const identity = createIdentityKey(
    provider,
    recipientSigner,
    fromHex(s.recipientIdentityPrivate),
  );
  const prekey = createSignedPrekey(provider, recipientSigner, identity.publicKey, {
    id: s.prekeyId,
    now: s.prekeyCreatedAt,
    lifetime: s.prekeyLifetime,
    privateKey: fromHex(s.prekeyPrivate),
  });
  const bundle = encodeBundle(recipientSigner.publicKey, identity, prekey);
  const verified = verifyBundle(provider, bundle, {
    deviceKey: recipientSigner.publicKey,
    now: s.prekeyCreatedAt,
  });
  const agreement = offlineAgree(
    provider,
    { deviceKey: sender.publicKey, identity: senderIdentity },
    verified,
    fromHex(s.ephemeralPrivate),
  );
  const recipient = {
    deviceKey: recipientSigner.publicKey,
    identity,
    prekey: (id: number) => (id === prekey.id ? prekey : undefined),
  };
  return { bundle, agreement, recipient };
}
