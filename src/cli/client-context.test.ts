// Relay addresses as the CLI keeps them: one spelling per relay, web addresses refused with the fix.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { normalizeServer, serverOf } from './client-context.js';
import type { Invocation } from './command.js';
import { UsageError } from './exit-codes.js';
import { Home } from './home.js';

describe('relay addresses', () => {
  it('writes every spelling of one relay the same way', () => {
    assert.equal(normalizeServer('localhost'), 'localhost:7443');
    assert.equal(normalizeServer(' localhost:7443 '), 'localhost:7443');
    assert.equal(
      normalizeServer('switchboard://relay.example.com:8443/'),
      'relay.example.com:8443',
    );
    assert.equal(normalizeServer('SWITCHBOARD://relay.example.com'), 'relay.example.com:7443');
    assert.equal(normalizeServer('[::1]'), '[::1]:7443');
  });

  it('keeps plain://HOST:PORT apart from HOST:PORT, and needs its port', () => {
    assert.equal(normalizeServer('plain://127.0.0.1:8080'), 'plain://127.0.0.1:8080');
    assert.equal(normalizeServer(' Plain://localhost:8080/ '), 'plain://localhost:8080');
    assert.notEqual(normalizeServer('plain://localhost:7443'), normalizeServer('localhost:7443'));
    assert.throws(
      () => normalizeServer('plain://localhost'),
      (err: unknown) => err instanceof UsageError && /plain:\/\/HOST:PORT/.test(err.message),
    );
  });

  it('refuses web addresses and malformed ones, saying what to write', () => {
    for (const bad of ['https://relay.example.com', 'http://x:7443', 'wss://x', 'a b', 'x:99999'])
      assert.throws(
        () => normalizeServer(bad),
        (err: unknown) => err instanceof UsageError && /HOST:PORT/.test(err.message),
        bad,
      );
  });

  it('normalises --server, SWITCHBOARD_SERVER and the remembered relay alike', () => {
    const home = new Home(mkdtempSync(join(tmpdir(), 'sb-addr-')));
    const inv = (values: Invocation['values'], env: NodeJS.ProcessEnv = {}) =>
      ({ values, positionals: [], io: { env } }) as unknown as Invocation;
    assert.equal(serverOf(inv({ server: 'localhost' }), home), 'localhost:7443');
    assert.equal(
      serverOf(inv({}, { SWITCHBOARD_SERVER: 'switchboard://r.example' }), home),
      'r.example:7443',
    );
  });
});
