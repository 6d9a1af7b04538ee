// Peer pins per device: first contact, another device of a pinned user (as the relay's directory
// lists it), a replaced key, --strict-keys, trust.
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generateDeviceKey } from '../crypto/device-key.js';
import { ErrorCode } from '../protocol/errors.js';
import { KnownPeers, type PinError } from './known-peers.js';

const SERVER = 'relay.example:7443';
const device = (deviceName: string) => ({
  user: 'bob',
  publicKey: generateDeviceKey().publicKey.toString('base64'),
  deviceName,
});
const fresh = () =>
  new KnownPeers(join(mkdtempSync(join(tmpdir(), 'sb-pins-')), 'known_peers.json'));

describe('KnownPeers', () => {
  it('pins the first device, then pins another device the directory lists next to a pinned one', () => {
    const pins = fresh();
    const laptop = device('vm');
    assert.equal(pins.verify(SERVER, laptop), 'first-contact');
    assert.equal(statSync(pins.file).mode & 0o777, 0o600);
    assert.equal(pins.verify(SERVER, laptop), 'pinned');
    // A second home on the same machine: same device name, another key, both listed.
    const second = device('vm');
    const listed = [laptop.publicKey, second.publicKey];
    assert.equal(pins.verify(SERVER, second, 'pin', listed), 'new-device');
    assert.equal(pins.verify(SERVER, laptop), 'pinned');
    assert.equal(pins.verify(SERVER, second), 'pinned');
    assert.deepEqual(
      pins.list(SERVER, 'bob').map((p) => p.via),
      ['directory', 'new-device'],
    );
  });

  it('refuses a key the directory does not list next to a pinned one, with a line for the other end', () => {
    const pins = fresh();
    const laptop = device('vm');
    pins.verify(SERVER, laptop);
    const other = device('vm');
    const refused = (listed: readonly string[] | undefined) =>
      assert.throws(
        () => pins.verify(SERVER, other, 'pin', listed),
        (err: PinError) =>
          err.code === ErrorCode.PEER_KEY_CHANGED &&
          /THE DEVICE KEY OF bob HAS CHANGED/.test(err.message) &&
          /switchboard trust bob --fingerprint-of-peer SHA256:/.test(err.tellPeer) &&
          err.tellPeer.length <= 256 &&
          !err.tellPeer.includes('\n'),
      );
    refused(undefined); // the directory could not be asked
    refused([other.publicKey]); // the pinned device is gone from the directory: replaced
    refused([laptop.publicKey]); // the relay announces a key it does not list
    assert.equal(pins.list(SERVER, 'bob').length, 1);
  });

  it('defers a new device to the caller, or refuses it (--strict-keys), pinning nothing', () => {
    const pins = fresh();
    const laptop = device('vm');
    pins.verify(SERVER, laptop);
    const phone = device('phone');
    const listed = [laptop.publicKey, phone.publicKey];
    assert.equal(pins.verify(SERVER, phone, 'defer', listed), 'new-device');
    assert.equal(pins.check(SERVER, 'bob', phone.publicKey, listed), 'new-device');
    assert.throws(
      () => pins.verify(SERVER, phone, 'refuse', listed),
      (err: PinError) =>
        err.code === ErrorCode.PEER_KEY_CHANGED && /--strict-keys/.test(err.message),
    );
    assert.equal(pins.list(SERVER, 'bob').length, 1);
  });

  it('trusts one device next to the others', () => {
    const pins = fresh();
    const laptop = device('vm');
    pins.verify(SERVER, laptop);
    const reinstalled = device('vm');
    pins.trustDevice(SERVER, 'bob', reinstalled);
    assert.deepEqual(
      pins.list(SERVER, 'bob').map((p) => [p.publicKey, p.via]),
      [
        [laptop.publicKey, 'directory'],
        [reinstalled.publicKey, 'trust'],
      ],
    );
    assert.equal(pins.verify(SERVER, reinstalled), 'pinned');
  });
});
