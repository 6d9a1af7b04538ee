// This relay's leases on the sessions it hosts: a random relay id, periodic renewal, release on stop.
import { randomBytes } from 'node:crypto';
import { SESSION_LEASE_MS, SESSION_LEASE_RENEW_MS } from '../protocol/limits.js';
import type {
  RemoteSessionsRepo,
  SessionLease,
  Store,
  StoreRepositories,
  TransactionOptions,
} from '../store/repositories.js';
import type { Logger } from './logger.js';

export interface SessionLeaseOptions {
  /** This relay process's id in the database. Default: 16 random bytes, base64url. */
  relayId?: string;
  /** How long a lease lasts after it was taken or renewed. Default SESSION_LEASE_MS (30 s). */
  leaseMs?: number; // ms
  /** How often the leases are renewed; less than leaseMs. Default SESSION_LEASE_RENEW_MS (10 s). */
  renewMs?: number; // ms
}

/**
 * Holds this relay's leases. Several relays may share one database, so a relay never marks
 * every live session offline: each live row names the relay holding it and until when; this
 * relay renews its own every `renewMs` with one UPDATE, releases one when its host disconnects,
 * and releases all of its own (and nobody else's) on a clean stop. A relay that dies stops
 * renewing, and its sessions read as offline `leaseMs` after the last renewal at the latest.
 *
 * @example
 * const leases = new SessionLeases(store, Date.now, log);
 * const services = { store: leases.bind(store), ... }; // registrations take this relay's lease
 * leases.start();
 * // on shutdown, after the last connection is gone:
 * await leases.stop();
 */
export class SessionLeases {
  readonly relayId: string;
  readonly leaseMs: number;
  readonly renewMs: number;
  readonly #store: Store;
  readonly #now: () => number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> | undefined;
  #stopped = false;
  /** Sessions whose release failed (database unreachable); retried before each renewal. */
  readonly #unreleased = new Set<string>();

  constructor(store: Store, now: () => number, log: Logger, options: SessionLeaseOptions = {}) {
    const leaseMs = options.leaseMs ?? SESSION_LEASE_MS;
    const renewMs = options.renewMs ?? SESSION_LEASE_RENEW_MS;
    if (!(renewMs > 0) || !(leaseMs > renewMs))
      throw new RangeError('SessionLeases: renewMs must be > 0 and leaseMs greater than renewMs');
    if (options.relayId !== undefined && options.relayId.length === 0)
      throw new RangeError('SessionLeases: relayId must not be empty');
    this.relayId = options.relayId ?? randomBytes(16).toString('base64url');
    this.leaseMs = leaseMs;
    this.renewMs = renewMs;
    this.#store = store;
    this.#now = now;
    this.#log = log;
  }

  /** A lease for this relay taken at `now`. */
  lease(now: number = this.#now()): SessionLease {
    return { relayId: this.relayId, until: now + this.leaseMs };
  }

  /**
   * The store as this relay's request handlers use it: `register` takes this relay's lease,
   * `setStatus(id, 'offline')` releases the lease only if this relay still holds it (the host
   * may have registered again through another relay), and `find`, `listAll` and `countHeld`
   * read statuses at the relay's clock. Everything else is `store` itself.
   */
  bind(store: Store): Store {
    const repositories = (tx: StoreRepositories): StoreRepositories =>
      Object.freeze({ ...tx, remoteSessions: this.#bindRepo(tx.remoteSessions) });
    return Object.freeze({
      ...store,
      remoteSessions: this.#bindRepo(store.remoteSessions),
      transaction: <T>(
        fn: (tx: StoreRepositories) => Promise<T>,
        options?: TransactionOptions,
      ): Promise<T> => store.transaction((tx) => fn(repositories(tx)), options),
    });
  }

  #bindRepo(repo: RemoteSessionsRepo): RemoteSessionsRepo {
    return Object.freeze({
      delete: (id) => repo.delete(id),
      deleteStale: (before) => repo.deleteStale(before),
      renewLeases: (relayId, now, until) => repo.renewLeases(relayId, now, until),
      releaseLease: (id, relayId, now) => repo.releaseLease(id, relayId, now),
      releaseLeases: (relayId, now) => repo.releaseLeases(relayId, now),
      setOperators: (id, operators) => repo.setOperators(id, operators),
      register: (row, now, lease) => {
        // A host back on this relay: a pending release must not end the new registration.
        this.#unreleased.delete(row.id);
        return repo.register(row, now, lease ?? this.lease(now));
      },
      find: (id, now) => repo.find(id, now ?? this.#now()),
      listAll: (now) => repo.listAll(now ?? this.#now()),
      countHeld: (ownerId, reservedSince, now) =>
        repo.countHeld(ownerId, reservedSince, now ?? this.#now()),
      setStatus: async (id, status, now) => {
        this.#unreleased.delete(id);
        if (status === 'offline') await repo.releaseLease(id, this.relayId, now);
        else await repo.setStatus(id, status, now);
      },
    } satisfies RemoteSessionsRepo);
  }

  /** Starts renewing every `renewMs`; the timer does not keep the process alive. */
  start(): void {
    if (this.#timer || this.#stopped) return;
    this.#timer = setInterval(() => void this.renew(), this.renewMs);
    this.#timer.unref();
  }

  /**
   * Retries failed releases, then renews every lease this relay holds (one UPDATE). A renewal
   * still running when the next is due is not doubled. Never rejects: failures are logged, and
   * three renewals fit in a lease.
   */
  renew(): Promise<void> {
    this.#renewing ??= this.#renewOnce().finally(() => (this.#renewing = undefined));
    return this.#renewing;
  }

  async #renewOnce(): Promise<void> {
    const sessions = this.#store.remoteSessions;
    for (const id of [...this.#unreleased]) {
      try {
        await sessions.releaseLease(id, this.relayId, this.#now());
        this.#unreleased.delete(id);
      } catch (err) {
        this.#log.warn({ err, session: id }, 'could not release a session lease; will retry');
        break; // the database is failing: the renewal below would too
      }
    }
    try {
      const now = this.#now();
      await sessions.renewLeases(this.relayId, now, now + this.leaseMs);
    } catch (err) {
      this.#log.warn({ err }, 'could not renew session leases');
    }
  }

  /**
   * Releases the lease of a session whose host left this relay, unless another relay (or a
   * newer registration) holds it now. Never rejects: a failed release is retried before each
   * renewal until it succeeds.
   */
  async release(id: string): Promise<void> {
    try {
      await this.#store.remoteSessions.releaseLease(id, this.relayId, this.#now());
      this.#unreleased.delete(id);
    } catch (err) {
      this.#unreleased.add(id);
      this.#log.error({ err, session: id }, 'could not mark session offline; will retry');
    }
  }

  /**
   * Stops renewing and releases every lease this relay holds, no other relay's; returns how
   * many. Call it once no host is connected any more, before closing the store.
   */
  async stop(): Promise<number> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#renewing;
    this.#unreleased.clear();
    try {
      return await this.#store.remoteSessions.releaseLeases(this.relayId, this.#now());
    } catch (err) {
      this.#log.warn({ err }, 'could not release session leases; they run out on their own');
      return 0;
    }
  }
}
