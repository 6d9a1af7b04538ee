// The agent's audit log: one signed, hash-chained entry per attach, exec, push and refusal,
// appended to a local file (0600, fsynced) and shipped to the relay, which keeps a copy without gaps.
import { closeSync, fsyncSync, openSync, readFileSync, truncateSync, writeSync } from 'node:fs';
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

/** Bytes of entries one `audit.append` carries at most (well under the relay's frame limit). */
export const AUDIT_APPEND_MAX_BYTES = 128 * 1024; // bytes
/** After a failed shipment, the next try (the next entry or reconnect may come sooner). */
export const AUDIT_RETRY_MS = 5_000; // ms

const seqOf = (e: SignedEntry): number => (JSON.parse(e.body) as EntryHead).seq;

export class AuditLog {
  readonly file: string;
  readonly log: string;
  readonly #key: DeviceKeyPair;
  readonly #fd: number;
  #seq: number;
  #prev: string;
  /** Entries not yet known to be at the relay, oldest first (the file keeps everything). */
  #entries: SignedEntry[];
  #relayHas = -1;
  #shipping = false;
  #client: RelayClient | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(file: string, log: string, key: DeviceKeyPair) {
    this.file = file;
    this.log = log;
    this.#key = key;
    // A line torn by a crash mid-write was never complete, so never acknowledged: cut it off,
    // or the next entry would be glued to it.
    truncateTornLine(file);
    this.#entries = this.#readOwn();
    const last = this.#entries.at(-1);
    this.#seq = last ? seqOf(last) : 0;
    this.#prev = last ? bodyHash(last.body) : '';
    this.#fd = openSync(file, 'a', 0o600);
  }

  get seq(): number {
    return this.#seq;
  }

  #readOwn(after = 0): SignedEntry[] {
    return readLogFile(this.file).filter(
      (e) => (JSON.parse(e.body) as EntryHead).log === this.log && seqOf(e) > after,
    );
  }

  /** Appends one entry (written whole and fsynced before this returns), then ships it. */
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
    const line = Buffer.from(`${JSON.stringify(entry)}\n`);
    for (let at = 0; at < line.length;) at += writeSync(this.#fd, line, at);
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
   * Sends the entries after the relay's last one, in batches of at most AUDIT_APPEND_MAX_ENTRIES
   * and AUDIT_APPEND_MAX_BYTES; after an outage, or to a relay that lost entries, the missing
   * ones are read back from the file. A failure is retried after AUDIT_RETRY_MS.
   */
  async ship(): Promise<void> {
    const client = this.#client;
    if (!client || this.#shipping || this.#closed) return;
    this.#shipping = true;
    clearTimeout(this.#retry);
    let failed = false;
    try {
      if (this.#relayHas < 0) {
        this.#relayHas = (await client.request('audit.head', { log: this.log })).seq;
        const oldest = this.#entries[0];
        if (this.#relayHas < (oldest ? seqOf(oldest) : this.#seq + 1) - 1)
          this.#entries = this.#readOwn(this.#relayHas);
      }
      for (;;) {
        const batch = this.#nextBatch();
        if (batch.length === 0) break;
        const { seq } = await client.request('audit.append', { log: this.log, entries: batch });
        this.#relayHas = seq;
        this.#entries = this.#entries.filter((e) => seqOf(e) > seq);
      }
    } catch (err) {
      if (!(err instanceof SwitchboardError)) throw err;
      this.#relayHas = -1; // ask for the head again
      failed = true;
    } finally {
      this.#shipping = false;
    }
    if (this.#closed || this.#client !== client) return;
    if (failed) {
      this.#retry = setTimeout(() => void this.ship(), AUDIT_RETRY_MS);
      this.#retry.unref();
    } else if (this.#nextBatch().length > 0) void this.ship();
  }

  #nextBatch(): SignedEntry[] {
    const batch: SignedEntry[] = [];
    let bytes = 0;
    for (const e of this.#entries) {
      if (seqOf(e) <= this.#relayHas) continue;
      const size = e.body.length + e.sig.length + 32;
      if (batch.length >= AUDIT_APPEND_MAX_ENTRIES) break;
      if (batch.length > 0 && bytes + size > AUDIT_APPEND_MAX_BYTES) break;
      batch.push(e);
      bytes += size;
    }
    return batch;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    closeSync(this.#fd);
  }
}

/** Cuts a file back to its last newline (nothing if it ends with one, or does not exist). */
function truncateTornLine(path: string): void {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (data.length === 0 || data[data.length - 1] === 0x0a) return;
  truncateSync(path, data.lastIndexOf(0x0a) + 1);
}

/**
 * Keeps a body's fields under AUDIT_MAX_BODY_BYTES whatever they hold (a push of 1000 files, a
 * long argv): past the bound, strings are cut, lists and objects replaced by their size and
 * SHA-256, and `truncated` says so. An entry the relay would refuse would stop shipping for good.
 */
export function boundFields(fields: Record<string, unknown>): Record<string, unknown> {
  const text = JSON.stringify(fields);
  const room = AUDIT_MAX_BODY_BYTES - 1024; // the head's fields
  if (Buffer.byteLength(text) <= room) return fields;
  const sha = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex');
  const cut: Record<string, unknown> = { truncated: true, fieldsSha256: sha(fields) };
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') cut[k] = v.length > 256 ? `${v.slice(0, 256)}…` : v;
    else if (Array.isArray(v)) cut[k] = { count: v.length, sha256: sha(v) };
    else if (v !== null && typeof v === 'object')
      cut[k] = JSON.stringify(v).length > 1024 ? { sha256: sha(v) } : v;
    else cut[k] = v;
  }
  return Buffer.byteLength(JSON.stringify(cut)) <= room
    ? cut
    : { truncated: true, fieldsSha256: sha(fields) };
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
