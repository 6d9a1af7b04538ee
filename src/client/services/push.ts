// The push service, controller side: sign one request, send each file's bytes under the agent's window, collect its results.
import { requestHead, type SignedCallOptions } from './signed-call.js';
import { open, type FileHandle } from 'node:fs/promises';
import type { SecureDuplex } from '../../channel/e2e.js';
import { ErrorCode } from '../../protocol/errors.js';
import {
  PUSH_CHUNK_BYTES,
  PUSH_WINDOW_BYTES,
  PushType,
  encodePushRequest,
  type PushAccepted,
  type PushDone,
  type PushFileResult,
  type PushRefused,
  type PushRequest,
  type PushSkip,
} from '../../protocol/push.js';
import { decodeCount, decodeJson, encodeJson } from '../../protocol/service-message.js';

/** A local file to push, as read and hashed once before any agent is contacted. */
export interface LocalFile {
  /** Where it is read from. */
  path: string;
  /** Its name on the agent (a plain file name: `isPushFileName`). */
  name: string;
  size: number;
  /** Permission bits, as the agent sets them. */
  mode: number;
  sha256: string;
  /** Its modification time when hashed: a file modified since is not sent. */
  mtimeMs: number;
}

/** How a push ended, as far as the controller knows. */
export type PushOutcome =
  | { kind: 'done'; accepted: PushAccepted; files: PushFileResult[]; done: PushDone }
  | { kind: 'refused'; refused: PushRefused }
  /** The channel ended before DONE: the agent went away, or the relay or the channel failed. */
  | {
      kind: 'lost';
      code: string;
      message: string;
      accepted: PushAccepted | undefined;
      files: PushFileResult[];
    };

export interface PushCallOptions extends SignedCallOptions {
  /** Where the files go on the agent (absolute). */
  dir: string;
  /** Create `dir` if it is missing (where the agent's policy allows). */
  mkdir: boolean;
  files: readonly LocalFile[];
}

export interface PushSinks {
  onAccepted?(accepted: PushAccepted): void;
  /** One file is done at the agent (written or failed). */
  onFile?(result: PushFileResult): void;
}

/** One push to one agent, over its own push channel. */
export class PushCall {
  readonly result: Promise<PushOutcome>;
  readonly #channel: SecureDuplex;
  readonly #files: readonly LocalFile[];
  readonly #sinks: PushSinks;
  /** One message buffer, reused: the channel seals (copies) a message as it is sent. */
  readonly #buffer = Buffer.allocUnsafe(1 + PUSH_CHUNK_BYTES);
  #resolve!: (outcome: PushOutcome) => void;
  #accepted: PushAccepted | undefined;
  readonly #results: PushFileResult[] = [];
  #sent = 0;
  #acked = 0;
  #wake: (() => void) | undefined;
  #ended = false;

  constructor(o: PushCallOptions, sinks: PushSinks = {}) {
    this.#channel = o.channel;
    this.#files = o.files;
    this.#sinks = sinks;
    this.#buffer[0] = PushType.DATA;
    this.result = new Promise((resolve) => (this.#resolve = resolve));
    const request: PushRequest = {
      ...requestHead('push', o),
      dir: o.dir,
      mkdir: o.mkdir,
      files: o.files.map((f) => ({ name: f.name, size: f.size, mode: f.mode, sha256: f.sha256 })),
    };
    o.channel.setHandlers({
      onMessage: (message) => this.#onMessage(message),
      onClose: (code, reason) =>
        this.#end({
          kind: 'lost',
          code,
          message: reason,
          accepted: this.#accepted,
          files: this.#results,
        }),
    });
    for (const message of encodePushRequest(o.key, request)) o.channel.send(message);
  }

  /** Bytes of file data the agent has written (or dropped) so far. */
  get acked(): number {
    return this.#acked;
  }

  /** Gives up on the push (the agent then removes the file it was writing). */
  abandon(reason: string): void {
    void this.#channel.close(reason);
  }

  #onMessage(message: Uint8Array): void {
    switch (message[0]) {
      case PushType.ACCEPTED:
        if (this.#accepted) break;
        this.#accepted = decodeJson<PushAccepted>(message);
        this.#sinks.onAccepted?.(this.#accepted);
        this.#sendAll().catch((err: unknown) =>
          this.abandon(`cannot send the files: ${(err as Error)?.message ?? String(err)}`),
        );
        return;
      case PushType.ACK:
        this.#acked = Math.max(this.#acked, decodeCount(message));
        this.#wakeUp();
        return;
      case PushType.FILE: {
        const result = decodeJson<PushFileResult>(message);
        this.#results.push(result);
        this.#sinks.onFile?.(result);
        return;
      }
      case PushType.DONE:
        if (!this.#accepted) break;
        return this.#end({
          kind: 'done',
          accepted: this.#accepted,
          files: this.#results,
          done: decodeJson<PushDone>(message),
        });
      case PushType.REFUSED:
        return this.#end({ kind: 'refused', refused: decodeJson<PushRefused>(message) });
    }
    void this.#channel.close('unexpected push message', ErrorCode.INVALID_MESSAGE);
  }

  async #sendAll(): Promise<void> {
    for (const file of this.#files) {
      // An empty file has no data: the agent writes it at once (and so a SKIP would hit the next).
      if (file.size === 0) continue;
      if (this.#ended) return;
      await this.#sendFile(file);
    }
  }

  /** Sends one file's bytes; a file that changed, shrank or cannot be read is skipped (failed). */
  async #sendFile(file: LocalFile): Promise<void> {
    let handle: FileHandle;
    try {
      handle = await open(file.path, 'r');
    } catch (err) {
      return this.#skip(`cannot open it (${osReason(err)})`);
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile() || stat.size !== file.size || stat.mtimeMs !== file.mtimeMs)
        return this.#skip('it changed after it was hashed');
      for (let at = 0; at < file.size;) {
        await this.#room();
        if (this.#ended) return;
        const want = Math.min(PUSH_CHUNK_BYTES, file.size - at);
        const { bytesRead } = await handle.read(this.#buffer, 1, want, at);
        if (this.#ended) return;
        if (bytesRead === 0)
          return this.#skip(`it shrank while being sent (${at} of ${file.size} bytes)`);
        this.#channel.send(this.#buffer.subarray(0, 1 + bytesRead));
        at += bytesRead;
        this.#sent += bytesRead;
      }
    } catch (err) {
      this.#skip(`cannot read it (${osReason(err)})`);
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  #skip(reason: string): void {
    const skip: PushSkip = { reason };
    this.#channel.send(encodeJson(PushType.SKIP, skip));
  }

  /** Resolves once fewer than PUSH_WINDOW_BYTES are unacknowledged (or the push ended). */
  #room(): Promise<void> {
    if (this.#ended || this.#sent - this.#acked < PUSH_WINDOW_BYTES) return Promise.resolve();
    return new Promise<void>((resolve) => (this.#wake = resolve)).then(() => this.#room());
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #end(outcome: PushOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#wakeUp();
    this.#resolve(outcome);
    if (!this.#channel.closed) void this.#channel.close('done');
  }
}

function osReason(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? (err as Error)?.message ?? String(err);
}
