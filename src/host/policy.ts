// The exec policy: who may run what on an agent, and the decision on each ask; policy-file.ts reads it.
import { posix } from 'node:path';
import { formatBytes, formatDuration } from '../protocol/units.js';

/** Run time allowed when neither the user's entry nor `defaults` sets one: 1 hour, in ms. */
export const DEFAULT_MAX_RUN_MS = 3_600_000;
/** Output (stdout and stderr together) allowed when nothing sets it: 1 GiB, in bytes. */
export const DEFAULT_MAX_OUTPUT_BYTES = 2 ** 30;

/** What a policy entry grants one user. Limits absent here fall back to `ExecPolicy.defaults`. */
export interface UserGrant {
  /** argv patterns: literal words, `*` for exactly one argument, a final `...` for any rest. */
  commands: string[][];
  /** May run `--shell 'CMD LINE'` through `/bin/sh -c`. */
  shell: boolean;
  /** May send a script to run with its shebang interpreter. */
  script: boolean;
  /** Absolute, normalised directories the user may push into (each with everything under it). */
  push: string[];
  /** May create a missing push directory. */
  mkdir: boolean;
  maxRunMs?: number;
  maxOutputBytes?: number;
}

/** A validated policy, frozen. */
export interface ExecPolicy {
  /** The file it was read from, as named when loaded. */
  file: string;
  users: ReadonlyMap<string, UserGrant>;
  /** The file's `defaults`, else DEFAULT_MAX_RUN_MS and DEFAULT_MAX_OUTPUT_BYTES. */
  defaults: { maxRunMs: number; maxOutputBytes: number };
}

/** What a user asks an agent to do. */
export type ExecAsk =
  | { kind: 'argv'; argv: string[] }
  | { kind: 'shell'; line: string }
  | { kind: 'script'; name: string; sha256: string }
  | { kind: 'push'; dir: string; mkdir: boolean };

/** The agent's answer, with the rule that decided and the limits that apply if allowed. */
export interface Decision {
  allowed: boolean;
  /** What decided: `users.carol.commands[0] ["echo","..."]`, `users.carol.shell`, `owner`, `--allow`, `no rule`, `no policy`. */
  rule: string;
  /** One sentence for people, e.g. `carol may not run "rm -rf /": no pattern in users.carol.commands matches`. */
  reason: string;
  maxRunMs: number;
  maxOutputBytes: number;
}

/** `users.carol`, `users["Carol Smith"]`: a key appended to a path (policy-file.ts uses it too). */
export function keyPath(path: string, key: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}

