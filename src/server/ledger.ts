// The relay's ledger (issue 12): settles signed transfers exactly once, mints, signs checkpoints.
//
// Settling a transfer: every check that needs no database first (the body, the ledger id, the
// signature, the signing device, who submits it, its age), then one serializable transaction:
// the id (an idempotency key: the same signed transfer again returns the first result; other
// contents under that id are a TRANSFER_CONFLICT), the payer's balance, the chain's head, then
// the entry and both balances. SQLite runs it in WAL with synchronous=FULL (store/sqlite.ts), so
// an acknowledged transfer survives kill -9 and power loss.
import { ErrorCode, SessionError, SwitchboardError } from '../protocol/errors.js';
import {
  CHEQUE_VALID_MS,
  CLOCK_SKEW_MS,
  TRANSFER_MAX_BODY_BYTES,
  transferProblem,
  type SignedCheckpoint,
  type SignedTransfer,
  type TransferBody,
} from '../protocol/ledger.js';
import {
  entryHash,
  signCheckpoint,
  signTransfer,
  transferSignatureValid,
} from '../crypto/ledger-signing.js';
import { keyFingerprint, type DeviceKeyPair } from '../crypto/device-key.js';
import { createHash } from 'node:crypto';
import type { LedgerEntryRow } from '../store/ledger-repository.js';
import { userDevices } from './user-devices.js';
import type { Store, UserRow } from '../store/repositories.js';

/** The relay's ledger key file in the data directory (0600). */
export const LEDGER_KEY_FILE = 'ledger_ed25519';
/** Default credit minted at sign-up (`serve --signup-credit`). */
export const DEFAULT_SIGNUP_CREDIT = 100;
/** Default name of the unit. */
export const DEFAULT_UNIT = 'credits';

export interface SettleResult {
  seq: number;
  id: string;
  /** True when this transfer had settled before (a retry): nothing moved now. */
  duplicate: boolean;
  entry: LedgerEntryRow;
}

function refuse(code: ErrorCode, message: string): SwitchboardError {
  return new SessionError(code, message);
}

export class Ledger {
  readonly key: DeviceKeyPair;
  /** The ledger id: the fingerprint of its key, in every signed transfer. */
  readonly id: string;
  readonly unit: string;
  readonly signupCredit: number;
  readonly #store: Store;
  readonly #now: () => number;

  constructor(
    store: Store,
    key: DeviceKeyPair,
    now: () => number,
    o: { unit?: string; signupCredit?: number } = {},
  ) {
    this.#store = store;
    this.key = key;
    this.id = keyFingerprint(key.publicKey);
    this.unit = o.unit ?? DEFAULT_UNIT;
    this.signupCredit = o.signupCredit ?? DEFAULT_SIGNUP_CREDIT;
    this.#now = now;
  }

  /**
   * Settles a signed transfer submitted by `submitter` (its payer, or its payee depositing a
   * cheque). Throws the reason it cannot; nothing moves then.
   */
  async settle(t: SignedTransfer, submitter: UserRow): Promise<SettleResult> {
    const body = this.#parse(t);
    if (body.kind !== 'transfer')
      throw refuse(ErrorCode.TRANSFER_INVALID, 'a mint is submitted with `ledger mint`');
    if (body.from === body.to) throw refuse(ErrorCode.TRANSFER_INVALID, 'paying yourself');
    if (submitter.name !== body.from && submitter.name !== body.to)
      throw refuse(ErrorCode.NOT_ALLOWED, 'only its payer or its payee may submit a transfer');
    const payer = await this.#signedByDeviceOf(t, body.from!);
    const payee = await this.#store.users.findByName(body.to);
    if (!payee) throw refuse(ErrorCode.UNKNOWN_USER, `there is no user "${body.to}"`);
    return this.#append(t, body, payer.id, payee.id);
  }

  /** An admin's signed mint (`ledger mint`): money enters here only (and at sign-up). */
  async mint(t: SignedTransfer, admin: UserRow): Promise<SettleResult> {
    const body = this.#parse(t);
    if (body.kind !== 'mint' || body.by !== admin.name)
      throw refuse(ErrorCode.TRANSFER_INVALID, `a mint must say it is by ${admin.name}`);
    await this.#signedByDeviceOf(t, admin.name);
    const payee = await this.#store.users.findByName(body.to);
    if (!payee) throw refuse(ErrorCode.UNKNOWN_USER, `there is no user "${body.to}"`);
    return this.#append(t, body, null, payee.id);
  }

