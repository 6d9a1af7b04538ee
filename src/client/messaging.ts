// Sealing a message for one device and opening it: X3DH-style agreement (crypto/prekeys.ts), then
// AES-256-GCM under the agreed secret with the agreement's transcript as associated data.
//
// Envelope (the `body` the relay stores, base64 of JSON): {v: 1, h: OfflineHeaderJson, n: nonce,
// c: ciphertext || tag}. The sealed content is JSON: {v: 1, id, from, to, sentAt, text}, or a
// receipt {v: 1, kind: 'receipt', state, ids, ...}; `from` and `to` are checked on opening
// against what the relay claims, so it cannot re-address it.
import type { CryptoProvider } from '../crypto/provider.js';
import { fromBase64, toBase64, utf8 } from '../crypto/bytes.js';
import {
  offlineAgree,
  offlineReceive,
  type OfflineHeaderJson,
  type OfflineRecipient,
  type OfflineSender,
  type VerifiedBundle,
} from '../crypto/prekeys.js';
import { CryptoError, ErrorCode } from '../protocol/errors.js';

/** Longest message text, in UTF-8 bytes (an envelope stays under MESSAGE_MAX_BODY_BYTES). */
export const MESSAGE_MAX_TEXT_BYTES = 64 * 1024; // bytes
const NONCE_BYTES = 12;

export interface MessageContent {
  v: 1;
  /** A text message (absent) or a receipt: what became of messages `ids` at the recipient. */
  kind?: 'receipt' | 'cheque';
  state?: ReceiptState;
  ids?: string[];
  /** A cheque (kind 'cheque', direct links only): a signed transfer for the payee to deposit. */
  cheque?: { body: string; sig: string; key: string };
  /** The sender's message id (base64, 16 bytes): the same in every device's envelope. */
  id: string;
  from: string;
  to: string;
  sentAt: string;
  text: string;
}

/** What a recipient's device tells the sender (sealed like a message). */
export type ReceiptState = 'delivered' | 'read' | 'pending' | 'failed';

interface Envelope {
  v: 1;
  h: OfflineHeaderJson;
  n: string;
  c: string;
}

/** Seals `content` for the device whose verified bundle is `recipient`. */
export function sealMessage(
  provider: CryptoProvider,
  sender: OfflineSender,
  recipient: VerifiedBundle,
  content: MessageContent,
): string {
  const text = utf8(JSON.stringify(content));
  const { secret, header, associatedData } = offlineAgree(provider, sender, recipient);
  const nonce = provider.randomBytes(NONCE_BYTES);
  const sealed = provider.aes256GcmSeal(secret, nonce, text, associatedData);
  secret.fill(0);
  const envelope: Envelope = { v: 1, h: header, n: toBase64(nonce), c: toBase64(sealed) };
  return toBase64(utf8(JSON.stringify(envelope)));
}

/**
 * Opens an envelope addressed to this device. Throws DECRYPT_FAILED for anything that is not a
 * message sealed for it (wrong device, unknown prekey, a bad tag), or whose content names another
 * sender or recipient than `expect` (a relay re-addressing it). The caller checks the returned
 * sender device key against its pins.
 */
export function openMessage(
  provider: CryptoProvider,
  recipient: OfflineRecipient,
  body: string,
  /** `to` may be left out for a copy of one's own message (sent by one's other device). */
  expect: { from: string; to?: string },
): { content: MessageContent; senderDeviceKey: Uint8Array } {
  let envelope: Envelope;
  try {
    envelope = JSON.parse(new TextDecoder().decode(fromBase64(body))) as Envelope;
  } catch {
    throw new CryptoError(ErrorCode.DECRYPT_FAILED, 'not a message envelope');
  }
  if (envelope?.v !== 1 || typeof envelope.n !== 'string' || typeof envelope.c !== 'string')
    throw new CryptoError(ErrorCode.DECRYPT_FAILED, 'not a version 1 message envelope');
  const { secret, senderDeviceKey, associatedData } = offlineReceive(
    provider,
    recipient,
    envelope.h,
  );
  let plain: Uint8Array;
  try {
    plain = provider.aes256GcmOpen(
      secret,
      fromBase64(envelope.n),
      fromBase64(envelope.c),
      associatedData,
    );
  } catch {
    throw new CryptoError(
      ErrorCode.DECRYPT_FAILED,
      'the message failed to open (forged or corrupted)',
    );
  } finally {
    secret.fill(0);
  }
  let content: MessageContent;
  try {
    content = JSON.parse(new TextDecoder().decode(plain)) as MessageContent;
  } catch {
    throw new CryptoError(ErrorCode.DECRYPT_FAILED, 'the sealed content is not JSON');
  }
  if (
    typeof content !== 'object' ||
    content === null ||
    typeof content.id !== 'string' ||
    (content.kind === undefined && typeof content.text !== 'string') ||
    content.v !== 1 ||
    content.from !== expect.from ||
    (expect.to !== undefined && content.to !== expect.to)
  )
    throw new CryptoError(
      ErrorCode.DECRYPT_FAILED,
      `the message says it is from ${String(content.from)} to ${String(content.to)}, not what the relay says`,
    );
  return { content, senderDeviceKey };
}
