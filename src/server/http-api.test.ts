// Who may read /metrics: loopback without a metrics token; with one, only its holder.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { metricsAllowed } from './http-api.js';

function request(remoteAddress: string, authorization?: string): IncomingMessage {
  return {
    socket: { remoteAddress },
    headers: authorization === undefined ? {} : { authorization },
  } as unknown as IncomingMessage;
}

describe('metricsAllowed', () => {
  it('without a token, serves loopback and nobody else', () => {
    for (const a of ['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1'])
      assert.equal(metricsAllowed(request(a), {}), true, a);
    for (const a of ['192.0.2.1', '::ffff:192.0.2.1', '2001:db8::1', '10.0.0.1'])
      assert.equal(metricsAllowed(request(a, 'Bearer anything-at-all'), {}), false, a);
  });

  it('with a token, serves whoever presents it, and refuses loopback without it', () => {
    const ctx = { metricsToken: 'a-metrics-token-of-some-length' };
    assert.equal(metricsAllowed(request('192.0.2.1', `Bearer ${ctx.metricsToken}`), ctx), true);
    assert.equal(metricsAllowed(request('127.0.0.1'), ctx), false);
    assert.equal(metricsAllowed(request('127.0.0.1', `Bearer ${ctx.metricsToken}x`), ctx), false);
    assert.equal(metricsAllowed(request('192.0.2.1', ctx.metricsToken), ctx), false);
  });
});
