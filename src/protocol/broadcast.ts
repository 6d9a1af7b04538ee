// A broadcast's signed body: what the sending device signs and every recipient checks.
import { verifySignature, type DeviceKeyPair } from '../crypto/device-key.js';
import { BROADCAST_SIGNATURE_CONTEXT } from './limits.js';

export interface BroadcastBody {
  v: 1;
  /** The sender's id (16 random bytes, base64). */
  id: string;
  from: string;
  sentAt: string;
  text: string;
}

function signed(body: string): Buffer {
  return Buffer.concat([
    Buffer.from(`${BROADCAST_SIGNATURE_CONTEXT}\0`, 'utf8'),
    Buffer.from(body, 'utf8'),
  ]);
}

export function signBroadcast(
  key: DeviceKeyPair,
  body: BroadcastBody,
): { body: string; sig: string } {
  const text = JSON.stringify(body);
  return { body: text, sig: key.sign(signed(text)).toString('base64') };
}

/** The body, if `sig` is `publicKey`'s signature over it and it is well formed; else undefined. */
export function openBroadcast(
  publicKey: Uint8Array,
  body: string,
  sig: string,
): BroadcastBody | undefined {
  if (!verifySignature(publicKey, signed(body), Buffer.from(sig, 'base64'))) return undefined;
  try {
    const b = JSON.parse(body) as BroadcastBody;
    return b.v === 1 &&
      typeof b.id === 'string' &&
      typeof b.from === 'string' &&
      typeof b.sentAt === 'string' &&
      typeof b.text === 'string'
      ? b
      : undefined;
  } catch {
    return undefined;
  }
}