/** `/srv/app/` → `/srv/app`; `/` stays `/` (policy-file.ts stores push directories so). */
export function normalizeDir(dir: string): string {
  const n = posix.normalize(dir);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/**
 * Whether argv matches a pattern: each literal word exactly, `*` exactly one argument, a final
 * `...` any number of remaining arguments (zero included). Nothing is interpreted: a word with
 * shell metacharacters is just that word.
 * @example matchesPattern(['echo', '...'], ['echo', 'a;rm -rf /']) // true
 */
export function matchesPattern(pattern: readonly string[], argv: readonly string[]): boolean {
  if (pattern.length === 0 || argv.length === 0) return false;
  const rest = pattern[pattern.length - 1] === '...';
  const fixed = rest ? pattern.length - 1 : pattern.length;
  if (rest ? argv.length < fixed : argv.length !== fixed) return false;
  for (let i = 0; i < fixed; i++) if (pattern[i] !== '*' && pattern[i] !== argv[i]) return false;
  return true;
}

/** Whether `dir` is `root` or under it; both absolute and normalised. */
function within(dir: string, root: string): boolean {
  return root === '/' || dir === root || dir.startsWith(`${root}/`);
}

/**
 * The agent's decision on one ask. The owner and `--allow` users (`who.full`) may do anything;
 * anyone else only what their policy entry grants; no policy refuses everyone else.
 * Limits: the user's entry, else the policy's defaults, else the built-in defaults.
 */
export function decide(
  policy: ExecPolicy | undefined,
  who: { user: string; full: 'owner' | '--allow' | undefined },
  ask: ExecAsk,
): Decision {
  const { user } = who;
  const grant = policy?.users.get(user);
  const limits = {
    maxRunMs: grant?.maxRunMs ?? policy?.defaults.maxRunMs ?? DEFAULT_MAX_RUN_MS,
    maxOutputBytes:
      grant?.maxOutputBytes ?? policy?.defaults.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
  };
  const allow = (rule: string, reason: string): Decision => ({
    allowed: true,
    rule,
    reason,
    ...limits,
  });
  const refuse = (reason: string, rule = 'no rule'): Decision => ({
    allowed: false,
    rule,
    reason,
    ...limits,
  });
  const what = describeAsk(ask);
  if (who.full === 'owner') return allow('owner', `${user} owns this agent and may ${what}`);
  if (who.full === '--allow')
    return allow('--allow', `${user} is an --allow user of this agent and may ${what}`);
  if (!policy)
    return refuse(
      `${user} may not ${what}: this agent has no --policy; only its owner and --allow users may run commands`,
      'no policy',
    );
  if (!grant)
    return refuse(`${user} may not ${what}: no rule in the policy grants ${user} anything`);
  const base = keyPath('users', user);
  switch (ask.kind) {
    case 'argv': {
      const i = grant.commands.findIndex((p) => matchesPattern(p, ask.argv));
      const pattern = grant.commands[i];
      if (pattern) {
        const rule = `${base}.commands[${i}] ${JSON.stringify(pattern)}`;
        return allow(rule, `${user} may ${what}: ${rule} allows it`);
      }
      return refuse(
        grant.commands.length === 0
          ? `${user} may not ${what}: ${base}.commands grants no commands`
          : `${user} may not ${what}: no pattern in ${base}.commands matches`,
      );
    }
    case 'shell':
    case 'script': {
      const rule = `${base}.${ask.kind}`;
      return grant[ask.kind]
        ? allow(rule, `${user} may ${what}: ${rule} is true`)
        : refuse(`${user} may not ${what}: ${rule} is not true`);
    }
    case 'push': {
      const raw = ask.dir;
      if (!raw.startsWith('/') || raw.includes('\0'))
        return refuse(`${user} may not ${what}: the directory must be an absolute path`);
      if (raw.split('/').includes('..'))
        return refuse(`${user} may not ${what}: the directory may not contain ".."`);
      const dir = normalizeDir(raw);
      const i = grant.push.findIndex((root) => within(dir, root));
      const root = grant.push[i];
      if (root === undefined)
        return refuse(
          grant.push.length === 0
            ? `${user} may not ${what}: ${base}.push grants no directories`
            : `${user} may not ${what}: it is not under any directory in ${base}.push`,
        );
      const rule = `${base}.push[${i}] ${JSON.stringify(root)}`;
      if (ask.mkdir && !grant.mkdir)
        return refuse(
          `${user} may not ${what}: ${rule} allows the push, but ${base}.mkdir is not true`,
        );
      return allow(
        ask.mkdir ? `${rule}, ${base}.mkdir` : rule,
        `${user} may ${what}: ${rule} allows it${ask.mkdir ? ` and ${base}.mkdir is true` : ''}`,
      );
    }
  }
}

/** `run "echo 'a b'"`, `push into /srv/app`: the ask as the end of "carol may ...". */
function describeAsk(ask: ExecAsk): string {
  switch (ask.kind) {
    case 'argv':
      return `run ${JSON.stringify(clip(formatArgv(ask.argv)))}`;
    case 'shell':
      return `run the shell line ${JSON.stringify(clip(ask.line))}`;
    case 'script':
      return `run the script ${JSON.stringify(clip(ask.name))} (sha256 ${ask.sha256.slice(0, 16)}…)`;
    case 'push':
      return `push into ${JSON.stringify(clip(ask.dir))}${ask.mkdir ? ', creating it' : ''}`;
  }
}

function clip(text: string, max = 200): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

/**
 * argv as a shell would need it typed, for people and logs: plain words bare, others quoted,
 * control characters escaped so they cannot act on a terminal.
 * @example formatArgv(['echo', 'a;rm -rf /']) // "echo 'a;rm -rf /'"
 */
export function formatArgv(argv: readonly string[]): string {
  return argv.map(quoteWord).join(' ');
}

/** Characters a terminal could act on or hide: C0/C1 controls, bidi and zero-width formatting, line separators. */
const CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

function quoteWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  if (!CONTROL.test(word)) return `'${word.replaceAll("'", `'\\''`)}'`;
  let out = "$'";
  for (const ch of word) {
    if (ch === "'" || ch === '\\') out += `\\${ch}`;
    else if (CONTROL.test(ch)) out += `\\u${ch.codePointAt(0)?.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}'`;
}

/** A pattern as people write it on a command line: `systemctl restart *`, `echo ...`. */
function formatPattern(pattern: readonly string[]): string {
  return pattern.map((w) => (w === '*' || w === '...' ? w : quoteWord(w))).join(' ');
}

/**
 * What each user may do (or only `user`), for `switchboard policy check`.
 * @example describeGrants(policy, 'carol')
 */
export function describeGrants(policy: ExecPolicy, user?: string): string {
  const limits = (run: number, out: number) =>
    `at most ${formatDuration(run)} and ${formatBytes(out)} of output`;
  const d = policy.defaults;
  const lines = [
    `${policy.file}: ${policy.users.size} user${policy.users.size === 1 ? '' : 's'}; defaults: each command ${limits(d.maxRunMs, d.maxOutputBytes)}.`,
    "The agent's owner and its --allow users may run anything, within their entry's limits if they have one, else the defaults.",
  ];
  const names = user === undefined ? [...policy.users.keys()] : [user];
  for (const name of names) {
    const grant = policy.users.get(name);
    lines.push('');
    if (!grant) {
      lines.push(
        `${policy.file} has no entry for ${name}: ${name} may run nothing, unless ${name} is the agent's owner or one of its --allow users.`,
      );
      continue;
    }
    const yesNo = (b: boolean) => (b ? 'yes' : 'no');
    lines.push(
      `${name} may run:`,
      ...(grant.commands.length === 0
        ? ['  (no commands)']
        : grant.commands.map((p) => `  ${formatPattern(p)}`)),
      `${name} may also:`,
      `  run shell lines (--shell): ${yesNo(grant.shell)}`,
      `  send scripts (--script): ${yesNo(grant.script)}`,
      `  push into: ${grant.push.length === 0 ? 'nowhere' : grant.push.join(', ')}`,
      `  create missing push directories: ${yesNo(grant.mkdir)}`,
      `  limits: each command ${limits(grant.maxRunMs ?? d.maxRunMs, grant.maxOutputBytes ?? d.maxOutputBytes)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
