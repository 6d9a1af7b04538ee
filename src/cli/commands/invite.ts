// `switchboard invite create|list`: sign-up invites, for the relay's admins (`serve --admin`).
import { KnownServers } from '../../client/known-servers.js';
import {
  INVITE_DEFAULT_LIFETIME_SEC,
  INVITE_MAX_LIFETIME_SEC,
  INVITE_MAX_USES,
} from '../../protocol/limits.js';
import { withSession } from '../client-context.js';
import { CLIENT_OPTIONS, JSON_OPTION, bool, str, type Command } from '../command.js';
import { Exit, UsageError } from '../exit-codes.js';
import { FILES } from '../home.js';
import { json, table } from '../output.js';

const UNIT_SEC: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * A duration such as 90s, 30m, 24h or 7d, in seconds.
 * @example parseDuration('24h') // 86400
 */
export function parseDuration(text: string): number {
  const m = /^(\d{1,7})([smhd])$/.exec(text.trim());
  const unit = m?.[2] === undefined ? undefined : UNIT_SEC[m[2]];
  if (!m || unit === undefined)
    throw new UsageError(`"${text}" is not a duration: write e.g. 30m, 24h or 7d`);
  return Number(m[1]) * unit;
}

export const invite: Command = {
  name: 'invite',
  summary: 'Admins: make an invite code for `signup --invite` (create), or list open ones (list).',
  usage: 'create [--uses N] [--expires DUR] [--json] | list [--json]',
  details:
    'Only users named with `serve --admin USER` may use it. `create` prints the code once (the\n' +
    'relay keeps only its hash) and the exact signup command to hand to the invited person.\n' +
    `DUR is a number and a unit: s, m, h or d (30m, 24h, 7d); at least 60 s, at most 365 d.`,
  positionals: [1, 1],
  options: {
    uses: {
      type: 'string',
      value: 'N',
      description: `sign-ups the code allows (default 1, at most ${INVITE_MAX_USES})`,
    },
    expires: {
      type: 'string',
      value: 'DUR',
      description: `how long the code works (default ${INVITE_DEFAULT_LIFETIME_SEC / 86_400}d)`,
    },
    ...JSON_OPTION,
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const action = inv.positionals[0];
    if (action === 'create') return create();
    if (action === 'list') return list();
    throw new UsageError(`unknown action "${action}": use \`invite create\` or \`invite list\``);

    async function create(): Promise<number> {
      const usesText = str(inv, 'uses');
      const uses = usesText === undefined ? 1 : Number(usesText);
      if (!Number.isInteger(uses) || uses < 1 || uses > INVITE_MAX_USES)
        throw new UsageError(`--uses must be a whole number from 1 to ${INVITE_MAX_USES}`);
      const expiresText = str(inv, 'expires');
      const expiresSec =
        expiresText === undefined ? INVITE_DEFAULT_LIFETIME_SEC : parseDuration(expiresText);
      if (expiresSec < 60 || expiresSec > INVITE_MAX_LIFETIME_SEC)
        throw new UsageError('--expires must be from 60s to 365d');
      return withSession(inv, async ({ client, login, home }) => {
        const made = await client.request('invite.create', { uses, expiresSec });
        if (bool(inv, 'json')) {
          json(inv.io.stdout, made);
          return Exit.OK;
        }
        const pinned = new KnownServers(home.path(FILES.knownServers)).get(login.server);
        const trust = pinned ? ` --fingerprint ${pinned.fingerprint}` : '';
        inv.io.stdout.write(
          `Invite code (${made.uses} sign-up(s), until ${made.expiresAt}):\n  ${made.code}\n` +
            `Shown only now. The invited person signs up with:\n` +
            `  switchboard signup --server ${login.server}${trust} --invite ${made.code} --user NAME\n`,
        );
        return Exit.OK;
      });
    }

    async function list(): Promise<number> {
      return withSession(inv, async ({ client }) => {
        const { invites } = await client.request('invite.list', {});
        if (bool(inv, 'json')) json(inv.io.stdout, invites);
        else
          table(
            inv.io.stdout,
            ['ID', 'BY', 'USES LEFT', 'EXPIRES', 'CREATED'],
            invites.map((i) => [
              String(i.id),
              i.createdBy ?? '(deleted)',
              String(i.usesLeft),
              i.expiresAt,
              i.createdAt,
            ]),
            '(no usable invites)',
          );
        return Exit.OK;
      });
    }
  },
};
