// `switchboard keys` and `switchboard trust USER`: device fingerprints and peer key pins.
import { KnownPeers } from '../../client/known-peers.js';
import { keyFingerprint } from '../../crypto/device-key.js';
import { normalizeSshFingerprint } from '../peer-fingerprint.js';
import { withSession, homeOf } from '../client-context.js';
import { CLIENT_OPTIONS, JSON_OPTION, bool, str, type Command } from '../command.js';
import { Exit, UsageError } from '../exit-codes.js';
import { FILES } from '../home.js';
import { json, table } from '../output.js';
import { confirm, interactive } from '../prompt.js';

export const keys: Command = {
  name: 'keys',
  summary:
    "Show this device's key fingerprint; with USER, that user's keys and which you have pinned.",
  usage: '[USER] [--json]',
  details:
    'Fingerprints are SHA-256 over the raw Ed25519 public key, printed like ssh-keygen -l does.\n' +
    'Compare them with your peer over another channel (phone, in person) to rule out a lying relay.',
  positionals: [0, 1],
  options: { ...JSON_OPTION, ...CLIENT_OPTIONS },
  async run(inv) {
    const user = inv.positionals[0];
    const home = homeOf(inv);
    if (!user) {
      const key = home.deviceKey();
      const fingerprint = keyFingerprint(key.publicKey);
      if (bool(inv, 'json'))
        json(inv.io.stdout, {
          fingerprint,
          publicKey: key.publicKey.toString('base64'),
          file: home.path(FILES.deviceKey),
        });
      else inv.io.stdout.write(`${fingerprint} (Ed25519, ${home.path(FILES.deviceKey)})\n`);
      return Exit.OK;
    }
    return withSession(inv, async ({ client, login }) => {
      const { devices } = await client.request('keys.get', { user });
      const pins = new KnownPeers(home.path(FILES.knownPeers));
      const rows = devices.map((d) => ({
        ...d,
        pinned: pins.check(login.server, user, d.publicKey) === 'pinned',
      }));
      if (bool(inv, 'json')) json(inv.io.stdout, rows);
      else
        table(
          inv.io.stdout,
          ['FINGERPRINT', 'DEVICE', 'PINNED'],
          rows.map((r) => [r.fingerprint, r.deviceName, r.pinned ? 'yes' : 'no']),
          `(${user} has no device keys)`,
        );
      return Exit.OK;
    });
  },
};

export const trust: Command = {
  name: 'trust',
  summary:
    'Re-verify a peer: pin the device keys the relay lists for USER, replacing the old pins.',
  usage: 'USER [--fingerprint-of-peer SHA256:...] [--yes]',
  details:
    'Use it after a "DEVICE KEY HAS CHANGED" refusal, once you have checked the new fingerprint with\n' +
    'that person another way. Without --fingerprint-of-peer every key the relay lists replaces the\n' +
    "old pins; with it only that device is pinned (it must be listed), next to the user's others.",
  positionals: [1, 1],
  options: {
    'fingerprint-of-peer': {
      type: 'string',
      value: 'SHA256:...',
      description: 'pin only the key with this fingerprint',
    },
    yes: { type: 'boolean', short: 'y', description: 'do not ask for confirmation' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const user = inv.positionals[0]!;
    const wanted = str(inv, 'fingerprint-of-peer');
    return withSession(inv, async ({ client, login, home }) => {
      const { devices } = await client.request('keys.get', { user });
      let chosen = devices;
      if (wanted) {
        const fp = normalizeSshFingerprint(wanted);
        chosen = devices.filter((d) => d.fingerprint === fp);
        if (chosen.length === 0) throw new UsageError(`${user} has no key ${fp} on this relay`);
      }
      if (chosen.length === 0) throw new UsageError(`${user} has no device keys on this relay`);
      for (const d of chosen) inv.io.stdout.write(`${d.fingerprint}  ${d.deviceName}\n`);
      if (!bool(inv, 'yes')) {
        if (!interactive(inv.io))
          throw new UsageError(
            'no terminal to confirm on; pass --yes after verifying the fingerprints',
          );
        if (
          !(await confirm(
            inv.io,
            `Pin ${chosen.length === 1 ? 'this key' : 'these keys'} for ${user}?`,
          ))
        )
          return Exit.REFUSED;
      }
      const pins = new KnownPeers(home.path(FILES.knownPeers));
      // One device checked: added to the others (replacing that device's old key, if any).
      // All of them: they replace the old pins.
      if (wanted) pins.trustDevice(login.server, user, chosen[0]!);
      else
        pins.replace(
          login.server,
          user,
          chosen.map((d) => ({ publicKey: d.publicKey, deviceName: d.deviceName })),
        );
      const total = pins.list(login.server, user).length;
      inv.io.stdout.write(
        `Pinned ${chosen.length} key(s) for ${user}; ${total} device(s) of ${user} pinned in all.\n`,
      );
      return Exit.OK;
    });
  },
};
