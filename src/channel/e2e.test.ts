// Unit tests for the E2E layer over an in-memory transport pair: handshake, early records, handler switches, record failures, timeouts, prologue bytes.
import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { toBase64, toHex, utf8 } from '../crypto/bytes.js';
import { generateDeviceKey, keyFingerprint, type DeviceKeyPair } from '../crypto/device-key.js';
import { RECORD_OVERHEAD } from '../crypto/secure-channel.js';
import { CryptoError, ErrorCode, SessionError, SwitchboardError } from '../protocol/errors.js';
import type { PeerInfo } from '../protocol/messages.js';
import type { DeviceSigner } from '../crypto/prekeys.js';
import {
  MAX_EARLY_RECORDS,
  acceptE2E,
  channelPrologue,
  connectE2E,
  type E2EOptions,
  type SecureDuplex,
} from './e2e.js';
import type { ChannelHandlers, ChannelTransport } from './transport.js';

type Close = { code: string; reason: string };

/**
 * One end of an in-memory channel. `send` hands the payload to the other end at once, which
 * delivers it to whatever handlers are current at that moment (or keeps it until `setHandlers`).
 * With `hold`, what this end sends waits in the pipe and `flush()` delivers all of it
 * synchronously in one go, as `ws` emits the frames of one socket read.
 */
class MemoryTransport implements ChannelTransport {
  readonly bufferedAmount = 0;
  other!: MemoryTransport;
  /** Every payload delivered to this end, in order: what a relay forwarded. */
  readonly received: Uint8Array[] = [];
  /** The close the other end sent, once it arrived. */
  closedBy: Close | undefined;
  hold = false;
  /** Sees each payload this end sends: returns what goes on (altered or not), or undefined to drop it. */
  tap: ((payload: Uint8Array) => Uint8Array | undefined) | undefined;
  #held: Array<Uint8Array | Close> = [];
  #handlers: ChannelHandlers | undefined;
  #inbox: Uint8Array[] = [];
  #inboxClose: Close | undefined;
  #closed = false;

  get closed(): boolean {
    return this.#closed;
  }

