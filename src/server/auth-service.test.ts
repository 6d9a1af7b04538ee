// AuthService against a real SQLite file: throttling holds even when guesses arrive in parallel,
// a proven device is judged by its own record, sign-ups are rate-limited apart from logins.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateDeviceKey, type DeviceKeyPair } from '../crypto/device-key.js';
import { signLoginProof } from '../crypto/login-proof.js';
import type { SwitchboardError } from '../protocol/errors.js';
import { ErrorCode } from '../protocol/errors.js';
import { MAX_DEVICES_PER_ACCOUNT } from '../protocol/limits.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/repositories.js';
import { AuthService, type AuthOptions } from './auth-service.js';
import { InviteService } from './invites.js';
import { InProcessLimiterStore } from './limiter-store.js';

const FAST = { argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } };
const dir = mkdtempSync(join(tmpdir(), 'sb-auth-'));
let files = 0;
const stores: Store[] = [];
after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

async function service(
  now: () => number,
  options: Partial<AuthOptions> = {},
): Promise<{ store: Store; auth: AuthService }> {
  const store = await openSqliteStore({ file: join(dir, `db-${++files}.sqlite`) });
  stores.push(store);
  return { store, auth: new AuthService(store, now, { ...FAST, ...options }) };
}

function deviceOf(key: DeviceKeyPair, name = 'test') {
  return { publicKey: key.publicKey.toString('base64'), name };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (err) {
    return (err as SwitchboardError).code;
  }
}

describe('AuthService', () => {
  let auth: AuthService;
  const device = deviceOf(generateDeviceKey());

  before(async () => {
    // A clock that stands still: a throttle delay cannot run out while the guesses are made.
    ({ auth } = await service(() => 4_000_000));
    await auth.signup('victim', 'correct horse battery', { address: '192.0.2.50' });
  });

  it('throttles 30 parallel guesses as if they came one by one', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) =>
        auth.login('victim', `guess-${i}`, device, { address: '198.51.100.7' }),
      ),
    );
    const codes = results.map((r) =>
      r.status === 'rejected' ? (r.reason as SwitchboardError).code : 'OK',
    );
    const wrong = codes.filter((c) => c === ErrorCode.BAD_CREDENTIALS).length;
    const throttled = codes.filter((c) => c === ErrorCode.THROTTLED).length;
    // perPair allows 3 free failures; the 4th sets a delay that every later guess must wait out.
    assert.equal(wrong, 4, codes.join(','));
    assert.equal(throttled, 26);
    // The guesser is stuck; the real user from another address is not locked out.
    await assert.rejects(
      auth.login('victim', 'correct horse battery', device, { address: '198.51.100.7' }),
      (e: SwitchboardError) => e.code === ErrorCode.THROTTLED && (e.retryAfterMs ?? 0) > 0,
    );
    const real = await auth.login('victim', 'correct horse battery', device, {
      address: '203.0.113.9',
    });
    assert.equal(real.user.name, 'victim');
  });

  it('lets many logins of one account run at once (serialised, none refused)', async () => {
    await auth.signup('busy', 'a long enough password', { address: '192.0.2.51' });
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        auth.login('busy', 'a long enough password', deviceOf(generateDeviceKey(), 'd'), {
          address: '192.0.2.1',
        }),
      ),
    );
    assert.equal(new Set(results.map((r) => r.token)).size, 20);
  });

  it("refuses a new device past the account's limit with DEVICE_LIMIT, not a known one", async () => {
    await auth.signup('gadgets', 'a long enough password', { address: '192.0.2.52' });
    const login = (key: DeviceKeyPair) =>
      auth.login('gadgets', 'a long enough password', deviceOf(key), { address: '192.0.2.52' });
    const first = generateDeviceKey();
    await login(first);
    for (let i = 1; i < MAX_DEVICES_PER_ACCOUNT; i++) await login(generateDeviceKey());
    assert.equal(await codeOf(login(generateDeviceKey())), ErrorCode.DEVICE_LIMIT);
    assert.equal(await codeOf(login(first)), 'OK', 'a registered device still logs in');
  });
});

