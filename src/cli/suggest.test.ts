import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closest, editDistance } from './suggest.js';

describe('did you mean', () => {
  it('counts a swap of neighbours as one edit', () => {
    assert.equal(editDistance('attach', 'attahc'), 1);
    assert.equal(editDistance('session', 'sesion'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('share', 'share'), 0);
  });

  it('suggests the closest word within one edit per three characters, or a unique prefix', () => {
    const commands = ['attach', 'agent', 'share', 'sessions', 'signup', 'serve', 'ping'];
    assert.equal(closest('attahc', commands), 'attach');
    assert.equal(closest('sesions', commands), 'sessions');
    assert.equal(closest('sigup', commands), 'signup');
    assert.equal(closest('sess', commands), 'sessions');
    assert.equal(closest('banana', commands), undefined);
    assert.equal(closest('s', commands), undefined);
    assert.equal(closest('pong', commands), 'ping');
  });
});
