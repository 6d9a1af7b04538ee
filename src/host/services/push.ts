// The push service, agent side: files named in a signed request, each written to a temporary name, verified by SHA-256, renamed into place.
//
// As for exec, the agent trusts nothing the relay says: the request is signed by the requester's
// device and bound to this agent and channel (signed-request.ts), and the policy decides
// (host/policy.ts: the owner and --allow users anywhere, others under their `push` directories,
// `mkdir` to create a missing one). A directory that resolves (through symlinks) outside every
// granted directory is refused. Each file goes to a new temporary name in the directory (O_EXCL,
// O_NOFOLLOW, mode 0600), its SHA-256 taken over what was written; it is renamed into place only
// if that matches the signed one, after fsync and chmod; any failure removes the temporary file.
// The sender keeps at most PUSH_WINDOW_BYTES unacknowledged, so a slow disk pauses it. Every
// outcome is reported as a 'push' event on the host session: the audit's input.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { constants, mkdirSync, realpathSync, statSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import type { SecureDuplex } from '../../channel/e2e.js';
import { ErrorCode, SwitchboardError } from '../../protocol/errors.js';
import type { PeerInfo } from '../../protocol/messages.js';
import {
  PUSH_IDLE_TIMEOUT_MS,
  PUSH_MAX_REQUEST_BYTES,
  PUSH_REQUEST_FORMAT,
  PUSH_SERVICE,
  PUSH_WINDOW_BYTES,
  PUSH_CHUNK_BYTES,
  PushType,
  type PushAccepted,
  type PushDone,
  type PushFileResult,
  type PushRefused,
  type PushRequest,
  type PushSkip,
} from '../../protocol/push.js';
import { decodeJson, encodeCount, encodeJson } from '../../protocol/service-message.js';
import type { HostSession } from '../host-session.js';
import { decide, type Decision, type ExecPolicy } from '../policy.js';
import { PEER_SETUP_TIMEOUT_MS } from '../timeouts.js';
import type { HostService } from './service.js';
import {
  NonceCache,
  acceptSignedRequest,
  asSwitchboardError,
  fullAccess,
} from './signed-request.js';

/** How the agent takes pushes: set by `agent` (its policy file). */
export interface PushConfig {
  /** The policy in force now (reloaded on SIGHUP); undefined without --policy. */
  policy(): ExecPolicy | undefined;
  /** The agent's replay cache, shared with exec (default: one of its own). */
  nonces?: NonceCache;
  now?: () => number;
  /** Default PUSH_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
}

/** One file in a push record. */
export interface PushFileRecord {
  name: string;
  size: number;
  sha256: string;
  result: 'written' | 'failed';
  error?: string;
}

/** What the agent reports for each push: the audit's entry. */
export interface PushRecord {
  time: string;
  user: string;
  fingerprint: string;
  session: string;
  /** The directory as requested ('' when the request could not be read). */
  dir: string;
  files: PushFileRecord[];
  decision: 'allowed' | 'refused';
  rule: string;
  /** Refusals and pushes cut short (the sender went away, a protocol error). */
  code?: string;
  message?: string;
  durationMs: number;
}

/** The push service for an agent. */
export function pushService(config: PushConfig): HostService {
  const nonces = config.nonces ?? new NonceCache();
  return {
    name: PUSH_SERVICE,
    decidesAccess: true,
    serve(ctx) {
      if (!ctx.host) return void ctx.channel.close('push goes to a session', ErrorCode.NOT_ALLOWED);
      new PushRun(ctx.host, ctx.channel, ctx.peer, config, nonces);
    },
  };
}

/** The file being received. */
interface Incoming {
  index: number;
  /** Its temporary path in the directory. */
  tmp: string;
  /** Set once the temporary file is open (ours to remove). */
  handle?: FileHandle;
  /** Bytes received. */
  got: number;
  /** Over the bytes written. */
  hash: Hash;
  /** Why it failed already: the rest of its bytes are dropped. */
  error?: string;
}

class PushRun {
  readonly #host: HostSession;
  readonly #channel: SecureDuplex;
  readonly #peer: PeerInfo;
  readonly #config: PushConfig;
  readonly #nonces: NonceCache;
  readonly #now: () => number;
  readonly #firstTimer: NodeJS.Timeout;
  #state: 'request' | 'receiving' | 'done' = 'request';
  #parts: Uint8Array[] = [];
  #partBytes = 0;
  #request: PushRequest | undefined;
  #decision: Decision | undefined;
  #dir = '';
  #startedAt = 0;
  #next = 0;
  #current: Incoming | undefined;
  #results: PushFileRecord[] = [];
  #received = 0;
  #consumed = 0;
  #acked = 0;
  #queue: Promise<void> = Promise.resolve();
  #idle: NodeJS.Timeout | undefined;

