// Unit tests for the channel table both relay connections share: data to the bound handler, a
// close that comes before the bind, the bound on closes kept, and the end of the connection.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChannelTable, UNBOUND_CLOSES_KEPT } from './channel-table.js';

/** A handler that records what reaches it. */
function recorder() {
  const seen: string[] = [];
  return {
    seen,
    handler: {
      onData: (p: Uint8Array) => void seen.push(`data ${new TextDecoder().decode(p)}`),
      onClose: (code: string, reason: string) => void seen.push(`close ${code} ${reason}`),
    },
  };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('ChannelTable', () => {
  it('routes data and the close to the bound handler, then drops what follows', () => {
    const t = new ChannelTable();
    const a = recorder();
    t.bind(1, a.handler);
    t.data(1, new TextEncoder().encode('hi'));
    t.data(2, new TextEncoder().encode('nobody'));
    t.closed(1, 'CHANNEL_CLOSED', 'done');
    t.data(1, new TextEncoder().encode('late'));
    assert.deepEqual(a.seen, ['data hi', 'close CHANNEL_CLOSED done']);
  });

  it('keeps a close that came before the bind, and delivers it on the bind', async () => {
    const t = new ChannelTable();
    t.closed(7, 'PEER_GONE', 'the host left');
    const a = recorder();
    t.bind(7, a.handler);
    assert.deepEqual(a.seen, [], 'on the next microtask, not inside bind');
    await flush();
    assert.deepEqual(a.seen, ['close PEER_GONE the host left']);
    const b = recorder();
    t.bind(7, b.handler); // delivered once: a new binding of the number is a new channel
    t.data(7, new TextEncoder().encode('x'));
    assert.deepEqual(b.seen, ['data x']);
  });

  it(`keeps only the newest ${UNBOUND_CLOSES_KEPT} closes nobody bound`, async () => {
    const t = new ChannelTable();
    for (let c = 0; c <= UNBOUND_CLOSES_KEPT; c++) t.closed(c, 'CHANNEL_CLOSED', `c${c}`);
    const oldest = recorder();
    const newest = recorder();
    t.bind(0, oldest.handler);
    t.bind(UNBOUND_CLOSES_KEPT, newest.handler);
    await flush();
    assert.deepEqual(oldest.seen, [], 'the oldest was dropped');
    assert.deepEqual(newest.seen, [`close CHANNEL_CLOSED c${UNBOUND_CLOSES_KEPT}`]);
  });

  it('tells every bound channel when the connection ends, once', () => {
    const t = new ChannelTable();
    const a = recorder();
    const b = recorder();
    t.bind(1, a.handler);
    t.bind(2, b.handler);
    t.unbind(2);
    t.closeAll('CONNECTION_CLOSED', 'gone');
    t.closeAll('CONNECTION_CLOSED', 'again');
    assert.deepEqual(a.seen, ['close CONNECTION_CLOSED gone']);
    assert.deepEqual(b.seen, []);
  });
});
