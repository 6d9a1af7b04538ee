// The storage interfaces the rest of Switchboard codes against; rows are plain objects, times epoch ms.
import type { AuditRepo } from './audit-repository.js';
import type { PrekeysRepo } from './prekey-repository.js';
import type { MailboxRepo } from './mailbox-repository.js';
import type { BroadcastsRepo } from './broadcast-repository.js';
import type { LedgerRepo } from './ledger-repository.js';

/** An account. `name` is matched exactly: the auth layer normalises it before storing. */
export interface UserRow {
  id: number;
  name: string;
  passwordHash: string;
  /** epoch ms */
  createdAt: number;
}

/** A user as listed for administration; `lastSeenAt` is the latest of their devices' (ms). */
export type UserSummary = Pick<UserRow, 'id' | 'name' | 'createdAt'> & {
  lastSeenAt: number | null;
};

export interface UsersRepo {
  /** Creates the user; `undefined` (never a throw) if the name is taken. */
  create(name: string, passwordHash: string, now: number): Promise<UserRow | undefined>;
  findByName(name: string): Promise<UserRow | undefined>;
  findById(id: number): Promise<UserRow | undefined>;
  /**
   * One page of users ordered by name: at most `limit` whose name sorts after `after` (from the
   * start when undefined), with the last time any of their devices was seen.
   */
  listPage(after: string | undefined, limit: number): Promise<UserSummary[]>;
  /** The summaries of these users (unknown ids are skipped), ordered by name. */
  summariesByIds(ids: readonly number[]): Promise<UserSummary[]>;
  /** The ids of the users with these names (unknown names are skipped), in no particular order. */
  idsByNames(names: readonly string[]): Promise<number[]>;
  /** Replaces the password hash; false if the user does not exist. */
  setPasswordHash(id: number, passwordHash: string): Promise<boolean>;
  /** Deletes the user; devices, tokens and remote sessions go with it (cascade). False if absent. */
  delete(id: number): Promise<boolean>;
  count(): Promise<number>;
}

/** An Ed25519 key a user logs in with. */
export interface DeviceRow {
  id: number;
  userId: number;
  /** base64 of the raw 32-byte Ed25519 public key */
  publicKey: string;
  fingerprint: string;
  name: string;
  /** epoch ms */
  createdAt: number;
  /** epoch ms; null until the device first authenticates */
  lastSeenAt: number | null;
  /** epoch ms; null unless revoked (then it may not log in or authenticate again) */
  revokedAt: number | null;
}

export interface DevicesRepo {
  /**
   * Registers the key for the user, or returns the existing row for the same (user, key)
   * with its name updated. `undefined` if the key is registered to another user.
   */
  upsert(
    userId: number,
    publicKey: string,
    fingerprint: string,
    name: string,
    now: number,
  ): Promise<DeviceRow | undefined>;
  findById(id: number): Promise<DeviceRow | undefined>;
  /** The device registered with this base64 public key, whoever owns it. */
  findByPublicKey(publicKey: string): Promise<DeviceRow | undefined>;
  /** Ordered by id (registration order). */
  listForUser(userId: number): Promise<DeviceRow[]>;
  /** Sets lastSeenAt to `now`. */
  touch(id: number, now: number): Promise<void>;
  /** Marks the device revoked at `now` (once); false if it was already revoked or is unknown. */
  revoke(id: number, now: number): Promise<boolean>;
}

