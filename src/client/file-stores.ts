// The CLI's messaging state in files under SWITCHBOARD_HOME (Node only): contacts.json,
// messages.jsonl and messaging_keys.json (each 0600), behind the stores the shared engine takes
// (contacts.ts, message-history.ts, messaging-keys.ts), and all of a home's messaging stores for a
// Messenger at once. The page's stores are IndexedDB (src/web/chat-store.ts); nothing the page
// bundles may import this module.
import { appendFileSync, closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { writeFileAtomic } from './atomic-file.js';
import type { Contact, ContactStore } from './contacts.js';
import { KnownPeers } from './known-peers.js';
import { MessageHistory, type HistoryEntry, type HistoryStore } from './message-history.js';
import { MessagingKeys, type KeyStore, type StoredKeys } from './messaging-keys.js';
import type { MessengerStores } from './messenger.js';
import type { DeviceSigner } from '../crypto/prekeys.js';

/** Where a home's messaging files are (cli/home.ts's `messengerFiles()`). */
export interface MessengerFiles {
  knownPeers: string;
  messagingKeys: string;
  messages: string;
  contacts: string;
}

/** A file's text, or undefined when it cannot be read (missing, most often). */
function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether `file` ends in a line cut short (no newline at its end): a crash mid-append. */
function endsCut(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false; // missing: nothing to cut
  }
  try {
    const { size } = fstatSync(fd);
    if (size === 0) return false;
    const last = new Uint8Array(1);
    readSync(fd, last, 0, 1, size - 1);
    return last[0] !== 0x0a;
  } finally {
    closeSync(fd);
  }
}

/**
 * One JSON file, read whole and written whole (0600, atomically: a crash leaves the old file or
 * the new one); a missing or broken file reads as undefined.
 */
function jsonFile<T>(file: string): { read(): T | undefined; write(value: T): void } {
  return {
    read() {
      const text = readText(file);
      if (text === undefined) return undefined;
      try {
        return JSON.parse(text) as T;
      } catch {
        return undefined;
      }
    },
    write: (value) => writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, 0o600),
  };
}

/**
 * Contacts in a JSON file (the CLI's contacts.json).
 *
 * @example new Contacts(contactsFileStore(home.path(FILES.contacts))).get('ana')
 */
export function contactsFileStore(file: string): ContactStore {
  return jsonFile<Record<string, Contact>>(file);
}

/** Messaging keys in a JSON file (the CLI's messaging_keys.json). */
export function keysFileStore(file: string): KeyStore {
  return jsonFile<StoredKeys>(file);
}

/**
 * The history as a JSON-lines file (the CLI's messages.jsonl): one entry a line, appended (the
 * file created 0600); a line cut short by a crash mid-write is skipped when read, and the first
 * append after it starts a line of its own (else it would join the cut line and be lost too).
 */
export function historyFileStore(file: string): HistoryStore {
  /** Checked once a store: from then on every line this store appends ends in a newline. */
  let checked = false;
  return {
    load() {
      const entries: HistoryEntry[] = [];
      for (const raw of (readText(file) ?? '').split('\n')) {
        if (!raw) continue;
        try {
          entries.push(JSON.parse(raw) as HistoryEntry);
        } catch {
          // a line cut short by a crash mid-write
        }
      }
      return entries;
    },
    append(entry) {
      const lead = !checked && endsCut(file) ? '\n' : '';
      checked = true;
      appendFileSync(file, `${lead}${JSON.stringify(entry)}\n`, { mode: 0o600 });
    },
  };
}

/**
 * A Messenger's stores over a home's files: the pins (known-peers.ts: a broken file is an error,
 * not an empty one), the keys (loaded, or made and saved, with `key`), the history and contacts.
 *
 * @example
 * const stores = fileStores(home.messengerFiles(), key);
 * const messenger = new Messenger({ client, user, key, server, stores });
 */
export function fileStores(files: MessengerFiles, key: DeviceSigner): MessengerStores {
  return {
    pins: new KnownPeers(files.knownPeers),
    keys: new MessagingKeys(keysFileStore(files.messagingKeys), key),
    history: new MessageHistory(historyFileStore(files.messages)),
    contacts: contactsFileStore(files.contacts),
  };
}
