// Accounts: sign-up, password login with throttling, device registration, session tokens.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hash as argonHash, verify as argonVerify } from '@node-rs/argon2';
import { AuthError, ErrorCode } from '../protocol/errors.js';
import { keyFingerprint, parsePublicKey } from '../crypto/device-key.js';
import type { DeviceRow, Store, UserRow } from '../store/repositories.js';
import { KeyedGate } from './keyed-gate.js';
import { FailureThrottle, type ThrottlePolicy } from './throttle.js';

function throttled(message: string): AuthError {
  return new AuthError(ErrorCode.THROTTLED, message);
}

export interface AuthOptions {
  /** A token unused for this long stops working. */
  tokenIdleMs: number; // ms
  /** A token stops working this long after login, used or not. */
  tokenMaxAgeMs: number; // ms
  /** Shortest password accepted at sign-up. */
  minPasswordLength: number; // characters
  /** Argon2id cost; the defaults follow OWASP's minimum (19 MiB, 2 passes). */
  argon2: { memoryCost: number /* KiB */; timeCost: number; parallelism: number };
  throttle: { perAccount: ThrottlePolicy; perAddress: ThrottlePolicy; perPair: ThrottlePolicy };
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
  },
});

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

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export class AuthService {
  readonly #store: Store;
  readonly #options: AuthOptions;
  readonly #now: () => number;
  readonly #perAccount: FailureThrottle;
  readonly #perAddress: FailureThrottle;
  readonly #perPair: FailureThrottle;
  /** One password check at a time per account; a few per address (Argon2 is CPU-bound anyway). */
  readonly #accountGate = new KeyedGate(1, 64);
  readonly #addressGate = new KeyedGate(8, 1024);
  /** A real hash of a random password, verified against when the user does not exist so timing does not tell. */
  #dummyHash: Promise<string> | undefined;

  constructor(store: Store, now: () => number, options: Partial<AuthOptions> = {}) {
    this.#store = store;
    this.#now = now;
    this.#options = Object.freeze({ ...DEFAULT_AUTH_OPTIONS, ...options });
    this.#perAccount = new FailureThrottle(this.#options.throttle.perAccount);
    this.#perAddress = new FailureThrottle(this.#options.throttle.perAddress);
    this.#perPair = new FailureThrottle(this.#options.throttle.perPair);
  }

  get idleTimeoutSec(): number {
    return Math.floor(this.#options.tokenIdleMs / 1000);
  }

  async #verify(
    name: string,
    password: string,
    keys: { account: string; address: string; pair: string },
  ): Promise<UserRow> {
    const now = this.#now();
    const wait = Math.max(
      this.#perAccount.waitMs(keys.account, now),
      this.#perAddress.waitMs(keys.address, now),
      this.#perPair.waitMs(keys.pair, now),
    );
    if (wait > 0)
      throw throttled(`too many failed logins; try again in ${Math.ceil(wait / 1000)} s`);
    const user = await this.#store.users.findByName(name);
    let ok = false;
    if (user) {
      ok = await argonVerify(user.passwordHash, password).catch(() => false);
    } else {
      this.#dummyHash ??= this.#hash(randomBytes(16).toString('hex'));
      await argonVerify(await this.#dummyHash, password).catch(() => false);
    }
    if (!user || !ok) {
      const later = this.#now();
      this.#perAccount.fail(keys.account, later);
      this.#perAddress.fail(keys.address, later);
      this.#perPair.fail(keys.pair, later);
      throw new AuthError(ErrorCode.BAD_CREDENTIALS, 'wrong user name or password');
    }
    return user;
  }

  #hash(password: string): Promise<string> {
    const { memoryCost, timeCost, parallelism } = this.#options.argon2;
    // algorithm 2 = Argon2id (the const enum is not importable under verbatimModuleSyntax)
    return argonHash(password, { algorithm: 2, memoryCost, timeCost, parallelism });
  }

  async signup(name: string, password: string): Promise<UserRow> {
    if (password.length < this.#options.minPasswordLength) {
      throw new AuthError(
        ErrorCode.WEAK_PASSWORD,
        `passwords need at least ${this.#options.minPasswordLength} characters`,
      );
    }
    if (password.toLowerCase() === name.toLowerCase()) {
      throw new AuthError(ErrorCode.WEAK_PASSWORD, 'the password must differ from the user name');
    }
    const passwordHash = await this.#hash(password);
    const user = await this.#store.users.create(name, passwordHash, this.#now());
    if (!user)
      throw new AuthError(
        ErrorCode.USER_EXISTS,
        `the user name "${name}" is taken; choose another or log in`,
      );
    return user;
  }

  /** Verifies the password (throttled per account, address and both), registers the device key, issues a token. */
  async login(
    name: string,
    password: string,
    device: { publicKey: string; name: string },
    address: string,
  ): Promise<LoginResult> {
    const publicKey = parsePublicKey(device.publicKey); // throws on a malformed key before any work
    const keys = { account: `a:${name}`, address: `i:${address}`, pair: `p:${name}|${address}` };
    // Password checks run one at a time per account and a few at a time per address, and the
    // throttle is consulted after waiting: parallel guesses see the failures before them.
    const outcome = await this.#addressGate.run(keys.address, async () => {
      const perAccount = await this.#accountGate.run(keys.account, () =>
        this.#verify(name, password, keys),
      );
      if (!perAccount)
        throw throttled('too many logins for this account at once; try again shortly');
      return perAccount.value;
    });
    if (!outcome) throw throttled('too many logins from your address at once; try again shortly');
    const user = outcome.value;
    const now = this.#now();
    this.#perPair.reset(keys.pair);
    this.#perAccount.reset(keys.account);
    const fingerprint = keyFingerprint(publicKey);
    const deviceRow = await this.#store.devices.upsert(
      user.id,
      device.publicKey,
      fingerprint,
      device.name,
      now,
    );
    if (!deviceRow) {
      throw new AuthError(
        ErrorCode.BAD_CREDENTIALS,
        'this device key is registered to another account; use a separate SWITCHBOARD_HOME per user',
      );
    }
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const expiresAt = now + this.#options.tokenMaxAgeMs;
    await this.#store.tokens.create({
      userId: user.id,
      deviceId: deviceRow.id,
      tokenHash: sha256Hex(token),
      createdAt: now,
      lastUsedAt: now,
      expiresAt,
    });
    return { user, device: deviceRow, token, expiresAt };
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
      throw new AuthError(
        ErrorCode.TOKEN_REVOKED,
        'this login was ended (logout); log in again with `switchboard login`',
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
    await Promise.all([
      this.#store.tokens.touch(row.id, now),
      this.#store.devices.touch(device.id, now),
    ]);
    return { user, device, tokenId: row.id, expiresAt: row.expiresAt };
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
