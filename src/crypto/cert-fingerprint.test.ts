// Unit tests for certificate fingerprint formatting, parsing and comparison.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';
import {
  certFingerprint,
  fingerprintsEqual,
  normalizeFingerprint,
  pemToDer,
} from './cert-fingerprint.js';

// SHA-256("abc"), the FIPS 180-2 test vector.
const ABC_HEX = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const ABC_FP = ABC_HEX.toUpperCase().match(/../g)!.join(':');

function isTrustRequired(err: unknown): boolean {
  return err instanceof SwitchboardError && err.code === ErrorCode.TRUST_REQUIRED;
}

describe('certFingerprint', () => {
  it('is SHA-256 over the bytes in uppercase colon-separated hex', () => {
    assert.equal(certFingerprint(Buffer.from('abc')), ABC_FP);
    assert.match(certFingerprint(randomBytes(300)), /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });
});

describe('normalizeFingerprint', () => {
  const accepted: Array<[string, string]> = [
    ['canonical', ABC_FP],
    ['mixed case with colons', ABC_FP.slice(0, 20).toLowerCase() + ABC_FP.slice(20)],
    ['bare lowercase hex', ABC_HEX],
    ['OpenSSL 3 output', `sha256 Fingerprint=${ABC_FP}`],
    ['OpenSSL 1.1 output', `SHA256 Fingerprint=${ABC_FP}`],
    ['SHA256: prefix with hex', `SHA256:${ABC_HEX.toUpperCase()}`],
    ['surrounding whitespace and newline', `  ${ABC_FP}\n`],
    ['space-separated pairs', ABC_FP.replace(/:/g, ' ')],
  ];
  for (const [name, input] of accepted) {
    it(`accepts ${name}`, () => {
      assert.equal(normalizeFingerprint(input), ABC_FP);
    });
  }

  const rejected: Array<[string, string]> = [
    ['63 hex digits', ABC_HEX.slice(0, 63)],
    ['65 hex digits', ABC_HEX + 'a'],
    ['a non-hex digit', 'g' + ABC_HEX.slice(1)],
    ['empty input', ''],
    ['a SHA-1 fingerprint', 'A9:99:3E:36:47:06:81:6A:BA:3E:25:71:78:50:C2:6C:9C:D0:D8:9D'],
    ['SSH-style base64', 'SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0'],
    ['a prefix in the middle', `AB:sha256 Fingerprint=${ABC_FP}`],
  ];
  for (const [name, input] of rejected) {
    it(`rejects ${name}`, () => {
      assert.throws(() => normalizeFingerprint(input), isTrustRequired);
    });
  }

  it('says what it expected', () => {
    assert.throws(() => normalizeFingerprint('abc'), /expected 64 hex digits/);
  });
});

describe('fingerprintsEqual', () => {
  it('matches the same fingerprint in different spellings', () => {
    assert.equal(fingerprintsEqual(ABC_FP, ABC_HEX), true);
    assert.equal(fingerprintsEqual(`sha256 Fingerprint=${ABC_FP}`, ABC_FP.toLowerCase()), true);
  });

  it('tells different fingerprints apart, down to the last digit', () => {
    const lastChanged = ABC_FP.slice(0, -1) + (ABC_FP.endsWith('D') ? 'E' : 'D');
    assert.equal(fingerprintsEqual(ABC_FP, lastChanged), false);
    assert.equal(fingerprintsEqual(ABC_FP, certFingerprint(randomBytes(32))), false);
  });

  it('throws rather than answering false for something that is not a fingerprint', () => {
    assert.throws(() => fingerprintsEqual(ABC_FP, 'nope'), isTrustRequired);
  });
});

describe('pemToDer', () => {
  const der = randomBytes(700);
  const body = der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  const pem = `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;

  it('decodes a CERTIFICATE block', () => {
    assert.deepEqual(pemToDer(pem), der);
  });

  it('accepts CRLF line endings and text around the block', () => {
    assert.deepEqual(pemToDer(`subject=CN = x\r\n${pem.replace(/\n/g, '\r\n')}`), der);
  });

  it('returns the first certificate of a chain', () => {
    const other = `-----BEGIN CERTIFICATE-----\n${randomBytes(50).toString('base64')}\n-----END CERTIFICATE-----\n`;
    assert.deepEqual(pemToDer(pem + other), der);
  });

  it('rejects other PEM types and garbage', () => {
    const isInvalid = (err: unknown): boolean =>
      err instanceof SwitchboardError && err.code === ErrorCode.INVALID_MESSAGE;
    assert.throws(() => pemToDer(pem.replace(/CERTIFICATE/g, 'PRIVATE KEY')), isInvalid);
    assert.throws(() => pemToDer('hello'), isInvalid);
    assert.throws(
      () => pemToDer('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'),
      isInvalid,
    );
  });
});
