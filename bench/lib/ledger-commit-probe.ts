// What one settling transaction costs SQLite alone, with the WAL synced at every commit
// (synchronous=FULL) and only at checkpoints (NORMAL), on the file system the relays use: the
// ledger benchmark's floor under the relay's own work (Kysely, signatures, WebSockets).
//
// The database is the relay's schema (openSqliteStore runs the migrations), then reopened with
// better-sqlite3 directly: the statements of Ledger.#append (server/ledger.ts), prepared once,
// in one BEGIN IMMEDIATE … COMMIT each, with foreign keys off (no users rows are needed).
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite.js';

export type Synchronous = 'FULL' | 'NORMAL';

/** Milliseconds per settling transaction, `n` of them, under `synchronous`, in a new file in `dir`. */
export async function commitProbe(dir: string, synchronous: Synchronous, n: number) {
  const file = join(dir, `commit-probe-${synchronous.toLowerCase()}.db`);
  await (await openSqliteStore({ file })).close();
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous}`);
    // better-sqlite3 turns them on by default; the probe has no users rows.
    db.pragma('foreign_keys = OFF');
    const byId = db.prepare('SELECT * FROM ledger_entries WHERE transfer_id = ?');
    const balance = db.prepare('SELECT balance FROM ledger_balances WHERE user_id = ?');
    const head = db.prepare('SELECT * FROM ledger_entries ORDER BY seq DESC LIMIT 1');
    const insert = db.prepare(
      'INSERT INTO ledger_entries (transfer_id, kind, payer_id, payee_id, amount, body, sig, ' +
        'signer_key, hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq',
    );
    const debit = db.prepare('UPDATE ledger_balances SET balance = balance - ? WHERE user_id = ?');
    const credit = db.prepare(
      'INSERT INTO ledger_balances (user_id, balance) VALUES (?, ?) ON CONFLICT (user_id) ' +
        'DO UPDATE SET balance = ledger_balances.balance + excluded.balance',
    );
    const users = 20;
    for (let u = 1; u <= users; u++) credit.run(u, 1_000_000_000);
    const body = 'x'.repeat(260); // about a transfer's JSON
    const sig = randomBytes(64).toString('base64');
    const key = randomBytes(32).toString('base64');
    const settle = db.transaction((id: string, from: number, to: number) => {
      byId.get(id);
      balance.get(from);
      const prev = (head.get() as { hash?: string } | undefined)?.hash ?? '';
      const hash = createHash('sha256')
        .update(prev + id)
        .digest('hex');
      insert.get(id, 'transfer', from, to, 1, body, sig, key, hash, Date.now());
      debit.run(1, from);
      credit.run(to, 1);
    });
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const from = 1 + (i % users);
      const to = 1 + ((i + 7) % users);
      const id = randomBytes(16).toString('base64');
      const t = performance.now();
      settle.immediate(id, from, to);
      ms.push(performance.now() - t);
    }
    return ms;
  } finally {
    db.close();
  }
}
