// A user and their devices as peers see them: revoked devices are no longer theirs.
import { ErrorCode, SessionError } from '../protocol/errors.js';
import type { DeviceRow, Store, UserRow } from '../store/repositories.js';

/** The user's unrevoked devices: what `keys.get`, `keys.bundles` and `message.send` go by. */
export async function activeDevices(store: Store, userId: number): Promise<DeviceRow[]> {
  return (await store.devices.listForUser(userId)).filter((d) => d.revokedAt === null);
}

/** The user named `name` and their unrevoked devices; UNKNOWN_USER if there is no such user. */
export async function userDevices(
  store: Store,
  name: string,
): Promise<{ user: UserRow; devices: DeviceRow[] }> {
  const user = await store.users.findByName(name);
  if (!user) throw new SessionError(ErrorCode.UNKNOWN_USER, `there is no user "${name}"`);
  return { user, devices: await activeDevices(store, user.id) };
}
