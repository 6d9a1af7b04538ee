// Checking a ledger as served (`switchboard ledger verify`): every entry's signature and signer,
// the hash chain, ids never reused, no balance ever below zero, balances summing to mints, and
// the relay's signed checkpoint against both the chain and the one this client kept last time.
import {
  transferProblem,
  type Checkpoint,
  type SignedCheckpoint,
  type TransferBody,
} from '../protocol/ledger.js';
import { checkpointValid, entryHash, transferSignatureValid } from '../crypto/ledger-signing.js';
import type { LedgerEntryView } from '../protocol/messages.js';

export interface LedgerProblem {
  /** The first bad entry (0 for the checkpoint or the ledger as a whole). */
  seq: number;
  message: string;
}

export interface VerifyOptions {
  ledgerId: string;
  /** The ledger's public key (raw, 32 bytes): signs sign-up mints and checkpoints. */
  ledgerKey: Uint8Array;
  /** Whether `key` (base64) is a device key of `user` as far as this client can tell. */
  signerKnown(user: string, key: string): boolean;
  /** The checkpoint this client verified last time for this relay, if any. */
  remembered?: Checkpoint | undefined;
  /** The relay's current signed checkpoint. */
  checkpoint: SignedCheckpoint;
}

export interface VerifyResult {
  ok: boolean;
  problem?: LedgerProblem;
  entries: number;
  head: string;
  balances: Map<string, number>;
  mints: number;
}

export function verifyLedger(entries: readonly LedgerEntryView[], o: VerifyOptions): VerifyResult {
  const balances = new Map<string, number>();
  let mints = 0;
  let prev = '';
  const ids = new Set<string>();
  const hashes: string[] = [''];
  const result = (problem?: LedgerProblem): VerifyResult => ({
    ok: problem === undefined,
    ...(problem ? { problem } : {}),
    entries: hashes.length - 1,
    head: prev,
    balances,
    mints,
  });
  for (const [i, e] of entries.entries()) {
    const seq = i + 1;
    const fail = (message: string) => result({ seq, message: `entry ${seq}: ${message}` });
    if (e.seq !== seq)
      return fail(
        e.seq > seq
          ? `entries ${seq}–${e.seq - 1} are missing (deleted)`
          : `entry ${e.seq} appears again or out of order`,
      );
    let body: TransferBody;
    try {
      body = JSON.parse(e.body) as TransferBody;
    } catch {
      return fail('its body is not JSON');
    }
    const malformed = transferProblem(body);
    if (malformed) return fail(`not a valid transfer: ${malformed}`);
    if (body.ledger !== o.ledgerId) return fail(`signed for another ledger (${body.ledger})`);
    const t = { body: e.body, sig: e.sig, key: e.key };
    if (!transferSignatureValid(t))
      return fail('the signature does not match its contents (altered, or forged)');
    const signer = body.kind === 'transfer' ? body.from! : body.by!;
    if (body.kind === 'mint' && body.by === '@relay') {
      if (e.key !== Buffer.from(o.ledgerKey).toString('base64'))
        return fail("a sign-up mint not signed by the ledger's key");
    } else if (!o.signerKnown(signer, e.key))
      return fail(`signed by a key that is not a device of ${signer}`);
    if (ids.has(body.id)) return fail(`transfer id ${body.id} settled twice`);
    ids.add(body.id);
    const hash = entryHash(prev, t);
    if (hash !== e.hash)
      return fail(
        'its chain hash does not follow from the entries before it (altered or inserted)',
      );
    if (body.kind === 'mint') mints += body.amount;
    else {
      const payer = balances.get(body.from!) ?? 0;
      if (payer < body.amount)
        return fail(`${body.from} pays ${body.amount} with a balance of ${payer} (overdrawn)`);
      balances.set(body.from!, payer - body.amount);
    }
    balances.set(body.to, (balances.get(body.to) ?? 0) + body.amount);
    prev = hash;
    hashes.push(hash);
  }
  // Balances sum to mints by construction here (a mint adds to both, a transfer moves between
  // balances and is refused above if it overdraws), so there is nothing more to compare.
  // The relay's signed word for its head, and what this client saw last time.
  const c = o.checkpoint;
  if (c.ledger !== o.ledgerId || !checkpointValid(o.ledgerKey, c))
    return result({ seq: 0, message: "the checkpoint is not signed by the ledger's key" });
  if (c.count > hashes.length - 1 || hashes[c.count] !== c.head)
    return result({
      seq: c.count,
      message: `the relay's signed checkpoint (${c.count} entries) does not match the entries it served`,
    });
  const r = o.remembered;
  if (r) {
    if (r.ledger !== o.ledgerId)
      return result({ seq: 0, message: `the ledger id changed from ${r.ledger}` });
    if (r.count > hashes.length - 1)
      return result({
        seq: r.count,
        message: `the ledger has ${hashes.length - 1} entries, fewer than the ${r.count} verified before (history deleted)`,
      });
    if (hashes[r.count] !== r.head)
      return result({
        seq: r.count,
        message: `the first ${r.count} entries differ from those verified before (history rewritten or forked)`,
      });
  }
  return result();
}
