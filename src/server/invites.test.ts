// InviteService with AuthService in invite mode, against a real SQLite file.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SwitchboardError } from '../protocol/errors.js';
import { ErrorCode } from '../protocol/errors.js';
import type { Store, UserRow } from '../store/repositories.js';
import { openSqliteStore } from '../store/sqlite.js';
import { AuthService } from './auth-service.js';
import { InviteService } from './invites.js';

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (err) {
    return (err as SwitchboardError).code;
  }
}

describe('invites', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-invites-'));
  const file = join(dir, 'db.sqlite');
  let t = 1_000_000;
  const clock = () => t;
  let store: Store;
  let auth: AuthService;
  let invites: InviteService;
  let admin: UserRow;
  let member: UserRow;

  before(async () => {
    store = await openSqliteStore({ file });
    auth = new AuthService(store, clock, {
      argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 },
      signupMode: 'invite',
    });
    invites = new InviteService(store, clock, { admins: ['root'] });
    // Accounts made before invite mode (as an operator would, or directly).
    admin = (await store.users.create('root', 'h', t))!;
    member = (await store.users.create('member', 'h', t))!;
    assert.deepEqual(await invites.start(), []);
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const signup = (user: string, invite?: string) =>
    codeOf(auth.signup(user, 'long enough pw', { address: '192.0.2.1', invite }));

  it('lets only admins create and list invites', async () => {
    assert.equal(await codeOf(invites.create(member)), ErrorCode.NOT_ALLOWED);
    assert.equal(await codeOf(invites.list(member)), ErrorCode.NOT_ALLOWED);
    assert.throws(() => new InviteService(store, clock, { admins: ['Not A Name'] }), RangeError);
  });

  it('binds admin names to accounts at start: a name taken again later is no admin', async () => {
    const service = new InviteService(store, clock, { admins: ['root', 'ghost'] });
    assert.deepEqual(await service.start(), ['ghost']);
    assert.ok(service.isAdmin(admin));
    // "ghost" signs up after the start: the name alone gives nothing.
    const ghost = (await store.users.create('ghost', 'h', t))!;
    assert.equal(service.isAdmin(ghost), false);
    // An account that is deleted and signed up again under the admin's name is a new account.
    assert.equal(service.isAdmin({ ...admin, id: admin.id + 1000 }), false);
  });

  it('spends a code after its uses, and stores only its hash', async () => {
    const { code, row } = await invites.create(admin, 2, 3600);
    assert.match(code, /^sbi_[A-Za-z0-9_-]{32}$/);
    assert.equal(row.usesLeft, 2);
    assert.equal(await signup('first', code), 'OK');
    assert.equal(await signup('second', code), 'OK');
    assert.equal(await signup('third', code), ErrorCode.INVITE_INVALID);
    assert.equal(await signup('fourth'), ErrorCode.INVITE_REQUIRED);
    assert.equal((await store.invites.findByHash(row.codeHash))?.usesLeft, 0);
    assert.equal(readFileSync(file).includes(code), false, 'the code itself is not in the db');
  });

  it('does not spend a use on a taken name', async () => {
    const { code, row } = await invites.create(admin, 1, 3600);
    assert.equal(await signup('first', code), ErrorCode.USER_EXISTS);
    assert.equal((await store.invites.findByHash(row.codeHash))?.usesLeft, 1);
    assert.equal(await signup('fifth', code), 'OK');
  });

  it('refuses an expired code and lists only usable invites, newest first', async () => {
    const soon = await invites.create(admin, 5, 60);
    t += 1;
    const later = await invites.create(admin, 3, 7200);
    const listed = await invites.list(admin);
    assert.deepEqual(
      listed.map((i) => [i.id, i.createdByName, i.usesLeft]),
      [
        [later.row.id, 'root', 3],
        [soon.row.id, 'root', 5],
      ],
    );
    t += 61_000;
    assert.equal(await signup('sixth', soon.code), ErrorCode.INVITE_INVALID);
    assert.deepEqual(
      (await invites.list(admin)).map((i) => i.id),
      [later.row.id],
    );
  });
});
