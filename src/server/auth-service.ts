// Accounts: sign-up, password login with throttling, device registration, session tokens.
import { passwordProblem } from '../protocol/password-rules.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hash as argonHash, verify as argonVerify } from '@node-rs/argon2';
import { AuthError, ErrorCode } from '../protocol/errors.js';
import { keyFingerprint, parsePublicKey } from '../crypto/device-key.js';
import { verifyDeviceAuth, verifyLoginProof } from '../crypto/login-proof.js';
import type { DeviceRow, Store, UserRow } from '../store/repositories.js';
import { HashPool, type HashPoolOptions, type HashPoolStats } from './hash-pool.js';
import { KeyedGate } from './keyed-gate.js';
import {
  InProcessLimiterStore,
  type LimiterStore,
  type RateBuckets,
  type ThrottleRecords,
} from './limiter-store.js';
import type { RatePolicy } from './rate-limit.js';
import type { ThrottlePolicy } from './throttle.js';
import { addressKey } from './address-key.js';
import { MAX_DEVICES_PER_ACCOUNT } from '../protocol/limits.js';

/** A refusal that passes: how long to wait travels as `retryAfterMs` (clients show it). */
function throttled(message: string, waitMs: number): AuthError {
  return new AuthError(ErrorCode.THROTTLED, message, { retryAfterMs: waitMs });
}

/** Who may create an account: anyone, holders of an invite code, or no one. */
export type SignupMode = 'open' | 'invite' | 'closed';
export const SIGNUP_MODES: readonly SignupMode[] = Object.freeze(['open', 'invite', 'closed']);

export interface AuthOptions {
  /** A token unused for this long stops working. */
  tokenIdleMs: number; // ms
  /** A token stops working this long after login, used or not. */
  tokenMaxAgeMs: number; // ms
  /** Shortest password accepted at sign-up. */
  minPasswordLength: number; // characters
  /** Argon2id cost; the defaults follow OWASP's minimum (19 MiB, 2 passes). */
  argon2: { memoryCost: number /* KiB */; timeCost: number; parallelism: number };
  throttle: {
    perAccount: ThrottlePolicy;
    perAddress: ThrottlePolicy;
    perPair: ThrottlePolicy;
    /** A device that proved it is registered to the account is judged by this record alone. */
    perDevice: ThrottlePolicy;
  };
  /** Who may sign up (`serve --signup`). */
  signupMode: SignupMode;
  /** Sign-up rates, apart from logins: per address, and for the whole relay. */
  signupRate: { perAddress: RatePolicy; relay: RatePolicy };
  /** The bounded queue every Argon2 hash and verify goes through. */
  hashPool: HashPoolOptions;
  /**
   * Where the throttles and sign-up rates keep their state. Default: a new
   * InProcessLimiterStore per AuthService (this relay alone); relays that share one store
   * share their limits.
   */
  limiters?: LimiterStore;
}

export const DEFAULT_AUTH_OPTIONS: AuthOptions = Object.freeze({
  tokenIdleMs: 7 * 24 * 3600_000,
  tokenMaxAgeMs: 30 * 24 * 3600_000,
  minPasswordLength: 8,
  argon2: { memoryCost: 19_456, timeCost: 2, parallelism: 1 },
  throttle: {
    // Account-wide: capped low so a guesser elsewhere cannot keep the owner out for long.
    perAccount: {
      freeFailures: 5,
      baseDelayMs: 1_000,
      maxDelayMs: 30_000,
      forgetAfterMs: 15 * 60_000,
    },
    // One address against many accounts (spraying).
    perAddress: {
      freeFailures: 20,
      baseDelayMs: 1_000,
      maxDelayMs: 5 * 60_000,
      forgetAfterMs: 15 * 60_000,
    },
    // One address against one account: the guesser's own path, slowed hardest.
    perPair: {
      freeFailures: 3,
      baseDelayMs: 1_000,
      maxDelayMs: 15 * 60_000,
      forgetAfterMs: 15 * 60_000,
    },
    // One proven device of the account: only its holder (or a thief of its key) fails here.
    perDevice: {
      freeFailures: 5,
      baseDelayMs: 1_000,
      maxDelayMs: 15 * 60_000,
      forgetAfterMs: 15 * 60_000,
    },
  },
  signupMode: 'open',
  signupRate: {
    // A person signs up once; a few retries (typos, a taken name) fit in the burst.
    perAddress: { perMinute: 5, burst: 10 },
    // Bounds the hashing a botnet of addresses can cause: one sign-up a second, sustained.
    relay: { perMinute: 60, burst: 60 },
  },
  hashPool: { concurrency: 2, maxRunningSignups: 1, maxQueued: { login: 64, signup: 16 } },
});

