// Unit tests for the end-to-end handshake: a spec-level reference, tampering, active relays, misuse.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPublicKey,
  diffieHellman,
  createPrivateKey,
  randomBytes,
  hkdfSync,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import type { DeviceKeyPair } from './device-key.js';
import { generateDeviceKey, verifySignature } from './device-key.js';
import {
  ControllerHandshake,
  handshakeStep,
  HostHandshake,
  MAX_PROLOGUE_BYTES,
} from './handshake.js';
import type { HandshakeResult } from './handshake.js';
import { SecureChannel } from './secure-channel.js';
import { toHex } from './bytes.js';
import { nobleCryptoProvider } from './noble-provider.js';
import { nodeCryptoProvider } from './node-provider.js';
import { seedSigner } from './prekeys.js';
import type { CryptoProvider } from './provider.js';

const PROLOGUE = Buffer.from('switchboard-e2e-v1\0session-42');

const hostKey = generateDeviceKey();
const controllerKey = generateDeviceKey();
const malloryKey = generateDeviceKey();

function handshakeFailed(pattern?: RegExp) {
  return (err: unknown) =>
    err instanceof CryptoError &&
    err.code === ErrorCode.HANDSHAKE_FAILED &&
    (pattern === undefined || pattern.test(err.message));
}

/** Byte-for-byte equality whatever the classes (Buffer, Uint8Array). */
function same(actual: Uint8Array, expected: Uint8Array, message?: string): void {
  assert.equal(toHex(actual), toHex(expected), message);
}

function differ(a: Uint8Array, b: Uint8Array): void {
  assert.notEqual(toHex(a), toHex(b));
}

function flip(message: Uint8Array, index: number, mask = 0x01): Buffer {
  const copy = Buffer.from(message);
  copy[index] = (copy[index] ?? 0) ^ mask;
  return copy;
}

interface Run {
  controller: ControllerHandshake;
  host: HostHandshake;
  msg1: Uint8Array;
  msg2: Uint8Array;
  msg3: Uint8Array;
  controllerResult: HandshakeResult;
  hostResult: HandshakeResult;
  hostSawKey: Uint8Array;
}

function runHandshake(
  controllerPrologue: Uint8Array = PROLOGUE,
  hostPrologue: Uint8Array = PROLOGUE,
): Run {
  const controller = new ControllerHandshake({ key: controllerKey, prologue: controllerPrologue });
  const host = new HostHandshake({ key: hostKey, prologue: hostPrologue });
  const msg1 = controller.start();
  const msg2 = host.respond(msg1);
  const { peerPublicKey: hostSawKey } = controller.receive(msg2);
  const { message: msg3, result: controllerResult } = controller.finish();
  const hostResult = host.receive(msg3);
  return { controller, host, msg1, msg2, msg3, controllerResult, hostResult, hostSawKey };
}

// An independent reading of the wire format documented at the top of handshake.ts, written
// from node:crypto alone, so the tests check the spec rather than the code against itself.
const ref = {
  // RFC 8410 DER wrappers (no generateKeyPairSync/JWK export: they can deadlock on Node 20).
  ephemeral(): { privateKey: KeyObject; raw: Buffer } {
    const privateKey = createPrivateKey({
      key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), randomBytes(32)]),
      format: 'der',
      type: 'pkcs8',
    });
    const der = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
    return { privateKey, raw: Buffer.from(der.subarray(der.length - 32)) };
  },
  dh(privateKey: KeyObject, peer: Uint8Array): Buffer {
    const spki = Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), peer]);
    return diffieHellman({
      privateKey,
      publicKey: createPublicKey({ key: spki, format: 'der', type: 'spki' }),
    });
  },
  sha256(...parts: (Uint8Array | string)[]): Buffer {
    const hash = createHash('sha256');
    for (const part of parts) hash.update(part);
    return hash.digest();
  },
  h1(prologue: Uint8Array, ec: Uint8Array, eh: Uint8Array): Buffer {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(prologue.length);
    return ref.sha256('sb-hs1', length, prologue, ec, eh);
  },
  /** [c2h, h2c] */
  keys(dh: Uint8Array, salt: Uint8Array, info: string): [Buffer, Buffer] {
    const okm = Buffer.from(hkdfSync('sha256', dh, salt, info, 64));
    return [okm.subarray(0, 32), okm.subarray(32)];
  },
  seal(key: Uint8Array, plaintext: Uint8Array): Buffer {
    const cipher = createCipheriv('aes-256-gcm', key, Buffer.alloc(12));
    return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  },
  open(key: Uint8Array, sealed: Uint8Array): Buffer {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.alloc(12));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([
      decipher.update(sealed.subarray(0, sealed.length - 16)),
      decipher.final(),
    ]);
  },
};

