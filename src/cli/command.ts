// Command definitions, argument parsing (node:util parseArgs) and generated --help text.
import { parseArgs } from 'node:util';
import { UsageError } from './exit-codes.js';
import { closest } from './suggest.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in help, e.g. HOST:PORT. */
  value?: string;
  description: string;
}

export interface Io {
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
  readonly stdin: NodeJS.ReadStream;
  readonly env: NodeJS.ProcessEnv;
}

export interface Invocation {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** What followed `--`, for commands with `rest`; undefined without a `--`. */
  rest?: string[];
  io: Io;
}

export interface Command {
  name: string;
  summary: string;
  /** Usage line after "switchboard NAME". */
  usage: string;
  /** Paragraphs shown in --help after the usage. */
  details?: string;
  options: Record<string, OptionSpec>;
  /** [min, max] positional arguments. */
  positionals: [number, number];
  /** Everything after the first `--` is the command's own argv (`rest`), never options (exec). */
  rest?: boolean;
  run(inv: Invocation): Promise<number>;
}

/** Options every client command takes. */
export const CLIENT_OPTIONS: Record<string, OptionSpec> = {
  server: {
    type: 'string',
    value: 'HOST:PORT',
    description: 'relay to use (env SWITCHBOARD_SERVER; remembered after login)',
  },
  fingerprint: {
    type: 'string',
    value: 'HEX',
    description:
      "relay certificate's SHA-256, as `openssl x509 -noout -fingerprint -sha256` prints it (env SWITCHBOARD_FINGERPRINT)",
  },
  ca: {
    type: 'string',
    value: 'FILE',
    description: 'trust the relay through this CA certificate instead of a pinned fingerprint',
  },
  insecure: {
    type: 'boolean',
    description:
      'let --server plain://HOST:PORT (no TLS) reach a non-loopback address: passwords and tokens cross in clear',
  },
};

export const JSON_OPTION: Record<string, OptionSpec> = {
  json: { type: 'boolean', description: 'print JSON instead of a table' },
};

export const HELP_OPTION: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export function parseInvocation(cmd: Command, argv: string[], io: Io): Invocation | 'help' {
  const options = { ...cmd.options, ...HELP_OPTION };
  const dashes = cmd.rest ? argv.indexOf('--') : -1;
  const rest = dashes >= 0 ? argv.slice(dashes + 1) : undefined;
  let parsed;
  try {
    parsed = parseArgs({
      args: dashes >= 0 ? argv.slice(0, dashes) : argv,
      options: Object.fromEntries(
        Object.entries(options).map(([k, o]) => [
          k,
          {
            type: o.type,
            ...(o.short ? { short: o.short } : {}),
            ...(o.multiple ? { multiple: true } : {}),
          },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional.*$/s, '');
    const unknown = /^Unknown option '--([^'=]+)'/.exec(message)?.[1];
    const guess = unknown === undefined ? undefined : closest(unknown, Object.keys(options));
    throw new UsageError(guess ? `${message}; did you mean --${guess}?` : message);
  }
  if (parsed.values['help']) return 'help';
  const [min, max] = cmd.positionals;
  if (parsed.positionals.length < min)
    throw new UsageError(`missing argument: switchboard ${cmd.name} ${cmd.usage}`);
  if (parsed.positionals.length > max)
    throw new UsageError(`unexpected argument "${parsed.positionals[max]}"`);
  return {
    values: parsed.values as Invocation['values'],
    positionals: parsed.positionals,
    ...(rest ? { rest } : {}),
    io,
  };
}

export function helpText(cmd: Command): string {
  const options = { ...cmd.options, ...HELP_OPTION };
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    return [flag, o.description] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  const lines = [`Usage: switchboard ${cmd.name} ${cmd.usage}`.trimEnd(), '', cmd.summary];
  if (cmd.details) lines.push('', cmd.details);
  lines.push('', 'Options:', ...rows.map(([f, d]) => `  ${f.padEnd(width)}${d}`));
  return `${lines.join('\n')}\n`;
}

export function str(inv: Invocation, name: string): string | undefined {
  const v = inv.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function bool(inv: Invocation, name: string): boolean {
  return inv.values[name] === true;
}

export function list(inv: Invocation, name: string): string[] {
  const v = inv.values[name];
  const items = Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  return items
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * A numeric option: undefined when absent; a UsageError naming the range when it is not a
 * (whole, if `whole`) number from `min` to `max`.
 */
export function numberOption(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
  whole = false,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (
    value.trim() === '' ||
    !Number.isFinite(n) ||
    n < min ||
    n > max ||
    (whole && !Number.isInteger(n))
  )
    throw new UsageError(
      `--${name} must be a ${whole ? 'whole number' : 'number'} from ${min} to ${max}, not "${value}"`,
    );
  return n;
}
