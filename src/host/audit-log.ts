// The agent's audit log: one signed, hash-chained entry per attach, exec, push and refusal,
// appended to a local file (0600, fsynced) and shipped to the relay, which keeps a copy without gaps.
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { RelayClient } from '../client/relay-client.js';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import {
  AUDIT_APPEND_MAX_ENTRIES,
  AUDIT_MAX_BODY_BYTES,
  bodyHash,
  signEntry,
  type EntryHead,
  type SignedEntry,
} from '../protocol/audit.js';
import { SwitchboardError } from '../protocol/errors.js';

/** Reads a log file: one JSON `SignedEntry` per line; a torn last line (a crash mid-write) is skipped. */
export function readLogFile(path: string): SignedEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const entries: SignedEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    try {
      const e = JSON.parse(line) as SignedEntry;
      if (typeof e.body === 'string' && typeof e.sig === 'string') entries.push(e);
    } catch {
      if (i < lines.length - 1) throw new Error(`${path}:${i + 1}: not an audit entry`);
    }
  }
  return entries;
}

export class AuditLog {
  readonly file: string;
  readonly log: string;
  readonly #key: DeviceKeyPair;
  readonly #fd: number;
  #seq: number;
  #prev: string;
  /** Entries not yet known to be at the relay, oldest first (bounded by what the file holds). */
  #entries: SignedEntry[];
  #relayHas = 0;
  #shipping = false;
  #client: RelayClient | undefined;

  constructor(file: string, log: string, key: DeviceKeyPair) {
    this.file = file;
    this.log = log;
    this.#key = key;
    this.#entries = readLogFile(file).filter((e) => (JSON.parse(e.body) as EntryHead).log === log);
    const last = this.#entries.at(-1);
    this.#seq = last ? (JSON.parse(last.body) as EntryHead).seq : 0;
    this.#prev = last ? bodyHash(last.body) : '';
    this.#fd = openSync(file, 'a', 0o600);
  }

  get seq(): number {
    return this.#seq;
  }

  /** Appends one entry (fsynced before this returns), then ships what the relay lacks. */
  append(type: string, fields: Record<string, unknown>): SignedEntry {
    const body: EntryHead = {
      v: 1,
      log: this.log,
      seq: this.#seq + 1,
      prev: this.#prev,
      time: new Date().toISOString(),
      type,
      ...boundFields(fields),
    };
    const entry = signEntry(this.#key, body);
    writeSync(this.#fd, `${JSON.stringify(entry)}\n`);
    fsyncSync(this.#fd);
    this.#seq = body.seq;
    this.#prev = bodyHash(entry.body);
    this.#entries.push(entry);
    void this.ship();
    return entry;
  }

  /** The relay connection to ship on (a new one after each reconnect; undefined while away). */
  setClient(client: RelayClient | undefined): void {
    this.#client = client;
    this.#relayHas = -1;
    void this.ship();
  }

  /**
   * Sends the entries after the relay's last one, in batches; after an outage the relay gets
   * everything it missed. Failures are retried at the next append or reconnect.
   */
  async ship(): Promise<void> {
    const client = this.#client;
    if (!client || this.#shipping) return;
    this.#shipping = true;
    try {
      if (this.#relayHas < 0) {
        const head = await client.request('audit.head', { log: this.log });
        this.#relayHas = head.seq;
      }
      for (;;) {
        const pending = this.#entries.filter(
          (e) => (JSON.parse(e.body) as EntryHead).seq > this.#relayHas,
        );
        if (pending.length === 0) break;
        const batch = pending.slice(0, AUDIT_APPEND_MAX_ENTRIES);
        const { seq } = await client.request('audit.append', { log: this.log, entries: batch });
        this.#relayHas = seq;
        // What the relay holds need not stay in memory; the file keeps everything.
        this.#entries = this.#entries.filter(
          (e) => (JSON.parse(e.body) as EntryHead).seq > this.#relayHas,
        );
      }
    } catch (err) {
      if (!(err instanceof SwitchboardError)) throw err;
      this.#relayHas = -1; // ask again next time
    } finally {
      this.#shipping = false;
    }
    if (this.#client === client && this.#entries.length > 0 && this.#relayHas >= 0)
      void this.ship();
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/** Keeps a body under AUDIT_MAX_BODY_BYTES: a long argv is replaced by its length and SHA-256. */
function boundFields(fields: Record<string, unknown>): Record<string, unknown> {
  const text = JSON.stringify(fields);
  if (Buffer.byteLength(text) <= AUDIT_MAX_BODY_BYTES - 1024) return fields;
  const { argv, command, ...rest } = fields as { argv?: unknown; command?: unknown };
  const cut = { ...rest } as Record<string, unknown>;
  if (argv !== undefined) {
    const a = JSON.stringify(argv);
    cut['argvSha256'] = createHash('sha256').update(a).digest('hex');
    cut['argvBytes'] = Buffer.byteLength(a);
  }
  if (typeof command === 'string') cut['command'] = `${command.slice(0, 512)}…`;
  return cut;
}

/**
 * Feeds a host session's events into its audit log: attaches and refusals ('audit'), exec and
 * push records, finished recordings (file and SHA-256); ships on each relay connection.
 * `onError` gets a failed append (the event is then lost from the log, and said so).
 */
export function auditHostSession(
  host: EventEmitter,
  audit: AuditLog,
  onError: (err: Error) => void,
): void {
  const add = (type: string, fields: object): void => {
    try {
      audit.append(type, { ...fields });
    } catch (err) {
      onError(err as Error);
    }
  };
  host.on('client', (client: RelayClient | undefined) => audit.setClient(client));
  host.on('audit', (e: { type: string }) => add(e.type, e));
  host.on('exec', ({ time: _t, ...r }: { time?: string }) => add('exec', r));
  host.on('push', ({ time: _t, ...r }: { time?: string }) => add('push', r));
  host.on('recorded', (path: string) => {
    try {
      const data = readFileSync(path);
      add('recording', {
        file: path,
        bytes: data.length,
        sha256: createHash('sha256').update(data).digest('hex'),
      });
    } catch (err) {
      onError(err as Error);
    }
  });
}
