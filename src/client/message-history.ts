// The conversation history one device keeps (`messages.jsonl` in SWITCHBOARD_HOME, mode 0600):
// an append-only file of messages sent and received, and of marks (what became of a message I
// sent: stored at the relay, delivered, read, held pending approval, refused; and which received
// messages were shown here). The relay keeps nothing past delivery: this file is the history.
import { appendFileSync, readFileSync } from 'node:fs';
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

interface MarkLine {
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

export class MessageHistory {
  readonly #file: string;
  readonly #lines: HistoryLine[] = [];
  /** The same lines by id (the first line with an id wins). */
  readonly #byId = new Map<string, HistoryLine>();
  readonly #marks = new Map<string, { state: MarkState; path?: 'direct' | 'relay' }>();

  constructor(file: string) {
    this.#file = file;
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return;
    }
    for (const raw of text.split('\n')) {
      if (!raw) continue;
      let parsed: HistoryLine | MarkLine;
      try {
        parsed = JSON.parse(raw) as HistoryLine | MarkLine;
      } catch {
        continue; // a line cut short by a crash mid-write
      }
      if ('mark' in parsed) this.#applyMark(parsed);
      else this.#add(parsed);
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

  #write(value: HistoryLine | MarkLine): void {
    appendFileSync(this.#file, `${JSON.stringify(value)}\n`, { mode: 0o600 });
  }
}
