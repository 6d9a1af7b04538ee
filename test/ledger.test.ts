// The ledger against a real relay and SQLite (issue 12): settle once, refuse what is wrong with a
// clear code and move nothing, concurrent cheques past a balance (exactly one clears), replays on
// the same and on another relay, and `verifyLedger` catching a relay that edits its database.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { verifyLedger } from '../src/client/ledger-verify.js';
import type { RelayClient } from '../src/client/relay-client.js';
import { ErrorCode } from '../src/protocol/errors.js';
import { type SignedTransfer, type TransferBody } from '../src/protocol/ledger.js';
import { signTransfer } from '../src/crypto/ledger-signing.js';
import { codeOf, httpsGet } from './helpers.js';
import { mkdtempSync } from 'node:fs';
import { generateDeviceKey } from '../src/crypto/device-key.js';
import { Ledger } from '../src/server/ledger.js';
import { openStore } from '../src/store/open-store.js';
import { Harness, type TestUser } from './terminal-harness.js';

describe('the ledger', () => {
  const h = new Harness();
  const other = new Harness();
  let ledgerId = '';
  let amy: TestUser;
  let bob: TestUser;
  let cal: TestUser;
  const clients = new Map<string, RelayClient>();

  const transfer = (
    from: TestUser,
    to: string,
    amount: unknown,
    o: { id?: string; ledger?: string; memo?: string; at?: number } = {},
  ): SignedTransfer =>
    signTransfer(from.key, {
      v: 1,
      kind: 'transfer',
      ledger: o.ledger ?? ledgerId,
      id: o.id ?? randomBytes(16).toString('base64'),
      from: from.name,
      to,
      amount: amount as number,
      memo: o.memo ?? '',
      at: new Date(o.at ?? Date.now()).toISOString(),
    });
  const pay = (who: TestUser, t: SignedTransfer) =>
    clients.get(who.name)!.request('ledger.pay', { transfer: t });
  const balance = async (who: TestUser) =>
    (await clients.get(who.name)!.request('ledger.balance', {})).balance;

  before(async () => {
    await h.start();
    await other.start();
    amy = await h.user('lgamy');
    bob = await h.user('lgbob');
    cal = await h.user('lgcal');
    for (const u of [amy, bob, cal]) clients.set(u.name, await u.connect());
    ledgerId = (await clients.get('lgamy')!.request('ledger.info', {})).ledger;
  });
  after(async () => {
    for (const c of clients.values()) c.close();
    await other.close();
    await h.close();
  });

  it('credits a sign-up, settles a transfer once, and tells the payee', async () => {
    assert.equal(await balance(amy), 100);
    const heard = new Promise<{ amount: number; from: string }>((resolve) =>
      clients.get('lgbob')!.on('event', (e: { type: string; amount: number; from: string }) => {
        if (e.type === 'payment') resolve(e);
      }),
    );
    const t = transfer(amy, 'lgbob', 30, { memo: 'lunch' });
    const first = await pay(amy, t);
    assert.deepEqual([first.duplicate, first.balance], [false, 70]);
    assert.deepEqual(await heard, {
      type: 'payment',
      seq: first.seq,
      id: first.id,
      from: 'lgamy',
      amount: 30,
      memo: 'lunch',
    });
    // A retry (a dropped connection) returns the first result; nothing moves again.
    const again = await pay(amy, t);
    assert.deepEqual([again.seq, again.duplicate, again.balance], [first.seq, true, 70]);
    // The payee depositing the same cheque moves nothing either.
    assert.equal((await pay(bob, t)).duplicate, true);
    assert.deepEqual([await balance(amy), await balance(bob)], [70, 130]);
    // The same id with other contents is a conflict.
    const id = (JSON.parse(t.body) as TransferBody).id;
    assert.equal(
      await codeOf(pay(amy, transfer(amy, 'lgbob', 31, { id }))),
      ErrorCode.TRANSFER_CONFLICT,
    );
  });

  it('mints the sign-up credit once per account, whenever it is asked (a crash between account and credit)', async () => {
    const dir = mkdtempSync(join(h.dir, 'credit-'));
    const store = await openStore({ database: join(dir, 'ledger.db') });
    try {
      const ledger = new Ledger(store, generateDeviceKey(), Date.now);
      const user = await store.users.create('crashed', 'hash', Date.now());
      assert.ok(user);
      assert.equal(
        await store.ledger.balance(user.id),
        0,
        'the account exists, the credit not yet',
      );
      await Promise.all([ledger.creditSignup(user), ledger.creditSignup(user)]);
      await ledger.creditSignup(user);
      assert.equal(await store.ledger.balance(user.id), 100);
      assert.equal(await store.ledger.count(), 1);
    } finally {
      await store.close();
    }
  });

  it('refuses bad transfers with a clear code, and moves nothing', async () => {
    const before = [await balance(amy), await balance(bob)];
    for (const amount of [0, -5, 1.5, '10', Number.NaN, 1e15])
      assert.equal(
        await codeOf(pay(amy, transfer(amy, 'lgbob', amount))),
        ErrorCode.INVALID_AMOUNT,
        String(amount),
      );
    assert.equal(await codeOf(pay(amy, transfer(amy, 'lgbob', 71))), ErrorCode.INSUFFICIENT_FUNDS);
    assert.equal(await codeOf(pay(amy, transfer(amy, 'nobody-here', 1))), ErrorCode.UNKNOWN_USER);
    assert.equal(await codeOf(pay(amy, transfer(amy, 'lgamy', 1))), ErrorCode.TRANSFER_INVALID);
    // A cheque past its 30 days, and one dated ahead of the relay's clock.
    const day = 86_400_000;
    assert.equal(
      await codeOf(pay(amy, transfer(amy, 'lgbob', 1, { at: Date.now() - 31 * day }))),
      ErrorCode.REQUEST_STALE,
    );
    assert.equal(
      await codeOf(pay(amy, transfer(amy, 'lgbob', 1, { at: Date.now() + 10 * 60_000 }))),
      ErrorCode.REQUEST_STALE,
    );
    // Altered after signing: the amount raised.
    const t = transfer(amy, 'lgbob', 1);
    const altered = { ...t, body: t.body.replace('"amount":1', '"amount":60') };
    assert.equal(await codeOf(pay(amy, altered)), ErrorCode.SIGNATURE_INVALID);
    // Signed by cal's key but saying it is amy's money; and submitted by neither party.
    const forged = signTransfer(
      cal.key,
      JSON.parse(transfer(amy, 'lgcal', 5).body) as TransferBody,
    );
    assert.equal(await codeOf(pay(cal, forged)), ErrorCode.SIGNATURE_INVALID);
    assert.equal(await codeOf(pay(cal, transfer(amy, 'lgbob', 1))), ErrorCode.NOT_ALLOWED);
    assert.deepEqual([await balance(amy), await balance(bob)], before);
  });

  it('two cheques that together exceed the balance, deposited at once by two payees: exactly one clears', async () => {
    // cal has 100: two cheques of 60, to amy and to bob.
    const toAmy = transfer(cal, 'lgamy', 60);
    const toBob = transfer(cal, 'lgbob', 60);
    const codes = await Promise.all([codeOf(pay(amy, toAmy)), codeOf(pay(bob, toBob))]);
    assert.deepEqual([...codes].sort(), ['INSUFFICIENT_FUNDS', 'OK']);
    assert.equal(await balance(cal), 40);
  });

  it('a transfer signed for this relay is refused by another, whoever submits it', async () => {
    const eve = await other.user('lgamy');
    const c = await eve.connect();
    const t = transfer(amy, 'lgbob', 1);
    assert.equal(
      await codeOf(c.request('ledger.pay', { transfer: t })),
      ErrorCode.TRANSFER_INVALID,
    );
    // Even signed by its own device for this relay's ledger, the other relay's id differs.
    const own = transfer(eve, 'lgbob', 1);
    assert.equal(
      await codeOf(c.request('ledger.pay', { transfer: own })),
      ErrorCode.TRANSFER_INVALID,
    );
    c.close();
  });

  it('verifies the whole ledger, and catches an amount edited or an entry deleted in the database', async () => {
    const client = clients.get('lgamy')!;
    const keys = new Map<string, string[]>();
    for (const u of [amy, bob, cal]) keys.set(u.name, [u.key.publicKey.toString('base64')]);
    const check = async (remembered?: {
      ledger: string;
      count: number;
      head: string;
      at: string;
    }) => {
      const info = await client.request('ledger.info', {});
      const { entries } = await client.request('ledger.entries', {});
      return verifyLedger(entries, {
        ledgerId: info.ledger,
        ledgerKey: Buffer.from(info.key, 'base64'),
        signerKnown: (user, key) => keys.get(user)?.includes(key) ?? false,
        checkpoint: info.checkpoint,
        remembered,
      });
    };
    const good = await check();
    assert.equal(good.ok, true, good.problem?.message);
    // The key and checkpoint are public: anyone can fetch them without logging in.
    const published = JSON.parse((await httpsGet(h.port, '/v1/ledger/key')).body) as {
      ledger: string;
      key: string;
    };
    assert.deepEqual(
      [published.ledger, published.key],
      [ledgerId, (await client.request('ledger.info', {})).key],
    );
    assert.equal(good.mints, 300);
    assert.equal(good.balances.get('lgcal'), 40);
    const kept = (await client.request('ledger.info', {})).checkpoint;
    const db = new Database(join(h.dataDir, 'switchboard.db'));
    try {
      // The relay raises an amount in its database.
      const row = db
        .prepare(
          "SELECT seq, body FROM ledger_entries WHERE kind = 'transfer' ORDER BY seq LIMIT 1",
        )
        .get() as { seq: number; body: string };
      db.prepare('UPDATE ledger_entries SET body = ? WHERE seq = ?').run(
        row.body.replace('"amount":30', '"amount":3'),
        row.seq,
      );
      const edited = await check();
      assert.equal(edited.ok, false);
      assert.equal(edited.problem?.seq, row.seq);
      assert.match(edited.problem!.message, /signature does not match/);
      db.prepare('UPDATE ledger_entries SET body = ? WHERE seq = ?').run(row.body, row.seq);
      assert.equal((await check()).ok, true);
      // It deletes an entry.
      db.prepare('DELETE FROM ledger_entries WHERE seq = ?').run(row.seq);
      const deleted = await check(kept);
      assert.equal(deleted.ok, false);
      assert.equal(deleted.problem?.seq, row.seq);
      assert.match(deleted.problem!.message, /missing \(deleted\)/);
    } finally {
      db.close();
    }
  });
});

