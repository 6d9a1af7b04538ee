// The ledger from the real binary: pay, balance, history, a cheque by file deposited twice, bad
// amounts and overdrafts with their exit codes, and `ledger verify` catching a relay that deletes
// history after a client verified it.
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { runCli } from './helpers.js';
import { PtyProcess } from './pty-process.js';
import { Harness } from './terminal-harness.js';

describe('switchboard pay, deposit, balance, history, ledger verify', () => {
  const h = new Harness();
  const homes: Record<string, string> = {};
  const cli = (who: string, args: string[]) => runCli(args, { home: homes[who]! });

  before(async () => {
    await h.start();
    for (const name of ['ann', 'ben']) {
      homes[name] = mkdtempSync(join(h.dir, `ledger-${name}-`));
      const r = await h.cliAccount('signup', `cl${name}`, homes[name]!);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => h.close());

  it('pays, shows balances and history, and clears a cheque once', async () => {
    assert.equal((await cli('ann', ['balance'])).stdout, '100 credits\n');
    const paid = await cli('ann', ['pay', 'clben', '25', '--memo', 'coffee', '--json']);
    assert.equal(paid.code, 0, paid.stderr);
    const r = JSON.parse(paid.stdout) as { balance: number; amount: number; duplicate: boolean };
    assert.deepEqual([r.balance, r.amount, r.duplicate], [75, 25, false]);
    const cheque = join(homes['ann']!, 'cheque.json');
    assert.equal((await cli('ann', ['pay', 'clben', '10', '--out', cheque])).code, 0);
    assert.equal(statSync(cheque).mode & 0o777, 0o600);
    assert.equal(
      (await cli('ann', ['balance'])).stdout,
      '75 credits\n',
      'a cheque moves nothing yet',
    );
    const first = await cli('ben', ['deposit', cheque]);
    assert.match(first.stdout, /^deposited 10 credits from clann; your balance: 135 credits\n$/);
    const second = await cli('ben', ['deposit', cheque]);
    assert.equal(second.code, 0);
    assert.match(second.stdout, /settled before: nothing moved now\); your balance: 135 credits/);
    const ann = JSON.parse((await cli('ann', ['balance', '--json'])).stdout) as { balance: number };
    assert.equal(ann.balance, 65);
    const history = await cli('ben', ['history', '--json']);
    const rows = JSON.parse(history.stdout) as Array<{
      amount: number;
      counterparty: string;
      balance: number;
      memo: string;
    }>;
    assert.deepEqual(
      rows.map((x) => [x.counterparty, x.amount, x.balance, x.memo]),
      [
        ['mint by @relay', 100, 100, 'sign-up credit'],
        ['clann', 25, 125, 'coffee'],
        ['clann', 10, 135, ''],
      ],
    );
  });

  it(
    'hands the cheque directly to a contact online in chat, who deposits it; it settles once',
    { timeout: 60_000 },
    async () => {
      assert.equal((await cli('ann', ['contacts', 'accept', 'clben'])).code, 0);
      assert.equal((await cli('ben', ['contacts', 'accept', 'clann'])).code, 0);
      const ben = new PtyProcess(['chat', 'clann'], {
        SWITCHBOARD_HOME: homes['ben']!,
        SWITCHBOARD_DIRECT_HOST: '127.0.0.1',
      });
      try {
        await ben.waitText('[clann ');
        const paid = await cli('ann', ['pay', 'clben', '5', '--json']);
        assert.equal(paid.code, 0, paid.stderr);
        const r = JSON.parse(paid.stdout) as {
          path: string;
          balance: number;
          duplicate: boolean;
          depositedBy: string;
        };
        // ben's device deposited it before acknowledging; ann's own submission found it settled.
        assert.deepEqual(
          [r.path, r.depositedBy, r.balance, r.duplicate],
          ['direct', 'payee', 60, false],
        );
        await ben.waitText('clann paid you');
        const b = JSON.parse((await cli('ben', ['balance', '--json'])).stdout) as {
          balance: number;
        };
        assert.equal(b.balance, 140, 'deposited by ben and submitted by ann: once');
        ben.write('/quit\r');
        assert.equal(await ben.waitExit(), 0);
      } finally {
        ben.kill();
      }
      // Back to 65 for the checks below.
      assert.equal((await cli('ben', ['pay', 'clann', '5', '--no-direct'])).code, 0);
    },
  );

  it('refuses bad amounts (exit 2) and overdrafts (exit 5) and moves nothing', async () => {
    for (const amount of ['0', '-3', '1.5', 'ten', '1e3']) {
      const r = await cli('ann', ['pay', 'clben', amount]);
      assert.equal(r.code, 2, `${amount}: ${r.stderr}`);
    }
    const over = await cli('ann', ['pay', 'clben', '66']);
    assert.equal(over.code, 5);
    assert.match(over.stderr, /clann has 65 credits, less than 66 \[INSUFFICIENT_FUNDS\]/);
    assert.equal((await cli('ann', ['pay', 'nobody', '1'])).code, 5);
    assert.equal((await cli('ann', ['balance'])).stdout, '65 credits\n');
  });

  it('a transfer signed by a device revoked since still verifies', async () => {
    const second = mkdtempSync(join(h.dir, 'ledger-ann2-'));
    assert.equal((await h.cliAccount('login', 'clann', second)).code, 0);
    assert.equal((await runCli(['pay', 'clben', '1', '--no-direct'], { home: second })).code, 0);
    const who = JSON.parse((await runCli(['whoami', '--json'], { home: second })).stdout) as {
      device: { fingerprint: string };
    };
    const revoked = await cli('ann', ['devices', 'revoke', who.device.fingerprint]);
    assert.equal(revoked.code, 0, revoked.stderr);
    // ben never met that device: the relay's list of every device ann registered vouches for it.
    const fresh = mkdtempSync(join(h.dir, 'ledger-ben2-'));
    assert.equal((await h.cliAccount('login', 'clben', fresh)).code, 0);
    const verified = await runCli(['ledger', 'verify'], { home: fresh });
    assert.equal(verified.code, 0, verified.stderr);
  });

  it('ledger verify passes, then catches a relay that deletes an entry it had verified', async () => {
    const ok = await cli('ann', ['ledger', 'verify', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { ok: boolean }).ok, true);
    const db = new Database(join(h.dataDir, 'switchboard.db'));
    try {
      // The relay drops the last transfer and the balances it moved, consistently: only the
      // checkpoint the client kept can tell.
      const last = db
        .prepare(
          'SELECT seq, payer_id, payee_id, amount FROM ledger_entries ORDER BY seq DESC LIMIT 1',
        )
        .get() as { seq: number; payer_id: number; payee_id: number; amount: number };
      db.prepare('DELETE FROM ledger_entries WHERE seq = ?').run(last.seq);
      db.prepare('UPDATE ledger_balances SET balance = balance + ? WHERE user_id = ?').run(
        last.amount,
        last.payer_id,
      );
      db.prepare('UPDATE ledger_balances SET balance = balance - ? WHERE user_id = ?').run(
        last.amount,
        last.payee_id,
      );
    } finally {
      db.close();
    }
    const caught = await cli('ann', ['ledger', 'verify']);
    assert.equal(caught.code, 1);
    assert.match(caught.stderr, /FAILED at .*(deleted|does not match)/);
    // A client that never verified before sees a consistent, shorter ledger: it passes.
    const fresh = mkdtempSync(join(h.dir, 'ledger-fresh-'));
    assert.equal((await h.cliAccount('login', 'clben', fresh)).code, 0);
    assert.equal((await runCli(['ledger', 'verify'], { home: fresh })).code, 0);
  });
});
