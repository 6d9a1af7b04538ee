// The accounts of a bench run: each a home directory like the CLI's (device key 0600, login.json,
// pins), signed up and logged in over a transport, so workers and agent processes use them as
// any client would. Names carry the run's prefix; the password is random and never printed.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { KnownServers } from '../client/known-servers.js';
import { RelayClient } from '../client/relay-client.js';
import { FILES, Home } from '../cli/home.js';
import type { DeviceKeyPair } from '../crypto/device-key.js';
import { ErrorCode, RemoteError, SwitchboardError } from '../protocol/errors.js';
import type { Transport } from './workload.js';

/** An account's home, as workers get it (plain data). */
export interface AccountRef {
  user: string;
  home: string;
}

/** Two accounts that deal with each other (a chat's two ends, a payer and a payee). */
export interface AccountPair {
  a: AccountRef;
  b: AccountRef;
}

/** Sign-ups at once: the relay queues password hashes and limits sign-ups per address. */
const SIGNUP_CONCURRENCY = 4;

/** Connects to the relay over `transport`, pinning its fingerprint in `home`'s known servers. */
export function connectOver(transport: Transport, home: string): Promise<RelayClient> {
  return RelayClient.connect({
    server: transport.server,
    trust: {
      knownServers: new KnownServers(join(home, FILES.knownServers)),
      fingerprint: transport.fingerprint,
    },
    insecure: transport.insecure,
  });
}

/**
 * A logged-in connection of `account` over `transport`: device authentication, as the CLI does.
 * `key` is the account's device key (read from its home when not given).
 */
export async function connectAs(
  account: AccountRef,
  transport: Transport,
  key: DeviceKeyPair = new Home(account.home).deviceKey(),
): Promise<RelayClient> {
  const client = await connectOver(transport, account.home);
  try {
    await client.authenticateDevice(account.user, key);
    return client;
  } catch (err) {
    client.close();
    throw err;
  }
}

export class BenchAccounts {
  readonly prefix: string;
  readonly #dir: string;
  readonly #password = randomBytes(18).toString('base64url');
  readonly #made = new Map<string, Promise<void>>();
  /** One device of each account made, to remove them after a run on someone's relay. */
  readonly #refs = new Map<string, AccountRef>();
  /** The accounts a run may make, for the message when the relay stops them. */
  readonly #expected: number;
  readonly #devices = new Map<string, Promise<AccountRef>>();
  #running = 0;
  readonly #queue: Array<() => void> = [];

  constructor(dir: string, prefix: string, expected: number) {
    this.#dir = dir;
    this.prefix = prefix;
    this.#expected = expected;
  }

  /**
   * The account `role` (named PREFIX-ROLE) with a device of its own logged in over `transport`:
   * signed up the first time it is asked for, a new device (home) per transport.
   */
  device(role: string, transport: Transport): Promise<AccountRef> {
    const key = `${role}@${transport.tls ? 'tls' : 'plain'}`;
    let found = this.#devices.get(key);
    if (!found) {
      found = this.#limited(() => this.#login(role, transport, key));
      this.#devices.set(key, found);
    }
    return found;
  }

  /** Pairs of accounts A-i and B-i, i < `count` (chat and pay share them), over `transport`. */
  async pairs(count: number, transport: Transport): Promise<AccountPair[]> {
    const [a, b] = await Promise.all([
      this.devices('a', count, transport),
      this.devices('b', count, transport),
    ]);
    return a.map((first, i) => ({ a: first, b: b[i]! }));
  }

  /** `count` accounts ROLE-0 … ROLE-(count-1), over `transport`. */
  devices(role: string, count: number, transport: Transport): Promise<AccountRef[]> {
    return Promise.all(
      Array.from({ length: count }, (_, i) => this.device(`${role}-${i}`, transport)),
    );
  }

  async #login(role: string, transport: Transport, key: string): Promise<AccountRef> {
    const user = `${this.prefix}-${role}`;
    const home = join(this.#dir, 'homes', key.replace('@', '-'));
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const device = new Home(home).deviceKey();
    const client = await connectOver(transport, home);
    try {
      let made = this.#made.get(user);
      if (!made) {
        made = this.#signup(client, user);
        this.#made.set(user, made);
      }
      await made;
      const login = await client.request('auth.login', {
        user,
        password: this.#password,
        device: { publicKey: device.publicKey.toString('base64'), name: `bench ${key}` },
      });
      new Home(home).saveLogin({
        server: transport.server,
        user,
        token: login.token,
        expiresAt: login.expiresAt,
      });
      const ref = { user, home };
      if (!this.#refs.has(user)) this.#refs.set(user, ref);
      return ref;
    } finally {
      client.close();
    }
  }

  async #signup(client: RelayClient, user: string): Promise<void> {
    try {
      await client.request('auth.signup', { user, password: this.#password });
    } catch (err) {
      if (err instanceof RemoteError && err.code === ErrorCode.USER_EXISTS) {
        throw new SwitchboardError(
          err.code,
          `the account ${user} already exists on this relay; pass another --prefix`,
        );
      }
      if (err instanceof RemoteError && err.code === ErrorCode.THROTTLED) {
        throw new SwitchboardError(
          err.code,
          `the relay stopped the bench's sign-ups after ${this.#made.size - 1} accounts (${err.message}); ` +
            `this run makes up to ${this.#expected} (2 a client, and 2): start the relay with ` +
            `\`serve --signup-rate ${this.#expected}\`, or pass fewer --clients`,
        );
      }
      if (err instanceof RemoteError && client.signupMode !== 'open') {
        throw new SwitchboardError(
          err.code,
          `the relay does not let the bench sign up its accounts (${err.message}); ` +
            'run `switchboard bench` without --server (it starts its own relay), or point it at a relay started with --signup open',
        );
      }
      throw err;
    }
  }

  /**
   * Deletes every account this run made, over `transport` (best effort: a relay that is gone
   * keeps them). Returns how many went.
   */
  async removeAll(transport: Transport): Promise<number> {
    let removed = 0;
    for (const ref of this.#refs.values()) {
      const client = await connectAs(ref, transport).catch(() => undefined);
      if (!client) continue;
      try {
        await client.request('account.delete', { password: this.#password });
        removed++;
      } catch {
        // left for the relay's operator: the names carry the run's prefix
      } finally {
        client.close();
      }
    }
    return removed;
  }

  /** Runs `fn` with at most SIGNUP_CONCURRENCY others. */
  async #limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running >= SIGNUP_CONCURRENCY)
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    this.#running++;
    try {
      return await fn();
    } finally {
      this.#running--;
      this.#queue.shift()?.();
    }
  }
}
