// This device's messaging keys: its X25519 identity key and its signed prekeys, kept in a
// KeyStore — SWITCHBOARD_HOME's messaging_keys.json (0600, client/file-stores.ts) for the CLI,
// IndexedDB for the page (src/web/chat-store.ts) — published to the relay's directory and rotated
// before they expire. This module imports no Node built-in.
import { fromBase64, toBase64 } from '../crypto/bytes.js';
import { defaultCryptoProvider } from '../crypto/default-provider.js';
import type { AsyncDeviceSigner } from '../crypto/handshake.js';
import {
  DEFAULT_PREKEY_LIFETIME,
  createIdentityKey,
  createIdentityKeyAsync,
  createSignedPrekey,
  createSignedPrekeyAsync,
  encodeBundle,
  type DeviceSigner,
  type IdentityKey,
  type SignedPrekeyPair,
} from '../crypto/prekeys.js';
import type { RelayConnection } from './relay-connection.js';

/** A prekey is replaced once it has less than this left. */
export const PREKEY_ROTATE_BEFORE_MS = 2 * 24 * 3600_000; // ms
/** Prekeys kept after rotation, for messages sent to them while the new one propagated. */
export const PREKEYS_KEPT = 3;

export interface StoredKeys {
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

/** Where the keys live: read whole, written whole. */
export interface KeyStore {
  /** Undefined (or a throw) when there are none yet. */
  read(): StoredKeys | undefined;
  write(keys: StoredKeys): void;
}

export class MessagingKeys {
  readonly #store: KeyStore;
  readonly #device: DeviceSigner | AsyncDeviceSigner;
  readonly #now: () => number;
  #identity: IdentityKey;
  #prekeys: SignedPrekeyPair[];

  /**
   * Loads the keys in `store`, or makes them (an identity key and
   * a first prekey) and saves them. The device signs synchronously here (the CLI's key); a key
   * that signs asynchronously (the page's) goes through `MessagingKeys.open`.
   */
  constructor(store: KeyStore, device: DeviceSigner, now?: () => number);
  /** (MessagingKeys.open: keys made already, with an asynchronous signer.) */
  constructor(
    store: KeyStore,
    device: AsyncDeviceSigner,
    now: () => number,
    made: { identity: IdentityKey; prekeys: SignedPrekeyPair[] },
  );
  constructor(
    store: KeyStore,
    device: DeviceSigner | AsyncDeviceSigner,
    now: () => number = Date.now,
    made?: { identity: IdentityKey; prekeys: SignedPrekeyPair[] },
  ) {
    this.#store = store;
    this.#device = device;
    this.#now = now;
    if (made || !('sign' in device)) {
      this.#identity = made!.identity;
      this.#prekeys = made!.prekeys;
      return;
    }
    const stored = readStore(this.#store, device.publicKey);
    const restored = stored && restore(stored);
    this.#identity = restored?.identity ?? createIdentityKey(defaultCryptoProvider, device);
    this.#prekeys = restored?.prekeys ?? [];
    if (this.#rotateIfDue() || !stored) this.#save();
  }

  /** As the constructor, for any device key: one that signs asynchronously is awaited. */
  static async open(
    store: KeyStore,
    device: DeviceSigner | AsyncDeviceSigner,
    now: () => number = Date.now,
  ): Promise<MessagingKeys> {
    if ('sign' in device) return new MessagingKeys(store, device, now);
    const stored = readStore(store, device.publicKey);
    const restored = stored && restore(stored);
    const identity =
      restored?.identity ?? (await createIdentityKeyAsync(defaultCryptoProvider, device));
    const keys = new MessagingKeys(store, device, now, {
      identity,
      prekeys: restored?.prekeys ?? [],
    });
    if ((await keys.#rotateIfDueAsync()) || !stored) keys.#save();
    return keys;
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
  async publish(client: RelayConnection): Promise<{ prekeyId: number; expiresAt: string }> {
    if (await this.#rotateIfDueAsync()) this.#save();
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

  /** The next prekey's options, if the current one is close to its end (or there is none). */
  #due(): { id: number; now: number; lifetime: number } | undefined {
    const now = this.#now();
    const current = this.#prekeys.at(-1);
    if (current && current.expiresAt - now > PREKEY_ROTATE_BEFORE_MS) return undefined;
    return { id: (current?.id ?? 0) + 1, now, lifetime: DEFAULT_PREKEY_LIFETIME };
  }

  #add(next: SignedPrekeyPair): void {
    this.#prekeys = [...this.#prekeys, next].slice(-PREKEYS_KEPT);
  }

  #rotateIfDue(): boolean {
    const due = this.#due();
    if (!due || !('sign' in this.#device)) return false;
    this.#add(
      createSignedPrekey(defaultCryptoProvider, this.#device, this.#identity.publicKey, due),
    );
    return true;
  }

  async #rotateIfDueAsync(): Promise<boolean> {
    if ('sign' in this.#device) return this.#rotateIfDue();
    const due = this.#due();
    if (!due) return false;
    this.#add(
      await createSignedPrekeyAsync(
        defaultCryptoProvider,
        this.#device,
        this.#identity.publicKey,
        due,
      ),
    );
    return true;
  }

  #save(): void {
    const stored: StoredKeys = {
      v: 1,
      deviceKey: toBase64(this.#device.publicKey),
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
    this.#store.write(stored);
  }
}

/** The stored keys, if they are version 1 and belong to this device key (a new key starts over). */
function readStore(store: KeyStore, deviceKey: Uint8Array): StoredKeys | undefined {
  let value: StoredKeys | undefined;
  try {
    value = store.read();
  } catch {
    return undefined;
  }
  return value?.v === 1 && value.deviceKey === toBase64(deviceKey) ? value : undefined;
}

function restore(stored: StoredKeys): { identity: IdentityKey; prekeys: SignedPrekeyPair[] } {
  return {
    identity: {
      privateKey: fromBase64(stored.identity.privateKey),
      publicKey: fromBase64(stored.identity.publicKey),
      signature: fromBase64(stored.identity.signature),
    },
    prekeys: stored.prekeys.map((p) => ({
      id: p.id,
      privateKey: fromBase64(p.privateKey),
      publicKey: fromBase64(p.publicKey),
      createdAt: p.createdAt,
      expiresAt: p.expiresAt,
      signature: fromBase64(p.signature),
    })),
  };
}
