// verifyLedger on ledgers built here with the relay's own signing and hashing (signTransfer,
// entryHash, signCheckpoint, the ledger id as the key's fingerprint): a valid ledger passes, and
// each check refuses a ledger that differs from it in exactly one way, naming the problem.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { generateDeviceKey, keyFingerprint, type DeviceKeyPair } from '../crypto/device-key.js';
import { entryHash, signCheckpoint, signTransfer } from '../crypto/ledger-signing.js';
import type { Checkpoint, SignedCheckpoint, SignedTransfer } from '../protocol/ledger.js';
import type { LedgerEntryView } from '../protocol/messages.js';
import { verifyLedger, type VerifyOptions } from './ledger-verify.js';

const AT = '2025-01-02T03:04:05.000Z';
const b64 = (k: DeviceKeyPair) => k.publicKey.toString('base64');
const newId = () => randomBytes(16).toString('base64');

// The relay's ledger key and id (the id is the key's fingerprint, as in server/ledger.ts).
const ledgerKey = generateDeviceKey();
const LEDGER = keyFingerprint(ledgerKey.publicKey);
const OTHER_LEDGER = keyFingerprint(generateDeviceKey().publicKey);

interface User {
  name: string;
  key: DeviceKeyPair;
}
const amy: User = { name: 'amy', key: generateDeviceKey() };
const bob: User = { name: 'bob', key: generateDeviceKey() };
/** Registered, never credited. */
const cal: User = { name: 'cal', key: generateDeviceKey() };
/** A key that is no one's device. */
const eve = generateDeviceKey();
const devices = new Map([amy, bob, cal].map((u) => [u.name, [b64(u.key)]]));
const signerKnown = (user: string, key: string) => devices.get(user)?.includes(key) ?? false;

/** A mint: the sign-up credit (by '@relay', signed by the ledger key) unless `by` says otherwise. */
function mint(
  to: string,
  amount: number,
  o: { key?: DeviceKeyPair; by?: string; id?: string } = {},
): SignedTransfer {
  return signTransfer(o.key ?? ledgerKey, {
    v: 1,
    kind: 'mint',
    ledger: LEDGER,
    id: o.id ?? newId(),
    to,
    amount,
    memo: 'sign-up credit',
    at: AT,
    by: o.by ?? '@relay',
  });
}

/** A transfer from `from`, signed by their device unless `key` says otherwise. */
function pay(
  from: User,
  to: string,
  amount: number,
  o: { key?: DeviceKeyPair; id?: string; ledger?: string } = {},
): SignedTransfer {
  return signTransfer(o.key ?? from.key, {
    v: 1,
    kind: 'transfer',
    ledger: o.ledger ?? LEDGER,
    id: o.id ?? newId(),
    from: from.name,
    to,
    amount,
    memo: '',
    at: AT,
  });
}

/**
 * Entries as the relay serves them: seq n, hash(n) = entryHash(hash(n-1), t). `prevOf` lets a
 * test chain one entry to something else (what the relay would serve after inserting or editing).
 */
function chain(
  transfers: readonly SignedTransfer[],
  prevOf: (seq: number, prev: string) => string = (_seq, prev) => prev,
): LedgerEntryView[] {
  let prev = '';
  return transfers.map((t, i) => {
    const hash = entryHash(prevOf(i + 1, prev), t);
    prev = hash;
    return { seq: i + 1, body: t.body, sig: t.sig, key: t.key, hash, settledAt: AT };
  });
}

/** The unsigned checkpoint for the first `count` entries (what a client remembers). */
function core(entries: readonly LedgerEntryView[], count = entries.length): Checkpoint {
  return { ledger: LEDGER, count, head: count === 0 ? '' : entries[count - 1]!.hash, at: AT };
}

/** The relay's signed checkpoint (for the head by default). */
function checkpoint(
  entries: readonly LedgerEntryView[],
  o: { count?: number; head?: string; ledger?: string; key?: DeviceKeyPair } = {},
): SignedCheckpoint {
  const c = core(entries, o.count ?? entries.length);
  return signCheckpoint(o.key ?? ledgerKey, {
    ...c,
    ...(o.head !== undefined ? { head: o.head } : {}),
    ...(o.ledger !== undefined ? { ledger: o.ledger } : {}),
  });
}