/** What the connection tells the auth service about a request besides its parameters. */
export interface RequestContext {
  /** The address the request came from (throttling key). */
  address: string;
  /** True once the requester has gone: queued password work for it is skipped. */
  isCancelled?: () => boolean;
}

export interface LoginContext extends RequestContext {
  /** The `challenge` of this connection's hello reply; a `deviceProof` signs it. */
  challenge?: Uint8Array | undefined;
  /** base64 Ed25519 signature of crypto/login-proof.ts by the device key. */
  deviceProof?: string | undefined;
}

export interface SignupContext extends RequestContext {
  /** An invite code (`invite` sign-up mode). */
  invite?: string | undefined;
}

/** Prefix that makes a leaked token recognisable by secret scanners. */
export const TOKEN_PREFIX = 'sbt_';

export interface Authenticated {
  user: UserRow;
  device: DeviceRow;
  tokenId: number;
  expiresAt: number;
}

export interface LoginResult {
  user: UserRow;
  device: DeviceRow;
  token: string;
  expiresAt: number;
}

/** Lower-case hex SHA-256: how tokens and invite codes are stored. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function inviteInvalid(): AuthError {
  return new AuthError(
    ErrorCode.INVITE_INVALID,
    'this invite code is unknown, expired or used up; ask an admin for a new one',
  );
}

function userExists(name: string): AuthError {
  return new AuthError(
    ErrorCode.USER_EXISTS,
    `the user name "${name}" is taken; choose another or log in`,
  );
}

export class AuthService {
  readonly #store: Store;
  readonly #options: AuthOptions;
  readonly #now: () => number;
  readonly #perAccount: ThrottleRecords;
  readonly #perAddress: ThrottleRecords;
  readonly #perPair: ThrottleRecords;
  readonly #perDevice: ThrottleRecords;
  readonly #signupsPerAddress: RateBuckets;
  readonly #signupsRelay: RateBuckets;
  readonly #hashes: HashPool;
  /** One password check at a time per account; a few per address (Argon2 is CPU-bound anyway). */
  readonly #accountGate = new KeyedGate(1, 64);
  readonly #addressGate = new KeyedGate(8, 1024);
  /** A proven device waits behind its own checks only, never behind a guesser's. */
  readonly #deviceGate = new KeyedGate(1, 16);
  /** A real hash of a random password, verified against when the user does not exist so timing does not tell. */
  #dummyHash: Promise<string> | undefined;

  constructor(store: Store, now: () => number, options: Partial<AuthOptions> = {}) {
    this.#store = store;
    this.#now = now;
    this.#options = Object.freeze({ ...DEFAULT_AUTH_OPTIONS, ...options });
    if (!SIGNUP_MODES.includes(this.#options.signupMode))
      throw new RangeError(`AuthService: signupMode must be one of ${SIGNUP_MODES.join(', ')}`);
    const limiters = this.#options.limiters ?? new InProcessLimiterStore();
    const { throttle, signupRate } = this.#options;
    this.#perAccount = limiters.throttle('login.account', throttle.perAccount);
    this.#perAddress = limiters.throttle('login.address', throttle.perAddress);
    this.#perPair = limiters.throttle('login.pair', throttle.perPair);
    this.#perDevice = limiters.throttle(
      'login.device',
      throttle.perDevice ?? DEFAULT_AUTH_OPTIONS.throttle.perDevice,
    );
    this.#signupsPerAddress = limiters.rate('signup.address', signupRate.perAddress);
    this.#signupsRelay = limiters.rate('signup.relay', signupRate.relay);
    this.#hashes = new HashPool(this.#options.hashPool);
  }

  /** Who may sign up on this relay (`serve --signup`). */
  get minPasswordLength(): number {
    return this.#options.minPasswordLength;
  }

  get signupMode(): SignupMode {
    return this.#options.signupMode;
  }

  get idleTimeoutSec(): number {
    return Math.floor(this.#options.tokenIdleMs / 1000);
  }

  /** The password-hashing queue's figures (tests, metrics). */
  get hashStats(): HashPoolStats {
    return this.#hashes.stats;
  }

  /** Password hashes running or waiting now. */
  get pendingHashes(): number {
    const { running, queuedLogins, queuedSignups } = this.#hashes.stats;
    return running + queuedLogins + queuedSignups;
  }

  /**
   * Checks a password against the throttle records in `records` (refusing at once while any is
   * blocked), through the hash queue; a failure counts against every one of them.
   */
  async #verify(
    name: string,
    password: string,
    records: ReadonlyArray<readonly [ThrottleRecords, string]>,
    ctx: RequestContext,
  ): Promise<UserRow> {
    const now = this.#now();
    const waits = await Promise.all(records.map(([throttle, key]) => throttle.waitMs(key, now)));
    const wait = Math.max(0, ...waits);
    if (wait > 0) throw throttled('too many failed logins', wait);
    const user = await this.#store.users.findByName(name);
    if (!user) this.#dummyHash ??= this.#hash(randomBytes(16).toString('hex'));
    const against = user ? user.passwordHash : await this.#dummyHash!;
    const ok = await this.#hashes.run(
      'login',
      () => argonVerify(against, password).catch(() => false),
      ctx.isCancelled,
    );
    if (!user || !ok) {
      const later = this.#now();
      await Promise.all(records.map(([throttle, key]) => throttle.fail(key, later)));
      throw new AuthError(ErrorCode.BAD_CREDENTIALS, 'wrong user name or password');
    }
    return user;
  }

  /** Checks the password of an authenticated user (passwd, account delete): judged by the device record. */
  async #verifyOwn(auth: Authenticated, password: string, ctx: RequestContext): Promise<UserRow> {
    const key = `d:${auth.device.id}`;
    const outcome = await this.#deviceGate.run(key, () =>
      this.#verify(auth.user.name, password, [[this.#perDevice, key]], ctx),
    );
    if (!outcome) throw throttled('too many password checks for this device at once', 1_000);
    const user = outcome.value;
    if (user.id !== auth.user.id)
      throw new AuthError(ErrorCode.TOKEN_INVALID, 'the account for this login is gone');
    await this.#perDevice.reset(key);
    return user;
  }

  #checkStrength(name: string, password: string): void {
    const problem = passwordProblem(name, password, this.#options.minPasswordLength);
    if (problem !== undefined) throw new AuthError(ErrorCode.WEAK_PASSWORD, problem);
  }

  #hash(password: string): Promise<string> {
    const { memoryCost, timeCost, parallelism } = this.#options.argon2;
    // algorithm 2 = Argon2id (the const enum is not importable under verbatimModuleSyntax)
    return argonHash(password, { algorithm: 2, memoryCost, timeCost, parallelism });
  }

  /**
   * Creates an account if the sign-up mode, the invite (in `invite` mode) and the sign-up rate
   * limits allow; the hash waits in the queue behind every login.
   */
  async signup(name: string, password: string, ctx: SignupContext): Promise<UserRow> {
    const mode = this.#options.signupMode;
    if (mode === 'closed')
      throw new AuthError(
        ErrorCode.SIGNUP_CLOSED,
        'this relay does not take new accounts; ask its operator for one',
      );
    this.#checkStrength(name, password);
    if (mode === 'invite' && ctx.invite === undefined)
      throw new AuthError(
        ErrorCode.INVITE_REQUIRED,
        'this relay takes new accounts by invitation only: pass --invite CODE (an admin makes one with `switchboard invite create`)',
      );
    const now = this.#now();
    const perAddress = `i:${addressKey(ctx.address)}`;
    const addressWait = await this.#signupsPerAddress.take(perAddress, now);
    if (addressWait > 0) throw throttled('too many sign-ups from your address', addressWait);
    // The invite is checked before the relay-wide bucket is touched: guessing codes costs the
    // guesser's own address bucket, never the sign-ups of invited people.
    const inviteHash = mode === 'invite' && ctx.invite ? sha256Hex(ctx.invite) : undefined;
    if (inviteHash !== undefined) {
      const invite = await this.#store.invites.findByHash(inviteHash);
      if (!invite || invite.usesLeft <= 0 || invite.expiresAt <= now) throw inviteInvalid();
    }
    const relayWait = await this.#signupsRelay.take('relay', now);
    if (relayWait > 0) throw throttled('this relay takes few sign-ups at a time', relayWait);
    // A taken name costs no hash.
    if (await this.#store.users.findByName(name)) throw userExists(name);
    const passwordHash = await this.#hashes.run(
      'signup',
      () => this.#hash(password),
      ctx.isCancelled,
    );
    // Taking a use of the invite and creating the user commit together or not at all.
    return this.#store.transaction(async (tx) => {
      if (inviteHash !== undefined && !(await tx.invites.consume(inviteHash, this.#now())))
        throw inviteInvalid();
      const user = await tx.users.create(name, passwordHash, this.#now());
      if (!user) throw userExists(name);
      return user;
    });
  }

  /**
   * Verifies the password, registers the device key, issues a token. A device that proves
   * (`ctx.deviceProof`) it holds a key already registered to this account is judged by its own
   * throttle record; any other attempt by the account, address and address+account records.
   */
  async login(
    name: string,
    password: string,
    device: { publicKey: string; name: string },
    ctx: LoginContext,
  ): Promise<LoginResult> {
    const publicKey = parsePublicKey(device.publicKey); // throws on a malformed key before any work
    const provenKey = await this.#provenDevice(name, publicKey, device.publicKey, ctx);
    let user: UserRow;
    const address = `i:${addressKey(ctx.address)}`;
    if (provenKey !== undefined) {
      // Still a few at a time per address: an account with many devices must not fill the
      // relay's hash queue from one place.
      const outcome = await this.#addressGate.run(address, async () => {
        const perDevice = await this.#deviceGate.run(provenKey, () =>
          this.#verify(name, password, [[this.#perDevice, provenKey]], ctx),
        );
        if (!perDevice) throw throttled('too many logins from this device at once', 1_000);
        return perDevice.value;
      });
      if (!outcome) throw throttled('too many logins from your address at once', 1_000);
      user = outcome.value;
      // The account-wide record is left alone: a guesser elsewhere must not get a fresh start.
      await this.#perDevice.reset(provenKey);
    } else {
      const keys = { account: `a:${name}`, address, pair: `p:${name}|${address}` };
      const records = [
        [this.#perAccount, keys.account],
        [this.#perAddress, keys.address],
        [this.#perPair, keys.pair],
      ] as const;
      // Password checks run one at a time per account and a few at a time per address, and the
      // throttle is consulted after waiting: parallel guesses see the failures before them.
      const outcome = await this.#addressGate.run(keys.address, async () => {
        const perAccount = await this.#accountGate.run(keys.account, () =>
          this.#verify(name, password, records, ctx),
        );
        if (!perAccount) throw throttled('too many logins for this account at once', 1_000);
        return perAccount.value;
      });
      if (!outcome) throw throttled('too many logins from your address at once', 1_000);
      user = outcome.value;
      await Promise.all([this.#perPair.reset(keys.pair), this.#perAccount.reset(keys.account)]);
    }
    const now = this.#now();
    const fingerprint = keyFingerprint(publicKey);
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const expiresAt = now + this.#options.tokenMaxAgeMs;
    const verified = user;
    // One transaction, checked against the hash just verified: a password change or an account
    // deletion that lands while this login was hashing wins, and no token outlives it.
    const deviceRow = await this.#store.transaction(async (tx) => {
      const current = await tx.users.findById(verified.id);
      if (!current || current.passwordHash !== verified.passwordHash)
        throw new AuthError(
          ErrorCode.BAD_CREDENTIALS,
          'the password changed (or the account was deleted) while logging in; log in again',
        );
      const existing = await tx.devices.findByPublicKey(device.publicKey);
      if (
        !existing &&
        (await tx.devices.listForUser(verified.id)).length >= MAX_DEVICES_PER_ACCOUNT
      )
        throw new AuthError(
          ErrorCode.DEVICE_LIMIT,
          `this account has ${MAX_DEVICES_PER_ACCOUNT} devices, its limit; log in from one of them`,
        );
      const row = await tx.devices.upsert(
        verified.id,
        device.publicKey,
        fingerprint,
        device.name,
        now,
      );
      if (!row) {
        throw new AuthError(
          ErrorCode.BAD_CREDENTIALS,
          'this device key is registered to another account; use a separate SWITCHBOARD_HOME per user',
        );
      }
      if (row.revokedAt !== null) throw revokedDevice();
      await tx.tokens.create({
        userId: verified.id,
        deviceId: row.id,
        tokenHash: sha256Hex(token),
        createdAt: now,
        lastUsedAt: now,
        expiresAt,
      });
      return row;
    });
    return { user, device: deviceRow, token, expiresAt };
  }

  /**
   * The throttle key of the device if `ctx.deviceProof` proves possession of a key registered to
   * `name`; undefined when there is no proof or the key is not (yet) that account's. A proof
   * that does not verify is refused: it was made for another connection or account, or forged.
   */
  async #provenDevice(
    name: string,
    publicKey: Uint8Array,
    publicKeyBase64: string,
    ctx: LoginContext,
  ): Promise<string | undefined> {
    if (ctx.deviceProof === undefined) return undefined;
    if (!ctx.challenge || !verifyLoginProof(publicKey, ctx.challenge, name, ctx.deviceProof)) {
      throw new AuthError(
        ErrorCode.BAD_CREDENTIALS,
        'the device proof does not match this connection and account; log in again',
      );
    }
    const registered = await this.#store.devices.findByPublicKey(publicKeyBase64);
    if (!registered) return undefined;
    const owner = await this.#store.users.findById(registered.userId);
    return owner?.name === name ? `d:${registered.id}` : undefined;
  }

  /**
   * Changes the password of the authenticated user after checking the current one (per-device
   * throttle, hash queue). With `revokeOthers`, every other login of the account is revoked;
   * returns how many were.
   */
  async changePassword(
    auth: Authenticated,
    password: string,
    newPassword: string,
    revokeOthers: boolean,
    ctx: RequestContext,
  ): Promise<number> {
    this.#checkStrength(auth.user.name, newPassword);
    const user = await this.#verifyOwn(auth, password, ctx);
    const passwordHash = await this.#hashes.run(
      'login',
      () => this.#hash(newPassword),
      ctx.isCancelled,
    );
    // The new hash and the revocations commit together: no other login sees one without the other.
    return this.#store.transaction(async (tx) => {
      if (!(await tx.users.setPasswordHash(user.id, passwordHash)))
        throw new AuthError(ErrorCode.TOKEN_INVALID, 'the account for this login is gone');
      return revokeOthers ? tx.tokens.revokeOthersForUser(user.id, auth.tokenId, this.#now()) : 0;
    });
  }

  /**
   * Deletes the authenticated user's account after checking the password; their devices, tokens
   * and sessions go with it (foreign keys cascade).
   */
  async deleteAccount(
    auth: Authenticated,
    password: string,
    ctx: RequestContext,
  ): Promise<UserRow> {
    const user = await this.#verifyOwn(auth, password, ctx);
    if (!(await this.#store.users.delete(user.id)))
      throw new AuthError(ErrorCode.TOKEN_INVALID, 'the account for this login is gone');
    return user;
  }

  /** Resolves a bearer token, enforcing revocation, absolute and idle expiry; refreshes its idle timer. */
  async authenticate(token: string): Promise<Authenticated> {
    const now = this.#now();
    const tokenHash = sha256Hex(token);
    const row = await this.#store.tokens.findByHash(tokenHash);
    // The lookup is by hash; the comparison below keeps the final check constant-time anyway.
    if (
      !row ||
      !timingSafeEqual(Buffer.from(row.tokenHash, 'hex'), Buffer.from(tokenHash, 'hex'))
    ) {
      throw new AuthError(
        ErrorCode.TOKEN_INVALID,
        'this login is not known to the relay; log in again with `switchboard login`',
      );
    }
    if (row.revokedAt !== null) {
      // Revoked with its device: say so (logging in again with that key will not work either).
      if ((await this.#store.devices.findById(row.deviceId))?.revokedAt != null)
        throw revokedDevice();
      throw new AuthError(
        ErrorCode.TOKEN_REVOKED,
        'this login was ended (logout, or a password change); log in again with `switchboard login`',
      );
    }
    if (now >= row.expiresAt || now - row.lastUsedAt >= this.#options.tokenIdleMs) {
      throw new AuthError(
        ErrorCode.TOKEN_EXPIRED,
        'this login has expired; log in again with `switchboard login`',
      );
    }
    const [user, device] = await Promise.all([
      this.#store.users.findById(row.userId),
      this.#store.devices.findById(row.deviceId),
    ]);
    if (!user || !device)
      throw new AuthError(
        ErrorCode.TOKEN_INVALID,
        'the account for this login is gone; sign up or log in again',
      );
    if (device.revokedAt !== null) throw revokedDevice();
    await Promise.all([
      this.#store.tokens.touch(row.id, now),
      this.#store.devices.touch(device.id, now),
    ]);
    return { user, device, tokenId: row.id, expiresAt: row.expiresAt };
  }

  /**
   * A registered device proves its key over this connection's challenge and this relay's
   * certificate fingerprint: no password, no token on the machine, so an agent outlives any
   * token. Issues a token for the connection like a login (returned to the relay, never sent).
   * Refused for an unknown key, another account's key, a revoked device or a bad proof.
   */
  async deviceLogin(
    name: string,
    publicKeyBase64: string,
    proof: string,
    ctx: { challenge: Uint8Array | undefined; relayFingerprint: string },
  ): Promise<string> {
    const publicKey = parsePublicKey(publicKeyBase64);
    if (
      !ctx.challenge ||
      !verifyDeviceAuth(publicKey, ctx.challenge, name, ctx.relayFingerprint, proof)
    ) {
      throw new AuthError(
        ErrorCode.BAD_CREDENTIALS,
        'the device proof does not match this connection, account and relay',
      );
    }
    const now = this.#now();
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    await this.#store.transaction(async (tx) => {
      const [user, device] = await Promise.all([
        tx.users.findByName(name),
        tx.devices.findByPublicKey(publicKeyBase64),
      ]);
      if (!user || !device || device.userId !== user.id)
        throw new AuthError(
          ErrorCode.BAD_CREDENTIALS,
          `this device is not registered to ${name}; log in once with \`switchboard login\``,
        );
      if (device.revokedAt !== null) throw revokedDevice();
      await tx.tokens.create({
        userId: user.id,
        deviceId: device.id,
        tokenHash: sha256Hex(token),
        createdAt: now,
        lastUsedAt: now,
        expiresAt: now + this.#options.tokenMaxAgeMs,
      });
    });
    return token;
  }

  /**
   * Revokes one of the user's devices (by fingerprint) and its tokens; false if the account has
   * no such device or it was already revoked. The caller closes its live connections.
   */
  async revokeDevice(
    userId: number,
    fingerprint: string,
  ): Promise<{ revoked: boolean; deviceId?: number }> {
    const now = this.#now();
    return this.#store.transaction(async (tx) => {
      const device = (await tx.devices.listForUser(userId)).find(
        (d) => d.fingerprint === fingerprint,
      );
      if (!device) return { revoked: false };
      const revoked = await tx.devices.revoke(device.id, now);
      await tx.tokens.revokeForDevice(device.id, now);
      return { revoked, deviceId: device.id };
    });
  }

  /** Marks a token as in use (a long-lived connection keeps its idle timer fresh). */
  async touch(auth: Authenticated): Promise<void> {
    await this.#store.tokens.touch(auth.tokenId, this.#now());
  }

  /** Revokes this token, or every token of the user with `all`. Returns how many were revoked. */
  async logout(auth: Authenticated, all: boolean): Promise<number> {
    const now = this.#now();
    return all
      ? this.#store.tokens.revokeAllForUser(auth.user.id, now)
      : this.#store.tokens.revoke(auth.tokenId, now);
  }
}

function revokedDevice(): AuthError {
  return new AuthError(
    ErrorCode.TOKEN_REVOKED,
    'this device was revoked (switchboard devices revoke); it may not log in again: ' +
      'move its device key away (a new one is made) and log in',
  );
}
