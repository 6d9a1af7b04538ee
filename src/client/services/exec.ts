// The exec service, controller side: sign one request, stream its output, report how it ended.
import { requestHead, type SignedCallOptions } from './signed-call.js';
import type { SecureDuplex } from '../../channel/e2e.js';
import { ErrorCode } from '../../protocol/errors.js';
import {
  EXEC_CHUNK_BYTES,
  EXEC_WINDOW_BYTES,
  ExecType,
  decodeCount,
  decodeJson,
  encodeCount,
  encodeData,
  encodeSignedRequest,
  type ExecCommand,
  type ExecExit,
  type ExecRefused,
  type ExecRequest,
  type ExecStarted,
} from '../../protocol/exec.js';

/** How a command ended, as far as the controller knows. */
export type ExecOutcome =
  | { kind: 'exit'; exit: ExecExit; started: ExecStarted | undefined }
  | { kind: 'refused'; refused: ExecRefused }
  /** The channel ended without an exit: the agent went away, or the relay or the channel failed. */
  | { kind: 'lost'; code: string; message: string; started: ExecStarted | undefined };

export interface ExecCallOptions extends SignedCallOptions {
  command: ExecCommand;
  /** The script's bytes, for a `script` command. */
  script?: Uint8Array;
  timeoutMs?: number;
  /** Standard input follows (writeStdin, endStdin); else the command's is empty. */
  stdin: boolean;
}

/**
 * Output arrives through `onStdout` / `onStderr`: call `done` once the bytes are written where
 * they go, which acknowledges them (the agent pauses the command past EXEC_WINDOW_BYTES unacked).
 */
export interface ExecSinks {
  onStarted?(started: ExecStarted): void;
  onStdout(data: Uint8Array, done: () => void): void;
  onStderr(data: Uint8Array, done: () => void): void;
  /** Standard input may be written again (writeStdin returned false). */
  onStdinDrain?(): void;
}

/** One command on one agent, over its own exec channel. */
export class ExecCall {
  readonly result: Promise<ExecOutcome>;
  readonly #channel: SecureDuplex;
  readonly #sinks: ExecSinks;
  #resolve!: (outcome: ExecOutcome) => void;
  #started: ExecStarted | undefined;
  #consumed = 0;
  #acked = 0;
  #stdinSent = 0;
  #stdinAcked = 0;
  #stdinBlocked = false;
  #ended = false;

  constructor(o: ExecCallOptions, sinks: ExecSinks) {
    this.#channel = o.channel;
    this.#sinks = sinks;
    this.result = new Promise((resolve) => (this.#resolve = resolve));
    const request: ExecRequest = {
      ...requestHead('exec', o),
      command: o.command,
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
      stdin: o.stdin,
    };
    o.channel.setHandlers({
      onMessage: (message) => this.#onMessage(message),
      onClose: (code, reason) =>
        this.#end({ kind: 'lost', code, message: reason, started: this.#started }),
    });
    o.channel.send(encodeSignedRequest(o.key, request));
    if (o.command.kind === 'script' && o.script)
      for (let at = 0; at < o.script.length; at += EXEC_CHUNK_BYTES)
        o.channel.send(encodeData(ExecType.SCRIPT, o.script.subarray(at, at + EXEC_CHUNK_BYTES)));
  }

  get started(): ExecStarted | undefined {
    return this.#started;
  }

  /** Sends standard input; false once EXEC_WINDOW_BYTES are unacknowledged (wait for onStdinDrain). */
  writeStdin(data: Uint8Array): boolean {
    for (let at = 0; at < data.length; at += EXEC_CHUNK_BYTES)
      this.#channel.send(encodeData(ExecType.STDIN, data.subarray(at, at + EXEC_CHUNK_BYTES)));
    this.#stdinSent += data.length;
    this.#stdinBlocked = this.#stdinSent - this.#stdinAcked >= EXEC_WINDOW_BYTES;
    return !this.#stdinBlocked;
  }

  endStdin(): void {
    this.#channel.send(Uint8Array.of(ExecType.STDIN_EOF));
  }

  /** Asks the agent to stop the command: SIGINT, then SIGTERM, then SIGKILL to its process group. */
  cancel(): void {
    this.#channel.send(Uint8Array.of(ExecType.CANCEL));
  }

  /** Gives up on the call (the agent then cancels the command as for a lost controller). */
  abandon(reason: string): void {
    void this.#channel.close(reason);
  }

  #onMessage(message: Uint8Array): void {
    switch (message[0]) {
      case ExecType.STARTED:
        this.#started = decodeJson<ExecStarted>(message);
        this.#sinks.onStarted?.(this.#started);
        return;
      case ExecType.STDOUT:
        return this.#data(message, this.#sinks.onStdout);
      case ExecType.STDERR:
        return this.#data(message, this.#sinks.onStderr);
      case ExecType.STDIN_ACK:
        this.#stdinAcked += decodeCount(message);
        if (this.#stdinBlocked && this.#stdinSent - this.#stdinAcked < EXEC_WINDOW_BYTES) {
          this.#stdinBlocked = false;
          this.#sinks.onStdinDrain?.();
        }
        return;
      case ExecType.EXIT:
        return this.#end({
          kind: 'exit',
          exit: decodeJson<ExecExit>(message),
          started: this.#started,
        });
      case ExecType.REFUSED:
        return this.#end({ kind: 'refused', refused: decodeJson<ExecRefused>(message) });
      default:
        void this.#channel.close('unknown exec message', ErrorCode.INVALID_MESSAGE);
    }
  }

  #data(message: Uint8Array, sink: (data: Uint8Array, done: () => void) => void): void {
    const data = message.subarray(1);
    sink.call(this.#sinks, data, () => {
      this.#consumed += data.length;
      // Acknowledge in quarters of the window: few records, and the agent never waits idle.
      if (this.#consumed - this.#acked >= EXEC_WINDOW_BYTES / 4) {
        this.#acked = this.#consumed;
        this.#channel.send(encodeCount(ExecType.ACK, this.#acked));
      }
    });
  }

  #end(outcome: ExecOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#resolve(outcome);
    if (!this.#channel.closed) void this.#channel.close('done');
  }
}