/** A host written from the spec: answers msg1, checks msg3, returns what it derived. */
function refHost(key: DeviceKeyPair, prologue: Uint8Array, msg1: Uint8Array) {
  const ec = msg1.subarray(1);
  const e = ref.ephemeral();
  const dh = ref.dh(e.privateKey, ec);
  const h1 = ref.h1(prologue, ec, e.raw);
  const [kC2h, kH2c] = ref.keys(dh, h1, 'sb handshake');
  const signature = key.sign(Buffer.concat([Buffer.from('sb-host-sig'), h1]));
  const msg2 = Buffer.concat([
    Buffer.of(2),
    e.raw,
    ref.seal(kH2c, Buffer.concat([key.publicKey, signature])),
  ]);
  const h2 = ref.sha256(h1, key.publicKey);
  return {
    msg2,
    finish(msg3: Uint8Array) {
      assert.equal(msg3[0], 3);
      const payload = ref.open(kC2h, msg3.subarray(1));
      const peer = payload.subarray(0, 32);
      const ok = verifySignature(
        peer,
        Buffer.concat([Buffer.from('sb-ctl-sig'), h2]),
        payload.subarray(32),
      );
      assert.ok(ok, 'reference host: controller signature');
      const h3 = ref.sha256(h2, peer);
      const [c2h, h2c] = ref.keys(dh, h3, 'sb traffic');
      return { peer, h3, channel: new SecureChannel(h2c, c2h) };
    },
  };
}

/** A controller written from the spec. */
function refController(key: DeviceKeyPair, prologue: Uint8Array) {
  const e = ref.ephemeral();
  return {
    msg1: Buffer.concat([Buffer.of(1), e.raw]),
    receive(msg2: Uint8Array) {
      const eh = msg2.subarray(1, 33);
      const dh = ref.dh(e.privateKey, eh);
      const h1 = ref.h1(prologue, e.raw, eh);
      const [kC2h, kH2c] = ref.keys(dh, h1, 'sb handshake');
      const payload = ref.open(kH2c, msg2.subarray(33));
      const peer = payload.subarray(0, 32);
      const ok = verifySignature(
        peer,
        Buffer.concat([Buffer.from('sb-host-sig'), h1]),
        payload.subarray(32),
      );
      assert.ok(ok, 'reference controller: host signature');
      const h2 = ref.sha256(h1, peer);
      const signature = key.sign(Buffer.concat([Buffer.from('sb-ctl-sig'), h2]));
      const msg3 = Buffer.concat([
        Buffer.of(3),
        ref.seal(kC2h, Buffer.concat([key.publicKey, signature])),
      ]);
      const h3 = ref.sha256(h2, key.publicKey);
      const [c2h, h2c] = ref.keys(dh, h3, 'sb traffic');
      return { peer, msg3, h3, channel: new SecureChannel(c2h, h2c) };
    },
  };
}