/** A bearer token; only its hash is stored. All times epoch ms. */
export interface TokenRow {
  id: number;
  userId: number;
  deviceId: number;
  /** lower-case hex SHA-256 of the token */
  tokenHash: string;
  createdAt: number;
  lastUsedAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

export interface TokensRepo {
  /**
   * @throws StorageError CONFLICT if the hash is already stored; STORAGE if the user or device
   *   does not exist
   */
  create(row: Omit<TokenRow, 'id' | 'revokedAt'>): Promise<TokenRow>;
  /** Revokes every live token of a device; returns how many. */
  revokeForDevice(deviceId: number, now: number): Promise<number>;
  findByHash(tokenHash: string): Promise<TokenRow | undefined>;
  /** Sets lastUsedAt to `now`. */
  touch(id: number, now: number): Promise<void>;
  /** Revokes the token unless already revoked (its first revokedAt is kept); rows changed. */
  revoke(id: number, now: number): Promise<number>;
  /** Revokes every not-yet-revoked token of the user; returns how many. */
  revokeAllForUser(userId: number, now: number): Promise<number>;
  /** Same, sparing the token `keepId` (the caller's own login); returns how many. */
  revokeOthersForUser(userId: number, keepId: number, now: number): Promise<number>;
  /** Housekeeping: deletes tokens that expired, or were revoked, before `before`; returns how many. */
  deleteExpired(before: number): Promise<number>;
}

/**
 * Which relay process holds a live session, and until when. Several relays may share one
 * database: each renews the leases of the sessions it hosts, and a lease that runs out makes
 * the session read as offline, so a relay that crashed leaves nothing live behind.
 */
export interface SessionLease {
  /** The holding relay process's random id (see server/session-leases.ts). */
  relayId: string;
  /** epoch ms; the session is live before this instant, offline from it on */
  until: number;
}

/** A terminal reachable through the relay. All times epoch ms. */
/** What `remoteSessions.register` takes: the row's own fields, tags and operators optional (default none). */
export type RegisterRow = Omit<
  RemoteSessionRow,
  'createdAt' | 'status' | 'lastSeenAt' | 'relayId' | 'leaseUntil' | 'tags' | 'operators'
> & { tags?: Record<string, string>; operators?: string[] };

export interface RemoteSessionRow {
  id: string;
  ownerId: number;
  kind: 'share' | 'agent';
  hostName: string;
  /**
   * Who may join. A stored value that is not a JSON array of strings reads back as `[]`,
   * so callers must treat `[]` as "nobody but the owner" (fail closed).
   */
  allow: string[];
  /** Same corrupt-value rule as `allow`. */
  viewers: string[];
  /** The host's `--tag KEY=VALUE`s; a stored value that is not a JSON object of strings reads `{}`. */
  tags: Record<string, string>;
  /**
   * Users the agent's --policy grants commands to: they may open its exec and push channels,
   * never its terminal (same corrupt-value rule as `allow`).
   */
  operators: string[];
  createdAt: number;
  /**
   * When the host was last known to be connected: set by register, setStatus, the lease
   * methods, and by every lease renewal (so a session whose lease ran out was last seen at
   * its last renewal).
   */
  lastSeenAt: number;
  /**
   * 'live' only while the row holds an unexpired lease: read with a `now` (find, listAll), a
   * live row whose lease ran out at or before `now`, or that has none, reads 'offline'.
   * Read without a `now`, the status is as stored.
   */
  status: 'live' | 'offline' | 'closed';
  /** The relay holding the session while live (kept after its lease runs out); null once released or closed. */
  relayId: string | null;
  /** End of that lease (epoch ms); null once released or closed. */
  leaseUntil: number | null;
}

export interface RemoteSessionsRepo {
  /**
   * Inserts the session as live under `lease` or, if the id exists for the same owner, makes
   * it live under `lease` with the new fields (createdAt kept), taking it from whichever relay
   * held it. `undefined` if the id belongs to another owner. Without a lease the row is stored
   * live but held by no relay, so it reads as offline: a relay always passes one.
   */
  register(
    row: RegisterRow,
    now: number,
    lease?: SessionLease,
  ): Promise<RemoteSessionRow | undefined>;
  /** The session, its status read at `now` (see RemoteSessionRow.status). */
  find(id: string, now?: number): Promise<RemoteSessionRow | undefined>;
  /**
   * Sets the status and lastSeenAt = now and drops any lease, whoever held it; a missing id is a
   * no-op. For 'offline' on a host's disconnect use releaseLease, which spares another relay's
   * newer registration; 'live' needs a lease, so only register makes a session live.
   */
  setStatus(id: string, status: RemoteSessionRow['status'], now: number): Promise<void>;
  /** Replaces the session's operators (an agent reloaded its --policy); a missing id is a no-op. */
  setOperators(id: string, operators: string[]): Promise<void>;
  /**
   * Extends every live lease `relayId` holds to `until` and sets their lastSeenAt = now, in one
   * UPDATE, expired ones included (no other relay has taken them); returns how many.
   */
  renewLeases(relayId: string, now: number, until: number): Promise<number>;
  /** Makes the session offline if `relayId` holds it (lastSeenAt = now); true if it did. */
  releaseLease(id: string, relayId: string, now: number): Promise<boolean>;
  /** A relay's clean stop: makes every session `relayId` holds offline; returns how many. */
  releaseLeases(relayId: string, now: number): Promise<number>;
  /** Ordered by createdAt, then id; statuses read at `now` (see RemoteSessionRow.status). */
  listAll(now?: number): Promise<RemoteSessionRow[]>;
  /** True if a row was deleted. */
  delete(id: string): Promise<boolean>;
  /**
   * IDs the owner holds: live ones (lease unexpired at `now`), and offline ones last seen after
   * `reservedSince` (epoch ms); a live row whose lease ran out counts as offline since it was
   * last seen. Closed IDs and offline ones past their reservation do not count. Without `now`,
   * every row stored as live counts.
   */
  countHeld(ownerId: number, reservedSince: number, now?: number): Promise<number>;
  /**
   * Housekeeping: deletes offline and closed sessions, and live ones whose lease ran out, that
   * were last seen at or before `before`; returns how many.
   */
  deleteStale(before: number): Promise<number>;
}

/** A sign-up invite. Only the hash of the code is stored. All times epoch ms. */
export interface InviteRow {
  id: number;
  /** lower-case hex SHA-256 of the code */
  codeHash: string;
  /** The admin who made it; null once that account is deleted. */
  createdBy: number | null;
  usesLeft: number;
  expiresAt: number;
  createdAt: number;
}

export interface InvitesRepo {
  /** @throws StorageError CONFLICT if the hash is already stored */
  create(row: Omit<InviteRow, 'id'>): Promise<InviteRow>;
  /** The invite with this code hash, spent or expired included. */
  findByHash(codeHash: string): Promise<InviteRow | undefined>;
  /**
   * Takes one use of the invite if it is unexpired at `now` and has uses left, atomically (one
   * conditional UPDATE). True if a use was taken.
   */
  consume(codeHash: string, now: number): Promise<boolean>;
  /** Invites still usable at `now` (uses left, unexpired), newest first, at most `limit`. */
  listUsable(now: number, limit: number): Promise<InviteRow[]>;
  /** Housekeeping: deletes invites that are spent or expired before `before`; returns how many. */
  deleteUnusable(before: number): Promise<number>;
}

/** The repositories, as handed to a transaction's callback. */
export interface StoreRepositories {
  readonly users: UsersRepo;
  readonly devices: DevicesRepo;
  readonly tokens: TokensRepo;
  readonly remoteSessions: RemoteSessionsRepo;
  readonly invites: InvitesRepo;
  readonly audit: AuditRepo;
  readonly prekeys: PrekeysRepo;
  readonly mailbox: MailboxRepo;
  readonly broadcasts: BroadcastsRepo;
  readonly ledger: LedgerRepo;
}

/** The SQL dialects a Store runs on. */
export type SqlDialect = 'sqlite' | 'postgres';

/** The isolation levels a transaction may ask for (PostgreSQL's names). */
export const ISOLATION_LEVELS = ['read committed', 'repeatable read', 'serializable'] as const;
export type IsolationLevel = (typeof ISOLATION_LEVELS)[number];

/** Most retries `transaction()` accepts: a transaction that keeps losing has a deeper problem. */
export const MAX_TRANSACTION_RETRIES = 10;

export interface TransactionOptions {
  /**
   * PostgreSQL: the transaction's isolation level; default the server's (normally
   * 'read committed'). SQLite: ignored, every transaction is serializable there (one
   * connection, one writer at a time).
   */
  isolation?: IsolationLevel;
  /**
   * How many times to run `fn` again after a RETRYABLE failure (serialization failure,
   * deadlock, SQLITE_BUSY), after a short random pause (up to 5 ms, doubling per retry, never
   * over 100 ms). 0 … {@link MAX_TRANSACTION_RETRIES}; default 0. `fn` must be safe to run again.
   */
  retries?: number;
}

/**
 * All persistent state. Every method throws StorageError on a database failure (never a raw
 * driver error), coded so callers can act on it: CONFLICT for a unique key already taken,
 * RETRYABLE for a transaction that lost to a concurrent one, STORAGE for anything else.
 * Conflicts callers must handle routinely are return values instead, as documented per
 * method (users.create, devices.upsert, remoteSessions.register), on every dialect.
 */
export interface Store extends StoreRepositories {
  /** Which database this store runs on. */
  readonly dialect: SqlDialect;
  /**
   * Runs `fn` atomically with repositories bound to one transaction: committed if `fn`
   * resolves, rolled back (and its error rethrown unchanged) if it rejects. A RETRYABLE
   * StorageError, from `fn`'s queries or from the commit, reruns `fn` up to
   * `options.retries` times; after that it is thrown. Use only the repositories passed in: on
   * SQLite the outer store waits for the transaction to end, so calling it from inside `fn`
   * deadlocks. Keep `fn` short; it holds the write lock.
   *
   * @throws TypeError for an unknown isolation level or retries outside 0 … 10
   * @example
   * await store.transaction(async (tx) => {
   *   const user = await tx.users.create(name, hash, now);
   *   if (!user) throw new AuthError(ErrorCode.USER_EXISTS, 'user exists');
   *   await tx.devices.upsert(user.id, key, fingerprint, deviceName, now);
   * }, { isolation: 'serializable', retries: 3 });
   */
  transaction<T>(
    fn: (store: StoreRepositories) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T>;
  /** Closes the database; idempotent. */
  close(): Promise<void>;
}
