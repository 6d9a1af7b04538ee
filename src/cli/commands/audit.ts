// `switchboard audit`: what happened on your agents (and what you did on others'), and a check
// that nobody altered, removed, reordered or forged an entry.
import { keyFingerprint } from '../../crypto/device-key.js';
import { readLogFile } from '../../host/audit-log.js';
import {
  logSigner,
  verifyChain,
  type ChainProblem,
  type EntryHead,
  type SignedEntry,
} from '../../protocol/audit.js';
import { AUDIT_LIST_MAX } from '../../protocol/limits.js';
import { SESSION_ID_RE, USERNAME_RE, type AuditEntryView } from '../../protocol/messages.js';
import { parseDuration } from '../../protocol/units.js';
import { CLIENT_OPTIONS, bool, str, type Command, type Invocation } from '../command.js';
import { homeOf, withSession } from '../client-context.js';
import { Exit, UsageError } from '../exit-codes.js';
import { json, table } from '../output.js';

/** Pages one listing may take: AUDIT_LIST_MAX entries each. */
const MAX_PAGES = 1000;

export const audit: Command = {
  name: 'audit',
  summary: 'List the signed audit log of your agents; --verify checks it was not tampered with.',
  usage: '[--host ID] [--user U] [--since DURATION|TIME] [--json] | --verify [--file LOG]',
  details:
    'Agents sign every attach, exec, push and refusal with their device key and chain the entries\n' +
    'by hash; the relay keeps a copy. You see the entries of your own agents, and your own actions\n' +
    'on other agents. --verify fetches them and checks every signature and the chain: it names the\n' +
    'first entry that was altered, removed, reordered or forged, and exits 1 if anything fails.\n' +
    "--file checks an agent's local log instead (on the agent, with its SWITCHBOARD_HOME).",
  positionals: [0, 0],
  options: {
    host: { type: 'string', value: 'ID', description: "only this agent's entries" },
    user: { type: 'string', value: 'U', description: 'only what this user did' },
    since: {
      type: 'string',
      value: 'DURATION|TIME',
      description: 'only entries since then: 1h, 7d, or an ISO time (2026-11-22T10:00:00Z)',
    },
    verify: {
      type: 'boolean',
      description: 'check every signature and the hash chain; exit 1 on any failure',
    },
    file: {
      type: 'string',
      value: 'LOG',
      description: "with --verify: an agent's local log file instead of the relay's copy",
    },
    json: { type: 'boolean', description: 'print JSON' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const host = str(inv, 'host');
    const user = str(inv, 'user');
    if (host !== undefined && !SESSION_ID_RE.test(host))
      throw new UsageError(`--host: "${host}" is not a session ID`);
    if (user !== undefined && !USERNAME_RE.test(user))
      throw new UsageError(`--user: "${user}" is not a user name`);
    const since = sinceOption(str(inv, 'since'));
    const file = str(inv, 'file');
    if (file !== undefined && !bool(inv, 'verify'))
      throw new UsageError('--file goes with --verify');
    if (bool(inv, 'verify'))
      return file !== undefined ? verifyFile(inv, file) : verifyRelay(inv, host);
    return withSession(inv, async ({ client }) => {
      const entries: AuditEntryView[] = [];
      let after: { log: string; seq: number } | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const r = await client.request('audit.list', {
          ...(host ? { host } : {}),
          ...(user ? { user } : {}),
          ...(since !== undefined ? { since } : {}),
          ...(after ? { after } : {}),
          limit: AUDIT_LIST_MAX,
        });
        entries.push(...r.entries);
        if (!r.next) break;
        after = r.next;
      }
      const rows = entries
        .map((e) => ({ e, head: JSON.parse(e.body) as EntryHead }))
        .sort((a, b) => a.head.time.localeCompare(b.head.time));
      if (bool(inv, 'json')) {
        json(
          inv.io.stdout,
          rows.map(({ e, head }) => ({
            ...head,
            sig: e.sig,
            signer: keyFingerprint(Buffer.from(e.key, 'base64')),
          })),
        );
        return Exit.OK;
      }
      table(
        inv.io.stdout,
        ['TIME', 'HOST', 'USER', 'EVENT', 'WHAT', 'RESULT'],
        rows.map(({ head }) => [
          head.time.replace(/\.\d+Z$/, 'Z'),
          head.log.startsWith('relay:') ? 'relay' : (head.log.split(':')[1] ?? head.log),
          String(head['user'] ?? '-'),
          head.type,
          what(head),
          result(head),
        ]),
        '(no audit entries you may see)',
      );
      return Exit.OK;
    });
  },
};

function sinceOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const t = Date.parse(text);
    if (!Number.isFinite(t)) throw new UsageError(`--since: "${text}" is not a time`);
    return t;
  }
  try {
    return Date.now() - parseDuration(text);
  } catch (err) {
    throw new UsageError(`--since: ${(err as Error).message}, or an ISO time`);
  }
}

function what(head: EntryHead): string {
  const h = head as Record<string, unknown>;
  if (typeof h['command'] === 'string') return cut(h['command']);
  if (head.type === 'push' && typeof h['dir'] === 'string')
    return cut(
      `${Array.isArray(h['files']) ? h['files'].length : ((h['files'] as { count?: number } | undefined)?.count ?? 0)} file(s) to ${h['dir']}`,
    );
  if (head.type === 'attach') return String(h['mode'] ?? '');
  if (head.type === 'recording') return cut(String(h['file'] ?? ''));
  if (head.type === 'refusal') return String(h['service'] ?? '');
  if (head.type === 'channel') return cut(`${String(h['service'])} → ${String(h['target'])}`);
  if (typeof h['address'] === 'string') return `from ${h['address']}`;
  if (head.type === 'device-revoked') return String(h['fingerprint'] ?? '');
  return '';
}

function result(head: EntryHead): string {
  const h = head as Record<string, unknown>;
  const exit = h['exit'] as
    { code: number | null; signal: string | null; reason?: string } | undefined;
  if (h['decision'] === 'refused' || head.type === 'refusal')
    return cut(`refused (${String(h['rule'] ?? h['code'] ?? '')})`);
  if (exit)
    return exit.code !== null
      ? `exit ${exit.code}${exit.reason ? ` (${exit.reason})` : ''}`
      : `signal ${exit.signal ?? '?'}${exit.reason ? ` (${exit.reason})` : ''}`;
  if (head.type === 'push' && Array.isArray(h['files'])) {
    const files = h['files'] as Array<{ result?: string }>;
    return `${files.filter((f) => f.result === 'written').length}/${files.length} written`;
  }
  if (typeof h['sha256'] === 'string') return `sha256 ${h['sha256'].slice(0, 16)}…`;
  if (typeof h['code'] === 'string') return String(h['code']);
  return '-';
}

function cut(text: string, max = 60): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

interface LogReport {
  log: string;
  entries: number;
  /** 'chain': the whole log checked; 'signatures': only the entries you may see. */
  checked: 'chain' | 'signatures';
  problem?: ChainProblem;
}

function printReports(inv: Invocation, reports: LogReport[]): number {
  const failed = reports.filter((r) => r.problem);
  if (bool(inv, 'json')) json(inv.io.stdout, { ok: failed.length === 0, logs: reports });
  else {
    for (const r of reports)
      inv.io.stdout.write(
        r.problem
          ? `FAILED  ${r.log}: ${r.problem.message}\n`
          : `ok      ${r.log}: ${r.entries} entries, ${r.checked === 'chain' ? 'signatures and chain' : 'signatures (you see only your own entries of this log)'} verified\n`,
      );
    if (reports.length === 0) inv.io.stdout.write('(no audit entries you may see)\n');
    else
      inv.io.stdout.write(
        failed.length === 0
          ? `${reports.length} log(s) verified\n`
          : `${failed.length} of ${reports.length} log(s) FAILED verification\n`,
      );
  }
  return failed.length === 0 ? Exit.OK : Exit.FAILURE;
}

