// The relay's own audit log: logins and failed logins, device authentication, channels routed
// (attaches, exec and push), device revocations. Hash-chained and signed like an agent's, with the
// relay's own Ed25519 key (`audit_ed25519` in the data directory, 0600), in the same table.
//
// What it proves is narrower than an agent's log: whoever holds the relay's key (the relay itself)
// can rewrite it and sign again. It catches changes made in the database by anyone without that
// key, and a reader who kept an earlier entry's hash sees a rewritten history.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from './logger.js';
import {
  deviceKeyFromPrivatePem,
  generateDeviceKey,
  keyFingerprint,
  type DeviceKeyPair,
} from '../crypto/device-key.js';
import { bodyHash, signEntry, type EntryHead } from '../protocol/audit.js';
import type { Store } from '../store/repositories.js';

/** Entries waiting to be stored; past it new ones are dropped, and the drop is logged. */
export const RELAY_AUDIT_MAX_PENDING = 10_000;

/** The relay's audit key file in the data directory. */
export const RELAY_AUDIT_KEY_FILE = 'audit_ed25519';

export function loadRelayAuditKey(dataDir: string): DeviceKeyPair {
  return loadRelayKey(dataDir, RELAY_AUDIT_KEY_FILE);
}

/** One of the relay's Ed25519 keys in its data directory (made on first start, mode 0600). */
export function loadRelayKey(dataDir: string, name: string): DeviceKeyPair {
  const file = join(dataDir, name);
  if (existsSync(file)) return deviceKeyFromPrivatePem(readFileSync(file, 'utf8'));
  const key = generateDeviceKey();
  writeFileSync(file, key.toPrivatePem(), { mode: 0o600, flag: 'wx' });
  return key;
}

export interface RelayEvent {
  type: 'login' | 'login-failed' | 'device-auth' | 'channel' | 'device-revoked';
  /** Who acted (the account); shown to them by `audit`. */
  user: string;
  /** The owner of what was reached (a session's owner), who sees it too. */
  ownerId?: number | null;
  session?: string;
  [field: string]: unknown;
}

export class RelayAudit {
  readonly log: string;
  readonly #store: Store;
  readonly #key: DeviceKeyPair;
  readonly #logger: Logger;
  readonly #now: () => number;
  /** Appends run one at a time: each takes the head the previous one wrote. */
  #queue: Promise<void> = Promise.resolve();
  #pending = 0;
  /** Entries dropped because RELAY_AUDIT_MAX_PENDING were waiting (the database too slow). */
  dropped = 0;

  constructor(store: Store, key: DeviceKeyPair, logger: Logger, now: () => number) {
    this.#store = store;
    this.#key = key;
    this.#logger = logger;
    this.#now = now;
    this.log = `relay:${keyFingerprint(key.publicKey)}`;
  }

  /** Queues one entry; a storage failure is logged (never thrown at the request that caused it). */
  record(event: RelayEvent): void {
    if (this.#pending >= RELAY_AUDIT_MAX_PENDING) {
      if (this.dropped++ % 1000 === 0)
        this.#logger.warn(
          { dropped: this.dropped },
          'relay audit entries dropped: storage too slow',
        );
      return;
    }
    this.#pending += 1;
    const append = () => this.#append(event).finally(() => (this.#pending -= 1));
    this.#queue = this.#queue.then(append, append);
    this.#queue.catch((err: unknown) => this.#logger.error({ err }, 'relay audit append failed'));
  }

  /** Resolves once every queued entry is stored (or failed). */
  flush(): Promise<void> {
    return this.#queue.catch(() => undefined);
  }

  async #append(event: RelayEvent): Promise<void> {
    const { ownerId, ...fields } = event;
    await this.#store.transaction(
      async (tx) => {
        const head = await tx.audit.head(this.log);
        const time = this.#now();
        const body: EntryHead = {
          v: 1,
          log: this.log,
          seq: (head?.seq ?? 0) + 1,
          prev: head ? bodyHash(head.body) : '',
          time: new Date(time).toISOString(),
          ...fields,
        };
        const entry = signEntry(this.#key, body);
        await tx.audit.append([
          {
            log: this.log,
            seq: body.seq,
            ownerId: ownerId ?? null,
            session: event.session ?? null,
            actor: event.user,
            type: event.type,
            time,
            body: entry.body,
            sig: entry.sig,
            signer: this.#key.publicKey.toString('base64'),
          },
        ]);
      },
      { isolation: 'serializable', retries: 3 },
    );
  }
}
