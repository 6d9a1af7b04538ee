// Per-device X25519 identity keys and signed prekeys, their bundle, and the non-interactive agreement for offline messages.
//
// Construction (docs/security.md, "Offline key agreement"): X3DH without one-time prekeys.
// Every device has its Ed25519 device key (device-key.ts), an X25519 identity key IK bound to it
// by an identity signature, and a rotating X25519 signed prekey SPK signed by the device key.
// A sender with the recipient's verified bundle and an ephemeral key EK computes
//
//   dh1 = X25519(IK_s, SPK_r)   dh2 = X25519(EK, IK_r)   dh3 = X25519(EK, SPK_r)
//   ad  = "switchboard-offline-v1" 0x00 || dev_s || IK_s || dev_r || IK_r || u32be(spk id) || EK
//   secret = HKDF-SHA256(ikm = dh1 || dh2 || dh3, salt = SHA256(ad), info = "sb offline", 32)
//
// and the recipient recomputes it from the header (dev_s, IK_s and its signature, dev_r, spk id,
// EK) with its private IK_r and SPK_r. Everything here goes through a CryptoProvider, so it runs
// unchanged in Node (node-provider) and in the browser (noble-provider).
import { CryptoError, ErrorCode } from '../protocol/errors.js';
import { bytesEqual, concatBytes, fromBase64, toBase64, u32be, u64be, utf8 } from './bytes.js';
import { KEY_BYTES, SIGNATURE_BYTES, isAllZero, type CryptoProvider } from './provider.js';
import type { AsyncDeviceSigner } from './handshake.js';

/** Version of the bundle and header formats below. */
export const PREKEY_FORMAT_VERSION = 1;
/** Default life of a signed prekey; devices rotate before it ends. */
export const DEFAULT_PREKEY_LIFETIME = 7 * 24 * 60 * 60 * 1000; // ms
/** Longest life a signed prekey may claim; a longer one is refused as a bundle error. */
export const MAX_PREKEY_LIFETIME = 30 * 24 * 60 * 60 * 1000; // ms
/** Clock skew tolerated on a prekey's creation time. */
export const MAX_CLOCK_SKEW = 5 * 60 * 1000; // ms
/** Length of the agreed secret. */
export const OFFLINE_SECRET_BYTES = 32; // bytes

const IDENTITY_CONTEXT = utf8('switchboard-identity-v1\0');
const PREKEY_CONTEXT = utf8('switchboard-prekey-v1\0');
const OFFLINE_CONTEXT = utf8('switchboard-offline-v1\0');
const OFFLINE_INFO = utf8('sb offline');

/** Why a bundle or header was refused; stable values callers may switch on. */
export type PrekeyFailure =
  | 'format'
  | 'device'
  | 'identity-signature'
  | 'prekey-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'stale'
  | 'unknown-prekey'
  | 'weak-key';

/**
 * A refused bundle (code HANDSHAKE_FAILED: the peer cannot be authenticated) or offline header
 * (code DECRYPT_FAILED), with `reason` saying which check failed.
 */
export class PrekeyError extends CryptoError {
  readonly reason: PrekeyFailure;
  constructor(code: ErrorCode, reason: PrekeyFailure, message: string, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.reason = reason;
  }
}

/** What signs for a device: DeviceKeyPair (Node) satisfies it, as does seedSigner (anywhere). */
export interface DeviceSigner {
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  sign(data: Uint8Array): Uint8Array;
}

/** A signer that may sign asynchronously (the page's non-extractable WebCrypto key), or not. */
export type AnyDeviceSigner = DeviceSigner | AsyncDeviceSigner;

/** Signs with either kind: synchronously where it can (Node's fast path), else awaited. */
function signAny(signer: AnyDeviceSigner, data: Uint8Array): Uint8Array | Promise<Uint8Array> {
  return 'sign' in signer ? signer.sign(data) : signer.signAsync(data);
}