describe('handshake', () => {
  it('authenticates both sides and keys a channel in both directions', () => {
    const run = runHandshake();
    same(run.hostSawKey, hostKey.publicKey);
    same(run.controllerResult.peerPublicKey, hostKey.publicKey);
    same(run.hostResult.peerPublicKey, controllerKey.publicKey);
    assert.equal(run.controllerResult.handshakeHash.length, 32);
    same(run.controllerResult.handshakeHash, run.hostResult.handshakeHash);

    const c = run.controllerResult.channel;
    const h = run.hostResult.channel;
    for (let i = 0; i < 3; i++) {
      same(h.open(c.seal(Buffer.from(`keys ${i}`))), Buffer.from(`keys ${i}`));
      same(c.open(h.seal(Buffer.from(`screen ${i}`))), Buffer.from(`screen ${i}`));
    }
  });

  it('produces messages of fixed sizes that handshakeStep recognises', () => {
    const run = runHandshake();
    assert.equal(run.msg1.length, 33);
    assert.equal(run.msg2.length, 145);
    assert.equal(run.msg3.length, 113);
    assert.equal(handshakeStep(run.msg1), 1);
    assert.equal(handshakeStep(run.msg2), 2);
    assert.equal(handshakeStep(run.msg3), 3);
    assert.equal(handshakeStep(Buffer.alloc(0)), undefined);
    assert.equal(handshakeStep(run.msg1.subarray(0, 32)), undefined);
    assert.equal(handshakeStep(Buffer.concat([run.msg2, Buffer.of(0)])), undefined);
    assert.equal(handshakeStep(flip(run.msg1, 0, 0x05)), undefined); // type byte 4
    assert.equal(handshakeStep(Buffer.from('{"type":"hello"}')), undefined);
    // The identities never travel in the clear: neither static key appears in any message.
    for (const message of [run.msg1, run.msg2, run.msg3]) {
      assert.equal(Buffer.from(message).indexOf(hostKey.publicKey), -1);
      assert.equal(Buffer.from(message).indexOf(controllerKey.publicKey), -1);
    }
  });

  it('follows the documented wire format (real controller, reference host)', () => {
    const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    const host = refHost(hostKey, PROLOGUE, controller.start());
    same(controller.receive(host.msg2).peerPublicKey, hostKey.publicKey);
    const { message, result } = controller.finish();
    const done = host.finish(message);
    same(done.peer, controllerKey.publicKey);
    same(result.handshakeHash, done.h3);
    same(done.channel.open(result.channel.seal(Buffer.from('up'))), Buffer.from('up'));
    same(result.channel.open(done.channel.seal(Buffer.from('down'))), Buffer.from('down'));
  });

  it('follows the documented wire format (reference controller, real host)', () => {
    const controller = refController(controllerKey, PROLOGUE);
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    const done = controller.receive(host.respond(controller.msg1));
    same(done.peer, hostKey.publicKey);
    const result = host.receive(done.msg3);
    same(result.peerPublicKey, controllerKey.publicKey);
    same(result.handshakeHash, done.h3);
    same(result.channel.open(done.channel.seal(Buffer.from('up'))), Buffer.from('up'));
    same(done.channel.open(result.channel.seal(Buffer.from('down'))), Buffer.from('down'));
  });

  it('fails when the two sides use different prologues', () => {
    const cases: [string, string][] = [
      ['switchboard-e2e-v1 session-1', 'switchboard-e2e-v1 session-2'],
      ['switchboard-e2e-v1', 'switchboard-e2e-v2'],
      ['', 'x'],
    ];
    for (const [a, b] of cases) {
      assert.throws(
        () => runHandshake(Buffer.from(a), Buffer.from(b)),
        handshakeFailed(/msg2 failed authentication/),
      );
    }
  });

  it('derives fresh keys for every handshake between the same devices', () => {
    const first = runHandshake();
    const second = runHandshake();
    differ(first.msg1, second.msg1);
    differ(first.msg2, second.msg2);
    differ(first.controllerResult.handshakeHash, second.controllerResult.handshakeHash);
    const plaintext = Buffer.from('same bytes, same position');
    const recordA = first.controllerResult.channel.seal(plaintext);
    const recordB = second.controllerResult.channel.seal(plaintext);
    differ(recordA, recordB);
    assert.throws(() => second.hostResult.channel.open(recordA), CryptoError);
    same(first.hostResult.channel.open(recordA), plaintext);
  });

  it('rejects a relay that swaps the ephemeral key in msg2', () => {
    const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    const msg2 = host.respond(controller.start());
    const swapped = Buffer.concat([msg2.subarray(0, 1), ref.ephemeral().raw, msg2.subarray(33)]);
    assert.throws(() => controller.receive(swapped), handshakeFailed());
  });

  it('rejects a relay that swaps the ephemeral key in msg1', () => {
    const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    controller.start();
    const msg2 = host.respond(Buffer.concat([Buffer.of(1), ref.ephemeral().raw]));
    assert.throws(() => controller.receive(msg2), handshakeFailed());
  });

  it('defeats an active relay that runs a separate key exchange with each side', () => {
    // Mallory (the relay) replaces both ephemerals, so she can decrypt and re-encrypt every
    // payload. Only the signatures over both ephemerals stop her.
    const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    const msg1 = controller.start();
    const ec = msg1.subarray(1);

    const towardHost = ref.ephemeral();
    const msg2 = host.respond(Buffer.concat([Buffer.of(1), towardHost.raw]));
    const eh = msg2.subarray(1, 33);
    const dhHost = ref.dh(towardHost.privateKey, eh);
    const h1Host = ref.h1(PROLOGUE, towardHost.raw, eh);
    const [hostC2h, hostH2c] = ref.keys(dhHost, h1Host, 'sb handshake');
    const hostPayload = ref.open(hostH2c, msg2.subarray(33)); // she can read the host's identity...

    const towardController = ref.ephemeral();
    const dhController = ref.dh(towardController.privateKey, ec);
    const h1Controller = ref.h1(PROLOGUE, ec, towardController.raw);
    const [, controllerH2c] = ref.keys(dhController, h1Controller, 'sb handshake');
    const forgedMsg2 = Buffer.concat([
      Buffer.of(2),
      towardController.raw,
      ref.seal(controllerH2c, hostPayload), // ...and re-encrypt it, but the signature is over h1Host
    ]);
    assert.throws(() => controller.receive(forgedMsg2), handshakeFailed(/host signature/));

    // Toward the host she must claim the controller's key, and cannot sign for it.
    const h2Host = ref.sha256(h1Host, hostKey.publicKey);
    const forgedSig = malloryKey.sign(Buffer.concat([Buffer.from('sb-ctl-sig'), h2Host]));
    const forgedMsg3 = Buffer.concat([
      Buffer.of(3),
      ref.seal(hostC2h, Buffer.concat([controllerKey.publicKey, forgedSig])),
    ]);
    assert.throws(() => host.receive(forgedMsg3), handshakeFailed(/controller signature/));
  });

  it('lets a relay authenticate only as itself, never as someone else', () => {
    // The relay's best case: finish a handshake with the host under its own key. The host
    // then holds Mallory's key, not the controller's, and its pin check refuses it.
    const mallory = refController(malloryKey, PROLOGUE);
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    const { msg3 } = mallory.receive(host.respond(mallory.msg1));
    const result = host.receive(msg3);
    same(result.peerPublicKey, malloryKey.publicKey);
    differ(result.peerPublicKey, controllerKey.publicKey);
  });

  it('rejects a msg3 made by a third key in another handshake', () => {
    const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    controller.receive(host.respond(controller.start()));

    // Mallory completes her own handshake with the same host key and splices her msg3 in.
    const mallory = new ControllerHandshake({ key: malloryKey, prologue: PROLOGUE });
    const otherHost = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    mallory.receive(otherHost.respond(mallory.start()));
    const malloryMsg3 = mallory.finish().message;
    assert.throws(() => host.receive(malloryMsg3), handshakeFailed(/msg3 failed authentication/));
  });

  it('rejects a msg3 from the right controller but another handshake (replay)', () => {
    const old = runHandshake();
    const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    controller.receive(host.respond(controller.start()));
    assert.throws(() => host.receive(old.msg3), handshakeFailed());
  });

  it('rejects a replayed msg2 from an earlier handshake', () => {
    const old = runHandshake();
    const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    controller.start();
    assert.throws(() => controller.receive(old.msg2), handshakeFailed());
  });

  it('rejects msg2 with any single bit flipped', () => {
    const template = runHandshake().msg2;
    for (let i = 0; i < template.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
        const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
        const msg2 = host.respond(controller.start());
        assert.throws(
          () => controller.receive(flip(msg2, i, mask)),
          handshakeFailed(),
          `byte ${i}`,
        );
      }
    }
  });

  it('rejects msg3 with any single bit flipped', () => {
    const template = runHandshake().msg3;
    for (let i = 0; i < template.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
        const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
        controller.receive(host.respond(controller.start()));
        const { message } = controller.finish();
        assert.throws(() => host.receive(flip(message, i, mask)), handshakeFailed(), `byte ${i}`);
      }
    }
  });

  it('fails the handshake when any bit of msg1 is flipped', () => {
    for (let i = 0; i < 33; i++) {
      const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
      const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
      const msg1 = flip(controller.start(), i, 1 << (i % 8));
      assert.throws(() => controller.receive(host.respond(msg1)), handshakeFailed(), `byte ${i}`);
    }
  });

  it('rejects low-order ephemeral keys', () => {
    // X25519 u = 0 and u = 1 are of small order: the shared secret would be fixed (zero).
    for (const u of [Buffer.alloc(32), Buffer.concat([Buffer.of(1), Buffer.alloc(31)])]) {
      const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
      assert.throws(() => host.respond(Buffer.concat([Buffer.of(1), u])), handshakeFailed());
    }
    const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    const msg2 = host.respond(controller.start());
    msg2.fill(0, 1, 33);
    assert.throws(() => controller.receive(msg2), handshakeFailed());
  });

  it('rejects truncated, extended, empty and mistyped messages', () => {
    const run = runHandshake();
    const badFor = (message: Uint8Array) => [
      Buffer.alloc(0),
      message.subarray(0, 1),
      message.subarray(0, message.length - 1),
      Buffer.concat([message, Buffer.of(0)]),
    ];
    for (const bad of badFor(run.msg1)) {
      const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
      assert.throws(() => host.respond(bad), handshakeFailed());
    }
    for (const bad of [...badFor(run.msg2), run.msg1, run.msg3]) {
      const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
      controller.start();
      assert.throws(() => controller.receive(bad), handshakeFailed());
    }
    for (const bad of badFor(run.msg3)) {
      const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
      const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
      controller.receive(host.respond(controller.start()));
      assert.throws(() => host.receive(bad), handshakeFailed());
    }
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    assert.throws(() => host.respond(run.msg2), handshakeFailed(/expected handshake message 1/));
    assert.throws(() => host.respond('hello' as unknown as Uint8Array), handshakeFailed());
  });

  it('rejects steps called out of order', () => {
    const { msg1, msg2, msg3 } = runHandshake();
    const fresh = () => new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    assert.throws(() => fresh().receive(msg2), handshakeFailed(/out of order/));
    assert.throws(() => fresh().finish(), handshakeFailed(/out of order/));
    const twice = fresh();
    twice.start();
    assert.throws(() => twice.start(), handshakeFailed(/out of order/));
    const early = fresh();
    early.start();
    assert.throws(() => early.finish(), handshakeFailed(/out of order/));

    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    assert.throws(() => host.receive(msg3), handshakeFailed(/out of order/));
    const host2 = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    host2.respond(msg1);
    assert.throws(() => host2.respond(msg1), handshakeFailed(/out of order/));
  });

  it('refuses all further use once a step has failed', () => {
    const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    const msg2 = host.respond(controller.start());
    assert.throws(() => controller.receive(flip(msg2, 100)), handshakeFailed());
    assert.throws(() => controller.receive(msg2), handshakeFailed(/already failed/));
    assert.throws(() => controller.finish(), handshakeFailed(/already failed/));

    const c2 = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    const h2 = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    c2.receive(h2.respond(c2.start()));
    const { message } = c2.finish();
    assert.throws(() => h2.receive(flip(message, 50)), handshakeFailed());
    assert.throws(() => h2.receive(message), handshakeFailed(/already failed/));
  });

  it('is single use: a finished handshake accepts no more messages', () => {
    const run = runHandshake();
    assert.throws(() => run.controller.finish(), handshakeFailed());
    assert.throws(() => run.controller.start(), handshakeFailed());
    assert.throws(() => run.host.receive(run.msg3), handshakeFailed());
    assert.throws(() => run.host.respond(run.msg1), handshakeFailed());
  });

  it('binds the prologue as given at construction', () => {
    const prologue = Buffer.from(PROLOGUE);
    const controller = new ControllerHandshake({ key: controllerKey, prologue });
    prologue.fill(0); // the caller reuses its buffer
    const host = new HostHandshake({ key: hostKey, prologue: PROLOGUE });
    controller.receive(host.respond(controller.start()));
    host.receive(controller.finish().message);
  });

  it('validates its options', () => {
    assert.throws(
      () => new ControllerHandshake({ key: controllerKey, prologue: 'x' as unknown as Uint8Array }),
      TypeError,
    );
    assert.throws(
      () => new HostHandshake({ key: {} as DeviceKeyPair, prologue: PROLOGUE }),
      TypeError,
    );
    assert.throws(
      () => new HostHandshake({ key: hostKey, prologue: Buffer.alloc(MAX_PROLOGUE_BYTES + 1) }),
      RangeError,
    );
    new HostHandshake({ key: hostKey, prologue: Buffer.alloc(MAX_PROLOGUE_BYTES) });
  });
});

