// Prekey bundles in the key directory: devices publish theirs, senders fetch a user's.
//
// The relay checks what it stores (the caller's own device key, both signatures, the dates), so
// the directory holds no garbage; senders check again against the device key they pinned, since
// a relay's word is never enough for a key.
import { verifyBundle, PrekeyError } from '../crypto/prekeys.js';
import { defaultCryptoProvider } from '../crypto/default-provider.js';
import { ErrorCode, ProtocolError, SessionError } from '../protocol/errors.js';
import type { Params, Results } from '../protocol/messages.js';
import type { UserCaller } from './caller.js';
import { devicePeerInfo } from './directory.js';
import { userDevices } from './user-devices.js';
import type { Services } from './handlers.js';

/** Largest bundle JSON the relay keeps. */
export const MAX_BUNDLE_BYTES = 2048; // bytes

export async function keysPublish(
  conn: UserCaller,
  req: Params<'keys.publish'>,
  s: Services,
): Promise<Results['keys.publish']> {
  const text = JSON.stringify(req.bundle);
  if (text.length > MAX_BUNDLE_BYTES)
    throw new ProtocolError(
      ErrorCode.FRAME_TOO_LARGE,
      `a bundle is at most ${MAX_BUNDLE_BYTES} bytes`,
    );
  const device = conn.auth.device;
  let verified;
  try {
    verified = verifyBundle(defaultCryptoProvider, req.bundle, {
      deviceKey: Buffer.from(device.publicKey, 'base64'),
      now: s.now(),
    });
  } catch (err) {
    if (err instanceof PrekeyError)
      throw new ProtocolError(ErrorCode.INVALID_MESSAGE, `${err.message} (${err.reason})`);
    throw err;
  }
  const stored = await s.store.prekeys.put({
    deviceId: device.id,
    prekeyId: verified.prekeyId,
    expiresAt: verified.prekeyExpiresAt,
    bundle: text,
    publishedAt: s.now(),
  });
  if (!stored)
    throw new SessionError(
      ErrorCode.CONFLICT,
      `this device already published prekey ${verified.prekeyId} or a newer one; publish a higher id`,
    );
  return {
    prekeyId: verified.prekeyId,
    expiresAt: new Date(verified.prekeyExpiresAt).toISOString(),
  };
}

export async function keysBundles(
  _conn: UserCaller,
  req: Params<'keys.bundles'>,
  s: Services,
): Promise<Results['keys.bundles']> {
  const { user, devices } = await userDevices(s.store, req.user);
  const bundles = new Map(
    (
      await s.store.prekeys.forDevices(
        devices.map((d) => d.id),
        s.now(),
      )
    ).map((b) => [b.deviceId, b]),
  );
  return {
    user: user.name,
    devices: devices.flatMap((d) => {
      const b = bundles.get(d.id);
      return b
        ? [{ ...devicePeerInfo(user.name, d), bundle: JSON.parse(b.bundle) as unknown }]
        : [];
    }),
  };
}
