// Tests for the relay's certificate: generation on disk, reuse, openssl agreement, and the TLS policy on a real socket.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import type { ConnectionOptions, Server } from 'node:tls';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';
import {
  CERT_FILE_NAME,
  KEY_FILE_NAME,
  loadCertificateFiles,
  loadOrCreateCertificate,
  tlsServerOptions,
} from './certificate.js';
import type { ServerCertificate } from './certificate.js';

const root = mkdtempSync(join(tmpdir(), 'switchboard-cert-'));
after(() => rmSync(root, { recursive: true, force: true }));

let dirCount = 0;
function freshDir(): string {
  dirCount += 1;
  return join(root, `data-${dirCount}`);
}

function isStorageError(pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof SwitchboardError, `expected a SwitchboardError, got ${String(err)}`);
    assert.equal(err.code, ErrorCode.STORAGE);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('loadOrCreateCertificate', () => {
  let dataDir: string;
  let cert: ServerCertificate;

  before(async () => {
    // A directory that does not exist yet: the relay's first start.
    dataDir = freshDir();
    cert = await loadOrCreateCertificate({
      dataDir,
      hostnames: ['relay.example.com', '192.0.2.7'],
    });
  });

  it('generates a pair on first start and writes only the two files', () => {
    assert.equal(cert.generated, true);
    assert.equal(cert.certFile, join(dataDir, CERT_FILE_NAME));
    assert.equal(cert.keyFile, join(dataDir, KEY_FILE_NAME));
    assert.deepEqual(readdirSync(dataDir).sort(), [CERT_FILE_NAME, KEY_FILE_NAME]);
  });

  it('writes the key with mode 0600', () => {
    assert.equal(statSync(cert.keyFile).mode & 0o777, 0o600);
  });

  it('reuses the pair on the next start', async () => {
    const again = await loadOrCreateCertificate({ dataDir });
    assert.equal(again.generated, false);
    assert.equal(again.fingerprint, cert.fingerprint);
    assert.equal(again.certPem, cert.certPem);
    assert.equal(again.keyPem, cert.keyPem);
  });

  it('reports the fingerprint openssl prints', () => {
    const out = execFileSync(
      'openssl',
      ['x509', '-noout', '-fingerprint', '-sha256', '-in', cert.certFile],
      { encoding: 'utf8' },
    );
    assert.equal(out.trim().split('=')[1], cert.fingerprint);
  });

  it('is an ECDSA P-256 server certificate with the agreed fields', () => {
    const x = new X509Certificate(cert.certPem);
    assert.equal(x.publicKey.asymmetricKeyType, 'ec');
    assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(x.subject, 'CN=Switchboard relay');
    assert.equal(x.issuer, x.subject);
    assert.equal(x.ca, false);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1']); // node reports the extended key usage
    assert.ok(x.verify(x.publicKey), 'self-signed signature verifies');
    assert.equal(x.serialNumber.replace(/^00/, '').length, 32); // 16 random bytes

    const sans = (x.subjectAltName ?? '').split(', ');
    for (const san of [
      'DNS:localhost',
      'DNS:relay.example.com',
      'IP Address:127.0.0.1',
      'IP Address:0:0:0:0:0:0:0:1',
      'IP Address:192.0.2.7',
    ]) {
      assert.ok(sans.includes(san), `SAN ${san} in ${x.subjectAltName}`);
    }
    // The machine's name would leak to anyone who connects (issue 6, finding 7).
    assert.ok(
      !sans.includes(`DNS:${hostname().toLowerCase()}`) || hostname().toLowerCase() === 'localhost',
      `the machine's own name is not a SAN: ${x.subjectAltName}`,
    );

    const validDays = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / 86_400_000;
    assert.equal(Math.round(validDays), 825);
    assert.ok(Date.parse(x.validFrom) <= Date.now(), 'valid now');

    const text = execFileSync('openssl', ['x509', '-noout', '-text', '-in', cert.certFile], {
      encoding: 'utf8',
    });
    assert.match(text, /Key Usage: critical\s+Digital Signature\s*\n/);
    assert.match(text, /Basic Constraints: critical\s+CA:FALSE/);
  });

  it('writes the key as PKCS#8 PEM', () => {
    assert.match(cert.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    const out = execFileSync('openssl', ['pkey', '-in', cert.keyFile, '-noout', '-text'], {
      encoding: 'utf8',
    });
    assert.match(out, /NIST CURVE: P-256|ASN1 OID: prime256v1/);
  });

  it('refuses a key file that group or others can read, naming the fix', async () => {
    const dir = freshDir();
    const created = await loadOrCreateCertificate({ dataDir: dir });
    chmodSync(created.keyFile, 0o644);
    await assert.rejects(
      loadOrCreateCertificate({ dataDir: dir }),
      isStorageError(new RegExp(`chmod 600 ${created.keyFile}`)),
    );
    chmodSync(created.keyFile, 0o600);
    assert.equal(
      (await loadOrCreateCertificate({ dataDir: dir })).fingerprint,
      created.fingerprint,
    );
  });

  it('refuses to go on when only one of the two files exists, naming both', async () => {
    for (const remove of [CERT_FILE_NAME, KEY_FILE_NAME]) {
      const dir = freshDir();
      const created = await loadOrCreateCertificate({ dataDir: dir });
      unlinkSync(join(dir, remove));
      await assert.rejects(
        loadOrCreateCertificate({ dataDir: dir }),
        isStorageError(
          new RegExp(`(?=[\\s\\S]*${created.certFile})(?=[\\s\\S]*${created.keyFile})`),
        ),
      );
    }
  });

  it('rejects a hostname that cannot go in a certificate', async () => {
    await assert.rejects(
      loadOrCreateCertificate({ dataDir: freshDir(), hostnames: ['bad host'] }),
      /not a valid hostname/,
    );
  });
});

describe('loadCertificateFiles', () => {
  it('loads a matching pair the operator supplies', async () => {
    const created = await loadOrCreateCertificate({ dataDir: freshDir() });
    const loaded = loadCertificateFiles(created.certFile, created.keyFile);
    assert.equal(loaded.fingerprint, created.fingerprint);
    assert.equal(loaded.generated, false);
  });

  it('rejects a key that belongs to another certificate', async () => {
    const a = await loadOrCreateCertificate({ dataDir: freshDir() });
    const b = await loadOrCreateCertificate({ dataDir: freshDir() });
    assert.throws(
      () => loadCertificateFiles(a.certFile, b.keyFile),
      isStorageError(/does not belong to certificate/),
    );
  });

  it('names the file that is not PEM', () => {
    const bogus = join(root, 'bogus.pem');
    writeFileSync(bogus, 'not a certificate\n');
    assert.throws(() => loadCertificateFiles(bogus, bogus), isStorageError(/bogus\.pem/));
    assert.throws(
      () => loadCertificateFiles(join(root, 'missing.pem'), bogus),
      isStorageError(/missing\.pem/),
    );
  });
});

/** Bounds every wait on a handshake or server event, so a broken policy fails instead of hanging. */
const TLS_TEST_TIMEOUT_MS = 10_000; // ms

describe('tlsServerOptions on a real server', { timeout: TLS_TEST_TIMEOUT_MS }, () => {
  let server: Server;
  let port: number;
  let cert: ServerCertificate;
  const serverErrors: Error[] = [];

  before(async () => {
    cert = await loadOrCreateCertificate({ dataDir: freshDir() });
    server = tls.createServer(tlsServerOptions(cert), (socket) => socket.end());
    server.on('tlsClientError', (err) => serverErrors.push(err));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.close();
  });

  type Outcome =
    | { ok: true; protocol: string | null; cipher: string; fingerprint: string }
    | { ok: false; error: Error };

  /** Connects with `options`; resolves once the handshake succeeded or failed. */
  function handshake(options: ConnectionOptions): Promise<Outcome> {
    return new Promise((resolve) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        // Trust is the client's business (fingerprint pinning); here we test the server's policy.
        rejectUnauthorized: false,
        ...options,
      });
      socket.once('secureConnect', () => {
        resolve({
          ok: true,
          protocol: socket.getProtocol(),
          cipher: socket.getCipher().standardName,
          fingerprint: socket.getPeerCertificate().fingerprint256,
        });
        socket.destroy();
      });
      socket.once('error', (error) => resolve({ ok: false, error }));
    });
  }

  /** Waits until the server has reported a refused handshake beyond the first `count`. */
  async function nextServerError(count: number): Promise<Error> {
    while (serverErrors.length <= count) await once(server, 'tlsClientError');
    return serverErrors[count]!;
  }

  it('accepts TLS 1.3 and serves the certificate whose fingerprint we report', async () => {
    const outcome = await handshake({ minVersion: 'TLSv1.3' });
    assert.ok(outcome.ok, !outcome.ok ? outcome.error.message : '');
    assert.equal(outcome.protocol, 'TLSv1.3');
    assert.equal(outcome.fingerprint, cert.fingerprint);
  });

  it('accepts a TLS 1.2 client with an AEAD suite', async () => {
    const outcome = await handshake({ maxVersion: 'TLSv1.2' });
    assert.ok(outcome.ok, !outcome.ok ? outcome.error.message : '');
    assert.equal(outcome.protocol, 'TLSv1.2');
    assert.match(outcome.cipher, /^TLS_ECDHE_ECDSA_WITH_(AES_\d+_GCM|CHACHA20_POLY1305)_SHA\d+$/);
  });

  it('refuses a TLS 1.1 client', async () => {
    const before = serverErrors.length;
    // SECLEVEL=0 lets OpenSSL 3 actually offer TLS 1.1, so it is the server that says no.
    const outcome = await handshake({
      minVersion: 'TLSv1.1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT:@SECLEVEL=0',
    });
    assert.equal(outcome.ok, false);
    const refused = (await nextServerError(before)) as Error & { code?: string };
    assert.match(`${refused.code} ${refused.message}`, /unsupported protocol/i);
  });

  it('refuses a TLS 1.2 client that offers only a CBC suite', async () => {
    const before = serverErrors.length;
    const outcome = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' });
    assert.equal(outcome.ok, false);
    const refused = (await nextServerError(before)) as Error & { code?: string };
    assert.match(`${refused.code} ${refused.message}`, /no shared cipher/i);
  });
});
