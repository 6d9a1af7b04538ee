// Contacts, kept on this device: whom I accepted, whom I blocked, and who is waiting for my
// answer. A stranger's first message makes them 'pending'; their messages are held, not shown,
// until accepted; a blocked user's are dropped. Where they are kept is a ContactStore: the CLI's
// `contacts.json` (0600), or the page's IndexedDB (src/web/chat-store.ts).
//
// This module runs in Node and in the browser: it imports no Node built-in. The CLI's files are
// reached through `process.getBuiltinModule` (nodeFiles below) only when a file path is given.

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

  /** The contacts in `store`, or in the JSON file at that path (the CLI's contacts.json). */
  constructor(store: string | ContactStore) {
    this.#store = typeof store === 'string' ? jsonFileStore<Record<string, Contact>>(store) : store;
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

// --- the CLI's files, without a Node import ------------------------------------------------------

/** The few node:fs and node:path calls the file stores need. */
interface NodeFiles {
  fs: {
    readFileSync(path: string, encoding: 'utf8'): string;
    writeFileSync(fd: number, text: string, encoding: 'utf8'): void;
    appendFileSync(path: string, text: string, options: { mode: number }): void;
    openSync(path: string, flags: string, mode: number): number;
    fsyncSync(fd: number): void;
    closeSync(fd: number): void;
    renameSync(from: string, to: string): void;
    unlinkSync(path: string): void;
    mkdirSync(path: string, options: { recursive: true; mode: number }): unknown;
  };
  dirname(path: string): string;
  pid: number;
}

/**
 * Node's fs and path, fetched at run time (`process.getBuiltinModule`, Node ≥ 20.16) so that this
 * module, which the page bundles too, imports no Node built-in. Throws outside Node.
 */
export function nodeFiles(): NodeFiles {
  const proc = (
    globalThis as {
      process?: { pid: number; getBuiltinModule?: (id: string) => unknown };
    }
  ).process;
  const fs = proc?.getBuiltinModule?.('node:fs') as NodeFiles['fs'] | undefined;
  const path = proc?.getBuiltinModule?.('node:path') as { dirname(p: string): string } | undefined;
  if (!proc || !fs || !path) throw new Error('file stores need Node (20.16 or later)');
  return { fs, dirname: (p) => path.dirname(p), pid: proc.pid };
}

/**
 * Writes `text` to `target` through a temp file created with `mode` (never wider in between),
 * flushed, then renamed over it; the parent directory is created 0700 if missing. The same steps
 * as atomic-file.ts's writeFileAtomic, which imports node:fs and so cannot be bundled for the page.
 */
export function writeFileAtomicly(target: string, text: string, mode: number): void {
  const { fs, dirname, pid } = nodeFiles();
  fs.mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
  const suffix = Array.from(globalThis.crypto.getRandomValues(new Uint8Array(6)), (b) =>
    b.toString(16).padStart(2, '0'),
  ).join('');
  const temp = `${target}.${pid}.${suffix}.tmp`;
  const fd = fs.openSync(temp, 'wx', mode);
  try {
    try {
      fs.writeFileSync(fd, text, 'utf8');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, target);
  } catch (err) {
    try {
      fs.unlinkSync(temp);
    } catch {
      // The original error matters more than a stray temp file.
    }
    throw err;
  }
}

/** A store over one JSON file (0600, written atomically); a missing or broken file reads as undefined. */
export function jsonFileStore<T>(file: string): { read(): T | undefined; write(value: T): void } {
  return {
    read: () => {
      let text: string;
      try {
        text = nodeFiles().fs.readFileSync(file, 'utf8');
      } catch {
        return undefined;
      }
      try {
        return JSON.parse(text) as T;
      } catch {
        return undefined;
      }
    },
    write: (value) => writeFileAtomicly(file, `${JSON.stringify(value, null, 2)}\n`, 0o600),
  };
}
