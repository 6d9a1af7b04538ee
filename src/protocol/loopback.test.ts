// Loopback addresses: the only ones plain:// reaches without --insecure.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackHost } from './loopback.js';

describe('isLoopbackHost', () => {
  it('takes localhost, 127.0.0.0/8, ::1 in any spelling and IPv4-mapped 127.x', () => {
    for (const host of [
      'localhost',
      'LocalHost',
      '127.0.0.1',
      '127.255.3.9',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      '::0:1',
      '::ffff:127.0.0.1',
      '[::FFFF:127.1.2.3]',
    ])
      assert.equal(isLoopbackHost(host), true, host);
  });

  it('refuses every other address and every other name', () => {
    for (const host of [
      '10.0.0.5',
      '192.0.2.1',
      '0.0.0.0',
      '128.0.0.1',
      '127.0.0.256',
      '127.0.0',
      '::',
      '::2',
      '1::1',
      '::ffff:10.0.0.1',
      '::fffe:127.0.0.1',
      'localhost.example.com',
      'relay.localhost',
      '127.0.0.1.example.com',
      '',
    ])
      assert.equal(isLoopbackHost(host), false, host);
  });
});
