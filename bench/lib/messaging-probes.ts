// Measurements of the messaging benchmark on Messengers in this process: one message's latency
// over a path, and a burst of messages from several senders through one relay.
import { performance } from 'node:perf_hooks';
import type { Messenger } from '../../src/client/messenger.js';
import { onMessage, type Online } from './messaging-users.js';

/** Longest wait for one message, or for a burst's last one, before the run fails. */
export const MESSAGE_TIMEOUT_MS = 10_000; // ms
export const BURST_TIMEOUT_MS = 60_000; // ms

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves with performance.now() when `m` shows each message whose text `expect` is given;
 * rejects after `timeoutMs`. One listener for all, so many can be awaited at once.
 */
export class Arrivals {
  readonly #waits = new Map<string, (at: number) => void>();
  readonly #off: () => void;

  constructor(m: Messenger) {
    this.#off = onMessage(m, (text) => {
      const at = performance.now();
      const done = this.#waits.get(text);
      if (!done) return;
      this.#waits.delete(text);
      done(at);
    });
  }

  expect(text: string, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waits.delete(text);
        reject(new Error(`"${text}" was not shown within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waits.set(text, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }

  close(): void {
    this.#off();
  }
}

/** One sender → one receiver, both online. */
export interface Pair {
  sender: Online;
  receiver: Online;
  arrivals: Arrivals;
}

export interface LatencySample {
  /** send() called → the receiver's Messenger emitted 'message' for it. */
  deliverMs: number;
  /** send() called → send() resolved (direct: the peer's ack; relay: the relay stored it). */
  sendMs: number;
  /** The path send() reports. */
  path: 'direct' | 'relay';
}

/**
 * Sends `count` messages one at a time (each waits for the previous to be shown and its send()
 * to resolve), starting one at most every `paceMs`: a rate bound, so the relayed pair stays
 * under the relay's per-connection control rate. Texts are `${tag} ${i}`.
 */
export async function measureLatency(
  pair: Pair,
  tag: string,
  count: number,
  paceMs: number,
): Promise<LatencySample[]> {
  const samples: LatencySample[] = [];
  const to = pair.receiver.user.name;
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const due = start + i * paceMs;
    const wait = due - performance.now();
    if (wait > 0) await delay(wait);
    const text = `${tag} ${i}`;
    const shown = pair.arrivals.expect(text, MESSAGE_TIMEOUT_MS);
    const t0 = performance.now();
    const result = await pair.sender.messenger.send(to, text);
    const sent = performance.now();
    const at = await shown;
    samples.push({ deliverMs: at - t0, sendMs: sent - t0, path: result.path });
  }
  return samples;
}

export interface BurstResult {
  pairs: number;
  /** Messages shown by the receivers, and the ones sent. */
  delivered: number;
  sent: number;
  /** First send() called → last message shown, ms. */
  elapsedMs: number;
  /** All send() calls made → the last send() resolved (every message stored at the relay), ms. */
  storedMs: number;
  /** Receipts (delivered) back at the senders within the timeout, of `sent`. */
  receipts: number;
}

/**
 * Every pair's sender queues `perPair` messages at once (the Messenger sends one to a user at a
 * time, in order, each after the relay's reply to the last); all pairs start together. Ends when
 * every message is shown and every send() has resolved, then waits for the senders' receipts.
 */
export async function measureBurst(
  pairs: readonly Pair[],
  tag: string,
  perPair: number,
): Promise<BurstResult> {
  const shown: Array<Promise<number>> = [];
  const sends: Array<Promise<{ id: string }>> = [];
  const t0 = performance.now();
  for (const [p, pair] of pairs.entries())
    for (let i = 0; i < perPair; i++) {
      const text = `${tag} ${p} ${i}`;
      shown.push(pair.arrivals.expect(text, BURST_TIMEOUT_MS));
      sends.push(pair.sender.messenger.send(pair.receiver.user.name, text));
    }
  const stored = Promise.all(sends).then((r) => ({
    ids: r.map((x) => x.id),
    at: performance.now(),
  }));
  const times = await Promise.all(shown);
  const { ids, at: storedAt } = await stored;
  const last = Math.max(...times);
  // Receipts: the receivers batch `delivered` back through the relay; wait (bounded) for them.
  const receipts = await countDelivered(pairs, ids, perPair, MESSAGE_TIMEOUT_MS);
  return {
    pairs: pairs.length,
    delivered: times.length,
    sent: sends.length,
    elapsedMs: last - t0,
    storedMs: storedAt - t0,
    receipts,
  };
}

/** Waits until the senders have `delivered` (or later) for every id, or `timeoutMs`; the count. */
async function countDelivered(
  pairs: readonly Pair[],
  ids: readonly string[],
  perPair: number,
  timeoutMs: number,
): Promise<number> {
  const done = (): number =>
    ids.filter((id, k) => {
      const state = pairs[Math.floor(k / perPair)]!.sender.messenger.history.status(id)?.state;
      return state === 'delivered' || state === 'read';
    }).length;
  if (done() === ids.length) return ids.length;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(finish, timeoutMs);
    const check = (): void => {
      if (done() === ids.length) finish();
    };
    function finish(): void {
      clearTimeout(timer);
      for (const pair of pairs) pair.sender.messenger.off('status', check);
      resolve();
    }
    for (const pair of pairs) pair.sender.messenger.on('status', check);
  });
  return done();
}