  setHandlers(handlers: ChannelHandlers): void {
    this.#handlers = handlers;
    while (this.#inbox.length > 0 && this.#handlers === handlers) {
      handlers.onMessage(this.#inbox.shift()!);
    }
    const close = this.#inboxClose;
    if (close && this.#inbox.length === 0 && this.#handlers === handlers) {
      this.#inboxClose = undefined;
      handlers.onClose(close.code, close.reason);
    }
  }

  send(payload: Uint8Array): void {
    if (this.#closed) return;
    const out = this.tap ? this.tap(payload) : payload;
    if (out === undefined) return;
    if (this.hold) this.#held.push(out);
    else this.other.#receive(out);
  }

  close(reason: string, code?: ErrorCode): Promise<void> {
    this.closeWith(code ?? ErrorCode.CHANNEL_CLOSED, reason);
    return Promise.resolve();
  }

  /** Like `close`, with any code string (a peer may send one we do not know). */
  closeWith(code: string, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.hold) this.#held.push({ code, reason });
    else this.other.#receiveClose({ code, reason });
  }

  /** Delivers everything held, synchronously, in one go. */
  flush(): void {
    for (const item of this.#held.splice(0)) {
      if (item instanceof Uint8Array) this.other.#receive(item);
      else this.other.#receiveClose(item);
    }
  }

  /** Hands `payload` straight to this end's current handlers, as a relay replaying it would. */
  inject(payload: Uint8Array): void {
    this.#handlers!.onMessage(payload);
  }

  /** The transport reports a close to this end's current handlers, whatever came before. */
  reportClose(code: string, reason: string): void {
    this.#handlers!.onClose(code, reason);
  }

  #receive(payload: Uint8Array): void {
    if (this.#closed) return;
    this.received.push(payload);
    if (this.#handlers && this.#inbox.length === 0) this.#handlers.onMessage(payload);
    else this.#inbox.push(payload);
  }

  #receiveClose(close: Close): void {
    if (this.#closed) return;
    this.#closed = true;
    this.closedBy = close;
    if (this.#handlers && this.#inbox.length === 0)
      this.#handlers.onClose(close.code, close.reason);
    else this.#inboxClose = close;
  }
}

function memoryPair(): [MemoryTransport, MemoryTransport] {
  const a = new MemoryTransport();
  const b = new MemoryTransport();
  a.other = b;
  b.other = a;
  return [a, b];
}

/** Handlers that log what reaches them: each message as text, each close as `close:CODE`. */
class Recorder implements ChannelHandlers {
  readonly events: string[] = [];
  onMessage(payload: Uint8Array): void {
    this.events.push(new TextDecoder().decode(payload));
  }
  onClose(code: string): void {
    this.events.push(`close:${code}`);
  }
  get closes(): number {
    return this.events.filter((e) => e.startsWith('close:')).length;
  }
}

function device(user: string, deviceName: string): { key: DeviceKeyPair; info: PeerInfo } {
  const key = generateDeviceKey();
  const info = {
    user,
    publicKey: toBase64(key.publicKey),
    fingerprint: keyFingerprint(key.publicKey),
    deviceName,
  };
  return { key, info };
}

const host = device('hana', 'hana-laptop');
const controller = device('carl', 'carl-phone');
const stranger = device('mallory', 'relay-box');
const PROLOGUE = channelPrologue('shell', 'sess-1', 'hana', 'carl');

type HostOptions = E2EOptions & { key: DeviceSigner };
const hostOptions = (over: Partial<HostOptions> = {}): HostOptions => ({
  key: host.key,
  prologue: PROLOGUE,
  expected: controller.info,
  verifyPin: () => {},
  ...over,
});
const controllerOptions = (over: Partial<E2EOptions> = {}): E2EOptions => ({
  key: controller.key,
  prologue: PROLOGUE,
  expected: host.info,
  verifyPin: () => {},
  ...over,
});

/** A completed handshake; neither duplex has handlers yet. */
async function open(): Promise<{
  a: MemoryTransport;
  b: MemoryTransport;
  client: SecureDuplex;
  server: SecureDuplex;
}> {
  const [a, b] = memoryPair();
  const serverP = acceptE2E(b, hostOptions());
  const client = await connectE2E(a, controllerOptions());
  return { a, b, client, server: await serverP };
}

const withCode =
  (code: ErrorCode, type: typeof SwitchboardError = SwitchboardError) =>
  (err: unknown): boolean => {
    assert.ok(err instanceof type, `expected a ${type.name}, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };

/** Lets every pending microtask and promise callback run (setImmediate is never mocked here). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

afterEach(() => mock.timers.reset());

describe('connectE2E / acceptE2E', () => {
  it("complete with a controller key that signs asynchronously (the page's WebCrypto key)", async () => {
    const [a, b] = memoryPair();
    const serverP = acceptE2E(b, hostOptions());
    let signed = 0;
    const asyncKey = {
      publicKey: controller.key.publicKey,
      signAsync: async (data: Uint8Array): Promise<Uint8Array> => {
        await settle();
        signed++;
        return controller.key.sign(data);
      },
    };
    const client = await connectE2E(a, controllerOptions({ key: asyncKey }));
    const server = await serverP;
    assert.equal(signed, 1);
    assert.equal(client.handshakeHash, server.handshakeHash);
    assert.deepEqual(server.peer, controller.info);
    const got: string[] = [];
    server.setHandlers({
      onMessage: (m) => void got.push(new TextDecoder().decode(m)),
      onClose() {},
    });
    client.send(utf8('after an async signature'));
    assert.deepEqual(got, ['after an async signature']);
  });

  it("refuse a peer the relay announced under another key's fingerprint (what people compare)", async () => {
    const [a, b] = memoryPair();
    const serverP = acceptE2E(b, hostOptions());
    // The right key, labelled with the fingerprint of a key the relay controls.
    const relabelled = { ...host.info, fingerprint: stranger.info.fingerprint };
    await assert.rejects(
      connectE2E(a, controllerOptions({ expected: relabelled })),
      (err: unknown) =>
        withCode(ErrorCode.HANDSHAKE_FAILED, CryptoError)(err) &&
        /another key's fingerprint/.test((err as Error).message),
    );
    await assert.rejects(serverP);
    // And the host checks the controller's label the same way.
    const [c, d] = memoryPair();
    const hostSide = acceptE2E(
      d,
      hostOptions({ expected: { ...controller.info, fingerprint: stranger.info.fingerprint } }),
    );
    const controllerSide = connectE2E(c, controllerOptions());
    await assert.rejects(hostSide, withCode(ErrorCode.HANDSHAKE_FAILED, CryptoError));
    await assert.rejects(controllerSide);
  });

  it('fail with HANDSHAKE_FAILED, telling the host, when the async key cannot sign', async () => {
    const [a, b] = memoryPair();
    const serverP = acceptE2E(b, hostOptions());
    const failing = {
      publicKey: controller.key.publicKey,
      signAsync: (): Promise<Uint8Array> => Promise.reject(new Error('the key was deleted')),
    };
    await assert.rejects(
      connectE2E(a, controllerOptions({ key: failing })),
      withCode(ErrorCode.HANDSHAKE_FAILED, CryptoError),
    );
    await assert.rejects(serverP, withCode(ErrorCode.HANDSHAKE_FAILED));
  });

  it('complete over a transport pair with equal handshake hashes and carry plaintext both ways in order', async () => {
    const pins: string[][] = [];
    const [a, b] = memoryPair();
    const serverP = acceptE2E(
      b,
      hostOptions({ verifyPin: (p) => void pins.push(['host', p.user, p.publicKey]) }),
    );
    const client = await connectE2E(
      a,
      controllerOptions({ verifyPin: (p) => void pins.push(['controller', p.user, p.publicKey]) }),
    );
    const server = await serverP;

    assert.match(client.handshakeHash, /^[0-9a-f]{64}$/);
    assert.equal(client.handshakeHash, server.handshakeHash);
    assert.deepEqual(client.peer, host.info);
    assert.deepEqual(server.peer, controller.info);
    assert.deepEqual(pins, [
      ['controller', 'hana', host.info.publicKey],
      ['host', 'carl', controller.info.publicKey],
    ]);

    const c = new Recorder();
    const s = new Recorder();
    client.setHandlers(c);
    server.setHandlers(s);
    for (const n of [1, 2, 3]) {
      client.send(utf8(`c${n}`));
      server.send(utf8(`s${n}`));
    }
    assert.deepEqual(s.events, ['c1', 'c2', 'c3']);
    assert.deepEqual(c.events, ['s1', 's2', 's3']);

    // The relay sees sealed records, never the plaintext.
    const record = b.received.at(-1)!;
    assert.equal(record.length, 'c3'.length + RECORD_OVERHEAD);
    assert.ok(!Buffer.from(record).includes('c3'));
  });

  it('fails with HANDSHAKE_FAILED on both sides when the prologues differ', async () => {
    const others = [
      channelPrologue('files', 'sess-1', 'hana', 'carl'),
      channelPrologue('shell', 'sess-2', 'hana', 'carl'),
    ];
    for (const prologue of others) {
      const [a, b] = memoryPair();
      const serverP = acceptE2E(b, hostOptions());
      const clientP = connectE2E(a, controllerOptions({ prologue }));
      await Promise.all([
        assert.rejects(clientP, withCode(ErrorCode.HANDSHAKE_FAILED, CryptoError)),
        assert.rejects(serverP, withCode(ErrorCode.HANDSHAKE_FAILED, SessionError)),
      ]);
    }
  });

  it('fails with HANDSHAKE_FAILED when the host proves another key than expected, before the controller reveals itself', async () => {
    const [a, b] = memoryPair();
    const pins: string[] = [];
    const serverP = acceptE2E(b, hostOptions());
    const clientP = connectE2E(
      a,
      controllerOptions({ expected: stranger.info, verifyPin: (p) => void pins.push(p.user) }),
    );
    await Promise.all([
      assert.rejects(clientP, withCode(ErrorCode.HANDSHAKE_FAILED, CryptoError)),
      assert.rejects(serverP, withCode(ErrorCode.HANDSHAKE_FAILED, SessionError)),
    ]);
    assert.deepEqual(pins, []);
    assert.equal(b.received.length, 1, 'only msg1 reached the host: no msg3');
  });

  it('fails with HANDSHAKE_FAILED when the controller proves another key than expected', async () => {
    {
      // msg3 held in the pipe: the controller is done before the host judges it.
      const [a, b] = memoryPair();
      const serverRejects = assert.rejects(
        acceptE2E(b, hostOptions({ expected: stranger.info })),
        withCode(ErrorCode.HANDSHAKE_FAILED, CryptoError),
      );
      a.hold = true;
      const clientP = connectE2E(a, controllerOptions());
      a.flush();
      const client = await clientP;
      a.flush();
      await serverRejects;
      assert.equal(client.closed, true);
      const c = new Recorder();
      client.setHandlers(c);
      assert.deepEqual(c.events, ['close:HANDSHAKE_FAILED']);
    }
    {
      // Delivered synchronously: the host's close reaches the controller before it is done.
      const [a, b] = memoryPair();
      const serverP = acceptE2E(b, hostOptions({ expected: stranger.info }));
      const clientP = connectE2E(a, controllerOptions());
      await Promise.all([
        assert.rejects(serverP, withCode(ErrorCode.HANDSHAKE_FAILED, CryptoError)),
        assert.rejects(clientP, withCode(ErrorCode.HANDSHAKE_FAILED, SessionError)),
      ]);
    }
  });

  it('rejects with the code verifyPin throws, on either side, and tells the other side', async () => {
    const keyChanged = (): never => {
      throw new CryptoError(ErrorCode.PEER_KEY_CHANGED, 'pinned key differs');
    };
    {
      const [a, b] = memoryPair();
      const serverP = acceptE2E(b, hostOptions());
      const clientP = connectE2E(a, controllerOptions({ verifyPin: keyChanged }));
      await Promise.all([
        assert.rejects(clientP, withCode(ErrorCode.PEER_KEY_CHANGED, CryptoError)),
        assert.rejects(serverP, withCode(ErrorCode.PEER_KEY_CHANGED, SessionError)),
      ]);
    }
    {
      const [a, b] = memoryPair();
      const serverRejects = assert.rejects(
        acceptE2E(b, hostOptions({ verifyPin: keyChanged })),
        withCode(ErrorCode.PEER_KEY_CHANGED, CryptoError),
      );
      a.hold = true;
      const clientP = connectE2E(a, controllerOptions());
      a.flush();
      const client = await clientP;
      a.flush();
      await serverRejects;
      assert.equal(a.closedBy?.code, ErrorCode.PEER_KEY_CHANGED);
      assert.equal(client.closed, true);
    }
    {
      // Anything but a SwitchboardError becomes HANDSHAKE_FAILED.
      const [a, b] = memoryPair();
      const serverP = acceptE2E(b, hostOptions());
      const clientP = connectE2E(
        a,
        controllerOptions({
          verifyPin: () => {
            throw new Error('disk full');
          },
        }),
      );
      await Promise.all([
        assert.rejects(clientP, withCode(ErrorCode.HANDSHAKE_FAILED, CryptoError)),
        assert.rejects(serverP, withCode(ErrorCode.HANDSHAKE_FAILED, SessionError)),
      ]);
    }
  });

  it('rejects with the code of a close that arrives during the handshake, CHANNEL_CLOSED for an unknown one', async () => {
    {
      const [a, b] = memoryPair();
      const serverP = acceptE2E(b, hostOptions());
      await a.close('not you', ErrorCode.DENIED);
      await assert.rejects(serverP, (err) => {
        withCode(ErrorCode.DENIED, SessionError)(err);
        assert.equal((err as Error).message, 'not you');
        return true;
      });
    }
    {
      const [a, b] = memoryPair();
      const serverP = acceptE2E(b, hostOptions());
      a.closeWith('SOMETHING_FROM_THE_FUTURE', 'bye');
      await assert.rejects(serverP, withCode(ErrorCode.CHANNEL_CLOSED, SessionError));
    }
    {
      // The controller, after msg1, before msg2.
      const [a, b] = memoryPair();
      const clientP = connectE2E(a, controllerOptions());
      assert.equal(b.received.length, 1);
      await b.close('host went away', ErrorCode.SESSION_OFFLINE);
      await assert.rejects(clientP, withCode(ErrorCode.SESSION_OFFLINE, SessionError));
    }
  });

  it('rejects an acceptE2E whose opener never sends msg1 with HANDSHAKE_FAILED after timeoutMs, and tells the opener', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    const [a, b] = memoryPair();
    const opener = new Recorder();
    a.setHandlers(opener);
    let outcome: unknown = 'pending';
    acceptE2E(b, hostOptions({ timeoutMs: 5_000 })).then(
      (duplex) => (outcome = duplex),
      (err: unknown) => (outcome = err),
    );
    mock.timers.tick(4_999);
    await settle();
    assert.equal(outcome, 'pending');
    mock.timers.tick(1);
    await settle();
    withCode(ErrorCode.HANDSHAKE_FAILED, CryptoError)(outcome);
    assert.deepEqual(opener.events, ['close:HANDSHAKE_FAILED']);
  });

  it('rejects a connectE2E whose host never answers with HANDSHAKE_FAILED after timeoutMs', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    const [a, b] = memoryPair();
    let outcome: unknown = 'pending';
    connectE2E(a, controllerOptions({ timeoutMs: 1_000 })).then(
      (duplex) => (outcome = duplex),
      (err: unknown) => (outcome = err),
    );
    mock.timers.tick(1_000);
    await settle();
    withCode(ErrorCode.HANDSHAKE_FAILED, CryptoError)(outcome);
    assert.equal(b.closedBy?.code, ErrorCode.HANDSHAKE_FAILED);
  });

  it('does not end a completed handshake when its timeout passes', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    const [a, b] = memoryPair();
    const serverP = acceptE2E(b, hostOptions({ timeoutMs: 1_000 }));
    const client = await connectE2E(a, controllerOptions({ timeoutMs: 1_000 }));
    const server = await serverP;
    mock.timers.tick(10_000);
    assert.equal(client.closed, false);
    assert.equal(server.closed, false);
  });
});

describe('SecureDuplex early records', () => {
  it('delivers records sent before setHandlers in order once it is called, then an early close exactly once', async () => {
    const { client, server } = await open();
    for (const n of [1, 2, 3]) client.send(utf8(`early ${n}`));
    await client.close('done');
    const s = new Recorder();
    server.setHandlers(s);
    assert.deepEqual(s.events, ['early 1', 'early 2', 'early 3', 'close:CHANNEL_CLOSED']);
    client.send(utf8('after close'));
    server.setHandlers(s);
    assert.deepEqual(s.events, ['early 1', 'early 2', 'early 3', 'close:CHANNEL_CLOSED']);
  });

  it('queues records that arrive in one synchronous batch with msg3 and delivers them in order', async () => {
    const [a, b] = memoryPair();
    const serverP = acceptE2E(b, hostOptions());
    a.hold = true;
    const clientP = connectE2E(a, controllerOptions());
    a.flush(); // msg1; the host answers at once, and the controller holds msg3
    const client = await clientP;
    for (const n of [1, 2, 3, 4]) client.send(utf8(`r${n}`));
    await client.close('burst over', ErrorCode.PEER_GONE);
    assert.equal(b.received.length, 1, 'nothing but msg1 delivered yet');
    a.flush(); // msg3, four records and the close in one go
    assert.equal(b.received.length, 6);
    const server = await serverP;
    const s = new Recorder();
    server.setHandlers(s);
    assert.deepEqual(s.events, ['r1', 'r2', 'r3', 'r4', 'close:PEER_GONE']);
  });

  it('hands the remaining early records and the close to handlers set from inside onMessage, and calls onClose once in total', async () => {
    const { client, server } = await open();
    for (const n of [1, 2, 3, 4, 5]) client.send(utf8(`m${n}`));
    await client.close('done');
    const first = new Recorder();
    const second = new Recorder();
    server.setHandlers({
      onMessage(payload) {
        first.onMessage(payload);
        if (first.events.length === 2) server.setHandlers(second);
      },
      onClose: (code) => first.onClose(code),
    });
    assert.deepEqual(first.events, ['m1', 'm2']);
    assert.deepEqual(second.events, ['m3', 'm4', 'm5', 'close:CHANNEL_CLOSED']);

    const third = new Recorder();
    server.setHandlers(third);
    server.setHandlers(second);
    assert.deepEqual(third.events, []);
    assert.equal(first.closes + second.closes + third.closes, 1);
  });

  it('sends live records to the new handlers after a switch on the last early record', async () => {
    const { client, server } = await open();
    client.send(utf8('only'));
    const first = new Recorder();
    const second = new Recorder();
    server.setHandlers({
      onMessage(payload) {
        first.onMessage(payload);
        server.setHandlers(second);
      },
      onClose: (code) => first.onClose(code),
    });
    client.send(utf8('live'));
    await client.close('done');
    assert.deepEqual(first.events, ['only']);
    assert.deepEqual(second.events, ['live', 'close:CHANNEL_CLOSED']);
  });

  /**
   * The opener sends three records before the host sets its handlers; on the first of them the
   * host sends the opener a message, which the opener answers with `reply` at once, so the
   * answer arrives in the middle of the drain. Returns what the host saw, in order.
   */
  async function drainWithAnswer(
    reply: (client: Awaited<ReturnType<typeof open>>['client']) => void,
  ): Promise<string[]> {
    const { client, server } = await open();
    client.setHandlers({ onMessage: () => reply(client), onClose: () => {} });
    for (const n of [1, 2, 3]) client.send(utf8(`early ${n}`));
    const s = new Recorder();
    server.setHandlers({
      onMessage(payload) {
        s.onMessage(payload);
        if (s.events.length === 1) server.send(utf8('ping'));
      },
      onClose: (code) => s.onClose(code),
    });
    return s.events;
  }

  it('keeps records in order when one arrives while early records are being delivered', async () => {
    const events = await drainWithAnswer((client) => client.send(utf8('pong')));
    assert.deepEqual(events, ['early 1', 'early 2', 'early 3', 'pong']);
  });

  it('delivers a close that arrives while early records are being delivered after them', async () => {
    const events = await drainWithAnswer(
      (client) => void client.close('asked to leave', ErrorCode.PEER_GONE),
    );
    assert.deepEqual(events, ['early 1', 'early 2', 'early 3', 'close:PEER_GONE']);
  });

  it(`accepts ${MAX_EARLY_RECORDS} early records and closes with INVALID_MESSAGE on the next, telling both ends`, async () => {
    const { a, client, server } = await open();
    const c = new Recorder();
    client.setHandlers(c);
    for (let i = 0; i < MAX_EARLY_RECORDS; i++) client.send(utf8(`r${i}`));
    assert.equal(client.closed, false);
    assert.equal(server.closed, false);
    client.send(utf8('one too many'));
    assert.equal(server.closed, true);
    assert.equal(a.closedBy?.code, ErrorCode.INVALID_MESSAGE);
    assert.deepEqual(c.events, ['close:INVALID_MESSAGE']);
    const s = new Recorder();
    server.setHandlers(s);
    assert.equal(s.events.at(-1), 'close:INVALID_MESSAGE');
    assert.equal(s.closes, 1);
    assert.ok(!s.events.includes('one too many'));
  });
});

describe('SecureDuplex record failures', () => {
  /** A handshake with handlers on both duplexes. */
  async function running() {
    const opened = await open();
    const c = new Recorder();
    const s = new Recorder();
    opened.client.setHandlers(c);
    opened.server.setHandlers(s);
    return { ...opened, c, s };
  }

  it('ends with RECORD_REPLAYED when a record is delivered again, and the sender is told', async () => {
    const { a, b, client, server, c, s } = await running();
    client.send(utf8('one'));
    b.inject(b.received.at(-1)!);
    client.send(utf8('two'));
    assert.deepEqual(s.events, ['one', 'close:RECORD_REPLAYED']);
    assert.deepEqual(c.events, ['close:RECORD_REPLAYED']);
    assert.equal(a.closedBy?.code, ErrorCode.RECORD_REPLAYED);
    assert.equal(server.closed, true);
    assert.equal(client.closed, true);
  });

  it('ends with RECORD_SKIPPED when a record is dropped, and the sender is told', async () => {
    const { a, client, server, c, s } = await running();
    let drop = true;
    a.tap = (payload) => {
      if (!drop) return payload;
      drop = false;
      return undefined;
    };
    client.send(utf8('lost'));
    client.send(utf8('next'));
    client.send(utf8('later'));
    assert.deepEqual(s.events, ['close:RECORD_SKIPPED']);
    assert.deepEqual(c.events, ['close:RECORD_SKIPPED']);
    assert.equal(a.closedBy?.code, ErrorCode.RECORD_SKIPPED);
    assert.equal(server.closed, true);
  });

  it('ends with DECRYPT_FAILED when a bit is flipped, and the sender is told', async () => {
    const { a, b, client, server, c, s } = await running();
    server.send(utf8('fine'));
    b.tap = (payload) => {
      const altered = Uint8Array.from(payload);
      altered[altered.length - 3]! ^= 0x10;
      return altered;
    };
    server.send(utf8('tampered'));
    assert.deepEqual(c.events, ['fine', 'close:DECRYPT_FAILED']);
    assert.deepEqual(s.events, ['close:DECRYPT_FAILED']);
    assert.equal(b.closedBy?.code, ErrorCode.DECRYPT_FAILED);
    assert.equal(client.closed, true);
    assert.equal(a.closed, true);
  });

  it('calls onClose once when the transport reports a close after a failed record', async () => {
    const { b, client, s } = await running();
    client.send(utf8('one'));
    b.inject(b.received.at(-1)!);
    b.reportClose(ErrorCode.CHANNEL_CLOSED, 'the relay confirms');
    assert.deepEqual(s.events, ['one', 'close:RECORD_REPLAYED']);
  });
});

describe('channelPrologue', () => {
  it('is the pinned bytes for one example', () => {
    assert.equal(
      toHex(channelPrologue('shell', 'sess-1', 'hana', 'carl')),
      // "switchboard-e2e-v2\0shell\0sess-1\0hana\0carl"
      '737769746368626f6172642d6532652d7632007368656c6c00736573732d310068616e61006361726c',
    );
  });

  it('differs for a different service, target, host user or controller user', () => {
    const base = toHex(channelPrologue('shell', 'sess-1', 'hana', 'carl'));
    const variants = [
      channelPrologue('files', 'sess-1', 'hana', 'carl'),
      channelPrologue('shell', 'user:hana', 'hana', 'carl'),
      channelPrologue('shell', 'sess-1', 'hanna', 'carl'),
      channelPrologue('shell', 'sess-1', 'hana', 'carla'),
      // Swapping the users is another pair, not the same one.
      channelPrologue('shell', 'sess-1', 'carl', 'hana'),
    ].map(toHex);
    for (const variant of variants) assert.notEqual(variant, base);
    assert.equal(new Set(variants).size, variants.length);
  });
});