describe('device proof (guessing from many addresses)', () => {
  // A clock that stands still: throttle delays never run out during the test.
  const clock = () => 5_000_000;
  let auth: AuthService;
  const ownerKey = generateDeviceKey();
  const PASSWORD = 'owner-correct-horse';

  before(async () => {
    ({ auth } = await service(clock));
    await auth.signup('owner', PASSWORD, { address: '203.0.113.5' });
    // Her device is registered by a first login from her usual address.
    await auth.login('owner', PASSWORD, deviceOf(ownerKey), { address: '203.0.113.5' });
    // Guesses rotated over 30 addresses: each address and pair stays under its limit, the
    // account's record does not.
    for (let i = 0; i < 30; i++) {
      await codeOf(
        auth.login('owner', `guess-${i}`, deviceOf(generateDeviceKey()), {
          address: `198.51.100.${i}`,
        }),
      );
    }
  });

  function proofFor(key: DeviceKeyPair, user = 'owner') {
    const challenge = randomBytes(32);
    return { challenge, deviceProof: signLoginProof(key, challenge, user) };
  }

  it('throttles an unregistered device account-wide, proof or not', async () => {
    const stranger = generateDeviceKey();
    assert.equal(
      await codeOf(auth.login('owner', PASSWORD, deviceOf(stranger), { address: '192.0.2.77' })),
      ErrorCode.THROTTLED,
    );
    assert.equal(
      await codeOf(
        auth.login('owner', PASSWORD, deviceOf(stranger), {
          address: '192.0.2.77',
          ...proofFor(stranger),
        }),
      ),
      ErrorCode.THROTTLED,
      'proving a key that is not registered to the account earns nothing',
    );
  });

  it('throttles the owner device that does not prove itself', async () => {
    assert.equal(
      await codeOf(auth.login('owner', PASSWORD, deviceOf(ownerKey), { address: '203.0.113.5' })),
      ErrorCode.THROTTLED,
    );
  });

  it('lets the registered device that proves itself log in at once', async () => {
    const result = await auth.login('owner', PASSWORD, deviceOf(ownerKey), {
      address: '203.0.113.5',
      ...proofFor(ownerKey),
    });
    assert.equal(result.user.name, 'owner');
  });

  it('refuses a replayed, misaddressed or malformed proof with BAD_CREDENTIALS', async () => {
    const login = (ctx: object) =>
      codeOf(auth.login('owner', PASSWORD, deviceOf(ownerKey), { address: '203.0.113.5', ...ctx }));
    const { deviceProof } = proofFor(ownerKey);
    assert.equal(
      await login({ challenge: randomBytes(32), deviceProof }),
      ErrorCode.BAD_CREDENTIALS,
      'a proof made for another connection',
    );
    assert.equal(await login(proofFor(ownerKey, 'someone')), ErrorCode.BAD_CREDENTIALS);
    assert.equal(
      await login({ challenge: randomBytes(32), deviceProof: 'AAAA' }),
      ErrorCode.BAD_CREDENTIALS,
    );
    assert.equal(await login({ deviceProof }), ErrorCode.BAD_CREDENTIALS, 'no challenge');
  });

  it('judges wrong passwords on a proven device by its own record', async () => {
    // Five free failures, then the device is blocked even with the right password.
    const codes: string[] = [];
    for (let i = 0; i < 7; i++) {
      codes.push(
        await codeOf(
          auth.login('owner', `typo-${i}`, deviceOf(ownerKey), {
            address: '203.0.113.5',
            ...proofFor(ownerKey),
          }),
        ),
      );
    }
    assert.deepEqual(codes, [
      ...Array<string>(6).fill(ErrorCode.BAD_CREDENTIALS),
      ErrorCode.THROTTLED,
    ]);
  });
});

describe('sign-up limits', () => {
  it('allows a burst of 10 per address, then one per 12 s, with a retry-after', async () => {
    let t = 1_000_000;
    const { auth } = await service(() => t);
    const codes: string[] = [];
    for (let i = 0; i < 11; i++)
      codes.push(await codeOf(auth.signup(`user${i}`, 'long enough pw', { address: '192.0.2.1' })));
    assert.deepEqual(codes, [...Array<string>(10).fill('OK'), ErrorCode.THROTTLED]);
    await assert.rejects(
      auth.signup('late', 'long enough pw', { address: '192.0.2.1' }),
      (e: SwitchboardError) => e.code === ErrorCode.THROTTLED && e.retryAfterMs === 12_000,
    );
    // Logins are not affected by the sign-up limit.
    const login = await auth.login('user0', 'long enough pw', deviceOf(generateDeviceKey()), {
      address: '192.0.2.1',
    });
    assert.equal(login.user.name, 'user0');
    t += 12_000;
    assert.equal(
      await codeOf(auth.signup('late', 'long enough pw', { address: '192.0.2.1' })),
      'OK',
    );
  });

  it('caps the whole relay at 60 in a burst, whatever the addresses', async () => {
    const t = 2_000_000;
    const { auth } = await service(() => t);
    const codes: string[] = [];
    for (let i = 0; i < 61; i++) {
      codes.push(
        await codeOf(auth.signup(`u${i}`, 'long enough pw', { address: `198.51.100.${i}` })),
      );
    }
    assert.equal(codes.filter((c) => c === 'OK').length, 60);
    assert.equal(codes[60], ErrorCode.THROTTLED);
  });

  it('refuses in closed mode, and without a valid code in invite mode', async () => {
    const { auth: closed } = await service(() => 4_000_000, { signupMode: 'closed' });
    assert.equal(
      await codeOf(closed.signup('anyone', 'long enough pw', { address: '192.0.2.2' })),
      ErrorCode.SIGNUP_CLOSED,
    );
    const { auth: invite } = await service(() => 4_000_000, { signupMode: 'invite' });
    assert.equal(
      await codeOf(invite.signup('anyone', 'long enough pw', { address: '192.0.2.2' })),
      ErrorCode.INVITE_REQUIRED,
    );
    assert.equal(
      await codeOf(
        invite.signup('anyone', 'long enough pw', {
          address: '192.0.2.2',
          invite: 'sbi_not-a-real-code-at-all',
        }),
      ),
      ErrorCode.INVITE_INVALID,
    );
  });

  it('spends the relay-wide sign-up budget only on valid invite codes', async () => {
    const t = 5_000_000;
    const { store, auth } = await service(() => t, {
      signupMode: 'invite',
      signupRate: { perAddress: { perMinute: 100, burst: 100 }, relay: { perMinute: 1, burst: 2 } },
    });
    const admin = (await store.users.create('root', 'h', t))!;
    const invites = new InviteService(store, () => t, { admins: ['root'] });
    await invites.start();
    const { code } = await invites.create(admin, 2, 3600);
    // Made-up codes from many addresses: each refused, none taking the relay's two sign-ups.
    for (let i = 0; i < 10; i++) {
      const guess = auth.signup(`guesser${i}`, 'long enough pw', {
        address: `198.51.100.${i}`,
        invite: `sbi_made-up-code-number-${i}`,
      });
      assert.equal(await codeOf(guess), ErrorCode.INVITE_INVALID);
    }
    for (const name of ['first', 'second'])
      assert.equal(
        await codeOf(auth.signup(name, 'long enough pw', { address: '192.0.2.9', invite: code })),
        'OK',
      );
  });
});

