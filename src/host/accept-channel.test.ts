// HeldTransport: what arrives on a channel while the host asks the directory is kept, in order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ChannelHandlers, ChannelTransport } from '../channel/transport.js';
import { HELD_MESSAGES_MAX, HeldTransport } from './accept-channel.js';

class FakeTransport implements ChannelTransport {
  handlers: ChannelHandlers | undefined;
  closedWith: { reason: string; code: string | undefined } | undefined;
  readonly bufferedAmount = 0;
  get closed(): boolean {
    return this.closedWith !== undefined;
  }
  setHandlers(handlers: ChannelHandlers): void {
    this.handlers = handlers;
  }
  send(): void {}
  close(reason: string, code?: string): Promise<void> {
    this.closedWith = { reason, code };
    return Promise.resolve();
  }
}

describe('HeldTransport', () => {
  it('delivers what came before setHandlers, in order, then the close', () => {
    const inner = new FakeTransport();
    const held = new HeldTransport(inner);
    inner.handlers!.onMessage(Uint8Array.of(1));
    inner.handlers!.onMessage(Uint8Array.of(2));
    inner.handlers!.onClose('PEER_GONE', 'gone');
    const got: string[] = [];
    held.setHandlers({
      onMessage: (p) => got.push(`m${p[0]}`),
      onClose: (code) => got.push(code),
    });
    inner.handlers!.onMessage(Uint8Array.of(3));
    assert.deepEqual(got, ['m1', 'm2', 'PEER_GONE', 'm3']);
  });

  it('cuts off a peer that sends more than a handshake before it is handled', () => {
    const inner = new FakeTransport();
    new HeldTransport(inner);
    for (let i = 0; i <= HELD_MESSAGES_MAX; i++) inner.handlers!.onMessage(Uint8Array.of(i));
    assert.equal(inner.closedWith?.code, 'HANDSHAKE_FAILED');
  });
});
