// Peer pins per device: first contact, another device of a pinned user, a changed key, trust.
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generateDeviceKey } from '../crypto/device-key.js';
import { ErrorCode } from '../protocol/errors.js';
import type { PinError } from './known-peers.js';
import { KnownPeers } from './known-peers.js';

const SERVER = 'relay.example:7443';
const device = (deviceName: string) => ({
  user: 'bob',
  publicKey: generateDeviceKey().publicKey.toString('base64'),
  deviceName,
});
const fresh = () =>
  new KnownPeers(join(mkdtempSync(join(tmpdir(), 'sb-pins-')), 'known_peers.json'));

describe('KnownPeers', () => {
  it('pins the first device, then tells a new device of the user from a changed key of a pinned one', () => {
    const pins = fresh();
    const laptop = device('laptop');
    assert.equal(pins.verify(SERVER, laptop), 'first-contact');
    assert.equal(statSync(pins.file).mode & 0o777, 0o600);
    assert.equal(pins.verify(SERVER, laptop), 'pinned');
    // Another device, under a name no pin has: pinned (default policy), the first one kept.
    const desktop = device('desktop');
    assert.equal(pins.verify(SERVER, desktop), 'new-device');
    assert.equal(pins.verify(SERVER, laptop), 'pinned');
    assert.equal(pins.verify(SERVER, desktop), 'pinned');
    assert.deepEqual(
      pins.list(SERVER, 'bob').map((p) => [p.deviceName, p.via]),
      [
        ['laptop', 'directory'],
        ['desktop', 'new-device'],
      ],
    );
    // A pinned device's name with another key: refused loudly, with a line for the other end.
    const impostor = { ...device('laptop') };
    assert.throws(
      () => pins.verify(SERVER, impostor),
      (err: PinError) =>
        err.code === ErrorCode.PEER_KEY_CHANGED &&
        /THE DEVICE KEY OF bob HAS CHANGED/.test(err.message) &&
        /switchboard trust bob/.test(err.tellPeer) &&
        err.tellPeer.length <= 256 &&
        !err.tellPeer.includes('\n'),
    );
  });

  it('defers a new device to the caller, or refuses it (--strict-keys), pinning nothing', () => {
    const pins = fresh();
    pins.verify(SERVER, device('laptop'));
    const phone = device('phone');
    assert.equal(pins.verify(SERVER, phone, 'defer'), 'new-device');
    assert.equal(pins.check(SERVER, 'bob', phone.publicKey, 'phone'), 'new-device');
    assert.throws(
      () => pins.verify(SERVER, phone, 'refuse'),
      (err: PinError) =>
        err.code === ErrorCode.PEER_KEY_CHANGED && /--strict-keys/.test(err.message),
    );
    assert.equal(pins.list(SERVER, 'bob').length, 1);
  });

  it('treats a pin without a device name (older files) as matching any name: changed, not new', () => {
    const pins = fresh();
    const old = device('laptop');
    pins.pin(SERVER, 'bob', old.publicKey, 'directory');
    assert.equal(pins.check(SERVER, 'bob', device('other').publicKey, 'other'), 'changed');
  });

  it('trusts one device next to the others, replacing only that device name', () => {
    const pins = fresh();
    const laptop = device('laptop');
    const desktop = device('desktop');
    pins.verify(SERVER, laptop);
    pins.verify(SERVER, desktop);
    const reinstalled = device('laptop');
    pins.trustDevice(SERVER, 'bob', reinstalled);
    assert.deepEqual(
      pins.list(SERVER, 'bob').map((p) => [p.deviceName, p.publicKey, p.via]),
      [
        ['desktop', desktop.publicKey, 'new-device'],
        ['laptop', reinstalled.publicKey, 'trust'],
      ],
    );
    assert.equal(pins.verify(SERVER, reinstalled), 'pinned');
    assert.equal(pins.verify(SERVER, desktop), 'pinned');
  });
});
