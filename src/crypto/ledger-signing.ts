// Signing, checking and chaining the ledger's objects (formats in protocol/ledger.ts).
import { createHash } from 'node:crypto';
import { verifySignature, type DeviceKeyPair } from './device-key.js';
import { bodyHash } from '../protocol/audit.js';
import {
  CHECKPOINT_CONTEXT,
  ENTRY_CONTEXT,
  TRANSFER_CONTEXT,
  type Checkpoint,
  type SignedCheckpoint,
  type SignedTransfer,
  type TransferBody,
} from '../protocol/ledger.js';

function transferBytes(body: string): Buffer {
  return Buffer.from(`${TRANSFER_CONTEXT}\0${body}`, 'utf8');
}

export function signTransfer(key: DeviceKeyPair, body: TransferBody): SignedTransfer {
  const text = JSON.stringify(body);
  return {
    body: text,
    sig: key.sign(transferBytes(text)).toString('base64'),
    key: key.publicKey.toString('base64'),
  };
}

export function transferSignatureValid(t: SignedTransfer): boolean {
  try {
    return verifySignature(
      Buffer.from(t.key, 'base64'),
      transferBytes(t.body),
      Buffer.from(t.sig, 'base64'),
    );
  } catch {
    return false;
  }
}

/** The hash that chains entry `n` to entry `n-1` (hex). */
export function entryHash(prev: string, t: SignedTransfer): string {
  return createHash('sha256')
    .update(`${ENTRY_CONTEXT}\0${prev}\0${bodyHash(t.body)}\0${t.sig}\0${t.key}`, 'utf8')
    .digest('hex');
}

function checkpointBytes(c: Checkpoint): Buffer {
  const { ledger, count, head, at } = c;
  return Buffer.from(
    `${CHECKPOINT_CONTEXT}\0${JSON.stringify({ ledger, count, head, at })}`,
    'utf8',
  );
}

export function signCheckpoint(key: DeviceKeyPair, c: Checkpoint): SignedCheckpoint {
  return { ...c, sig: key.sign(checkpointBytes(c)).toString('base64') };
}

export function checkpointValid(publicKey: Uint8Array, c: SignedCheckpoint): boolean {
  try {
    return verifySignature(publicKey, checkpointBytes(c), Buffer.from(c.sig, 'base64'));
  } catch {
    return false;
  }
}
