// The relay's TLS identity: loads or generates a self-signed ECDSA certificate, and the TLS settings to serve it.
import { X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type { TlsOptions } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { certFingerprint } from '../crypto/cert-fingerprint.js';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';

/** File names inside the data directory. */
export const CERT_FILE_NAME = 'tls-cert.pem';
export const KEY_FILE_NAME = 'tls-key.pem';

/** 825 days is the longest validity Apple platforms accept for a TLS server certificate. */
const VALIDITY_DAYS = 825; // days
/** Backdating notBefore keeps a client whose clock runs a little slow from rejecting a fresh cert. */
const BACKDATE_MS = 60 * 60 * 1000; // ms
const DAY_MS = 24 * 60 * 60 * 1000; // ms
const SERIAL_BYTES = 16; // bytes
const COMMON_NAME = 'Switchboard relay';
const KEY_FILE_MODE = 0o600;
const CERT_FILE_MODE = 0o644;
const DATA_DIR_MODE = 0o700;
/** Permission bits that must be clear on the private key: nobody but the owner may touch it. */
const KEY_FORBIDDEN_BITS = 0o077;

/**
 * TLS 1.3 suites are all AEAD; the TLS 1.2 list is ECDHE (forward secrecy) with AEAD only, ECDSA
 * first for our own certificate, RSA for a user-supplied one. No CBC, no static RSA, no DHE.
 */
const CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
].join(':');
const ECDH_CURVES = 'X25519:P-256:P-384';

/** A certificate and key ready to serve. */
export interface ServerCertificate {
  certPem: string;
  keyPem: string;
  /** SHA-256 fingerprint in `openssl x509 -fingerprint -sha256` form; what clients pin. */
  fingerprint: string;
  /** True when this call created the pair (first start); false when it was read from disk. */
  generated: boolean;
  /** Absolute paths the pair was read from or written to. */
  certFile: string;
  keyFile: string;
}

/** Options for {@link loadOrCreateCertificate}. */
export interface LoadOrCreateOptions {
  /** Directory holding tls-cert.pem and tls-key.pem; created (mode 0700) if missing. */
  dataDir: string;
  /**
   * Names or IP addresses to add as SANs when generating, besides localhost, 127.0.0.1 and ::1
   * (`serve --cert-name`). The machine's own name is never added: the certificate is public, and
   * it would tell anyone who connects what the machine is called. Ignored when the pair already exists: clients pin the fingerprint, so a
   * changed SAN list is no reason to replace the certificate.
   */
  hostnames?: string[];
}

/**
 * Reads the relay's certificate and key from `dataDir`, or on first start generates an ECDSA
 * P-256 self-signed pair and writes it there (key mode 0600, written atomically). Later starts
 * reuse the same pair, so the fingerprint clients pinned stays valid.
 *
 * @throws SwitchboardError(STORAGE) if only one of the two files exists, the key is readable by
 *   group or others, or the files do not hold a matching certificate and key.
 * @example const cert = await loadOrCreateCertificate({ dataDir: 'data' });
 */
export async function loadOrCreateCertificate(
  options: LoadOrCreateOptions,
): Promise<ServerCertificate> {
  const dataDir = resolve(options.dataDir);
  const certFile = join(dataDir, CERT_FILE_NAME);
  const keyFile = join(dataDir, KEY_FILE_NAME);
  const [certExists, keyExists] = await Promise.all([exists(certFile), exists(keyFile)]);

  if (certExists && keyExists) {
    return loadCertificateFiles(certFile, keyFile, { checkKeyMode: true });
  }
  if (certExists || keyExists) {
    const [present, missing] = certExists ? [certFile, keyFile] : [keyFile, certFile];
    throw new SwitchboardError(
      ErrorCode.STORAGE,
      `TLS certificate and key must both exist or both be absent, but ${present} exists and ` +
        `${missing} does not. Restore ${missing}, or delete ${present} to generate a new pair ` +
        `(clients that pinned the old fingerprint will then refuse to connect until re-trusted).`,
    );
  }

  const { certPem, keyPem } = await generateSelfSigned(subjectAltNames(options.hostnames ?? []));
  try {
    await mkdir(dataDir, { recursive: true, mode: DATA_DIR_MODE });
  } catch (err) {
    throw new SwitchboardError(ErrorCode.STORAGE, `cannot create data directory ${dataDir}`, {
      cause: err,
    });
  }
  // Key first: a crash between the two renames leaves a key without a cert, which the check
  // above reports, rather than a cert whose key was never written.
  const keyTemp = await writeTemp(keyFile, keyPem, KEY_FILE_MODE);
  const certTemp = await writeTemp(certFile, certPem, CERT_FILE_MODE).catch(async (err) => {
    await unlink(keyTemp).catch(() => undefined);
    throw err;
  });
  try {
    await rename(keyTemp, keyFile);
    await rename(certTemp, certFile);
  } catch (err) {
    await Promise.all([keyTemp, certTemp].map((temp) => unlink(temp).catch(() => undefined)));
    throw new SwitchboardError(ErrorCode.STORAGE, `cannot write TLS files in ${dataDir}`, {
      cause: err,
    });
  }
  await syncDir(dataDir);

  return {
    certPem,
    keyPem,
    fingerprint: certFingerprint(new X509Certificate(certPem).raw),
    generated: true,
    certFile,
    keyFile,
  };
}

/**
 * Loads a certificate and key the operator supplied (--tls-cert / --tls-key) and checks that the
 * key belongs to the certificate, so a mix-up fails at startup rather than at the first handshake.
 * The key file's mode is not checked by default: operators often share a CA-issued key with
 * a service group (0640).
 *
 * @throws SwitchboardError(STORAGE) if a file is unreadable, not PEM, or the two do not match.
 */