function verify(entries: readonly LedgerEntryView[], o: Partial<VerifyOptions> = {}) {
  return verifyLedger(entries, {
    ledgerId: LEDGER,
    ledgerKey: ledgerKey.publicKey,
    signerKnown,
    checkpoint: checkpoint(entries),
    ...o,
  });
}

/** Asserts verifyLedger refused with exactly this problem. */
function refused(r: ReturnType<typeof verifyLedger>, seq: number, message: string) {
  assert.equal(r.ok, false, `expected a refusal naming: ${message}`);
  assert.deepEqual(r.problem, { seq, message });
}

// The valid ledger: two sign-up credits, a transfer, an admin mint (amy's device), a transfer back.
const VALID: readonly SignedTransfer[] = [
  mint('amy', 100),
  mint('bob', 100),
  pay(amy, 'bob', 30),
  mint('bob', 5, { key: amy.key, by: 'amy' }),
  pay(bob, 'amy', 50),
];
/** VALID with entry `seq` replaced. */
const withEntry = (seq: number, t: SignedTransfer) => VALID.map((v, i) => (i === seq - 1 ? t : v));
const idOf = (t: SignedTransfer) => (JSON.parse(t.body) as { id: string }).id;

describe('verifyLedger', () => {
  it('accepts a valid ledger and sums its balances', () => {
    const entries = chain(VALID);
    const r = verify(entries);
    assert.equal(r.problem, undefined);
    assert.equal(r.ok, true);
    assert.equal(r.entries, 5);
    assert.equal(r.head, entries[4]!.hash);
    assert.equal(r.mints, 205);
    assert.deepEqual(Object.fromEntries(r.balances), { amy: 120, bob: 85 });
  });

  it('accepts a ledger that extends the one remembered, and a checkpoint behind the head', () => {
    const entries = chain(VALID);
    for (const count of [0, 3, 5]) {
      const r = verify(entries, { remembered: core(entries, count) });
      assert.equal(r.problem, undefined, `remembered ${count}`);
      assert.equal(r.ok, true);
    }
    // The relay may have appended since it signed: a checkpoint for entry 3 still matches.
    const r = verify(entries, { checkpoint: checkpoint(entries, { count: 3 }) });
    assert.equal(r.problem, undefined);
    assert.equal(r.ok, true);
  });

  it('refuses an entry whose hash does not chain from the one before it', () => {
    // Entry 3 chained to entry 1, as if entry 2 had been removed and the rest renumbered.
    const entries = chain(VALID, (seq, prev) => (seq === 3 ? chain(VALID)[0]!.hash : prev));
    refused(
      verify(entries),
      3,
      'entry 3: its chain hash does not follow from the entries before it (altered or inserted)',
    );
  });

  it('refuses a transfer signed by a key that is not a device of its payer', () => {
    // A key that is no one's device.
    refused(
      verify(chain(withEntry(3, pay(amy, 'bob', 30, { key: eve })))),
      3,
      'entry 3: signed by a key that is not a device of amy',
    );
    // The payee's own device, signing for the payer.
    refused(
      verify(chain(withEntry(3, pay(amy, 'bob', 30, { key: bob.key })))),
      3,
      'entry 3: signed by a key that is not a device of amy',
    );
  });

  it('refuses an admin mint signed by a key that is not a device of its minter', () => {
    refused(
      verify(chain(withEntry(4, mint('bob', 5, { key: bob.key, by: 'amy' })))),
      4,
      'entry 4: signed by a key that is not a device of amy',
    );
  });

  it("refuses a sign-up mint not signed by the ledger's key", () => {
    refused(
      verify(chain(withEntry(1, mint('amy', 100, { key: eve })))),
      1,
      "entry 1: a sign-up mint not signed by the ledger's key",
    );
    // Not even by a registered device (here the payee's own).
    refused(
      verify(chain(withEntry(1, mint('amy', 100, { key: amy.key })))),
      1,
      "entry 1: a sign-up mint not signed by the ledger's key",
    );
  });

  it('refuses a transfer signed for another ledger', () => {
    refused(
      verify(chain(withEntry(3, pay(amy, 'bob', 30, { ledger: OTHER_LEDGER })))),
      3,
      `entry 3: signed for another ledger (${OTHER_LEDGER})`,
    );
  });

  it('refuses a transfer id settled twice', () => {
    const reused = idOf(VALID[2]!);
    refused(
      verify(chain(withEntry(5, pay(bob, 'amy', 50, { id: reused })))),
      5,
      `entry 5: transfer id ${reused} settled twice`,
    );
  });

  it('refuses a transfer that overdraws its payer', () => {
    refused(
      verify(chain(withEntry(3, pay(amy, 'bob', 130)))),
      3,
      'entry 3: amy pays 130 with a balance of 100 (overdrawn)',
    );
    // A payer never credited at all.
    refused(
      verify(chain(withEntry(3, pay(cal, 'bob', 1)))),
      3,
      'entry 3: cal pays 1 with a balance of 0 (overdrawn)',
    );
  });

  it("refuses a checkpoint not signed by the ledger's key, or signed for another ledger", () => {
    const entries = chain(VALID);
    refused(
      verify(entries, { checkpoint: checkpoint(entries, { key: eve }) }),
      0,
      "the checkpoint is not signed by the ledger's key",
    );
    // Altered after signing: the count no longer matches the signature.
    refused(
      verify(entries, { checkpoint: { ...checkpoint(entries, { count: 4 }), count: 5 } }),
      0,
      "the checkpoint is not signed by the ledger's key",
    );
    // Signed by this ledger's key, but naming another ledger.
    refused(
      verify(entries, { checkpoint: checkpoint(entries, { ledger: OTHER_LEDGER }) }),
      0,
      "the checkpoint is not signed by the ledger's key",
    );
  });

  it('refuses a checkpoint whose head does not match the entries served', () => {
    const entries = chain(VALID);
    // The right count with the head of entry 4.
    refused(
      verify(entries, { checkpoint: checkpoint(entries, { head: entries[3]!.hash }) }),
      5,
      "the relay's signed checkpoint (5 entries) does not match the entries it served",
    );
    // More entries than were served (entry 5 withheld), with the head of entry 5.
    refused(
      verify(entries.slice(0, 4), { checkpoint: checkpoint(entries) }),
      5,
      "the relay's signed checkpoint (5 entries) does not match the entries it served",
    );
  });

  it('refuses a signed checkpoint counting more entries than served, even without a head', () => {
    const entries = chain(VALID);
    // A checkpoint with no head at all (signed so by the ledger key): only the count can catch it.
    const headless = { ledger: LEDGER, count: 6, at: AT } as unknown as Checkpoint;
    refused(
      verify(entries, { checkpoint: signCheckpoint(ledgerKey, headless) }),
      6,
      "the relay's signed checkpoint (6 entries) does not match the entries it served",
    );
  });

  it('refuses a ledger whose id changed since the checkpoint remembered', () => {
    const entries = chain(VALID);
    refused(
      verify(entries, { remembered: { ...core(entries, 3), ledger: OTHER_LEDGER } }),
      0,
      `the ledger id changed from ${OTHER_LEDGER}`,
    );
  });

  it('refuses a ledger shorter than the one remembered (history deleted)', () => {
    const entries = chain(VALID);
    const served = entries.slice(0, 3);
    refused(
      verify(served, { checkpoint: checkpoint(served), remembered: core(entries) }),
      5,
      'the ledger has 3 entries, fewer than the 5 verified before (history deleted)',
    );
  });

  it('refuses a ledger that rewrites the entries remembered', () => {
    const remembered = core(chain(VALID), 3);
    // Entry 3 replaced (amy paid 20, not 30), the rest re-chained and signed afresh.
    const entries = chain(withEntry(3, pay(amy, 'bob', 20)));
    assert.equal(verify(entries).ok, true, 'valid on its own');
    refused(
      verify(entries, { remembered }),
      3,
      'the first 3 entries differ from those verified before (history rewritten or forked)',
    );
  });
});
