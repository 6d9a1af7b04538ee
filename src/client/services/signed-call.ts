// What every signed call to an agent (exec, push) starts from: who signs, for which agent and channel.
import { randomBytes } from 'node:crypto';
import type { SecureDuplex } from '../../channel/e2e.js';
import type { DeviceKeyPair } from '../../crypto/device-key.js';
import type { OpenedService } from '../open-channel.js';
import { REQUEST_NONCE_BYTES, type SignedRequestBase } from '../../protocol/signed-request.js';

export interface SignedCallOptions {
  channel: SecureDuplex;
  /** Who signs: my account and this device's key. */
  user: string;
  key: DeviceKeyPair;
  /** The agent: its session, and its device key's fingerprint (the handshake proved it). */
  session: string;
  agentFingerprint: string;
  now?: () => number;
}

/** The options of a call on a channel `openService`/`secureOpened` opened to `session`. */
export function signedCallOn(
  opened: OpenedService,
  signer: { user: string; key: DeviceKeyPair },
  session: string,
): SignedCallOptions {
  return {
    channel: opened.channel,
    user: signer.user,
    key: signer.key,
    session,
    agentFingerprint: opened.opened.host.fingerprint,
  };
}

/** A signed request's head: this user, this agent, this channel, a fresh nonce, the time. */
export function requestHead<Op extends string>(
  op: Op,
  o: SignedCallOptions,
): SignedRequestBase & { v: 1; op: Op } {
  return {
    v: 1,
    op,
    user: o.user,
    agent: { session: o.session, fingerprint: o.agentFingerprint },
    channel: o.channel.handshakeHash,
    nonce: randomBytes(REQUEST_NONCE_BYTES).toString('base64'),
    issuedAt: (o.now ?? Date.now)(),
  };
}
