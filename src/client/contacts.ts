// Contacts, kept on this device: whom I accepted, whom I blocked, and who is waiting for my
// answer. A stranger's first message makes them 'pending'; their messages are held, not shown,
// until accepted; a blocked user's are dropped. Where they are kept is a ContactStore: the CLI's
// `contacts.json` (0600, client/file-stores.ts), or the page's IndexedDB (src/web/chat-store.ts).
// This module runs in Node and in the browser: it imports no Node built-in.

export type ContactState = 'accepted' | 'pending' | 'blocked';

export interface Contact {
  state: ContactState;
  /** When the state was set (ISO time). */
  since: string;
  /** For a pending request: the device it came from. */
  device?: string;
}

/** Where contacts live: read whole, written whole (a few hundred entries at most). */
export interface ContactStore {
  /** Undefined (or a throw) when there is nothing yet: no contacts. */
  read(): Record<string, Contact> | undefined;
  write(all: Record<string, Contact>): void;
}

export class Contacts {
  readonly #store: ContactStore;
  #all: Record<string, Contact>;

  /** The contacts in `store` (read now: a later change there needs a new Contacts). */
  constructor(store: ContactStore) {
    this.#store = store;
    let all: Record<string, Contact> | undefined;
    try {
      all = this.#store.read();
    } catch {
      all = undefined;
    }
    this.#all = typeof all === 'object' && all !== null ? all : {};
  }

  get(user: string): Contact | undefined {
    return Object.prototype.hasOwnProperty.call(this.#all, user) ? this.#all[user] : undefined;
  }

  list(): Array<{ user: string } & Contact> {
    return Object.entries(this.#all)
      .map(([user, c]) => ({ user, ...c }))
      .sort((a, b) => a.user.localeCompare(b.user));
  }

  set(user: string, state: ContactState, device?: string): void {
    this.#all[user] = { state, since: new Date().toISOString(), ...(device ? { device } : {}) };
    this.#store.write(this.#all);
  }
}
