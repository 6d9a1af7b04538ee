// Contacts, kept on this device (`contacts.json`, 0600): whom I accepted, whom I blocked, and who
// is waiting for my answer. A stranger's first message makes them 'pending'; their messages are
// held, not shown, until accepted; a blocked user's are dropped.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic-file.js';

export type ContactState = 'accepted' | 'pending' | 'blocked';

export interface Contact {
  state: ContactState;
  /** When the state was set (ISO time). */
  since: string;
  /** For a pending request: the device it came from. */
  device?: string;
}

export class Contacts {
  readonly #file: string;
  #all: Record<string, Contact>;

  constructor(file: string) {
    this.#file = file;
    try {
      this.#all = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Contact>;
    } catch {
      this.#all = {};
    }
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
    writeFileAtomic(this.#file, `${JSON.stringify(this.#all, null, 2)}\n`, 0o600);
  }
}
