// Pinned device keys of other users (per relay), like SSH's known_hosts but for people: the rules,
// over a store that holds them (a file for the CLI, known-peers.ts; IndexedDB for the page).
import { fromBase64 } from '../crypto/bytes.js';
import { keyFingerprint } from '../crypto/fingerprint.js';
import { CryptoError, ErrorCode } from '../protocol/errors.js';

export interface PinnedKey {
  publicKey: string;
  fingerprint: string;
  /** The device's name as the relay listed it when pinned (absent in pins from before names). */
  deviceName?: string;
  addedAt: string;
  /**
   * 'directory': first contact, vouched for by the relay; 'new-device': another device of a user
   * already pinned, accepted by policy or by the host's answer; 'trust': re-verified by the user.
   */
  via: 'directory' | 'new-device' | 'trust';
}

/** Every pin, by `user@server`. */
export type PinFile = Record<string, PinnedKey[]>;

/** Where pins live: read whole, written whole (small: a few keys per user). */
export interface PinStore {
  read(): PinFile;
  write(pins: PinFile): void;
}

/**
 * 'new-device': the user has pins; this key is none of them, but the relay's directory lists it
 * next to at least one pinned key of theirs: another device of theirs, not a replaced key.
 */
export type PinCheck = 'pinned' | 'first-contact' | 'new-device' | 'changed';

/** A peer as the handshake proved it: its user, key, and the device name the relay gave. */
export interface PinPeer {
  user: string;
  publicKey: string;
  deviceName: string;
}

/**
 * What to do with a new device of a pinned user: pin it at once, leave it to the caller (who
 * pins it with `pin()` once, say, the host approved), or refuse it (`--strict-keys`).
 */
export type NewDevicePolicy = 'pin' | 'defer' | 'refuse';

/**
 * A refused key. `tellPeer` is what the other end is told (one line, fit for the relay's close
 * reason, which it can read): the local message is meant for the local user.
 */
export class PinError extends CryptoError {
  readonly tellPeer: string;
  constructor(code: ErrorCode, message: string, tellPeer: string) {
    super(code, message);
    this.tellPeer = tellPeer.slice(0, 256);
  }
}

export class PeerPins {
  readonly #store: PinStore;
  constructor(store: PinStore) {
    this.#store = store;
  }

  #read(): PinFile {
    return this.#store.read();
  }

  #write(pins: PinFile): void {
    this.#store.write(pins);
  }

  static key(server: string, user: string): string {
    return `${user}@${server}`;
  }

  list(server: string, user: string): PinnedKey[] {
    return this.#read()[PeerPins.key(server, user)] ?? [];
  }

  /**
   * How a key stands against a user's pins. `listed`: the keys the relay's directory lists for the
   * user now (`keys.get`); without it a key that is not pinned counts as changed.
   */
  check(server: string, user: string, publicKey: string, listed?: readonly string[]): PinCheck {
    const pins = this.list(server, user);
    if (pins.length === 0) return 'first-contact';
    if (pins.some((p) => p.publicKey === publicKey)) return 'pinned';
    const isNewDevice =
      listed !== undefined &&
      listed.includes(publicKey) &&
      pins.some((p) => listed.includes(p.publicKey));
    return isNewDevice ? 'new-device' : 'changed';
  }

  pin(
    server: string,
    user: string,
    publicKey: string,
    via: PinnedKey['via'],
    deviceName?: string,
  ): void {
    const pins = this.#read();
    const k = PeerPins.key(server, user);
    const list = pins[k] ?? [];
    if (list.some((p) => p.publicKey === publicKey)) return;
    list.push({
      publicKey,
      fingerprint: fingerprintOf(publicKey),
      ...(deviceName === undefined ? {} : { deviceName }),
      addedAt: new Date().toISOString(),
      via,
    });
    pins[k] = list;
    this.#write(pins);
  }

  /** Pins one device after the user checked it (`trust USER --fingerprint-of-peer`), next to the others. */
  trustDevice(
    server: string,
    user: string,
    device: { publicKey: string; deviceName: string },
  ): void {
    const pins = this.#read();
    const k = PeerPins.key(server, user);
    const kept = (pins[k] ?? []).filter((p) => p.publicKey !== device.publicKey);
    kept.push({
      publicKey: device.publicKey,
      fingerprint: fingerprintOf(device.publicKey),
      deviceName: device.deviceName,
      addedAt: new Date().toISOString(),
      via: 'trust',
    });
    pins[k] = kept;
    this.#write(pins);
  }

  /** Replaces every pin of a user (after `switchboard trust USER`). */
  replace(
    server: string,
    user: string,
    devices: { publicKey: string; deviceName: string }[],
  ): void {
    const pins = this.#read();
    const now = new Date().toISOString();
    pins[PeerPins.key(server, user)] = devices.map(({ publicKey, deviceName }) => ({
      publicKey,
      fingerprint: fingerprintOf(publicKey),
      deviceName,
      addedAt: now,
      via: 'trust' as const,
    }));
    this.#write(pins);
  }

  /**
   * Accepts a peer key proven by the E2E handshake: pinned → fine; first contact → pinned now
   * (vouched for by the relay's directory); another device of a pinned user (see `check`; needs
   * `listed`) → as `newDevice` says; anything else → refused loudly.
   */
  verify(
    server: string,
    peer: PinPeer,
    newDevice: NewDevicePolicy = 'pin',
    listed?: readonly string[],
  ): PinCheck {
    const { user, publicKey, deviceName } = peer;
    const result = this.check(server, user, publicKey, listed);
    const fp = fingerprintOf(publicKey);
    if (result === 'changed') {
      const known = this.list(server, user)
        .map((p) => `  ${p.fingerprint}${p.deviceName ? `  ${p.deviceName}` : ''}`)
        .join('\n');
      throw new PinError(
        ErrorCode.PEER_KEY_CHANGED,
        `@@@ WARNING: THE DEVICE KEY OF ${user} HAS CHANGED @@@\n` +
          `${user} now presents ${fp} ("${deviceName}"), which is not another device of theirs\n` +
          `next to the ones you pinned (the relay no longer lists those, or not this one):\n${known}\n` +
          'Someone (a compromised relay?) may be impersonating them, or they reinstalled.\n' +
          `Verify the new fingerprint with ${user} another way, then run: ` +
          `switchboard trust ${user} --fingerprint-of-peer ${fp}`,
        `the other end has other keys pinned for ${user}, and yours (${fp}) is not one of ` +
          `their devices it knows: have them check it and run: switchboard trust ${user} --fingerprint-of-peer ${fp}`,
      );
    }
    if (result === 'new-device' && newDevice === 'refuse') {
      throw new PinError(
        ErrorCode.PEER_KEY_CHANGED,
        `${user} connects from a device you have not pinned ("${deviceName}", ${fp}), and new ` +
          `devices are refused here (--strict-keys). Verify it with ${user} another way, then run: ` +
          `switchboard trust ${user} --fingerprint-of-peer ${fp}`,
        `the other end does not accept new devices of ${user} (--strict-keys): have them check ` +
          `your fingerprint (switchboard keys) and run: switchboard trust ${user} --fingerprint-of-peer ${fp}`,
      );
    }
    if (result === 'first-contact') this.pin(server, user, publicKey, 'directory', deviceName);
    if (result === 'new-device' && newDevice === 'pin')
      this.pin(server, user, publicKey, 'new-device', deviceName);
    return result;
  }
}

/** The fingerprint of a pinned key (base64, proven by a handshake or listed by the directory). */
function fingerprintOf(publicKey: string): string {
  return keyFingerprint(fromBase64(publicKey));
}