  /**
   * The sign-up credit, minted and signed by the ledger key itself, once per account: its id is
   * derived from the account, so calling it again (at every login, in case the relay stopped
   * between creating the account and crediting it) mints nothing.
   */
  async creditSignup(user: UserRow): Promise<void> {
    if (this.signupCredit <= 0) return;
    const id = createHash('sha256')
      .update(`switchboard-signup-credit\0${this.id}\0${user.id}`)
      .digest()
      .subarray(0, 16)
      .toString('base64');
    if (await this.#store.ledger.byTransferId(id)) return;
    const t = signTransfer(this.key, {
      v: 1,
      kind: 'mint',
      ledger: this.id,
      id,
      to: user.name,
      amount: this.signupCredit,
      memo: 'sign-up credit',
      at: new Date(this.#now()).toISOString(),
      by: '@relay',
    });
    try {
      await this.#append(t, JSON.parse(t.body) as TransferBody, null, user.id);
    } catch (err) {
      // Another login credited it at the same moment (same id, another time in the body).
      if (!(err instanceof SwitchboardError && err.code === ErrorCode.TRANSFER_CONFLICT)) throw err;
    }
  }

  /** The ledger's current head, signed. */
  async checkpoint(): Promise<SignedCheckpoint> {
    const head = await this.#store.ledger.head();
    return signCheckpoint(this.key, {
      ledger: this.id,
      count: head?.seq ?? 0,
      head: head?.hash ?? '',
      at: new Date(this.#now()).toISOString(),
    });
  }

  #parse(t: SignedTransfer): TransferBody {
    if (Buffer.byteLength(t.body) > TRANSFER_MAX_BODY_BYTES)
      throw refuse(
        ErrorCode.INVALID_MESSAGE,
        `a transfer is at most ${TRANSFER_MAX_BODY_BYTES} bytes`,
      );
    let body: unknown;
    try {
      body = JSON.parse(t.body);
    } catch {
      throw refuse(ErrorCode.INVALID_MESSAGE, 'the transfer is not JSON');
    }
    const problem = transferProblem(body);
    if (problem)
      throw refuse(
        /amount/.test(problem) ? ErrorCode.INVALID_AMOUNT : ErrorCode.INVALID_MESSAGE,
        `not a valid transfer: ${problem}`,
      );
    const b = body as TransferBody;
    if (b.ledger !== this.id)
      throw refuse(
        ErrorCode.TRANSFER_INVALID,
        `signed for another ledger (${b.ledger}); this relay's is ${this.id}`,
      );
    if (!transferSignatureValid(t))
      throw refuse(ErrorCode.SIGNATURE_INVALID, 'the signature does not match the transfer');
    const at = Date.parse(b.at);
    const now = this.#now();
    if (at > now + CLOCK_SKEW_MS)
      throw refuse(ErrorCode.REQUEST_STALE, 'the transfer is dated in the future');
    if (now - at > CHEQUE_VALID_MS)
      throw refuse(
        ErrorCode.REQUEST_STALE,
        `the transfer was signed more than ${CHEQUE_VALID_MS / 86_400_000} days ago: it expired`,
      );
    return b;
  }

  /** The user, if `t` is signed by one of their unrevoked devices; else SIGNATURE_INVALID. */
  async #signedByDeviceOf(t: SignedTransfer, name: string): Promise<UserRow> {
    const { user, devices } = await userDevices(this.#store, name);
    if (!devices.some((d) => d.publicKey === t.key))
      throw refuse(ErrorCode.SIGNATURE_INVALID, `not signed by a device of ${name}`);
    return user;
  }

  #append(
    t: SignedTransfer,
    body: TransferBody,
    payerId: number | null,
    payeeId: number,
  ): Promise<SettleResult> {
    return this.#store.transaction(
      async (tx) => {
        const seen = await tx.ledger.byTransferId(body.id);
        if (seen) {
          if (seen.body !== t.body || seen.sig !== t.sig)
            throw refuse(
              ErrorCode.TRANSFER_CONFLICT,
              `transfer id ${body.id} was settled before with other contents`,
            );
          return { seq: seen.seq, id: body.id, duplicate: true, entry: seen };
        }
        if (payerId !== null) {
          const balance = await tx.ledger.balance(payerId);
          if (balance < body.amount)
            throw refuse(
              ErrorCode.INSUFFICIENT_FUNDS,
              `${body.from} has ${balance} ${this.unit}, less than ${body.amount}`,
            );
        }
        const head = await tx.ledger.head();
        const entry = await tx.ledger.append({
          transferId: body.id,
          kind: body.kind,
          payerId,
          payeeId,
          amount: body.amount,
          body: t.body,
          sig: t.sig,
          signerKey: t.key,
          hash: entryHash(head?.hash ?? '', t),
          createdAt: this.#now(),
        });
        return { seq: entry.seq, id: body.id, duplicate: false, entry };
      },
      { isolation: 'serializable', retries: 5 },
    );
  }
}
