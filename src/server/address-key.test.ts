import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressKey } from './address-key.js';

describe('addressKey', () => {
  it('keeps IPv4 addresses and folds IPv4-mapped IPv6 to them', () => {
    assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  });

  it('counts IPv6 by its /64, however it is written', () => {
    const key = '2001:db8:1:2::/64';
    assert.equal(addressKey('2001:db8:1:2:a:b:c:d'), key);
    assert.equal(addressKey('2001:0db8:0001:0002:ffff::1'), key);
    assert.equal(addressKey('2001:db8:1:2::'), key);
    assert.equal(addressKey('2001:db8:1:2::9%eth0'), key);
    assert.notEqual(addressKey('2001:db8:1:3::1'), key);
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  });

  it('leaves anything else as it is', () => {
    assert.equal(addressKey('unknown'), 'unknown');
  });
});