describe('ledger mint', () => {
  const h = new Harness({ admins: ['mtadmin'] });
  after(() => h.close());

  it('only an admin mints, and only as themselves', async () => {
    await h.start();
    const admin = await h.user('mtadmin');
    const plain = await h.user('mtplain');
    // Admin names are matched to accounts at start.
    await h.restart();
    const a = await admin.connect();
    const p = await plain.connect();
    try {
      const ledger = (await a.request('ledger.info', {})).ledger;
      const mint = (by: TestUser, name = by.name) =>
        signTransfer(by.key, {
          v: 1,
          kind: 'mint',
          ledger,
          id: randomBytes(16).toString('base64'),
          to: 'mtplain',
          amount: 50,
          memo: '',
          at: new Date().toISOString(),
          by: name,
        });
      assert.equal(
        await codeOf(p.request('ledger.mint', { transfer: mint(plain) })),
        ErrorCode.NOT_ALLOWED,
      );
      assert.equal(
        await codeOf(a.request('ledger.mint', { transfer: mint(admin, 'someone-else') })),
        ErrorCode.TRANSFER_INVALID,
      );
      assert.equal((await a.request('ledger.mint', { transfer: mint(admin) })).duplicate, false);
      assert.equal((await p.request('ledger.balance', {})).balance, 150);
    } finally {
      a.close();
      p.close();
    }
  });
});
