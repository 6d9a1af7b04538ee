// Pinned device keys of other users (per relay), like SSH's known_hosts but for people.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic-file.js';
import { keyFingerprint, parsePublicKey } from '../crypto/device-key.js';
import { CryptoError, ErrorCode, SwitchboardError } from '../protocol/errors.js';

export interface PinnedKey {
  publicKey: string;
  fingerprint: string;
  addedAt: string;
  /** 'directory': first contact, vouched for by the relay; 'trust': re-verified by the user. */
  via: 'directory' | 'trust';
}

type PinFile = Record<string, PinnedKey[]>;

export type PinCheck = 'pinned' | 'first-contact' | 'changed';

export class KnownPeers {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }

  #read(): PinFile {
    if (!existsSync(this.file)) return {};
    try {
      const data = JSON.parse(readFileSync(this.file, 'utf8')) as unknown;
      if (typeof data !== 'object' || data === null || Array.isArray(data))
        throw new Error('not an object');
      return data as PinFile;
    } catch {
      throw new SwitchboardError(
        ErrorCode.INTERNAL,
        `${this.file} is not valid JSON; fix or delete it (you will re-pin peers on next contact)`,
      );
    }
  }

  #write(pins: PinFile): void {
    writeFileAtomic(this.file, `${JSON.stringify(pins, null, 2)}\n`, 0o600);
  }

  static key(server: string, user: string): string {
    return `${user}@${server}`;
  }

  list(server: string, user: string): PinnedKey[] {
    return this.#read()[KnownPeers.key(server, user)] ?? [];
  }

  check(server: string, user: string, publicKey: string): PinCheck {
    const pins = this.list(server, user);
    if (pins.length === 0) return 'first-contact';
    return pins.some((p) => p.publicKey === publicKey) ? 'pinned' : 'changed';
  }

  pin(server: string, user: string, publicKey: string, via: PinnedKey['via']): void {
    const pins = this.#read();
    const k = KnownPeers.key(server, user);
    const list = pins[k] ?? [];
    if (list.some((p) => p.publicKey === publicKey)) return;
    list.push({
      publicKey,
      fingerprint: keyFingerprint(parsePublicKey(publicKey)),
      addedAt: new Date().toISOString(),
      via,
    });
    pins[k] = list;
    this.#write(pins);
  }

  /** Replaces every pin of a user (after `switchboard trust USER`). */
  replace(server: string, user: string, publicKeys: string[]): void {
    const pins = this.#read();
    const now = new Date().toISOString();
    pins[KnownPeers.key(server, user)] = publicKeys.map((publicKey) => ({
      publicKey,
      fingerprint: keyFingerprint(parsePublicKey(publicKey)),
      addedAt: now,
      via: 'trust' as const,
    }));
    this.#write(pins);
  }

  /**
   * Accepts a peer key proven by the E2E handshake: pinned → fine; first contact → pinned now
   * (vouched for by the relay's directory); a different key → refused loudly.
   */
  verify(server: string, user: string, publicKey: string): PinCheck {
    const result = this.check(server, user, publicKey);
    if (result === 'changed') {
      const fp = keyFingerprint(parsePublicKey(publicKey));
      const known = this.list(server, user)
        .map((p) => `  ${p.fingerprint}`)
        .join('\n');
      throw new CryptoError(
        ErrorCode.PEER_KEY_CHANGED,
        `@@@ WARNING: THE DEVICE KEY OF ${user} HAS CHANGED @@@\n` +
          `${user} now presents ${fp}, but you pinned:\n${known}\n` +
          'Someone (a compromised relay?) may be impersonating them, or they use a new device.\n' +
          `Verify the new fingerprint with ${user} another way, then run: switchboard trust ${user}`,
      );
    }
    if (result === 'first-contact') this.pin(server, user, publicKey, 'directory');
    return result;
  }
}