/** Every log the relay holds for you: chains of your own agents, signatures of the rest. */
async function verifyRelay(inv: Invocation, host: string | undefined): Promise<number> {
  return withSession(inv, async ({ client }) => {
    const mine = new Set(
      (await client.request('devices.list', {})).devices.map((d) => d.fingerprint),
    );
    const me = (await client.request('whoami', {})).user;
    const mySessions = new Set(
      (await client.request('sessions.list', {})).sessions
        .filter((s) => s.owner === me)
        .map((s) => s.sessionId),
    );
    const logs = new Map<string, AuditEntryView[]>();
    let after: { log: string; seq: number } | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const r = await client.request('audit.list', {
        ...(host ? { host } : {}),
        ...(after ? { after } : {}),
        limit: AUDIT_LIST_MAX,
      });
      for (const e of r.entries) {
        const list = logs.get(e.log) ?? [];
        list.push(e);
        logs.set(e.log, list);
      }
      if (!r.next) break;
      after = r.next;
    }
    const reports: LogReport[] = [];
    for (const [log, entries] of logs) {
      const signer = logSigner(log);
      const bad = entries.find((e) => keyFingerprint(Buffer.from(e.key, 'base64')) !== signer);
      if (bad) {
        reports.push({
          log,
          entries: entries.length,
          checked: 'signatures',
          problem: {
            seq: bad.seq,
            kind: 'forged',
            message: `entry ${bad.seq} is signed by another key than the log's (${signer})`,
          },
        });
        continue;
      }
      const key = Buffer.from(entries[0]!.key, 'base64');
      const session = /^agent:([^:]+):/.exec(log)?.[1];
      if (!mine.has(signer) && session !== undefined && mySessions.has(session)) {
        // A log of one of your own agents, signed by a key that is none of your devices.
        reports.push({
          log,
          entries: entries.length,
          checked: 'signatures',
          problem: {
            seq: entries[0]!.seq,
            kind: 'forged',
            message: `a log of your session ${session}, signed by ${signer}, which is not one of your devices (forged)`,
          },
        });
        continue;
      }
      if (mine.has(signer)) {
        const problem = verifyChain(log, entries, key);
        reports.push({
          log,
          entries: entries.length,
          checked: 'chain',
          ...(problem ? { problem } : {}),
        });
      } else {
        // Someone else's agent: only your own entries are shown, so only signatures can be checked.
        let problem: ChainProblem | undefined;
        for (const e of entries) {
          const head = JSON.parse(e.body) as EntryHead;
          problem = verifyChain(log, [e], key, head.seq, head.prev);
          if (problem) break;
        }
        reports.push({
          log,
          entries: entries.length,
          checked: 'signatures',
          ...(problem ? { problem } : {}),
        });
      }
    }
    return printReports(inv, reports);
  });
}

/** An agent's own log file, checked with this home's device key. */
function verifyFile(inv: Invocation, file: string): number {
  let entries: SignedEntry[];
  try {
    entries = readLogFile(file);
  } catch (err) {
    throw new UsageError(`--file ${file}: ${(err as Error).message}`);
  }
  const home = homeOf(inv);
  const key = home.deviceKey().publicKey;
  const fingerprint = keyFingerprint(key);
  const logs = new Map<string, SignedEntry[]>();
  for (const e of entries) {
    let log = '?';
    try {
      log = (JSON.parse(e.body) as EntryHead).log;
    } catch {
      // counted under '?', reported as malformed below
    }
    logs.set(log, [...(logs.get(log) ?? []), e]);
  }
  const reports: LogReport[] = [];
  for (const [log, list] of logs) {
    if (logSigner(log) !== fingerprint)
      throw new UsageError(
        `${file} holds the log of ${logSigner(log)}, not of this device (${fingerprint}); run it on that agent, with its SWITCHBOARD_HOME`,
      );
    const problem = verifyChain(log, list, key);
    reports.push({ log, entries: list.length, checked: 'chain', ...(problem ? { problem } : {}) });
  }
  return printReports(inv, reports);
}
