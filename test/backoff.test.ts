// The reconnect backoff: delays that grow with jitter, and a wait that ends when its owner stops.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff } from '../src/client/backoff.js';

describe('Backoff', () => {
  it('doubles its delay up to the cap, within ±25% jitter', () => {
    const b = new Backoff(100, 1000);
    const delays = Array.from({ length: 6 }, () => b.nextDelay());
    [100, 200, 400, 800, 1000, 1000].forEach((base, i) => {
      assert.ok(delays[i]! >= base * 0.75 && delays[i]! <= base * 1.25, `${i}: ${delays[i]}`);
    });
    b.reset();
    assert.ok(b.nextDelay() <= 125);
  });

  it(
    'ends a wait at once when its signal aborts, so a stopped host does not linger',
    { timeout: 5_000 },
    async () => {
      const b = new Backoff(60_000, 60_000);
      const stop = new AbortController();
      const waiting = b.wait(stop.signal);
      stop.abort();
      await waiting;
      // Already aborted: no timer at all.
      await b.wait(stop.signal);
    },
  );
});