describe('limiter state behind LimiterStore', () => {
  it('shares login throttles and the sign-up budget between services given one store', async () => {
    const t = 6_000_000;
    const limiters = new InProcessLimiterStore();
    const options = {
      limiters,
      signupRate: { perAddress: { perMinute: 100, burst: 100 }, relay: { perMinute: 1, burst: 2 } },
    };
    // Two relays, each with its own database, sharing their limits as through Redis.
    const a = await service(() => t, options);
    const b = await service(() => t, options);
    const alone = await service(() => t);
    for (const { auth } of [a, b, alone])
      await auth.signup('victim', 'correct horse battery', { address: '192.0.2.1' });
    assert.equal(
      await codeOf(b.auth.signup('other', 'long enough pw', { address: '192.0.2.2' })),
      ErrorCode.THROTTLED,
      'the sign-ups on a and b spent the shared relay-wide budget of 2',
    );

    const device = deviceOf(generateDeviceKey());
    const from = { address: '198.51.100.20' };
    // perPair: 3 free failures, the 4th imposes a delay.
    for (let i = 0; i < 4; i++)
      assert.equal(
        await codeOf(a.auth.login('victim', `guess-${i}`, device, from)),
        ErrorCode.BAD_CREDENTIALS,
      );
    const right = () => 'correct horse battery';
    assert.equal(await codeOf(b.auth.login('victim', right(), device, from)), ErrorCode.THROTTLED);
    assert.equal(await codeOf(alone.auth.login('victim', right(), device, from)), 'OK');
  });
});

describe('AuthService: a password change races a login', () => {
  it('gives no token to a login that checked the old password before the change landed', async () => {
    const store = await openSqliteStore({ file: join(dir, `db-${++files}.sqlite`) });
    stores.push(store);
    // The login is held just after its password check, at its first write (a transaction, or
    // a device upsert), while the change runs to the end: the interleaving the race needs.
    let armed = false;
    let release: (() => void) | undefined;
    let reached: () => void = () => undefined;
    const atWrite = new Promise<void>((resolve) => (reached = resolve));
    const hold = async (): Promise<void> => {
      if (!armed) return;
      armed = false;
      reached();
      await new Promise<void>((resume) => (release = resume));
    };
    const devices = new Proxy(store.devices, {
      get(target, prop) {
        if (prop === 'upsert')
          return async (...args: Parameters<Store['devices']['upsert']>) => {
            await hold();
            return target.upsert(...args);
          };
        const value: unknown = Reflect.get(target, prop);
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
    const gated: Store = {
      ...store,
      devices,
      async transaction(fn) {
        await hold();
        return store.transaction(fn);
      },
    };
    const auth = new AuthService(gated, Date.now, FAST);
    const home = { address: '192.0.2.60' };
    await auth.signup('owner', 'old password 1', home);
    const owner = await auth.login('owner', 'old password 1', deviceOf(generateDeviceKey()), home);
    const ownerAuth = await auth.authenticate(owner.token);

    armed = true;
    const stolen = auth.login('owner', 'old password 1', deviceOf(generateDeviceKey()), {
      address: '203.0.113.9',
    });
    await atWrite;
    await auth.changePassword(ownerAuth, 'old password 1', 'new password 2', true, home);
    release!();
    const outcome = await stolen.then(
      (r) => codeOf(auth.authenticate(r.token)),
      (err: SwitchboardError) => err.code,
    );
    assert.notEqual(outcome, 'OK', 'the old password must not yield a working token');
  });
});
