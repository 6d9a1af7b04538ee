// Sign-up invites: admins (`serve --admin`) make single- or multi-use codes; only their hashes are stored.
import { randomBytes } from 'node:crypto';
import { AuthError, ErrorCode } from '../protocol/errors.js';
import {
  INVITE_CODE_BYTES,
  INVITE_DEFAULT_LIFETIME_SEC,
  INVITE_PREFIX,
} from '../protocol/limits.js';
import { USERNAME_RE } from '../protocol/messages.js';
import type { InviteRow, Store, UserRow } from '../store/repositories.js';
import { sha256Hex } from './auth-service.js';

export interface InviteOptions {
  /** User names allowed to create and list invites. */
  admins: readonly string[];
}

/** Most invites `invite.list` returns (newest first). */
const MAX_LISTED = 200; // invites
/** Spent or expired invites are deleted this long after they stopped working. */
const KEEP_UNUSABLE_MS = 24 * 3600_000; // ms

export class InviteService {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #admins: ReadonlySet<string>;
  /**
   * The accounts the admin names had when the relay started. By id, not name: a name is free
   * again after `account delete`, and whoever signs up with it next must not become an admin.
   */
  readonly #adminIds = new Set<number>();

  constructor(store: Store, now: () => number, options: InviteOptions) {
    for (const name of options.admins) {
      if (!USERNAME_RE.test(name)) throw new RangeError(`admin "${name}" is not a valid user name`);
    }
    this.#store = store;
    this.#now = now;
    this.#admins = new Set(options.admins);
  }

  /**
   * Binds each admin name to the account that holds it now; call once at start. Returns the
   * names no account holds (they get no rights: sign them up, then restart the relay).
   */
  async start(): Promise<string[]> {
    const missing: string[] = [];
    for (const name of this.#admins) {
      const user = await this.#store.users.findByName(name);
      if (user) this.#adminIds.add(user.id);
      else missing.push(name);
    }
    return missing;
  }

  isAdmin(user: UserRow): boolean {
    return this.#adminIds.has(user.id);
  }

  #requireAdmin(user: UserRow): void {
    if (!this.isAdmin(user))
      throw new AuthError(
        ErrorCode.NOT_ALLOWED,
        "only the relay's admins (`serve --admin USER`) may manage invites",
      );
  }

  /**
   * Makes an invite code good for `uses` sign-ups within `expiresSec`. The code is returned
   * once and never stored, only its SHA-256.
   *
   * @example const { code } = await invites.create(admin, 1, 86_400); // "sbi_…"
   */
  async create(
    by: UserRow,
    uses = 1,
    expiresSec = INVITE_DEFAULT_LIFETIME_SEC,
  ): Promise<{ code: string; row: InviteRow }> {
    this.#requireAdmin(by);
    const now = this.#now();
    await this.#store.invites.deleteUnusable(now - KEEP_UNUSABLE_MS);
    const code = INVITE_PREFIX + randomBytes(INVITE_CODE_BYTES).toString('base64url');
    const row = await this.#store.invites.create({
      codeHash: sha256Hex(code),
      createdBy: by.id,
      usesLeft: uses,
      expiresAt: now + expiresSec * 1000,
      createdAt: now,
    });
    return { code, row };
  }

  /** The invites still usable, newest first, with their creators' names. */
  async list(by: UserRow): Promise<Array<InviteRow & { createdByName: string | null }>> {
    this.#requireAdmin(by);
    const rows = await this.#store.invites.listUsable(this.#now(), MAX_LISTED);
    const names = new Map<number, string | null>();
    const out = [];
    for (const row of rows) {
      let name: string | null = null;
      if (row.createdBy !== null) {
        if (!names.has(row.createdBy))
          names.set(row.createdBy, (await this.#store.users.findById(row.createdBy))?.name ?? null);
        name = names.get(row.createdBy) ?? null;
      }
      out.push({ ...row, createdByName: name });
    }
    return out;
  }
}
