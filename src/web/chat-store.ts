// The page's messaging state in IndexedDB, behind the stores the shared engine takes
// (client/messenger.ts's MessengerStores): contacts and messaging keys as one record each per
// account in 'chat', the history one record per entry in 'history'. (Pinned peer keys are the
// page's one pin store, pins.ts, shared with terminals as the CLI's known_peers is.) Everything is
// read once into memory before the engine starts (its stores are synchronous, as the CLI's files
// are); writes go to memory at once and to IndexedDB in order behind them (`saved()` waits).
import type { Contact, ContactStore } from '../client/contacts.js';
import type { HistoryEntry, HistoryStore } from '../client/message-history.js';
import type { KeyStore, StoredKeys } from '../client/messaging-keys.js';
import { CHAT_STORE, HISTORY_STORE, open, request } from './keys.js';

export interface ChatStores {
  contacts: ContactStore;
  keys: KeyStore;
  history: HistoryStore;
  /** Resolves once every write made so far is in IndexedDB; rejects if one failed. */
  saved(): Promise<void>;
  close(): void;
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB write failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB write aborted'));
  });
}

/** `user`'s chat state on this browser, loaded. `onError`: a write that failed (a full disk…). */
export async function openChatStores(
  user: string,
  onError: (err: unknown) => void,
): Promise<ChatStores> {
  const db = await open();
  const read = db.transaction([CHAT_STORE, HISTORY_STORE]);
  const chat = read.objectStore(CHAT_STORE);
  const [contacts, keys, rows] = await Promise.all([
    request(chat.get(`contacts:${user}`)) as Promise<Record<string, Contact> | undefined>,
    request(chat.get(`messaging-keys:${user}`)) as Promise<StoredKeys | undefined>,
    request(read.objectStore(HISTORY_STORE).index('user').getAll(user)) as Promise<
      Array<{ user: string; entry: HistoryEntry }>
    >,
  ]);
  const cache = {
    contacts: contacts ?? {},
    keys,
  };
  // One queue: writes reach IndexedDB in the order the engine made them.
  let queue: Promise<void> = Promise.resolve();
  let failed: unknown;
  const write = (work: (tx: IDBTransaction) => void, stores: string[]): void => {
    queue = queue.then(async () => {
      try {
        const tx = db.transaction(stores, 'readwrite');
        work(tx);
        await done(tx);
      } catch (err) {
        failed ??= err;
        onError(err);
      }
    });
  };
  // Records are stored as structured clones of the engine's plain objects: copy on write so a
  // later change in memory cannot race the clone.
  const putChat = (name: string, value: unknown): void => {
    const copy: unknown = structuredClone(value);
    write((tx) => tx.objectStore(CHAT_STORE).put(copy, `${name}:${user}`), [CHAT_STORE]);
  };
  return {
    contacts: {
      read: () => structuredClone(cache.contacts),
      write: (all) => {
        cache.contacts = structuredClone(all);
        putChat('contacts', all);
      },
    },
    keys: {
      read: () => cache.keys,
      write: (stored) => {
        cache.keys = structuredClone(stored);
        putChat('messaging-keys', stored);
      },
    },
    history: {
      load: () => rows.map((r) => r.entry),
      append: (entry) => {
        const copy = structuredClone(entry);
        write((tx) => tx.objectStore(HISTORY_STORE).add({ user, entry: copy }), [HISTORY_STORE]);
      },
    },
    saved: async () => {
      await queue;
      if (failed !== undefined) throw failed;
    },
    close: () => db.close(),
  };
}