export function loadCertificateFiles(
  certFile: string,
  keyFile: string,
  options: { checkKeyMode?: boolean } = {},
): ServerCertificate {
  certFile = resolve(certFile);
  keyFile = resolve(keyFile);
  if (options.checkKeyMode) checkKeyFileMode(keyFile);
  const certPem = readText(certFile, 'TLS certificate');
  const keyPem = readText(keyFile, 'TLS private key');

  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new SwitchboardError(ErrorCode.STORAGE, `${certFile} is not a PEM certificate`, {
      cause: err,
    });
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new SwitchboardError(
      ErrorCode.STORAGE,
      `${keyFile} is not an unencrypted PEM private key`,
      { cause: err },
    );
  }
  if (!cert.checkPrivateKey(key)) {
    throw new SwitchboardError(
      ErrorCode.STORAGE,
      `TLS key ${keyFile} does not belong to certificate ${certFile}`,
    );
  }
  return {
    certPem,
    keyPem,
    fingerprint: certFingerprint(cert.raw),
    generated: false,
    certFile,
    keyFile,
  };
}

/**
 * Options for `https.createServer` / `tls.createServer`: TLS 1.2 and 1.3 only, forward-secret
 * AEAD suites only, server's preference order, modern curves.
 *
 * @example https.createServer(tlsServerOptions(cert), handler)
 */
export function tlsServerOptions(cert: ServerCertificate): TlsOptions {
  return {
    cert: cert.certPem,
    key: cert.keyPem,
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: CIPHERS,
    honorCipherOrder: true,
    ecdhCurve: ECDH_CURVES,
  };
}

async function generateSelfSigned(
  names: x509.JsonGeneralName[],
): Promise<{ certPem: string; keyPem: string }> {
  // Passed explicitly rather than via x509.cryptoProvider.set(): no process-wide state to set up.
  const crypto = webcrypto;
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);

  const notBefore = new Date(Date.now() - BACKDATE_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomBytes(SERIAL_BYTES).toString('hex'),
      name: [{ CN: [COMMON_NAME] }],
      notBefore,
      notAfter: new Date(notBefore.getTime() + VALIDITY_DAYS * DAY_MS),
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(names),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certPem: cert.toString('pem') + '\n', keyPem: toPem('PRIVATE KEY', pkcs8) };
}

/**
 * SANs: localhost, 127.0.0.1, ::1, and the caller's names (never this machine's own name). IP literals among
 * the caller's names become IP SANs, since TLS clients match an IP only against those.
 */
function subjectAltNames(extra: string[]): x509.JsonGeneralName[] {
  const dns = new Set<string>(['localhost']);
  const ips = new Set<string>(['127.0.0.1', '::1']);
  for (const raw of extra) {
    const name = raw.trim().toLowerCase();
    if (isIP(name) !== 0) {
      ips.add(name);
    } else if (isDnsName(name)) {
      dns.add(name);
    } else {
      throw new SwitchboardError(
        ErrorCode.INVALID_MESSAGE,
        `not a valid hostname for the TLS certificate: ${JSON.stringify(raw)} ` +
          '(use ASCII letters, digits, "-" and "."; punycode for international names)',
      );
    }
  }
  return [
    ...[...dns].map((value) => ({ type: 'dns' as const, value })),
    ...[...ips].map((value) => ({ type: 'ip' as const, value })),
  ];
}

function isDnsName(name: string): boolean {
  const MAX_DNS_NAME = 253; // characters
  return (
    name.length > 0 &&
    name.length <= MAX_DNS_NAME &&
    /^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/.test(
      name,
    )
  );
}

function toPem(label: string, der: Buffer): string {
  const LINE_CHARS = 64; // characters
  const b64 = der.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += LINE_CHARS) lines.push(b64.slice(i, i + LINE_CHARS));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * Writes `text` to a new temp file beside `target`, created with `mode` (so a private key is never
 * readable by others, not even briefly), flushed to disk; returns its path for the caller to rename.
 */
async function writeTemp(target: string, text: string, mode: number): Promise<string> {
  const temp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  let handle: FileHandle;
  try {
    handle = await open(temp, 'wx', mode);
  } catch (err) {
    throw new SwitchboardError(ErrorCode.STORAGE, `cannot create ${temp}`, { cause: err });
  }
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw new SwitchboardError(ErrorCode.STORAGE, `cannot write ${temp}`, { cause: err });
  }
  await handle.close();
  return temp;
}

/** Makes the renames durable; best effort, since some platforms cannot open a directory. */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, fsConstants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Durability of the directory entry is a nicety; the data itself was fsynced.
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new SwitchboardError(ErrorCode.STORAGE, `cannot access ${file}`, { cause: err });
  }
}

function checkKeyFileMode(keyFile: string): void {
  // Windows has no POSIX mode bits; stat reports a synthetic mode there.
  if (process.platform === 'win32') return;
  let mode: number;
  try {
    mode = statSync(keyFile).mode;
  } catch (err) {
    throw new SwitchboardError(ErrorCode.STORAGE, `cannot read TLS private key ${keyFile}`, {
      cause: err,
    });
  }
  if ((mode & KEY_FORBIDDEN_BITS) !== 0) {
    const shown = (mode & 0o777).toString(8).padStart(4, '0');
    throw new SwitchboardError(
      ErrorCode.STORAGE,
      `TLS private key ${keyFile} has permissions ${shown}, which let other users read or change ` +
        `it. Run: chmod 600 ${keyFile}`,
    );
  }
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new SwitchboardError(ErrorCode.STORAGE, `cannot read ${what} ${file}`, { cause: err });
  }
}
