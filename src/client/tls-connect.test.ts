// Relay addresses as typed: HOST:PORT for TLS, plain://HOST:PORT for a plaintext listener.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';
import { parseServerAddress } from './tls-connect.js';

describe('parseServerAddress', () => {
  it('reads HOST:PORT as TLS, the port defaulting to 7443', () => {
    assert.deepEqual(parseServerAddress('relay.example.com'), {
      host: 'relay.example.com',
      port: 7443,
      label: 'relay.example.com:7443',
      transport: 'tls',
    });
    assert.deepEqual(parseServerAddress('[::1]:8443'), {
      host: '::1',
      port: 8443,
      label: '[::1]:8443',
      transport: 'tls',
    });
  });

  it('reads plain://HOST:PORT as plaintext, its label keeping the scheme', () => {
    assert.deepEqual(parseServerAddress('plain://127.0.0.1:8080'), {
      host: '127.0.0.1',
      port: 8080,
      label: 'plain://127.0.0.1:8080',
      transport: 'plain',
    });
    assert.deepEqual(parseServerAddress(' PLAIN://[::1]:9 '), {
      host: '::1',
      port: 9,
      label: 'plain://[::1]:9',
      transport: 'plain',
    });
  });

  it('refuses plain:// without a port or with a bad one, saying what to write', () => {
    for (const bad of [
      'plain://127.0.0.1',
      'plain://x:0',
      'plain://x:70000',
      'plain://',
      'plain://a/b:1',
    ])
      assert.throws(
        () => parseServerAddress(bad),
        (err: unknown) =>
          err instanceof SwitchboardError &&
          err.code === ErrorCode.CONNECT_FAILED &&
          /plain:\/\/HOST:PORT/.test(err.message),
        bad,
      );
  });
});
