// Connection's own limits against a stand-in WebSocket whose queue the test sets: the hard queue
// cap, the slow-reader grace, the close timeout and the protocol-error window.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WebSocket } from 'ws';
import {
  ERROR_WINDOW_MS,
  HARD_MAX_QUEUED_BYTES,
  MAX_PROTOCOL_ERRORS,
  MAX_QUEUED_BYTES,
} from '../protocol/limits.js';
import { Connection, type CutReason } from './connection.js';
import { silentLogger } from './logger.js';

/** The part of a ws WebSocket Connection uses; `bufferedAmount` is whatever the test says. */
class FakeWs {
  readonly OPEN = 1;
  readonly CLOSED = 3;
  readyState = 1;
  bufferedAmount = 0;
  sent = 0;
  closed = false;
  #onTerminate: (() => void) | undefined;
  readonly terminated = new Promise<void>((resolve) => (this.#onTerminate = resolve));
  send(): void {
    this.sent += 1;
  }
  close(): void {
    this.closed = true;
  }
  terminate(): void {
    this.readyState = this.CLOSED;
    this.#onTerminate?.();
  }
}

/** Waits for `p`, at most `ms` (the relay's timers are unref'd: this one keeps the test alive). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function connection(options: ConstructorParameters<typeof Connection>[4] = {}) {
  const ws = new FakeWs();
  const cuts: CutReason[] = [];
  const conn = new Connection(ws as unknown as WebSocket, '192.0.2.1', silentLogger, 0, {
    onCut: (reason) => cuts.push(reason),
    ...options,
  });
  return { ws, conn, cuts };
}

describe('Connection', () => {
  it('cuts a peer whose queue would pass the hard cap, and sends it nothing more', () => {
    const { ws, conn, cuts } = connection();
    conn.sendEvent({ type: 'shutdown', reason: 'x' });
    assert.equal(ws.sent, 1);
    ws.bufferedAmount = HARD_MAX_QUEUED_BYTES;
    conn.sendEvent({ type: 'shutdown', reason: 'x' });
    conn.sendData(1, new Uint8Array(10));
    assert.equal(ws.sent, 1);
    assert.equal(ws.readyState, ws.CLOSED);
    assert.deepEqual(cuts, ['queue_overflow']);
  });

  it('cuts a slow reader still above the queue limit after the grace period', async () => {
    const { ws, conn, cuts } = connection({ slowPeerGraceMs: 10 });
    ws.bufferedAmount = MAX_QUEUED_BYTES + 1;
    conn.markSlow();
    await within(ws.terminated, 5_000, 'cut');
    assert.deepEqual(cuts, ['slow_reader']);
  });

  it('cuts a peer that does not answer the close in time', async () => {
    const { ws, conn } = connection({ closeTimeoutMs: 10 });
    conn.close(1008, 'too many protocol errors');
    assert.ok(ws.closed);
    assert.equal(conn.closed, true);
    await within(ws.terminated, 5_000, 'cut');
  });

  it('condemns after MAX_PROTOCOL_ERRORS within the window, not when they are spread out', () => {
    const { conn } = connection();
    for (let i = 0; i < MAX_PROTOCOL_ERRORS - 1; i++)
      assert.equal(conn.countError(i * ERROR_WINDOW_MS), false);
    // The tenth comes long after the first nine: the window holds only the last ten.
    assert.equal(conn.countError(MAX_PROTOCOL_ERRORS * ERROR_WINDOW_MS), false);
    const { conn: burst } = connection();
    let condemned = false;
    for (let i = 0; i < MAX_PROTOCOL_ERRORS; i++) condemned = burst.countError(1000 + i);
    assert.equal(condemned, true);
  });
});
