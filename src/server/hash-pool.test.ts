// HashPool: bounded concurrency, logins before sign-ups, immediate refusal when full, cancelled work skipped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, type SwitchboardError } from '../protocol/errors.js';
import { HashPool } from './hash-pool.js';

/** A task the test finishes by hand, recording when it started. */
function gate(log: string[], name: string) {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    task: async () => {
      log.push(name);
      await done;
      return name;
    },
    finish: () => finish(),
  };
}

/** Lets every settled promise's callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('HashPool', () => {
  it('runs at most `concurrency` tasks, and at most one sign-up of them', async () => {
    const pool = new HashPool({ concurrency: 2, maxRunningSignups: 1 });
    const log: string[] = [];
    const s1 = gate(log, 's1');
    const s2 = gate(log, 's2');
    const l1 = gate(log, 'l1');
    const results = [
      pool.run('signup', s1.task),
      pool.run('signup', s2.task),
      pool.run('login', l1.task),
    ];
    await settle();
    assert.deepEqual(log, ['s1', 'l1'], 'the second sign-up waits; the login takes the free slot');
    assert.deepEqual(pool.stats, {
      running: 2,
      queuedLogins: 0,
      queuedSignups: 1,
      peakPending: 3,
      refused: 0,
    });
    s1.finish();
    await settle();
    assert.deepEqual(log, ['s1', 'l1', 's2']);
    s2.finish();
    l1.finish();
    assert.deepEqual(await Promise.all(results), ['s1', 's2', 'l1']);
    assert.equal(pool.stats.running, 0);
  });

  it('starts queued logins before queued sign-ups', async () => {
    const pool = new HashPool({ concurrency: 1 });
    const log: string[] = [];
    const first = gate(log, 'first');
    const tasks = ['s1', 'l1', 's2', 'l2'].map((n) => gate(log, n));
    const all = [pool.run('login', first.task)];
    for (const [i, g] of tasks.entries())
      all.push(pool.run(i % 2 === 0 ? 'signup' : 'login', g.task));
    for (const g of tasks) g.finish();
    first.finish();
    await Promise.all(all);
    assert.deepEqual(log, ['first', 'l1', 'l2', 's1', 's2']);
  });

  it('refuses at once with THROTTLED and a retry-after when a queue is full', async () => {
    const pool = new HashPool({ concurrency: 1, maxQueued: { login: 2, signup: 1 } });
    const log: string[] = [];
    const running = gate(log, 'running');
    const queued = [pool.run('login', running.task)];
    queued.push(pool.run('signup', async () => 'x'));
    queued.push(
      pool.run('login', async () => 'y'),
      pool.run('login', async () => 'z'),
    );
    for (const kind of ['signup', 'login'] as const) {
      await assert.rejects(
        pool.run(kind, async () => 'never'),
        (e: SwitchboardError) => e.code === ErrorCode.THROTTLED && (e.retryAfterMs ?? 0) >= 1_000,
      );
    }
    assert.equal(pool.stats.refused, 2);
    assert.equal(pool.stats.peakPending, 4, 'never more than running + the two queues');
    running.finish();
    assert.deepEqual(await Promise.all(queued), ['running', 'x', 'y', 'z']);
  });

  it('skips queued work whose requester has gone', async () => {
    const pool = new HashPool({ concurrency: 1 });
    const log: string[] = [];
    const running = gate(log, 'running');
    const first = pool.run('login', running.task);
    let gone = false;
    const abandoned = pool.run(
      'login',
      async () => log.push('abandoned'),
      () => gone,
    );
    const kept = pool.run(
      'signup',
      async () => log.push('kept'),
      () => false,
    );
    gone = true;
    running.finish();
    await first;
    await assert.rejects(abandoned, (e: SwitchboardError) => e.code === 'CONNECTION_CLOSED');
    await kept;
    assert.deepEqual(log, ['running', 'kept']);
  });

  it('validates its options', () => {
    assert.throws(() => new HashPool({ concurrency: 0 }), RangeError);
    assert.throws(() => new HashPool({ maxQueued: { login: -1, signup: 1 } }), RangeError);
  });
});
