// `switchboard devices [revoke FINGERPRINT]`: the account's devices, and revoking one.
import { withSession } from '../client-context.js';
import { CLIENT_OPTIONS, JSON_OPTION, bool, type Command } from '../command.js';
import { Exit, UsageError } from '../exit-codes.js';
import { json, table } from '../output.js';
import { normalizeSshFingerprint } from '../peer-fingerprint.js';

export const devices: Command = {
  name: 'devices',
  summary: "List your account's devices (name, fingerprint, last seen, online); revoke one.",
  usage: '[--json] | revoke FINGERPRINT',
  details:
    'A device is a SWITCHBOARD_HOME that logged in: its Ed25519 key is registered to the account.\n' +
    'Agents authenticate with that key alone, so they run past any login token; `revoke` ends\n' +
    'that: the device may not log in or authenticate again, and its live connections (an agent\n' +
    'on it stops) are closed at once. Peers no longer see it among your keys.',
  positionals: [0, 2],
  options: { ...JSON_OPTION, ...CLIENT_OPTIONS },
  async run(inv) {
    const [action, target] = inv.positionals;
    if (action === undefined) {
      if (target !== undefined) throw new UsageError('unexpected argument');
      return withSession(inv, async ({ client }) => {
        const { devices: rows } = await client.request('devices.list', {});
        if (bool(inv, 'json')) json(inv.io.stdout, rows);
        else
          table(
            inv.io.stdout,
            ['FINGERPRINT', 'NAME', 'LAST SEEN', 'STATE'],
            rows.map((d) => [
              d.fingerprint,
              d.current ? `${d.name} (this one)` : d.name,
              d.lastSeenAt ?? 'never',
              d.revokedAt ? `revoked ${d.revokedAt}` : d.online ? 'online' : 'offline',
            ]),
            '(no devices)',
          );
        return Exit.OK;
      });
    }
    if (action !== 'revoke')
      throw new UsageError(`unknown action "${action}": use \`devices\` or \`devices revoke FP\``);
    if (target === undefined)
      throw new UsageError('which device? `switchboard devices revoke SHA256:...`');
    const fingerprint = normalizeSshFingerprint(target);
    return withSession(inv, async ({ client }) => {
      const { revoked, closed } = await client.request('devices.revoke', { fingerprint });
      if (bool(inv, 'json')) json(inv.io.stdout, { fingerprint, revoked, closed });
      else
        inv.io.stdout.write(
          revoked
            ? `Revoked ${fingerprint}; ${closed} live connection(s) of it closed.\n`
            : `${fingerprint} was already revoked.\n`,
        );
      return Exit.OK;
    });
  },
};
