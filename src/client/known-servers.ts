// The client's known_servers file (like SSH's known_hosts) and the decision whether a relay's certificate is trusted.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { writeFileAtomic } from './atomic-file.js';
import { fingerprintsEqual, normalizeFingerprint } from '../crypto/cert-fingerprint.js';
import { ConnectError, ErrorCode, StorageError } from '../protocol/errors.js';

const FILE_VERSION = 1;
const FILE_MODE = 0o600;
/** The name used in messages when the caller did not say which file holds the pins. */
const DEFAULT_FILE_LABEL = 'known_servers.json';

/** One pinned relay. */
export interface KnownServer {
  /** "host:port" as the client dials it; the host is stored lowercased. */
  server: string;
  /** SHA-256 certificate fingerprint, canonical colon form. */
  fingerprint: string;
  /** When the pin was made, ISO 8601. */
  addedAt: string;
  /** How it was trusted: --fingerprint given, trust on first use (prompt), or a CA-verified chain. */
  via: 'fingerprint' | 'tofu' | 'ca';
}

const KnownServerSchema = z.object({
  server: z.string().min(1),
  fingerprint: z.string(),
  addedAt: z.string(),
  via: z.enum(['fingerprint', 'tofu', 'ca']),
});
const FileSchema = z.object({
  version: z.literal(FILE_VERSION),
  servers: z.array(KnownServerSchema),
});

/**
 * The pins in one JSON file. Every call reads the file afresh and every change rewrites it
 * atomically, so two CLI processes see each other's pins and a crash never leaves half a file.
 *
 * @example new KnownServers(join(home, 'known_servers.json')).get('relay.example.com:443')
 */
export class KnownServers {
  readonly file: string;

  /** `file` need not exist yet: a missing file holds no pins. */
  constructor(file: string) {
    this.file = file;
  }

  get(server: string): KnownServer | undefined {
    const key = serverKey(server);
    return this.read().find((entry) => entry.server === key);
  }

  /**
   * Pins `fingerprint` for `server`, replacing any earlier pin. Writes the file atomically with
   * mode 0600, creating its directory with mode 0700 if needed.
   *
   * @throws SwitchboardError(TRUST_REQUIRED) if `fingerprint` is not a SHA-256 fingerprint.
   */
  pin(server: string, fingerprint: string, via: KnownServer['via']): void {
    const entry: KnownServer = {
      server: serverKey(server),
      fingerprint: normalizeFingerprint(fingerprint),
      addedAt: new Date().toISOString(),
      via,
    };
    const others = this.read().filter((existing) => existing.server !== entry.server);
    this.write([...others, entry]);
  }

  /** Forgets `server`'s pin; false if there was none. */
  remove(server: string): boolean {
    const key = serverKey(server);
    const entries = this.read();
    const kept = entries.filter((entry) => entry.server !== key);
    if (kept.length === entries.length) return false;
    this.write(kept);
    return true;
  }

  /** Every pin, sorted by server. */
  list(): KnownServer[] {
    return this.read();
  }

  private read(): KnownServer[] {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new StorageError(ErrorCode.STORAGE, `cannot read ${this.file}`, { cause: err });
    }
    // An emptied file (`: > known_servers.json`) is a reasonable way to forget every pin.
    if (text.trim() === '') return [];

    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw this.corrupt(`it is not valid JSON (${(err as Error).message})`, err);
    }
    const parsed = FileSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
      throw this.corrupt(`unexpected content${where}: ${issue?.message ?? 'invalid'}`);
    }

    const seen = new Set<string>();
    return parsed.data.servers.map((entry, index) => {
      let fingerprint: string;
      try {
        fingerprint = normalizeFingerprint(entry.fingerprint);
      } catch (err) {
        throw this.corrupt(`servers.${index}.fingerprint is not a SHA-256 fingerprint`, err);
      }
      const server = serverKey(entry.server);
      // Two pins for one server would make the check depend on which one we happened to read.
      if (seen.has(server)) throw this.corrupt(`${server} is listed more than once`);
      seen.add(server);
      return { server, fingerprint, addedAt: entry.addedAt, via: entry.via };
    });
  }

  private write(entries: KnownServer[]): void {
    const sorted = [...entries].sort((a, b) =>
      a.server < b.server ? -1 : a.server > b.server ? 1 : 0,
    );
    const text = JSON.stringify({ version: FILE_VERSION, servers: sorted }, null, 2) + '\n';
    try {
      writeFileAtomic(this.file, text, FILE_MODE);
    } catch (err) {
      throw new StorageError(ErrorCode.STORAGE, `cannot write ${this.file}`, { cause: err });
    }
  }

  private corrupt(detail: string, cause?: unknown): StorageError {
    return new StorageError(
      ErrorCode.STORAGE,
      `${this.file} is damaged: ${detail}. Fix or delete the file ` +
        '(deleting it forgets every pinned server certificate).',
      { cause },
    );
  }
}

