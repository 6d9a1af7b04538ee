// The ledger's signed objects (issue 12): transfers (a self-contained cheque), mints, ledger
// entries chained by hash, and checkpoints signed by the relay's ledger key.
//
// A transfer is a JSON body kept as the exact string that was signed:
//   {v: 1, kind: 'transfer', ledger, id, from, to, amount, memo, at}
// signed by the payer's device: Ed25519 over "switchboard-transfer-v1" NUL body. `ledger` is the
// relay's ledger id (the SHA-256 fingerprint of its ledger key), so a transfer signed for one
// relay is refused by another; `id` (16 random bytes, base64) is the idempotency key: the same
// signed transfer submitted twice settles once. A mint is the same with kind 'mint', no `from`,
// and `by`: the admin whose device signed it, or '@relay' for the sign-up credit (signed by the
// ledger key itself).
//
// Entries: entry n is {seq: n, body, sig, key, prev} with hash(n) = SHA-256("switchboard-ledger-v1"
// NUL prev NUL sha256(body) NUL sig NUL key), prev = hash(n-1) ('' for the first). A checkpoint
// {ledger, count, head, at} is signed by the ledger key over "switchboard-checkpoint-v1" NUL
// its JSON; a client keeps the last it verified and checks later ledgers extend it. The formats
// are here (no I/O, shared with the browser build); signing and hashing are in
// crypto/ledger-signing.ts.

export const TRANSFER_CONTEXT = 'switchboard-transfer-v1';
export const CHECKPOINT_CONTEXT = 'switchboard-checkpoint-v1';
export const ENTRY_CONTEXT = 'switchboard-ledger-v1';

/** Longest memo, in characters. */
export const MEMO_MAX_CHARS = 200;
/** Largest amount in one transfer or mint (fits a double exactly, and any SQL bigint). */
export const AMOUNT_MAX = 1_000_000_000_000;
/** Longest transfer body accepted, in bytes. */
export const TRANSFER_MAX_BODY_BYTES = 2048;
/**
 * How long a signed transfer (a cheque) may be deposited after its `at`, and how far in the
 * future `at` may be. Its id is remembered for ever (the ledger keeps every entry).
 */
export const CHEQUE_VALID_MS = 30 * 24 * 3600_000; // ms
export const CLOCK_SKEW_MS = 5 * 60_000; // ms

export interface TransferBody {
  v: 1;
  kind: 'transfer' | 'mint';
  ledger: string;
  id: string;
  /** The payer (transfers only). */
  from?: string;
  to: string;
  amount: number;
  memo: string;
  /** ISO time the payer signed it. */
  at: string;
  /** Mints: the admin who minted, or '@relay' (the sign-up credit). */
  by?: string;
}

/** A signed transfer or mint, as it travels (a cheque file holds one). */
export interface SignedTransfer {
  body: string;
  /** Ed25519 signature, base64. */
  sig: string;
  /** The signing device's (or the ledger's) public key, base64 raw 32 bytes. */
  key: string;
}

/** Why a body is not a well-formed transfer or mint, or undefined. */
export function transferProblem(b: unknown): string | undefined {
  const t = b as Partial<TransferBody> | null;
  if (typeof t !== 'object' || t === null) return 'not a JSON object';
  if (t.v !== 1) return 'not version 1';
  if (t.kind !== 'transfer' && t.kind !== 'mint') return 'kind is neither transfer nor mint';
  if (typeof t.ledger !== 'string') return 'no ledger id';
  if (typeof t.id !== 'string' || !/^[A-Za-z0-9+/]{22}==$/.test(t.id))
    return 'the id is not 16 bytes of base64';
  if (typeof t.to !== 'string') return 'no payee';
  if (t.kind === 'transfer' && typeof t.from !== 'string') return 'no payer';
  if (t.kind === 'mint' && typeof t.by !== 'string') return 'a mint without its minter';
  if (typeof t.amount !== 'number' || !Number.isSafeInteger(t.amount))
    return 'the amount is not a whole number';
  if (t.amount <= 0) return 'the amount is not positive';
  if (t.amount > AMOUNT_MAX) return `the amount is above ${AMOUNT_MAX}`;
  if (typeof t.memo !== 'string' || t.memo.length > MEMO_MAX_CHARS)
    return `the memo is not text of at most ${MEMO_MAX_CHARS} characters`;
  if (typeof t.at !== 'string' || Number.isNaN(Date.parse(t.at))) return 'no valid time';
  return undefined;
}

/**
 * Parses an amount typed by a user: digits only, no sign, no fraction, no exponent, within
 * AMOUNT_MAX. Returns the number or a message saying what is wrong.
 */
export function parseAmount(text: string): number | string {
  if (!/^\d+$/.test(text)) {
    if (/^-/.test(text)) return `"${text}" is negative: amounts are positive whole numbers`;
    if (/[.,]/.test(text))
      return `"${text}" has a fraction: amounts are whole numbers of the smallest unit`;
    return `"${text}" is not a whole number`;
  }
  const n = Number(text);
  if (n === 0) return 'the amount is zero';
  if (n > AMOUNT_MAX) return `"${text}" is above the largest amount, ${AMOUNT_MAX}`;
  return n;
}

export interface Checkpoint {
  ledger: string;
  /** Entries covered: seq 1 … count. */
  count: number;
  /** The hash of entry `count` ('' when empty). */
  head: string;
  at: string;
}

export interface SignedCheckpoint extends Checkpoint {
  sig: string;
}
