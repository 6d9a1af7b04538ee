// The conversation history one device keeps: an append-only log of messages sent and received,
// and of marks (what became of a message I sent: stored at the relay, delivered, read, held
// pending approval, refused; and which received messages were shown here). The relay keeps
// nothing past delivery: this log is the history. Where it is kept is a HistoryStore: the CLI's
// `messages.jsonl` in SWITCHBOARD_HOME (mode 0600, client/file-stores.ts), or the page's
// IndexedDB (src/web/chat-store.ts). This module imports no Node built-in.
import type { MessageContent } from './messaging.js';

/** A message in the history. */
export interface HistoryLine extends MessageContent {
  direction: 'in' | 'out';
  /** The sending device's fingerprint, for received messages. */
  fromDevice?: string;
  /** A broadcast (to everyone; `to` is '*'). */
  broadcast?: boolean;
}

/**
 * What became of a message. Mine: `sent` (stored at the relay), `delivered` (a device of theirs
 * has it), `read` (shown to them), `pending` (held until they accept me), `failed`. Theirs:
 * `shown` (printed on this device).
 */
export type MarkState = 'sent' | 'delivered' | 'read' | 'pending' | 'failed' | 'shown';

export interface MarkLine {
  mark: MarkState;
  id: string;
  /** How it went: 'direct' or 'relay' (sent messages). */
  path?: 'direct' | 'relay';
  at: string;
}

/** Later states win over earlier ones; `failed` and `pending` give way to delivery. */
const RANK: Record<MarkState, number> = {
  sent: 1,
  pending: 2,
  failed: 2,
  delivered: 3,
  read: 4,
  shown: 5,
};

/** One entry of the log: a message, or a mark on one. */
export type HistoryEntry = HistoryLine | MarkLine;

/** Where the log lives: every entry read once at the start, then appended one at a time. */
export interface HistoryStore {
  /** The entries so far, oldest first. */
  load(): HistoryEntry[];
  append(entry: HistoryEntry): void;
}

export class MessageHistory {
  readonly #store: HistoryStore;
  readonly #lines: HistoryLine[] = [];
  /** The same lines by id (the first line with an id wins). */
  readonly #byId = new Map<string, HistoryLine>();
  readonly #marks = new Map<string, { state: MarkState; path?: 'direct' | 'relay' }>();

  /** The history in `store`, loaded now (entries that are not objects are skipped). */
  constructor(store: HistoryStore) {
    this.#store = store;
    for (const entry of this.#store.load()) {
      if (typeof entry !== 'object' || entry === null) continue;
      if ('mark' in entry) this.#applyMark(entry);
      else this.#add(entry);
    }
  }

  /** Every message, in the order this device got them. */
  get lines(): readonly HistoryLine[] {
    return this.#lines;
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  get(id: string): HistoryLine | undefined {
    return this.#byId.get(id);
  }

  /** Appends a message (once: a known id is ignored); false if it was known. */
  append(line: HistoryLine): boolean {
    if (this.#byId.has(line.id)) return false;
    this.#write(line);
    this.#add(line);
    return true;
  }

  /** Records what became of a message, if it moves it forward; true if it did. */
  mark(id: string, state: MarkState, path?: 'direct' | 'relay'): boolean {
    const line: MarkLine = {
      mark: state,
      id,
      at: new Date().toISOString(),
      ...(path ? { path } : {}),
    };
    if (!this.#applyMark(line)) return false;
    this.#write(line);
    return true;
  }

  status(id: string): { state: MarkState; path?: 'direct' | 'relay' } | undefined {
    return this.#marks.get(id);
  }

  /** The last `limit` messages between me and `user` (both directions, no broadcasts). */
  conversation(user: string, limit: number): HistoryLine[] {
    return this.#lines
      .filter((l) => !l.broadcast && (l.direction === 'in' ? l.from === user : l.to === user))
      .slice(-limit);
  }

  #add(line: HistoryLine): void {
    if (this.#byId.has(line.id)) return;
    this.#byId.set(line.id, line);
    this.#lines.push(line);
  }

  #applyMark(m: MarkLine): boolean {
    const old = this.#marks.get(m.id);
    if (old && RANK[old.state] >= RANK[m.mark]) return false;
    this.#marks.set(m.id, {
      state: m.mark,
      ...((m.path ?? old?.path) ? { path: m.path ?? old!.path } : {}),
    });
    return true;
  }

  #write(value: HistoryEntry): void {
    this.#store.append(value);
  }
}

/** Each mark as the chats show it (`switchboard chat` and the page). */
export const MARK_TEXT: Record<MarkState | 'sending', string> = {
  sending: '…',
  sent: '✓',
  delivered: '✓✓ delivered',
  read: '✓✓ read',
  pending: '⏳ waiting for their approval',
  failed: '✗ not delivered',
  shown: '',
};

/** HH:MM, local time, as the chats print a message's time. */
export function clockTime(iso: string): string {
  const d = new Date(iso);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}