/** Input to {@link checkServerTrust}. */
export interface ServerTrustInput {
  /** "host:port" being connected to. */
  server: string;
  /** Fingerprint of the certificate the server presented (from certFingerprint). */
  presented: string;
  /** The pin for this server, if any (KnownServers.get). */
  pinned?: KnownServer;
  /** A fingerprint the user gave (--fingerprint / SWITCHBOARD_FINGERPRINT), any accepted spelling. */
  expected?: string;
  /** Path of the known-servers file, named in the certificate-changed message. */
  knownServersFile?: string;
}

/** What the connector should do with the presented certificate. */
export type ServerTrustDecision =
  { action: 'ok' } | { action: 'pin'; via: 'fingerprint' } | { action: 'ask' };

/**
 * Decides whether a presented certificate is trusted. Pure: the connector reads the pin, calls
 * this, then pins, prompts, or proceeds.
 *
 * - `expected` given: it must match the presented certificate. The result is `pin` so the
 *   out-of-band check is remembered (and replaces an older pin), or `ok` if an identical
 *   non-TOFU pin already exists.
 * - else a pin exists: it must match (`ok`).
 * - else `ask`: an interactive caller prompts; a non-interactive one throws
 *   {@link trustRequiredError}.
 *
 * @throws ConnectError(CERT_CHANGED) on any mismatch; SwitchboardError(TRUST_REQUIRED) if
 *   `expected` is not a fingerprint.
 */
export function checkServerTrust(input: ServerTrustInput): ServerTrustDecision {
  const presented = normalizeFingerprint(input.presented);
  const { pinned } = input;
  const server = serverKey(input.server);

  if (input.expected !== undefined) {
    const expected = normalizeFingerprint(input.expected);
    if (!fingerprintsEqual(expected, presented)) {
      throw new ConnectError(
        ErrorCode.CERT_CHANGED,
        [
          `The fingerprint you gave for ${server} does not match the certificate it presented.`,
          `  you gave:  ${expected}`,
          `  presented: ${presented}`,
          'Either the fingerprint was mistyped or copied from another server, or someone is ' +
            'intercepting the connection. Nothing was pinned.',
        ].join('\n'),
      );
    }
    const alreadyPinned =
      pinned !== undefined &&
      pinned.via !== 'tofu' &&
      fingerprintsEqual(pinned.fingerprint, presented);
    return alreadyPinned ? { action: 'ok' } : { action: 'pin', via: 'fingerprint' };
  }

  if (pinned !== undefined) {
    if (fingerprintsEqual(pinned.fingerprint, presented)) return { action: 'ok' };
    throw certChangedError(server, pinned, presented, input.knownServersFile ?? DEFAULT_FILE_LABEL);
  }

  return { action: 'ask' };
}

/**
 * The error a non-interactive client raises for a server it has never pinned: says how to check
 * the certificate with the relay's operator and how to tell the client to trust it.
 */
export function trustRequiredError(server: string, presented: string): ConnectError {
  return new ConnectError(
    ErrorCode.TRUST_REQUIRED,
    [
      `The relay at ${serverKey(server)} is not trusted yet: this client has no pinned certificate for it.`,
      `  presented SHA-256 fingerprint: ${normalizeFingerprint(presented)}`,
      'Ask the relay operator to run, on the relay:',
      '  openssl x509 -noout -fingerprint -sha256 -in <data-dir>/tls-cert.pem',
      'and, only if the two fingerprints are identical, connect again with',
      '  --fingerprint <that fingerprint>   (or set SWITCHBOARD_FINGERPRINT)',
      'If the relay uses a certificate issued by a CA, pass --ca FILE with that CA certificate instead.',
    ].join('\n'),
  );
}

function certChangedError(
  server: string,
  pinned: KnownServer,
  presented: string,
  file: string,
): ConnectError {
  const RULE = '@'.repeat(59);
  return new ConnectError(
    ErrorCode.CERT_CHANGED,
    [
      RULE,
      '@    WARNING: RELAY CERTIFICATE HAS CHANGED!               @',
      RULE,
      `The certificate presented by ${server} is not the one pinned for it.`,
      'IT IS POSSIBLE THAT SOMEONE IS INTERCEPTING THE CONNECTION (man-in-the-middle),',
      'or the relay operator replaced the certificate. The connection was refused.',
      `  pinned:    ${pinned.fingerprint}  (${pinned.via}, ${pinned.addedAt})`,
      `  presented: ${presented}`,
      'Verify the new fingerprint with the relay operator out of band, e.g. on the relay:',
      '  openssl x509 -noout -fingerprint -sha256 -in <data-dir>/tls-cert.pem',
      'then, only if it matches, run your command again with the new fingerprint, e.g.:',
      `  switchboard whoami --server ${server} --fingerprint <NEW FINGERPRINT>`,
      `or remove the entry for ${server} from ${file}.`,
    ].join('\n'),
  );
}

/** Pins are keyed by "host:port" with the host lowercased, since DNS names are case-insensitive. */
function serverKey(server: string): string {
  return server.trim().toLowerCase();
}