describe('handshake across providers (node:crypto and @noble)', () => {
  const PROVIDERS: CryptoProvider[] = [nodeCryptoProvider, nobleCryptoProvider];
  /** A device key as the browser holds one: a raw seed behind seedSigner. */
  const seedKey = (p: CryptoProvider) => seedSigner(p, p.randomBytes(32));

  for (const controllerProvider of PROVIDERS) {
    for (const hostProvider of PROVIDERS) {
      it(`${controllerProvider.name} controller with ${hostProvider.name} host: keys, hash and records agree`, () => {
        const cKey = seedKey(controllerProvider);
        const hKey = seedKey(hostProvider);
        const controller = new ControllerHandshake({
          key: cKey,
          prologue: PROLOGUE,
          provider: controllerProvider,
        });
        const host = new HostHandshake({ key: hKey, prologue: PROLOGUE, provider: hostProvider });
        const msg2 = host.respond(controller.start());
        same(controller.receive(msg2).peerPublicKey, hKey.publicKey);
        const { message, result: c } = controller.finish();
        const h = host.receive(message);
        same(h.peerPublicKey, cKey.publicKey);
        same(c.handshakeHash, h.handshakeHash);
        for (const result of [c, h]) {
          // Plain Uint8Array whatever the provider, so callers cannot come to rely on Buffer.
          assert.equal(Object.getPrototypeOf(result.peerPublicKey), Uint8Array.prototype);
          assert.equal(Object.getPrototypeOf(result.handshakeHash), Uint8Array.prototype);
        }
        for (let i = 0; i < 3; i++) {
          same(h.channel.open(c.channel.seal(Buffer.from(`keys ${i}`))), Buffer.from(`keys ${i}`));
          same(c.channel.open(h.channel.seal(Buffer.from(`out ${i}`))), Buffer.from(`out ${i}`));
        }
        assert.deepEqual(
          [c.channel.nextSendSeq, c.channel.nextReceiveSeq, h.channel.nextSendSeq],
          [3, 3, 3],
        );
      });
    }
  }

  it('a noble controller follows the documented wire format (reference host)', () => {
    const controller = new ControllerHandshake({
      key: controllerKey,
      prologue: PROLOGUE,
      provider: nobleCryptoProvider,
    });
    const host = refHost(hostKey, PROLOGUE, controller.start());
    same(controller.receive(host.msg2).peerPublicKey, hostKey.publicKey);
    const { message, result } = controller.finish();
    const done = host.finish(message);
    same(done.peer, controllerKey.publicKey);
    same(result.handshakeHash, done.h3);
  });

  it('a noble host follows the documented wire format (reference controller)', () => {
    const controller = refController(controllerKey, PROLOGUE);
    const host = new HostHandshake({
      key: hostKey,
      prologue: PROLOGUE,
      provider: nobleCryptoProvider,
    });
    const done = controller.receive(host.respond(controller.msg1));
    same(done.peer, hostKey.publicKey);
    const result = host.receive(done.msg3);
    same(result.peerPublicKey, controllerKey.publicKey);
    same(result.handshakeHash, done.h3);
  });

  it('a noble host refuses a forged controller signature and a low-order ephemeral', () => {
    const host = new HostHandshake({
      key: hostKey,
      prologue: PROLOGUE,
      provider: nobleCryptoProvider,
    });
    assert.throws(
      () => host.respond(Buffer.concat([Buffer.of(1), Buffer.alloc(32)])),
      handshakeFailed(),
    );
    const controller = new ControllerHandshake({ key: controllerKey, prologue: PROLOGUE });
    const host2 = new HostHandshake({
      key: hostKey,
      prologue: PROLOGUE,
      provider: nobleCryptoProvider,
    });
    controller.receive(host2.respond(controller.start()));
    assert.throws(() => host2.receive(flip(controller.finish().message, 60)), handshakeFailed());
  });

  it('refuses an option that is not a CryptoProvider', () => {
    assert.throws(
      () =>
        new HostHandshake({
          key: hostKey,
          prologue: PROLOGUE,
          provider: {} as CryptoProvider,
        }),
      TypeError,
    );
  });
});
