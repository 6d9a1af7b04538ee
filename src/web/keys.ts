// This browser as a device of the account: an Ed25519 key made here and kept in IndexedDB —
// a non-extractable WebCrypto key where the browser has Ed25519, else @noble's (its private
// bytes stored, as a CLI keeps device_ed25519) — and the login that goes with it.
import { toBase64 } from '../crypto/bytes.js';

const DB_NAME = 'switchboard';
/** 1: 'state' (key, login). 2: 'chat' (contacts, pins, messaging keys) and 'history' (chat-store.ts). */
const DB_VERSION = 2;
const STORE = 'state';
/** Chat state by name (`contacts:USER`, `messaging-keys:USER`): chat-store.ts. */
export const CHAT_STORE = 'chat';
/** The chat history: one record per entry, {user, entry}, numbered in order, indexed by user. */
export const HISTORY_STORE = 'history';
const KEY_ID = 'device-key';
const LOGIN_ID = 'login';

/** A device key the page can sign with; the private half never leaves it. */
export interface BrowserKey {
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  /** `webcrypto`: a non-extractable CryptoKey; `noble`: private bytes in IndexedDB. */
  kind: 'webcrypto' | 'noble';
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** What IndexedDB holds for the key (CryptoKeys are stored as they are, unextractable). */
type StoredKey =
  | { kind: 'webcrypto'; publicKey: Uint8Array; privateKey: CryptoKey }
  | { kind: 'noble'; publicKey: Uint8Array; secret: Uint8Array };

/** The login this browser holds: the token is a secret, kept in this origin's IndexedDB only. */
export interface SavedLogin {
  user: string;
  token: string;
  expiresAt: string;
}

export function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB failed'));
  });
}

/**
 * Opens this origin's database, creating what a version adds (each store only if missing, so
 * any older version upgrades). A connection closes itself when another page asks for a newer
 * version or the database is deleted (forget this browser), so it never blocks them.
 */
export async function open(): Promise<IDBDatabase> {
  const r = indexedDB.open(DB_NAME, DB_VERSION);
  r.onupgradeneeded = () => {
    const db = r.result;
    if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE);
    if (!db.objectStoreNames.contains(CHAT_STORE)) db.createObjectStore(CHAT_STORE);
    if (!db.objectStoreNames.contains(HISTORY_STORE))
      db.createObjectStore(HISTORY_STORE, { autoIncrement: true }).createIndex('user', 'user');
  };
  const db = await request(r);
  db.onversionchange = () => db.close();
  return db;
}

async function get<T>(id: string): Promise<T | undefined> {
  const db = await open();
  try {
    return (await request(db.transaction(STORE).objectStore(STORE).get(id))) as T | undefined;
  } finally {
    db.close();
  }
}

async function put(id: string, value: unknown): Promise<void> {
  const db = await open();
  try {
    const tx = db.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).put(value, id);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB write failed'));
    });
  } finally {
    db.close();
  }
}

function usable(stored: StoredKey): BrowserKey {
  if (stored.kind === 'webcrypto') {
    return {
      kind: 'webcrypto',
      publicKey: stored.publicKey,
      sign: async (message) =>
        new Uint8Array(
          await crypto.subtle.sign('Ed25519', stored.privateKey, message as BufferSource),
        ),
    };
  }
  return {
    kind: 'noble',
    publicKey: stored.publicKey,
    sign: async (message) => {
      const { ed25519 } = await import('@noble/curves/ed25519.js');
      return ed25519.sign(message, stored.secret);
    },
  };
}

/** WebCrypto's Ed25519, where the browser has it (Chromium 137+, Firefox 129+, Safari 17+). */
async function webCryptoKey(): Promise<StoredKey | undefined> {
  try {
    const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    const publicKey = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    return { kind: 'webcrypto', publicKey, privateKey: pair.privateKey };
  } catch {
    return undefined;
  }
}

/** This browser's device key: the one it holds, or a new one (kept). */
export async function deviceKey(): Promise<BrowserKey> {
  const held = await get<StoredKey>(KEY_ID);
  if (held) return usable(held);
  let made = await webCryptoKey();
  if (!made) {
    const { ed25519 } = await import('@noble/curves/ed25519.js');
    const secret = ed25519.utils.randomSecretKey();
    made = { kind: 'noble', publicKey: ed25519.getPublicKey(secret), secret };
  }
  await put(KEY_ID, made);
  return usable(made);
}

/** The key's fingerprint as the CLI prints it: SHA256: and the unpadded base64 of its digest. */
export async function fingerprint(publicKey: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', publicKey as BufferSource));
  return `SHA256:${toBase64(digest).replace(/=+$/, '')}`;
}

export const savedLogin = (): Promise<SavedLogin | undefined> => get<SavedLogin>(LOGIN_ID);
export const saveLogin = (login: SavedLogin): Promise<void> => put(LOGIN_ID, login);
export const clearLogin = (): Promise<void> => put(LOGIN_ID, undefined);

/** Deletes the key and the login: this browser is no longer a device of anyone. */
export async function forgetBrowser(): Promise<void> {
  await request(indexedDB.deleteDatabase(DB_NAME) as IDBRequest<unknown>);
}

/** Reads other state of this browser (pins) from the same database. */
export { get as readState };