/** An X25519 key pair (raw bytes). */
export interface X25519KeyPair {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** A device's X25519 identity key with the device key's signature binding it to that device. */
export interface IdentityKey extends X25519KeyPair {
  readonly signature: Uint8Array;
}

/** The public half of a signed prekey, as published. */
export interface SignedPrekey {
  /** Increases with every rotation; senders refuse ids below the highest they have seen. */
  readonly id: number;
  readonly publicKey: Uint8Array;
  readonly createdAt: number; // ms since the epoch
  readonly expiresAt: number; // ms since the epoch
  readonly signature: Uint8Array;
}

/** A signed prekey as its device keeps it. */
export interface SignedPrekeyPair extends SignedPrekey {
  readonly privateKey: Uint8Array;
}

/** The JSON form a device publishes (base64 fields); not yet carried by the relay. */
export interface PrekeyBundleJson {
  v: 1;
  deviceKey: string;
  identityKey: string;
  identitySignature: string;
  prekey: {
    id: number;
    publicKey: string;
    createdAt: number;
    expiresAt: number;
    signature: string;
  };
}

/** A bundle whose signatures, device and dates have been checked. */
export interface VerifiedBundle {
  readonly deviceKey: Uint8Array;
  readonly identityKey: Uint8Array;
  readonly prekeyId: number;
  readonly prekey: Uint8Array;
  readonly prekeyExpiresAt: number;
}

/** What travels in front of an offline message (JSON, base64 fields). */
export interface OfflineHeaderJson {
  v: 1;
  senderDeviceKey: string;
  senderIdentityKey: string;
  senderIdentitySignature: string;
  recipientDeviceKey: string;
  prekeyId: number;
  ephemeralKey: string;
}

/** An Ed25519 signer over a raw 32-byte seed (the browser's DeviceSigner). */
export function seedSigner(provider: CryptoProvider, seed: Uint8Array): DeviceSigner {
  const publicKey = provider.ed25519PublicKey(seed);
  const secret = Uint8Array.from(seed);
  return { publicKey, sign: (data) => provider.ed25519Sign(secret, data) };
}

/** A fresh X25519 key pair, or the one for `privateKey` (restoring a stored key). */
export function x25519KeyPair(provider: CryptoProvider, privateKey?: Uint8Array): X25519KeyPair {
  const secret = privateKey ? Uint8Array.from(privateKey) : provider.randomBytes(KEY_BYTES);
  return { privateKey: secret, publicKey: provider.x25519PublicKey(secret) };
}

/** The bytes a device key signs to bind an X25519 identity key to itself. */
export function identityMessage(deviceKey: Uint8Array, identityKey: Uint8Array): Uint8Array {
  return concatBytes(IDENTITY_CONTEXT, deviceKey, identityKey);
}

/** The bytes a device key signs for one signed prekey. */
export function prekeyMessage(
  deviceKey: Uint8Array,
  identityKey: Uint8Array,
  prekey: Omit<SignedPrekey, 'signature'>,
): Uint8Array {
  return concatBytes(
    PREKEY_CONTEXT,
    deviceKey,
    identityKey,
    u32be(prekey.id),
    u64be(prekey.createdAt),
    u64be(prekey.expiresAt),
    prekey.publicKey,
  );
}

/**
 * Creates (or, given `privateKey`, restores) a device's X25519 identity key, signed by the device.
 * @example const identity = createIdentityKey(nodeCryptoProvider, deviceKey);
 */
export function createIdentityKey(
  provider: CryptoProvider,
  signer: DeviceSigner,
  privateKey?: Uint8Array,
): IdentityKey {
  const pair = x25519KeyPair(provider, privateKey);
  const signature = signer.sign(identityMessage(signer.publicKey, pair.publicKey));
  return { ...pair, signature };
}

/** As createIdentityKey, for a signer that may sign asynchronously (the page's key). */
export async function createIdentityKeyAsync(
  provider: CryptoProvider,
  signer: AnyDeviceSigner,
  privateKey?: Uint8Array,
): Promise<IdentityKey> {
  const pair = x25519KeyPair(provider, privateKey);
  const signature = await signAny(signer, identityMessage(signer.publicKey, pair.publicKey));
  return { ...pair, signature };
}

/** Options for createSignedPrekey. */
export interface SignedPrekeyOptions {
  /** Must exceed every id this device published before (u32). */
  id: number;
  /** Creation time; default Date.now(). */
  now?: number; // ms since the epoch
  /** Default DEFAULT_PREKEY_LIFETIME, at most MAX_PREKEY_LIFETIME. */
  lifetime?: number; // ms
  /** Restores a stored prekey (or fixes one for test vectors); default fresh random. */
  privateKey?: Uint8Array;
}

/**
 * A new signed prekey for this device's identity key.
 * @example const spk = createSignedPrekey(provider, deviceKey, identity.publicKey, { id: 1 });
 */
export function createSignedPrekey(
  provider: CryptoProvider,
  signer: DeviceSigner,
  identityKey: Uint8Array,
  options: SignedPrekeyOptions,
): SignedPrekeyPair {
  const { unsigned, privateKey, message } = unsignedPrekey(provider, signer, identityKey, options);
  return { ...unsigned, privateKey, signature: signer.sign(message) };
}

/** As createSignedPrekey, for a signer that may sign asynchronously (the page's key). */
export async function createSignedPrekeyAsync(
  provider: CryptoProvider,
  signer: AnyDeviceSigner,
  identityKey: Uint8Array,
  options: SignedPrekeyOptions,
): Promise<SignedPrekeyPair> {
  const { unsigned, privateKey, message } = unsignedPrekey(provider, signer, identityKey, options);
  return { ...unsigned, privateKey, signature: await signAny(signer, message) };
}

function unsignedPrekey(
  provider: CryptoProvider,
  signer: { publicKey: Uint8Array },
  identityKey: Uint8Array,
  options: SignedPrekeyOptions,
) {
  const { id, now = Date.now(), lifetime = DEFAULT_PREKEY_LIFETIME } = options;
  if (!Number.isInteger(lifetime) || lifetime <= 0 || lifetime > MAX_PREKEY_LIFETIME) {
    throw new RangeError(`a prekey lifetime is 1..${MAX_PREKEY_LIFETIME} ms`);
  }
  const pair = x25519KeyPair(provider, options.privateKey);
  const unsigned = { id, publicKey: pair.publicKey, createdAt: now, expiresAt: now + lifetime };
  const message = prekeyMessage(signer.publicKey, identityKey, unsigned);
  return { unsigned, privateKey: pair.privateKey, message };
}

/** The JSON bundle a device publishes for its current signed prekey. */
export function encodeBundle(
  deviceKey: Uint8Array,
  identity: Pick<IdentityKey, 'publicKey' | 'signature'>,
  prekey: SignedPrekey,
): PrekeyBundleJson {
  return {
    v: PREKEY_FORMAT_VERSION,
    deviceKey: toBase64(deviceKey),
    identityKey: toBase64(identity.publicKey),
    identitySignature: toBase64(identity.signature),
    prekey: {
      id: prekey.id,
      publicKey: toBase64(prekey.publicKey),
      createdAt: prekey.createdAt,
      expiresAt: prekey.expiresAt,
      signature: toBase64(prekey.signature),
    },
  };
}

/** What the sender expects of a bundle. */
export interface VerifyBundleOptions {
  /** The recipient device's Ed25519 key as the sender trusts it (pinned), not as the relay says. */
  deviceKey: Uint8Array;
  /** Default Date.now(). */
  now?: number; // ms since the epoch
  /** The highest prekey id already seen from this device; a lower id is a replayed bundle. */
  minPrekeyId?: number;
}

/**
 * Checks a bundle from the directory: format, that it belongs to the expected device, both
 * signatures, the prekey's dates and that its id has not gone backwards. Throws PrekeyError
 * (HANDSHAKE_FAILED) with the failing check as `reason`.
 */
export function verifyBundle(
  provider: CryptoProvider,
  bundle: unknown,
  options: VerifyBundleOptions,
): VerifiedBundle {
  const fail = (reason: PrekeyFailure, message: string): PrekeyError =>
    new PrekeyError(ErrorCode.HANDSHAKE_FAILED, reason, `prekey bundle refused: ${message}`);
  const b = bundle as Partial<PrekeyBundleJson> | null;
  const p = (typeof b === 'object' && b !== null ? b.prekey : undefined) as
    Partial<PrekeyBundleJson['prekey']> | undefined;
  if (typeof b !== 'object' || b === null || b.v !== PREKEY_FORMAT_VERSION || !p) {
    throw fail('format', `not a version ${PREKEY_FORMAT_VERSION} bundle`);
  }
  let deviceKey, identityKey, identitySignature, prekey, prekeySignature;
  try {
    deviceKey = key32(b.deviceKey);
    identityKey = key32(b.identityKey);
    identitySignature = signature64(b.identitySignature);
    prekey = key32(p.publicKey);
    prekeySignature = signature64(p.signature);
  } catch (err) {
    throw fail('format', (err as Error).message);
  }
  const { id, createdAt, expiresAt } = p;
  if (
    !Number.isInteger(id) ||
    (id as number) < 0 ||
    (id as number) > 0xffffffff ||
    !Number.isSafeInteger(createdAt) ||
    !Number.isSafeInteger(expiresAt) ||
    (createdAt as number) < 0 ||
    (expiresAt as number) <= (createdAt as number) ||
    (expiresAt as number) - (createdAt as number) > MAX_PREKEY_LIFETIME
  ) {
    throw fail('format', 'prekey id or dates out of range');
  }
  if (!bytesEqual(deviceKey, options.deviceKey)) {
    throw fail('device', 'it belongs to another device');
  }
  if (
    !provider.ed25519Verify(deviceKey, identityMessage(deviceKey, identityKey), identitySignature)
  ) {
    throw fail('identity-signature', 'the identity key is not signed by the device');
  }
  const unsigned = {
    id: id as number,
    publicKey: prekey,
    createdAt: createdAt as number,
    expiresAt: expiresAt as number,
  };
  if (
    !provider.ed25519Verify(
      deviceKey,
      prekeyMessage(deviceKey, identityKey, unsigned),
      prekeySignature,
    )
  ) {
    throw fail('prekey-signature', `prekey ${unsigned.id} is not signed by the device`);
  }
  const now = options.now ?? Date.now();
  if (now >= unsigned.expiresAt) throw fail('expired', `prekey ${unsigned.id} has expired`);
  if (unsigned.createdAt > now + MAX_CLOCK_SKEW) {
    throw fail('not-yet-valid', `prekey ${unsigned.id} is dated in the future`);
  }
  if (options.minPrekeyId !== undefined && unsigned.id < options.minPrekeyId) {
    throw fail('stale', `prekey ${unsigned.id} is older than ${options.minPrekeyId}, already seen`);
  }
  return {
    deviceKey,
    identityKey,
    prekeyId: unsigned.id,
    prekey,
    prekeyExpiresAt: unsigned.expiresAt,
  };
}

/** The sending device's keys. */
export interface OfflineSender {
  deviceKey: Uint8Array;
  identity: IdentityKey;
}

/** A shared secret for one offline message and the header the recipient needs to derive it. */
export interface OfflineAgreement {
  readonly secret: Uint8Array;
  readonly header: OfflineHeaderJson;
  /** The transcript the secret is bound to; use it as the AEAD's associated data too. */
  readonly associatedData: Uint8Array;
}

/**
 * Sender side: agrees a secret with an offline device from its verified bundle.
 * `ephemeralPrivateKey` exists for test vectors only; leave it out (a fresh one per message).
 * @example const { secret, header } = offlineAgree(provider, me, verifyBundle(provider, json, opts));
 */
export function offlineAgree(
  provider: CryptoProvider,
  sender: OfflineSender,
  recipient: VerifiedBundle,
  ephemeralPrivateKey?: Uint8Array,
): OfflineAgreement {
  const ephemeral = x25519KeyPair(provider, ephemeralPrivateKey);
  const header: OfflineHeaderJson = {
    v: PREKEY_FORMAT_VERSION,
    senderDeviceKey: toBase64(sender.deviceKey),
    senderIdentityKey: toBase64(sender.identity.publicKey),
    senderIdentitySignature: toBase64(sender.identity.signature),
    recipientDeviceKey: toBase64(recipient.deviceKey),
    prekeyId: recipient.prekeyId,
    ephemeralKey: toBase64(ephemeral.publicKey),
  };
  const associatedData = offlineAd(
    sender.deviceKey,
    sender.identity.publicKey,
    recipient.deviceKey,
    recipient.identityKey,
    recipient.prekeyId,
    ephemeral.publicKey,
  );
  const parts = dh(provider, 'HANDSHAKE_FAILED', [
    [sender.identity.privateKey, recipient.prekey],
    [ephemeral.privateKey, recipient.identityKey],
    [ephemeral.privateKey, recipient.prekey],
  ]);
  ephemeral.privateKey.fill(0);
  return { secret: derive(provider, parts, associatedData), header, associatedData };
}

/** The receiving device's keys. */
export interface OfflineRecipient {
  deviceKey: Uint8Array;
  identity: X25519KeyPair;
  /** This device's signed prekey with that id, if it still keeps it. */
  prekey(id: number): SignedPrekeyPair | undefined;
}

/**
 * Recipient side: derives the sender's secret from a header. Checks the header is for this
 * device, names a prekey it still holds, and carries an identity key signed by the sender's
 * device key; the caller then checks that device key against its pins. Throws PrekeyError
 * (DECRYPT_FAILED). It cannot tell a replayed header from the first delivery: see docs/security.md.
 */
export function offlineReceive(
  provider: CryptoProvider,
  recipient: OfflineRecipient,
  header: unknown,
): { secret: Uint8Array; senderDeviceKey: Uint8Array; associatedData: Uint8Array } {
  const fail = (reason: PrekeyFailure, message: string): PrekeyError =>
    new PrekeyError(ErrorCode.DECRYPT_FAILED, reason, `offline message refused: ${message}`);
  const h = header as Partial<OfflineHeaderJson> | null;
  if (typeof h !== 'object' || h === null || h.v !== PREKEY_FORMAT_VERSION) {
    throw fail('format', `not a version ${PREKEY_FORMAT_VERSION} header`);
  }
  let senderDevice, senderIdentity, senderSignature, recipientDevice, ephemeral;
  try {
    senderDevice = key32(h.senderDeviceKey);
    senderIdentity = key32(h.senderIdentityKey);
    senderSignature = signature64(h.senderIdentitySignature);
    recipientDevice = key32(h.recipientDeviceKey);
    ephemeral = key32(h.ephemeralKey);
  } catch (err) {
    throw fail('format', (err as Error).message);
  }
  const prekeyId = h.prekeyId;
  if (
    !Number.isInteger(prekeyId) ||
    (prekeyId as number) < 0 ||
    (prekeyId as number) > 0xffffffff
  ) {
    throw fail('format', 'prekey id out of range');
  }
  if (!bytesEqual(recipientDevice, recipient.deviceKey)) {
    throw fail('device', 'it is addressed to another device');
  }
  const prekey = recipient.prekey(prekeyId as number);
  if (!prekey) throw fail('unknown-prekey', `prekey ${prekeyId} is not (or no longer) held`);
  if (
    !provider.ed25519Verify(
      senderDevice,
      identityMessage(senderDevice, senderIdentity),
      senderSignature,
    )
  ) {
    throw fail('identity-signature', "the sender's identity key is not signed by its device");
  }
  const associatedData = offlineAd(
    senderDevice,
    senderIdentity,
    recipient.deviceKey,
    recipient.identity.publicKey,
    prekeyId as number,
    ephemeral,
  );
  const parts = dh(provider, 'DECRYPT_FAILED', [
    [prekey.privateKey, senderIdentity],
    [recipient.identity.privateKey, ephemeral],
    [prekey.privateKey, ephemeral],
  ]);
  return {
    secret: derive(provider, parts, associatedData),
    senderDeviceKey: senderDevice,
    associatedData,
  };
}

function offlineAd(
  senderDevice: Uint8Array,
  senderIdentity: Uint8Array,
  recipientDevice: Uint8Array,
  recipientIdentity: Uint8Array,
  prekeyId: number,
  ephemeral: Uint8Array,
): Uint8Array {
  return concatBytes(
    OFFLINE_CONTEXT,
    senderDevice,
    senderIdentity,
    recipientDevice,
    recipientIdentity,
    u32be(prekeyId),
    ephemeral,
  );
}

function dh(
  provider: CryptoProvider,
  code: 'HANDSHAKE_FAILED' | 'DECRYPT_FAILED',
  pairs: [Uint8Array, Uint8Array][],
): Uint8Array {
  try {
    return concatBytes(...pairs.map(([own, peer]) => provider.x25519(own, peer)));
  } catch (err) {
    throw new PrekeyError(
      ErrorCode[code],
      'weak-key',
      'a peer X25519 key is unusable (low-order or malformed)',
      err,
    );
  }
}

function derive(provider: CryptoProvider, ikm: Uint8Array, associatedData: Uint8Array): Uint8Array {
  const secret = provider.hkdfSha256(
    ikm,
    provider.sha256(associatedData),
    OFFLINE_INFO,
    OFFLINE_SECRET_BYTES,
  );
  ikm.fill(0);
  return secret;
}

function key32(value: unknown): Uint8Array {
  const raw = fromBase64(value as string);
  if (raw.length !== KEY_BYTES || isAllZero(raw)) throw new RangeError('a key must be 32 bytes');
  return raw;
}

function signature64(value: unknown): Uint8Array {
  const raw = fromBase64(value as string);
  if (raw.length !== SIGNATURE_BYTES) throw new RangeError('a signature must be 64 bytes');
  return raw;
}
