// This device's messaging keys: its X25519 identity key and its signed prekeys, kept in
// SWITCHBOARD_HOME (0600), published to the relay's directory and rotated before they expire.
import { readFileSync } from 'node:fs';
import { defaultCryptoProvider } from '../crypto/default-provider.js';
import { fromBase64, toBase64 } from '../crypto/bytes.js';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import {
  DEFAULT_PREKEY_LIFETIME,
  createIdentityKey,
  createSignedPrekey,
  encodeBundle,
  type IdentityKey,
  type SignedPrekeyPair,
} from '../crypto/prekeys.js';
import { writeFileAtomic } from './atomic-file.js';
import type { RelayClient } from './relay-client.js';

/** A prekey is replaced once it has less than this left. */
export const PREKEY_ROTATE_BEFORE_MS = 2 * 24 * 3600_000; // ms
/** Prekeys kept after rotation, for messages sent to them while the new one propagated. */
export const PREKEYS_KEPT = 3;

interface StoredKeys {
  v: 1;
  /** The device key these belong to (base64): a home whose device key changed starts over. */
  deviceKey: string;
  identity: { privateKey: string; publicKey: string; signature: string };
  prekeys: Array<{
    id: number;
    privateKey: string;
    publicKey: string;
    createdAt: number;
    expiresAt: number;
    signature: string;
  }>;
}

export class MessagingKeys {
  readonly #file: string;
  readonly #device: DeviceKeyPair;
  readonly #now: () => number;
  #identity: IdentityKey;
  #prekeys: SignedPrekeyPair[];

  /** Loads the keys in `file`, or makes them (an identity key and a first prekey) and saves them. */
  constructor(file: string, device: DeviceKeyPair, now: () => number = Date.now) {
    this.#file = file;
    this.#device = device;
    this.#now = now;
    const stored = readStored(file);
    if (stored && stored.deviceKey === device.publicKey.toString('base64')) {
      this.#identity = {
        privateKey: fromBase64(stored.identity.privateKey),
        publicKey: fromBase64(stored.identity.publicKey),
        signature: fromBase64(stored.identity.signature),
      };
      this.#prekeys = stored.prekeys.map((p) => ({
        id: p.id,
        privateKey: fromBase64(p.privateKey),
        publicKey: fromBase64(p.publicKey),
        createdAt: p.createdAt,
        expiresAt: p.expiresAt,
        signature: fromBase64(p.signature),
      }));
    } else {
      this.#identity = createIdentityKey(defaultCryptoProvider, device);
      this.#prekeys = [];
    }
    if (this.#rotateIfDue() || !stored) this.#save();
  }

  get identity(): IdentityKey {
    return this.#identity;
  }

  /** The prekey senders should use now (the newest). */
  get current(): SignedPrekeyPair {
    return this.#prekeys.at(-1)!;
  }

  /** A kept prekey by id (to open a message sent to it), or undefined. */
  prekey(id: number): SignedPrekeyPair | undefined {
    return this.#prekeys.find((p) => p.id === id);
  }

  /** Rotates if the current prekey is close to its end, then publishes it (idempotent). */
  async publish(client: RelayClient): Promise<{ prekeyId: number; expiresAt: string }> {
    if (this.#rotateIfDue()) this.#save();
    const bundle = encodeBundle(this.#device.publicKey, this.#identity, this.current);
    try {
      return await client.request('keys.publish', {
        bundle: bundle as unknown as Record<string, unknown>,
      });
    } catch (err) {
      // Already there (published before): fine.
      if ((err as { code?: string }).code === 'CONFLICT')
        return {
          prekeyId: this.current.id,
          expiresAt: new Date(this.current.expiresAt).toISOString(),
        };
      throw err;
    }
  }

  #rotateIfDue(): boolean {
    const now = this.#now();
    const current = this.#prekeys.at(-1);
    if (current && current.expiresAt - now > PREKEY_ROTATE_BEFORE_MS) return false;
    const next = createSignedPrekey(defaultCryptoProvider, this.#device, this.#identity.publicKey, {
      id: (current?.id ?? 0) + 1,
      now,
      lifetime: DEFAULT_PREKEY_LIFETIME,
    });
    this.#prekeys = [...this.#prekeys, next].slice(-PREKEYS_KEPT);
    return true;
  }

  #save(): void {
    const stored: StoredKeys = {
      v: 1,
      deviceKey: this.#device.publicKey.toString('base64'),
      identity: {
        privateKey: toBase64(this.#identity.privateKey),
        publicKey: toBase64(this.#identity.publicKey),
        signature: toBase64(this.#identity.signature),
      },
      prekeys: this.#prekeys.map((p) => ({
        id: p.id,
        privateKey: toBase64(p.privateKey),
        publicKey: toBase64(p.publicKey),
        createdAt: p.createdAt,
        expiresAt: p.expiresAt,
        signature: toBase64(p.signature),
      })),
    };
    writeFileAtomic(this.#file, `${JSON.stringify(stored, null, 2)}\n`, 0o600);
  }
}

function readStored(file: string): StoredKeys | undefined {
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as StoredKeys;
    return value.v === 1 ? value : undefined;
  } catch {
    return undefined;
  }
}