  constructor(
    host: HostSession,
    channel: SecureDuplex,
    peer: PeerInfo,
    config: PushConfig,
    nonces: NonceCache,
  ) {
    this.#host = host;
    this.#channel = channel;
    this.#peer = peer;
    this.#config = config;
    this.#nonces = nonces;
    this.#now = config.now ?? Date.now;
    this.#firstTimer = setTimeout(
      () => void channel.close('no request came', ErrorCode.TIMEOUT),
      PEER_SETUP_TIMEOUT_MS,
    );
    channel.setHandlers({
      onMessage: (message) => {
        try {
          this.#onMessage(message);
        } catch (err) {
          const e = asSwitchboardError(err, 'the agent failed to take the push');
          this.#abort(e.message, e.code);
        }
      },
      onClose: () => {
        clearTimeout(this.#firstTimer);
        this.#abort('the sender went away');
      },
    });
  }

  get #files(): PushRequest['files'] {
    return this.#request?.files ?? [];
  }

  #onMessage(message: Uint8Array): void {
    if (message.length === 0 || this.#state === 'done') return;
    const type = message[0];
    if (this.#state === 'request') {
      if (type === PushType.REQUEST_PART) {
        this.#partBytes += message.length - 1;
        if (this.#partBytes > PUSH_MAX_REQUEST_BYTES)
          throw new SwitchboardError(ErrorCode.FRAME_TOO_LARGE, 'the request is too large');
        this.#parts.push(message.subarray(1));
        return;
      }
      clearTimeout(this.#firstTimer);
      return this.#onRequest(message);
    }
    this.#armIdle();
    switch (type) {
      case PushType.DATA:
        return this.#onData(message.subarray(1));
      case PushType.SKIP:
        return this.#onSkip(decodeJson<PushSkip>(message));
      case PushType.REQUEST:
      case PushType.REQUEST_PART:
        throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'one request per channel');
      default:
        throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, `unknown push message ${type}`);
    }
  }

