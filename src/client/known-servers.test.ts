// Tests for the known_servers pin file and the certificate trust decision.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { certFingerprint } from '../crypto/cert-fingerprint.js';
import { ConnectError, ErrorCode, SwitchboardError } from '../protocol/errors.js';
import { KnownServers, checkServerTrust, trustRequiredError } from './known-servers.js';
import type { KnownServer } from './known-servers.js';

const root = mkdtempSync(join(tmpdir(), 'switchboard-known-'));
after(() => rmSync(root, { recursive: true, force: true }));

let count = 0;
/** A known_servers.json path inside a home directory that does not exist yet. */
function freshFile(): string {
  count += 1;
  return join(root, `home-${count}`, 'known_servers.json');
}

function randomFingerprint(): string {
  return certFingerprint(randomBytes(64));
}

function hasCode(code: ErrorCode, pattern?: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof SwitchboardError, `expected a SwitchboardError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

describe('KnownServers', () => {
  it('treats a missing file as empty without creating it', () => {
    const file = freshFile();
    const known = new KnownServers(file);
    assert.equal(known.get('relay.example.com:443'), undefined);
    assert.deepEqual(known.list(), []);
    assert.equal(known.remove('relay.example.com:443'), false);
    assert.equal(existsSync(file), false);
  });

  it('pins, reads back from another instance, replaces and removes', () => {
    const file = freshFile();
    const fp1 = randomFingerprint();
    new KnownServers(file).pin(
      'relay.example.com:443',
      fp1.toLowerCase().replace(/:/g, ''),
      'tofu',
    );

    const got = new KnownServers(file).get('relay.example.com:443');
    assert.ok(got);
    assert.equal(got.fingerprint, fp1, 'stored in canonical form');
    assert.equal(got.via, 'tofu');
    assert.ok(!Number.isNaN(Date.parse(got.addedAt)));

    const fp2 = randomFingerprint();
    new KnownServers(file).pin('relay.example.com:443', fp2, 'fingerprint');
    new KnownServers(file).pin('[::1]:7443', fp1, 'ca');
    const known = new KnownServers(file);
    assert.deepEqual(
      known.list().map((e) => [e.server, e.fingerprint, e.via]),
      [
        ['[::1]:7443', fp1, 'ca'],
        ['relay.example.com:443', fp2, 'fingerprint'],
      ],
    );

    assert.equal(new KnownServers(file).remove('relay.example.com:443'), true);
    assert.equal(new KnownServers(file).get('relay.example.com:443'), undefined);
    assert.equal(new KnownServers(file).remove('relay.example.com:443'), false);
    assert.equal(new KnownServers(file).list().length, 1);
  });

  it('matches host names case-insensitively', () => {
    const file = freshFile();
    const fp = randomFingerprint();
    new KnownServers(file).pin('Relay.Example.COM:443', fp, 'tofu');
    assert.equal(new KnownServers(file).get('relay.example.com:443')?.fingerprint, fp);
  });

  it('writes the file 0600 in a directory created 0700, leaving no temp files', () => {
    const file = freshFile();
    const known = new KnownServers(file);
    known.pin('a:1', randomFingerprint(), 'tofu');
    known.pin('b:2', randomFingerprint(), 'tofu');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(file, '..')).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(join(file, '..')), ['known_servers.json']);
    const json = JSON.parse(readFileSync(file, 'utf8')) as { version: number };
    assert.equal(json.version, 1);
  });

  it('refuses to pin something that is not a fingerprint', () => {
    const known = new KnownServers(freshFile());
    assert.throws(() => known.pin('a:1', 'abc', 'tofu'), hasCode(ErrorCode.TRUST_REQUIRED));
    assert.deepEqual(known.list(), []);
  });

  it('treats an emptied file as no pins', () => {
    const file = freshFile();
    new KnownServers(file).pin('a:1', randomFingerprint(), 'tofu');
    writeFileSync(file, '');
    assert.deepEqual(new KnownServers(file).list(), []);
  });

  const fp = randomFingerprint();
  const entry = {
    server: 'a:1',
    fingerprint: fp,
    addedAt: '2025-01-01T00:00:00.000Z',
    via: 'tofu',
  };
  const damaged: Array<[string, string, RegExp]> = [
    ['invalid JSON', '{"version": 1, "servers": [', /not valid JSON/],
    ['the wrong shape', JSON.stringify({ servers: {} }), /unexpected content/],
    ['an unknown via', JSON.stringify({ version: 1, servers: [{ ...entry, via: 'x' }] }), /via/],
    [
      'a bad fingerprint',
      JSON.stringify({ version: 1, servers: [{ ...entry, fingerprint: 'AB:CD' }] }),
      /servers\.0\.fingerprint/,
    ],
    [
      'a server listed twice',
      JSON.stringify({ version: 1, servers: [entry, { ...entry, server: 'A:1' }] }),
      /more than once/,
    ],
  ];
  for (const [name, text, detail] of damaged) {
    it(`reports a file with ${name} as damaged, naming the file`, () => {
      const file = freshFile();
      new KnownServers(file).pin('seed:1', fp, 'tofu'); // creates the directory
      writeFileSync(file, text);
      const known = new KnownServers(file);
      for (const call of [
        () => known.get('a:1'),
        () => known.list(),
        () => known.pin('b:2', fp, 'tofu'),
      ]) {
        assert.throws(call, hasCode(ErrorCode.STORAGE, detail));
        assert.throws(call, (err: Error) => err.message.includes(file));
      }
      // Nothing was overwritten: the user can still repair the file by hand.
      assert.equal(readFileSync(file, 'utf8'), text);
    });
  }
});

describe('checkServerTrust', () => {
  const server = 'relay.example.com:443';
  const presented = randomFingerprint();
  const other = randomFingerprint();
  const pin = (fingerprint: string, via: KnownServer['via'] = 'tofu'): KnownServer => ({
    server,
    fingerprint,
    addedAt: '2025-01-01T00:00:00.000Z',
    via,
  });

  it('asks when nothing is pinned and no fingerprint was given', () => {
    assert.deepEqual(checkServerTrust({ server, presented }), { action: 'ask' });
  });

  it('accepts a matching pin', () => {
    assert.deepEqual(checkServerTrust({ server, presented, pinned: pin(presented) }), {
      action: 'ok',
    });
  });

  it('refuses loudly when the pinned certificate changed', () => {
    assert.throws(
      () =>
        checkServerTrust({
          server,
          presented,
          pinned: pin(other),
          knownServersFile: '/home/u/.switchboard/known_servers.json',
        }),
      (err: unknown) => {
        assert.ok(err instanceof ConnectError);
        assert.equal(err.code, ErrorCode.CERT_CHANGED);
        for (const part of [
          'RELAY CERTIFICATE HAS CHANGED',
          server,
          `pinned:    ${other}`,
          `presented: ${presented}`,
          `switchboard whoami --server ${server} --fingerprint`,
          '/home/u/.switchboard/known_servers.json',
        ]) {
          assert.ok(err.message.includes(part), `message mentions ${part}:\n${err.message}`);
        }
        return true;
      },
    );
  });

  it('pins an explicitly given fingerprint that matches, in any spelling', () => {
    const typed = `sha256 Fingerprint=${presented.toLowerCase()}`;
    assert.deepEqual(checkServerTrust({ server, presented, expected: typed }), {
      action: 'pin',
      via: 'fingerprint',
    });
  });

  it('lets a verified fingerprint replace a changed pin', () => {
    assert.deepEqual(
      checkServerTrust({ server, presented, pinned: pin(other), expected: presented }),
      {
        action: 'pin',
        via: 'fingerprint',
      },
    );
  });

  it('upgrades a TOFU pin once the fingerprint is given, and then leaves it alone', () => {
    assert.deepEqual(
      checkServerTrust({ server, presented, pinned: pin(presented), expected: presented }),
      {
        action: 'pin',
        via: 'fingerprint',
      },
    );
    assert.deepEqual(
      checkServerTrust({
        server,
        presented,
        pinned: pin(presented, 'fingerprint'),
        expected: presented,
      }),
      { action: 'ok' },
    );
  });

  it('refuses an explicit fingerprint that does not match, showing both', () => {
    for (const pinned of [undefined, pin(presented)]) {
      assert.throws(
        () => checkServerTrust({ server, presented, pinned, expected: other }),
        (err: unknown) => {
          assert.ok(err instanceof ConnectError);
          assert.equal(err.code, ErrorCode.CERT_CHANGED);
          assert.match(err.message, /fingerprint you gave/);
          assert.ok(err.message.includes(`you gave:  ${other}`));
          assert.ok(err.message.includes(`presented: ${presented}`));
          return true;
        },
      );
    }
  });

  it('rejects an explicit fingerprint that is not one', () => {
    assert.throws(
      () => checkServerTrust({ server, presented, expected: 'deadbeef' }),
      hasCode(ErrorCode.TRUST_REQUIRED, /64 hex digits/),
    );
  });
});

describe('trustRequiredError', () => {
  it('tells a non-interactive user how to check and trust the relay', () => {
    const presented = randomFingerprint();
    const err = trustRequiredError('relay.example.com:443', presented);
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, ErrorCode.TRUST_REQUIRED);
    for (const part of [
      'relay.example.com:443',
      presented,
      '--fingerprint',
      'SWITCHBOARD_FINGERPRINT',
      '--ca FILE',
      'openssl x509 -noout -fingerprint -sha256 -in',
    ]) {
      assert.ok(err.message.includes(part), `message mentions ${part}:\n${err.message}`);
    }
  });
});
