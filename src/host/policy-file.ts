// Reading an exec policy from a JSON or YAML file, validated, each problem at its file:line:col.
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import { USERNAME_RE } from '../protocol/messages.js';
import { formatBytes, parseDuration, parseSize } from '../protocol/units.js';
import {
  DEFAULT_MAX_OUTPUT_BYTES,
  DEFAULT_MAX_RUN_MS,
  keyPath,
  normalizeDir,
  type ExecPolicy,
  type UserGrant,
} from './policy.js';

/** The largest policy file `loadPolicy` reads: 1 MiB, in bytes. */
export const MAX_POLICY_FILE_BYTES = 2 ** 20;
/** Problems listed in one PolicyError before the rest are only counted. */
const MAX_PROBLEMS_SHOWN = 20;

/** A policy file that cannot be read or is not valid; the message is `file:line:col: path: problem` lines. */
export class PolicyError extends Error {
  /** Each problem on its own, as in the message. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'PolicyError';
    this.problems = problems;
  }
}

const TOP_KEYS = ['defaults', 'users'] as const;
const LIMIT_KEYS = ['maxRunTime', 'maxOutput'] as const;
const GRANT_KEYS = ['commands', 'shell', 'script', 'push', 'mkdir', ...LIMIT_KEYS] as const;

/**
 * Reads and validates a policy file; unreadable, oversized or invalid → PolicyError.
 * @example loadPolicy('/etc/switchboard/policy.yaml').users.get('carol')?.commands
 */
export function loadPolicy(path: string): ExecPolicy {
  let text: string;
  try {
    const fd = openSync(path, 'r');
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw new PolicyError([`${path}: cannot read the policy: not a file`]);
      if (stat.size > MAX_POLICY_FILE_BYTES)
        throw new PolicyError([
          `${path}: the policy is ${formatBytes(stat.size)}, more than the ${formatBytes(MAX_POLICY_FILE_BYTES)} allowed`,
        ]);
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if (err instanceof PolicyError) throw err;
    throw new PolicyError([`${path}: cannot read the policy: ${osReason(err)}`]);
  }
  return parsePolicy(text, path);
}

/**
 * Validates policy text; `file` names it in messages and decides the format: `.json` is JSON,
 * `.yaml`/`.yml` YAML, anything else JSON if it parses as JSON, else YAML.
 * @example parsePolicy('{"users": {"carol": {"commands": [["uname", "-s"]]}}}', 'policy.json')
 */
export function parsePolicy(text: string, file: string): ExecPolicy {
  // A byte-order mark becomes a space: JSON.parse refuses it, and offsets stay the same.
  const src = text.startsWith('\uFEFF') ? ` ${text.slice(1)}` : text;
  const ext = extname(file).toLowerCase();
  const report = (problems: Problem[]): never => {
    throw new PolicyError(formatProblems(src, file, problems));
  };
  // YAML 1.2 is a superset of JSON, so one parser gives both formats their positions; JSON.parse
  // only judges the syntax of what is (or looks like) JSON, with JSON's own error messages.
  const doc = parseDocument(src, YAML_OPTIONS);
  if (ext !== '.yaml' && ext !== '.yml') {
    const jsonProblem = jsonSyntaxProblem(src);
    // Not named .json: valid YAML is YAML; broken text that starts like JSON is reported as JSON.
    if (jsonProblem && (ext === '.json' || (/^\s*[{[]/.test(src) && doc.errors.length > 0)))
      report([jsonProblem]);
  }
  const syntax = [...doc.errors, ...doc.warnings].map((e) => ({
    offset: e.pos[0],
    path: '',
    message: e.message,
  }));
  if (syntax.length > 0) report(syntax);
  const reader = new Reader(src.length);
  const policy = reader.policy(doc.contents, file);
  if (reader.problems.length > 0 || policy === undefined) report(reader.problems);
  return policy as ExecPolicy;
}

const YAML_OPTIONS = { uniqueKeys: true, prettyErrors: false, strict: true } as const;

interface Problem {
  /** Where in the text (UTF-16 offset). */
  offset: number;
  /** `users.carol.commands[1][2]`, or '' for syntax errors. */
  path: string;
  message: string;
}

function formatProblems(text: string, file: string, problems: Problem[]): string[] {
  const sorted = [...problems].sort((a, b) => a.offset - b.offset);
  const lines = sorted.slice(0, MAX_PROBLEMS_SHOWN).map((p) => {
    const { line, col } = lineCol(text, p.offset);
    return `${file}:${line}:${col}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
  });
  if (problems.length > MAX_PROBLEMS_SHOWN)
    lines.push(`${file}: and ${problems.length - MAX_PROBLEMS_SHOWN} more problems`);
  return lines;
}

/** 1-based line and column of a UTF-16 offset. */
function lineCol(text: string, offset: number): { line: number; col: number } {
  const at = Math.max(0, Math.min(offset, text.length));
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < at; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: at - start + 1 };
}

/** The JSON syntax error in `text`, where JSON.parse puts it, or undefined when it parses. */
function jsonSyntaxProblem(text: string): Problem | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (err) {
    const message = (err as Error).message;
    // Node 20 says "... in JSON at position N" for most errors, newer Node adds "(line L column C)";
    // some ("Unexpected token 'x', "..." is not valid JSON") give no position: scan for it then.
    const reported = /at position (\d+)/.exec(message)?.[1];
    const offset =
      reported !== undefined
        ? Number(reported)
        : /^Unexpected end/.test(message)
          ? text.trimEnd().length
          : jsonErrorOffset(text);
    const short = message
      .replace(/ in JSON at position \d+.*$/s, '')
      .replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '');
    return { offset, path: '', message: `invalid JSON: ${short}` };
  }
}

/** Where a strict JSON scan first fails: used only when JSON.parse does not say. */
function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i] ?? '')) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const expect = (c: string) => {
    ws();
    if (text[i] !== c) fail();
    i++;
  };
  const string = () => {
    expect('"');
    for (;;) {
      const c = text[i];
      if (c === undefined || c < ' ') fail();
      i++;
      if (c === '"') return;
      if (c === '\\') {
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 5;
        } else if ('"\\/bfnrt'.includes(text[i] ?? '@')) i++;
        else fail();
      }
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === '{') {
          ws();
          string();
          expect(':');
        }
        value();
        ws();
        if (text[i] === close) {
          i++;
          return;
        }
        expect(',');
      }
    }
    if (c === '"') return string();
    const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    number.lastIndex = i;
    if (number.test(text)) {
      i = number.lastIndex;
      return;
    }
    const literal = ['true', 'false', 'null'].find((l) => l[0] === c) ?? '';
    for (let j = 0; j < literal.length; j++, i++) if (text[i] !== literal[j]) fail();
    if (literal === '') fail();
  };
  try {
    value();
    ws();
    return i;
  } catch (at) {
    return typeof at === 'number' ? at : 0;
  }
}

function osReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text = (e?.message ?? String(err))
    .replace(/^[A-Z]+: /, '')
    .replace(/, \w+ '.*'$/s, '')
    .trim();
  return e?.code ? `${text} (${e.code})` : text;
}

/** What a YAML node is, for "must be X, not Y" messages. */
function describe(node: unknown): string {
  if (node === null || node === undefined) return 'nothing';
  if (isAlias(node)) return 'an alias';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null) return 'null';
    if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
    if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  }
  return 'something else';
}

function offsetOf(node: unknown, fallback: number): number {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range?.[0] ?? fallback;
}

/** Walks the parsed document, collecting every problem with its place and key path. */
class Reader {
  readonly problems: Problem[] = [];
  constructor(private readonly end: number) {}

  private problem(node: unknown, at: number, path: string, message: string): void {
    this.problems.push({ offset: offsetOf(node, at), path, message });
  }

  policy(root: unknown, file: string): ExecPolicy | undefined {
    if (root === null || root === undefined) {
      this.problem(null, this.end, '', 'the policy is empty: write at least {"users": {}}');
      return undefined;
    }
    const top = this.mapping(root, 0, '', TOP_KEYS);
    if (!top) return undefined;
    const defaults = top.get('defaults');
    const defaultsMap = defaults
      ? this.mapping(defaults.node, defaults.at, 'defaults', LIMIT_KEYS)
      : undefined;
    const limits = defaultsMap ? this.limits(defaultsMap, 'defaults') : {};
    const users = new Map<string, UserGrant>();
    const usersEntry = top.get('users');
    const entries = usersEntry ? this.mapping(usersEntry.node, usersEntry.at, 'users') : undefined;
    for (const [user, { node, at }] of entries ?? []) {
      const path = keyPath('users', user);
      if (!USERNAME_RE.test(user))
        this.problem(
          null,
          at,
          path,
          `${JSON.stringify(user)} is not a user name (2-32 characters: a-z, 0-9, _ and -, starting with a letter)`,
        );
      const grant = this.grant(node, at, path);
      if (grant) users.set(user, grant);
    }
    return Object.freeze({
      file,
      users,
      defaults: Object.freeze({
        maxRunMs: limits.maxRunMs ?? DEFAULT_MAX_RUN_MS,
        maxOutputBytes: limits.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
      }),
    });
  }

  private grant(node: unknown, at: number, path: string): UserGrant | undefined {
    const map = this.mapping(node, at, path, GRANT_KEYS);
    if (!map) return undefined;
    const grant: UserGrant = { commands: [], shell: false, script: false, push: [], mkdir: false };
    const commands = map.get('commands');
    if (commands) {
      const items = this.list(commands.node, commands.at, `${path}.commands`) ?? [];
      grant.commands = items.flatMap((item, i) => {
        const pattern = this.pattern(item, commands.at, `${path}.commands[${i}]`);
        return pattern ? [pattern] : [];
      });
    }
    for (const flag of ['shell', 'script', 'mkdir'] as const) {
      const entry = map.get(flag);
      if (!entry) continue;
      const value = this.bool(entry.node, entry.at, `${path}.${flag}`);
      if (value !== undefined) grant[flag] = value;
    }
    const push = map.get('push');
    if (push) {
      const items = this.list(push.node, push.at, `${path}.push`) ?? [];
      grant.push = items.flatMap((item, i) => {
        const dir = this.pushDir(item, push.at, `${path}.push[${i}]`);
        return dir === undefined ? [] : [dir];
      });
    }
    const limits = this.limits(map, path);
    if (limits.maxRunMs !== undefined) grant.maxRunMs = limits.maxRunMs;
    if (limits.maxOutputBytes !== undefined) grant.maxOutputBytes = limits.maxOutputBytes;
    Object.freeze(grant.commands);
    Object.freeze(grant.push);
    return Object.freeze(grant);
  }

  /** `maxRunTime` and `maxOutput` of `defaults` or of a user's entry. */
  private limits(
    keys: Map<string, Entry>,
    path: string,
  ): { maxRunMs?: number; maxOutputBytes?: number } {
    const out: { maxRunMs?: number; maxOutputBytes?: number } = {};
    const run = keys.get('maxRunTime');
    if (run) {
      const v = this.scalar(run.node);
      const p = `${path}.maxRunTime`;
      if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0)
        out.maxRunMs = this.parse(() => parseDuration(String(v)), run, p);
      else if (typeof v === 'string') out.maxRunMs = this.parse(() => parseDuration(v), run, p);
      else
        this.problem(
          run.node,
          run.at,
          p,
          `must be a duration such as "30s", "5m" or "1h30m", or a whole number of seconds, not ${describe(run.node)}`,
        );
    }
    const output = keys.get('maxOutput');
    if (output) {
      const v = this.scalar(output.node);
      const p = `${path}.maxOutput`;
      if (typeof v === 'number' || typeof v === 'string')
        out.maxOutputBytes = this.parse(() => parseSize(v), output, p);
      else
        this.problem(
          output.node,
          output.at,
          p,
          `must be a size such as "64MiB" or a whole number of bytes, not ${describe(output.node)}`,
        );
    }
    return out;
  }

  private parse(fn: () => number, entry: Entry, path: string): number | undefined {
    try {
      return fn();
    } catch (err) {
      this.problem(entry.node, entry.at, path, (err as Error).message);
      return undefined;
    }
  }

  private pattern(node: unknown, at: number, path: string): string[] | undefined {
    const items = this.list(node, at, path);
    if (!items) return undefined;
    if (items.length === 0) {
      this.problem(node, at, path, 'an empty pattern matches nothing: write at least the program');
      return undefined;
    }
    const words: string[] = [];
    let ok = true;
    items.forEach((item, i) => {
      const p = `${path}[${i}]`;
      const word = this.scalar(item);
      if (typeof word !== 'string') {
        this.problem(
          item,
          at,
          p,
          `must be a string, not ${describe(item)}${typeof word === 'number' ? ' (quote it)' : ''}`,
        );
        ok = false;
        return;
      }
      let problem: string | undefined;
      if (word.includes('\0')) problem = 'contains a NUL character, which no argument can';
      else if (i === 0 && (word === '*' || word === '...' || word === ''))
        problem = `the program (first word) must be literal: a bare name or an absolute path, not ${JSON.stringify(word)}`;
      else if (i === 0 && !word.startsWith('/') && word.includes('/'))
        problem = `the program must be a bare name or an absolute path, not the relative path ${JSON.stringify(word)}`;
      else if (word === '...' && i !== items.length - 1) problem = '"..." may only end a pattern';
      if (problem) {
        this.problem(item, at, p, problem);
        ok = false;
      }
      words.push(word);
    });
    return ok ? (Object.freeze(words) as string[]) : undefined;
  }

  private pushDir(node: unknown, at: number, path: string): string | undefined {
    const dir = this.scalar(node);
    let problem: string | undefined;
    if (typeof dir !== 'string') problem = `must be an absolute directory, not ${describe(node)}`;
    else if (!dir.startsWith('/'))
      problem = `must be an absolute directory, not ${JSON.stringify(dir)}`;
    else if (dir.includes('\0')) problem = 'contains a NUL character';
    else if (dir.split('/').includes('..'))
      problem = `must not contain "..": ${JSON.stringify(dir)}`;
    if (problem !== undefined || typeof dir !== 'string') {
      this.problem(node, at, path, problem ?? 'invalid');
      return undefined;
    }
    return normalizeDir(dir);
  }

  private bool(node: unknown, at: number, path: string): boolean | undefined {
    const v = this.scalar(node);
    if (typeof v === 'boolean') return v;
    this.problem(node, at, path, `must be true or false, not ${describe(node)}`);
    return undefined;
  }

  private list(node: unknown, at: number, path: string): unknown[] | undefined {
    if (isSeq(node)) return node.items;
    this.problem(node, at, path, `must be a list ([...]), not ${describe(node)}`);
    return undefined;
  }

  private scalar(node: unknown): unknown {
    return isScalar(node) ? node.value : undefined;
  }

  /** A mapping's entries by key; with `known`, any other key is a problem. */
  private mapping(
    node: unknown,
    at: number,
    path: string,
    known?: readonly string[],
  ): Map<string, Entry> | undefined {
    if (!isMap(node)) {
      this.problem(node, at, path, `must be a mapping ({...}), not ${describe(node)}`);
      return undefined;
    }
    const out = new Map<string, Entry>();
    for (const pair of node.items) {
      const keyAt = offsetOf(pair.key, offsetOf(node, at));
      const key = this.scalar(pair.key);
      if (typeof key !== 'string') {
        this.problem(pair.key, keyAt, path, `keys must be strings, not ${describe(pair.key)}`);
        continue;
      }
      if (known && !known.includes(key)) {
        this.problem(
          pair.key,
          keyAt,
          keyPath(path, key),
          `unknown key (known keys: ${known.join(', ')})`,
        );
        continue;
      }
      // A key with no value (`carol:` in YAML) is pointed at by its key.
      out.set(key, { node: pair.value, at: keyAt });
    }
    return out;
  }
}

/** A value node and the offset to report when the node itself has none. */
interface Entry {
  node: unknown;
  at: number;
}