  /** Signature, binding, freshness, the policy, then the directory; refusals are sent sealed and recorded. */
  #onRequest(message: Uint8Array): void {
    let request: PushRequest;
    try {
      request = acceptSignedRequest(
        PUSH_REQUEST_FORMAT,
        message,
        {
          host: this.#host,
          channel: this.#channel,
          peer: this.#peer,
          nonces: this.#nonces,
          now: this.#now,
        },
        this.#parts,
      );
    } catch (err) {
      const e = asSwitchboardError(err, 'the agent failed to read the request');
      const malformed =
        e.code === ErrorCode.INVALID_MESSAGE || e.code === ErrorCode.FRAME_TOO_LARGE;
      return this.#refuse({
        code: e.code,
        rule: malformed ? 'request' : 'signature',
        message: e.message,
      });
    }
    this.#parts = [];
    this.#request = request;
    const user = this.#peer.user;
    const full = fullAccess(this.#host, user);
    const policy = this.#config.policy();
    const { dir } = request;
    const refuse = (code: ErrorCode, rule: string, text: string) =>
      this.#refuse({ code, rule, message: text });
    // The path as written first: nothing about a directory is looked at unless it is granted.
    let decision = decide(policy, { user, full }, { kind: 'push', dir, mkdir: false });
    this.#decision = decision;
    if (!decision.allowed) return refuse(ErrorCode.NOT_ALLOWED, decision.rule, decision.reason);
    // Then where it leads (symlinks followed, as far as it exists): that must be granted too.
    const roots = full ? undefined : (policy?.users.get(user)?.push ?? []);
    const escapes = (path: string): string | undefined => {
      const real = resolveExisting(path);
      return roots && !roots.some((root) => within(real, resolveExisting(root))) ? real : undefined;
    };
    const outside = (real: string) =>
      refuse(
        ErrorCode.NOT_ALLOWED,
        decision.rule,
        `${user} may not push into ${JSON.stringify(dir)}: it leads to ${JSON.stringify(real)}, ` +
          `outside every directory users.${user}.push grants (a symlink)`,
      );
    const before = escapes(dir);
    if (before !== undefined) return outside(before);
    const found = dirState(dir);
    let created = false;
    if (typeof found === 'object') return refuse(ErrorCode.INVALID_MESSAGE, 'dir', found.problem);
    if (found === 'missing') {
      if (!request.mkdir)
        return refuse(
          ErrorCode.INVALID_MESSAGE,
          'dir',
          `${dir} does not exist on this agent (--mkdir creates it where the policy allows)`,
        );
      decision = decide(policy, { user, full }, { kind: 'push', dir, mkdir: true });
      this.#decision = decision;
      if (!decision.allowed) return refuse(ErrorCode.NOT_ALLOWED, decision.rule, decision.reason);
      try {
        mkdirSync(dir, { recursive: true, mode: 0o755 });
        created = true;
      } catch (err) {
        return refuse(ErrorCode.INTERNAL, 'dir', `cannot create ${dir}: ${osReason(err)}`);
      }
    }
    try {
      this.#dir = realpathSync(dir);
    } catch (err) {
      return refuse(ErrorCode.INTERNAL, 'dir', `cannot open ${dir}: ${osReason(err)}`);
    }
    const after = escapes(this.#dir);
    if (after !== undefined) return outside(after);
    this.#state = 'receiving';
    this.#startedAt = this.#now();
    const accepted: PushAccepted = { rule: decision.rule, dir: this.#dir, created };
    this.#channel.send(encodeJson(PushType.ACCEPTED, accepted));
    this.#armIdle();
    this.#begin();
  }

  /** The next file becomes the one received; empty ones are done at once; after the last, DONE. */
  #begin(): void {
    const files = this.#files;
    while (this.#next < files.length) {
      const cur: Incoming = {
        index: this.#next++,
        tmp: join(this.#dir, `.switchboard-push-${randomBytes(8).toString('hex')}`),
        got: 0,
        hash: createHash('sha256'),
      };
      this.#current = cur;
      this.#enqueue(() => this.#open(cur));
      if (files[cur.index]!.size > 0) return;
      this.#enqueue(() => this.#close(cur));
    }
    this.#current = undefined;
    clearTimeout(this.#idle);
    this.#enqueue(() => this.#finish());
  }

  #onData(chunk: Uint8Array): void {
    const cur = this.#current;
    if (!cur) throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'data after the last file');
    const size = this.#files[cur.index]!.size;
    if (cur.got + chunk.length > size)
      throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'a file is longer than announced');
    this.#received += chunk.length;
    // The sender may be one chunk past the window, not more: memory here stays bounded.
    if (this.#received - this.#acked > PUSH_WINDOW_BYTES + PUSH_CHUNK_BYTES)
      throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'data past the window');
    cur.got += chunk.length;
    this.#enqueue(() => this.#write(cur, chunk));
    if (cur.got < size) return;
    this.#enqueue(() => this.#close(cur));
    this.#begin();
  }

  /** The sender cannot send the rest of the current file: drop it, go on with the next. */
  #onSkip(skip: PushSkip): void {
    const cur = this.#current;
    if (!cur) throw new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'a skip after the last file');
    const reason = typeof skip?.reason === 'string' ? skip.reason.slice(0, 200) : 'no reason';
    this.#enqueue(() => this.#close(cur, `the sender could not send it: ${reason}`));
    this.#begin();
  }

  /** File work runs one step at a time, in the order the data came. */
  #enqueue(step: () => Promise<void>): void {
    this.#queue = this.#queue.then(step).catch((err: unknown) => {
      const e = asSwitchboardError(err, 'the agent failed to write the push');
      this.#abort(e.message, e.code);
    });
  }

  async #open(cur: Incoming): Promise<void> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    try {
      cur.handle = await open(cur.tmp, flags, 0o600);
    } catch (err) {
      cur.error = `cannot create a temporary file in ${this.#dir}: ${osReason(err)}`;
    }
  }

  async #write(cur: Incoming, chunk: Uint8Array): Promise<void> {
    if (cur.handle && cur.error === undefined) {
      try {
        for (let at = 0; at < chunk.length;) {
          const { bytesWritten } = await cur.handle.write(chunk, at, chunk.length - at);
          at += bytesWritten;
        }
        cur.hash.update(chunk);
      } catch (err) {
        cur.error = `cannot write it: ${osReason(err)}`;
      }
    }
    this.#consumed += chunk.length;
    // Progress here counts too: a sender waiting on a slow disk is not idle.
    if (this.#state === 'receiving' && this.#current) this.#armIdle();
    // Acknowledged in quarters of the window: few records, and the sender never waits idle.
    if (this.#consumed - this.#acked >= PUSH_WINDOW_BYTES / 4) {
      this.#acked = this.#consumed;
      this.#channel.send(encodeCount(PushType.ACK, this.#acked));
    }
  }

  /** Ends a file: verified, synced, chmod, renamed into place; or failed (`failure`) and removed. */
  async #close(cur: Incoming, failure?: string): Promise<void> {
    const file = this.#files[cur.index]!;
    const handle = cur.handle;
    let error = cur.error ?? failure;
    if (error === undefined && cur.got < file.size)
      error = `only ${cur.got} of ${file.size} bytes came`;
    if (error === undefined && cur.hash.digest('hex') !== file.sha256)
      error = "its SHA-256 is not the signed request's: not written";
    if (error === undefined && handle) {
      try {
        await handle.sync();
        await handle.chmod(file.mode & 0o777);
      } catch (err) {
        error = `cannot write it: ${osReason(err)}`;
      }
    }
    await handle?.close().catch(() => undefined);
    if (error === undefined && handle) {
      try {
        await rename(cur.tmp, join(this.#dir, file.name));
      } catch (err) {
        error = `cannot put it in place: ${osReason(err)}`;
      }
    }
    // Only a temporary file this push created is removed (an O_EXCL failure left someone else's).
    if (error !== undefined && handle) await unlink(cur.tmp).catch(() => undefined);
    const record: PushFileRecord = {
      name: file.name,
      size: file.size,
      sha256: file.sha256,
      result: error === undefined ? 'written' : 'failed',
      ...(error !== undefined ? { error } : {}),
    };
    this.#results[cur.index] = record;
    const result: PushFileResult = {
      index: cur.index,
      name: file.name,
      result: record.result,
      bytes: cur.got,
      ...(error !== undefined ? { error } : {}),
    };
    this.#channel.send(encodeJson(PushType.FILE, result));
  }

  /** Every file is done: the directory synced (the renames with it), DONE, the record. */
  async #finish(): Promise<void> {
    if (this.#state !== 'receiving') return;
    this.#state = 'done';
    const dir = await open(this.#dir, 'r').catch(() => undefined);
    await dir?.sync().catch(() => undefined);
    await dir?.close().catch(() => undefined);
    const written = this.#results.filter((r) => r.result === 'written');
    const done: PushDone = {
      written: written.length,
      failed: this.#results.length - written.length,
      bytes: written.reduce((n, r) => n + r.size, 0),
      durationMs: this.#now() - this.#startedAt,
    };
    this.#channel.send(encodeJson(PushType.DONE, done));
    void this.#channel.close('done');
    this.#record({ decision: 'allowed', rule: this.#decision!.rule });
  }

  #armIdle(): void {
    clearTimeout(this.#idle);
    const ms = this.#config.idleTimeoutMs ?? PUSH_IDLE_TIMEOUT_MS;
    this.#idle = setTimeout(
      () => this.#abort(`no data came for ${Math.round(ms / 1000)} s`, ErrorCode.TIMEOUT),
      ms,
    );
  }

  /**
   * The push ends before its last file: the file being received is removed (once the writes
   * queued for it are done), what was complete stays, and the record says why. `code`: the
   * channel is closed with it (else it closed already).
   */
  #abort(why: string, code?: ErrorCode): void {
    clearTimeout(this.#firstTimer);
    clearTimeout(this.#idle);
    if (this.#state === 'done') return;
    const receiving = this.#state === 'receiving';
    this.#state = 'done';
    if (code !== undefined) void this.#channel.close(why, code);
    if (!receiving) return;
    const cur = this.#current;
    this.#current = undefined;
    this.#enqueue(async () => {
      if (cur)
        await this.#close(cur, `${why} after ${cur.got} of ${this.#files[cur.index]!.size} bytes`);
      this.#record({
        decision: 'allowed',
        rule: this.#decision!.rule,
        code: code ?? ErrorCode.CHANNEL_CLOSED,
        message: why,
      });
    });
  }

  #refuse(refused: PushRefused): void {
    this.#state = 'done';
    this.#channel.send(encodeJson(PushType.REFUSED, refused));
    void this.#channel.close('refused', refused.code);
    this.#host.notice(`refused ${this.#peer.user} (${this.#peer.fingerprint}): ${refused.message}`);
    this.#record({
      decision: 'refused',
      rule: refused.rule,
      code: refused.code,
      message: refused.message,
    });
  }

  #record(outcome: Pick<PushRecord, 'decision' | 'rule' | 'code' | 'message'>): void {
    const refused = outcome.decision === 'refused';
    const entry: PushRecord = {
      time: new Date(this.#now()).toISOString(),
      user: this.#peer.user,
      fingerprint: this.#peer.fingerprint,
      session: this.#host.sessionId ?? '',
      dir: this.#request?.dir ?? '',
      files: this.#files.map(
        (f, i) =>
          this.#results[i] ?? {
            name: f.name,
            size: f.size,
            sha256: f.sha256,
            result: 'failed',
            error: refused ? 'refused' : 'not received',
          },
      ),
      ...outcome,
      durationMs: this.#startedAt ? this.#now() - this.#startedAt : 0,
    };
    this.#host.emit('push', entry);
  }
}

/** What is at `path`, symlinks followed: a directory, nothing, or something that will not do. */
function dirState(path: string): 'dir' | 'missing' | { problem: string } {
  try {
    if (statSync(path).isDirectory()) return 'dir';
    return { problem: `${path} is not a directory on this agent` };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    return { problem: `cannot reach ${path} on this agent: ${osReason(err)}` };
  }
}

/** `path` with symlinks resolved as far as it exists; the missing rest appended as written. */
function resolveExisting(path: string): string {
  const missing: string[] = [];
  let at = posix.resolve(path);
  for (;;) {
    try {
      return posix.join(realpathSync(at), ...missing.reverse());
    } catch {
      const up = dirname(at);
      if (up === at) return posix.resolve(path);
      missing.push(posix.basename(at));
      at = up;
    }
  }
}

/** Whether `dir` is `root` or under it; both absolute. */
function within(dir: string, root: string): boolean {
  return root === '/' || dir === root || dir.startsWith(`${root}/`);
}

function osReason(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? String(err);
}
