// `switchboard policy check FILE [--user U] [--json]`: validate an agent's exec policy offline.
import { USERNAME_RE } from '../../protocol/messages.js';
import { bool, str, type Command } from '../command.js';
import { Exit, UsageError } from '../exit-codes.js';
import { json } from '../output.js';

export const policy: Command = {
  name: 'policy',
  summary: "Check an agent's exec policy file (`policy check FILE`): what each user may run.",
  usage: 'check FILE [--user USER] [--json]',
  details:
    'The file is what `agent --policy FILE` enforces: JSON or YAML, granting users commands as\n' +
    'argv patterns (a literal word, `*` for exactly one argument, a final `...` for any rest),\n' +
    "shell lines, scripts, push directories and limits. A valid file prints each user's grants\n" +
    'and exits 0; an invalid one prints every problem as FILE:LINE:COL: KEY: PROBLEM and exits 2.\n' +
    'Needs no relay and no login.',
  positionals: [1, 2],
  options: {
    user: { type: 'string', value: 'USER', description: "show only this user's grants" },
    json: {
      type: 'boolean',
      description: 'print the parsed policy as JSON (limits in ms and bytes)',
    },
  },
  async run(inv) {
    const [action, file] = inv.positionals;
    if (action !== 'check')
      throw new UsageError(`unknown action "${action}": use \`policy check FILE\``);
    if (file === undefined) throw new UsageError('which file? `switchboard policy check FILE`');
    const user = str(inv, 'user');
    if (user !== undefined && !USERNAME_RE.test(user))
      throw new UsageError(`--user "${user}" is not a user name`);
    // Loaded here, not at the top, so that `--help` does not pull in the YAML parser.
    const [{ PolicyError, loadPolicy }, { describeGrants }] = await Promise.all([
      import('../../host/policy-file.js'),
      import('../../host/policy.js'),
    ]);
    let loaded;
    try {
      loaded = loadPolicy(file);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      const n = err.problems.length;
      inv.io.stderr.write(
        `${err.message}\nswitchboard policy: ${file} is not a valid policy` +
          `${n > 1 ? ` (${n} problems)` : ''}; an agent would refuse to start with it.\n`,
      );
      return Exit.USAGE;
    }
    if (bool(inv, 'json')) {
      const names = user === undefined ? [...loaded.users.keys()] : [user];
      const users = Object.fromEntries(
        names.flatMap((name) => {
          const g = loaded.users.get(name);
          if (!g) return [];
          const { maxRunMs, maxOutputBytes } = loaded.defaults;
          return [
            [
              name,
              {
                commands: g.commands,
                shell: g.shell,
                script: g.script,
                push: g.push,
                mkdir: g.mkdir,
                maxRunMs: g.maxRunMs ?? maxRunMs,
                maxOutputBytes: g.maxOutputBytes ?? maxOutputBytes,
              },
            ],
          ];
        }),
      );
      json(inv.io.stdout, { file: loaded.file, defaults: loaded.defaults, users });
    } else inv.io.stdout.write(describeGrants(loaded, user));
    return Exit.OK;
  },
};
