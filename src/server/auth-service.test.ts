// AuthService against a real SQLite file: throttling holds even when guesses arrive in parallel.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateDeviceKey } from '../crypto/device-key.js';
import type { SwitchboardError } from '../protocol/errors.js';
import { ErrorCode } from '../protocol/errors.js';
import { openSqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/repositories.js';
import { AuthService } from './auth-service.js';

describe('AuthService', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-auth-'));
  let store: Store;
  let auth: AuthService;
  const device = { publicKey: generateDeviceKey().publicKey.toString('base64'), name: 'test' };

  before(async () => {
    store = await openSqliteStore({ file: join(dir, 'db.sqlite') });
    auth = new AuthService(store, Date.now, {
      argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 },
    });
    await auth.signup('victim', 'correct horse battery');
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('throttles 30 parallel guesses as if they came one by one', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) =>
        auth.login('victim', `guess-${i}`, device, '198.51.100.7'),
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
      auth.login('victim', 'correct horse battery', device, '198.51.100.7'),
      (e: SwitchboardError) =>
        e.code === ErrorCode.THROTTLED && /try again in \d+ s/.test(e.message),
    );
    const real = await auth.login('victim', 'correct horse battery', device, '203.0.113.9');
    assert.equal(real.user.name, 'victim');
  });

  it('lets many logins of one account run at once (serialised, none refused)', async () => {
    await auth.signup('busy', 'a long enough password');
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        auth.login(
          'busy',
          'a long enough password',
          { publicKey: generateDeviceKey().publicKey.toString('base64'), name: 'd' },
          '192.0.2.1',
        ),
      ),
    );
    assert.equal(new Set(results.map((r) => r.token)).size, 20);
  });
});
