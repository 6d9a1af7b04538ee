// `switchboard ping SESSION`: round trips through the end-to-end channel to a session's host.
import { KnownPeers } from '../../client/known-peers.js';
import { openService } from '../../client/open-channel.js';
import {
  PING_DEFAULT_DATA_BYTES,
  PING_HEADER_BYTES,
  PING_MAX_BYTES,
  Pinger,
  type PingReply,
} from '../../client/services/ping.js';
import { ErrorCode } from '../../protocol/errors.js';
import { SESSION_ID_RE } from '../../protocol/messages.js';
import { CLIENT_OPTIONS, JSON_OPTION, bool, numberOption, str, type Command } from '../command.js';
import { connectAuthed } from '../client-context.js';
import { Exit, UsageError } from '../exit-codes.js';
import { FILES } from '../home.js';

/** Bounds on the options, so a typo cannot flood a host or wait forever. */
const MIN_INTERVAL_SEC = 0.01; // s
const MAX_COUNT = 1_000_000;
const MAX_WAIT_SEC = 60; // s
/** What a shell reports for a program killed by SIGPIPE (128 + 13), as `ping | head` gives. */
const EXIT_PIPE_CLOSED = 141;

/** The end-to-end handshake gets at least this long, whatever -W says. */
const MIN_HANDSHAKE_WAIT_MS = 5_000; // ms
/** Codes that mean "you may not", not "no answer": reported as refusals (exit 5), like attach. */
const REFUSALS = new Set<string>([ErrorCode.NOT_ALLOWED, ErrorCode.DENIED]);

export interface PingStats {
  transmitted: number;
  received: number;
  lossPercent: number;
  /** Absent when nothing came back. */
  rttMs?: { min: number; avg: number; max: number; mdev: number };
}

/** The summary `ping` prints: loss, and min/avg/max/mdev of the round trips that came back. */
export function pingStats(replies: readonly PingReply[]): PingStats {
  const rtts = replies.flatMap((r) => (r.rttMs === undefined ? [] : [r.rttMs]));
  const transmitted = replies.length;
  const received = rtts.length;
  const lossPercent = transmitted === 0 ? 0 : ((transmitted - received) / transmitted) * 100;
  if (received === 0) return { transmitted, received, lossPercent };
  const avg = rtts.reduce((a, b) => a + b, 0) / received;
  // mdev as iputils computes it: sqrt(mean(x²) − mean(x)²).
  const meanSq = rtts.reduce((a, b) => a + b * b, 0) / received;
  return {
    transmitted,
    received,
    lossPercent,
    rttMs: {
      min: Math.min(...rtts),
      avg,
      max: Math.max(...rtts),
      mdev: Math.sqrt(Math.max(0, meanSq - avg * avg)),
    },
  };
}

export const ping: Command = {
  name: 'ping',
  summary: "Round trips to a session's host through the end-to-end channel, like ping.",
  usage: 'SESSION [-c COUNT] [-i SECONDS] [-s BYTES] [-W SECONDS] [--json]',
  details:
    'Each ping is sealed end to end: the time covers your connection, the relay and the host.\n' +
    'Runs until Ctrl-C without -c, or until the relay connection drops. Exits 0 if any reply came\n' +
    'back, 1 if none did, 5 if the relay or the host refused (only the owner and the --allow and\n' +
    '--viewers users may ping).',
  positionals: [1, 1],
  options: {
    count: { type: 'string', short: 'c', value: 'COUNT', description: 'stop after COUNT pings' },
    interval: {
      type: 'string',
      short: 'i',
      value: 'SECONDS',
      description: 'wait between pings (default 1)',
    },
    size: {
      type: 'string',
      short: 's',
      value: 'BYTES',
      description: `data bytes per ping (default ${PING_DEFAULT_DATA_BYTES})`,
    },
    wait: {
      type: 'string',
      short: 'W',
      value: 'SECONDS',
      description: 'how long to wait for each reply (default 5)',
    },
    ...JSON_OPTION,
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const sessionId = inv.positionals[0]!;
    if (!SESSION_ID_RE.test(sessionId))
      throw new UsageError(
        `session IDs are 3-64 letters, digits and dashes; "${sessionId}" is not`,
      );
    const count = numberOption(str(inv, 'count'), 'count', 1, MAX_COUNT, true);
    const intervalMs =
      (numberOption(str(inv, 'interval'), 'interval', MIN_INTERVAL_SEC, 3600) ?? 1) * 1000;
    const dataBytes =
      numberOption(str(inv, 'size'), 'size', 0, PING_MAX_BYTES - PING_HEADER_BYTES, true) ??
      PING_DEFAULT_DATA_BYTES;
    const waitMs = (numberOption(str(inv, 'wait'), 'wait', 0.001, MAX_WAIT_SEC) ?? 5) * 1000;
    const json = bool(inv, 'json');
    const out = inv.io.stdout;

    const session = await connectAuthed(inv);
    const { client, home, login, me } = session;
    try {
      const { channel, opened } = await openService(client, {
        service: 'ping',
        target: { kind: 'session', sessionId },
        user: me.user,
        key: home.deviceKey(),
        server: login.server,
        knownPeers: new KnownPeers(home.path(FILES.knownPeers)),
        // A host that does not answer the handshake is reported like one that does not answer.
        timeoutMs: Math.max(waitMs, MIN_HANDSHAKE_WAIT_MS),
      });
      const pinger = new Pinger(channel);
      const host = opened.host;
      const replies: PingReply[] = [];
      const started = performance.now();
      let stop = false;
      let wake: (() => void) | undefined;
      const halt = (): void => {
        stop = true;
        wake?.();
      };
      // `ping … | head -1`: the reader went away; stop quietly, as ping does on SIGPIPE.
      let pipeClosed = false;
      const onOutError = (err: NodeJS.ErrnoException): void => {
        if (err.code !== 'EPIPE') throw err;
        pipeClosed = true;
        halt();
      };
      const write = (text: string): void => {
        if (!pipeClosed) out.write(text);
      };
      process.once('SIGINT', halt);
      out.on('error', onOutError);
      try {
        while (!stop && (count === undefined || replies.length < count)) {
          const sentAt = performance.now();
          const reply = await pinger.ping(dataBytes, waitMs);
          // The host refused before answering anything: a refusal, like attach's, not a loss.
          if (replies.length === 0 && pinger.closed && REFUSALS.has(pinger.closed.code))
            throw pinger.closed;
          if (replies.length === 0 && !json)
            write(
              `PING ${sessionId} (${host.user} on ${opened.hostName}, ${host.fingerprint}) via ${login.server}, ` +
                `end-to-end encrypted: ${dataBytes} data bytes\n`,
            );
          replies.push(reply);
          if (pinger.closed) {
            if (!json) write(`${sessionId}: ${pinger.closed.message} [${pinger.closed.code}]\n`);
            break;
          }
          if (!json)
            write(
              reply.rttMs === undefined
                ? `no reply from ${sessionId}: seq=${reply.seq} (waited ${waitMs / 1000} s)\n`
                : `${reply.bytes} bytes from ${sessionId}: seq=${reply.seq} time=${reply.rttMs.toFixed(3)} ms\n`,
            );
          if (stop || (count !== undefined && replies.length >= count)) break;
          // The pace between pings, as `ping -i` keeps it: not a synchronisation.
          const rest = intervalMs - (performance.now() - sentAt);
          if (rest > 0)
            await new Promise<void>((resolve) => {
              wake = resolve;
              setTimeout(resolve, rest);
            });
        }
      } finally {
        process.removeListener('SIGINT', halt);
      }
      const elapsedMs = Math.round(performance.now() - started);
      await pinger.close().catch(() => undefined);
      const stats = pingStats(replies);
      if (json) {
        const shown = replies.map((r) => ({ ...r, rttMs: r.rttMs ?? null }));
        write(
          `${JSON.stringify({ session: sessionId, host, hostName: opened.hostName, dataBytes, ...stats, timeMs: elapsedMs, replies: shown })}\n`,
        );
      } else {
        write(
          `\n--- ${sessionId} ping statistics ---\n` +
            `${stats.transmitted} pings transmitted, ${stats.received} received, ` +
            `${Number(stats.lossPercent.toFixed(1))}% loss, time ${elapsedMs} ms\n`,
        );
        if (stats.rttMs) {
          const r = stats.rttMs;
          write(
            `rtt min/avg/max/mdev = ${[r.min, r.avg, r.max, r.mdev].map((v) => v.toFixed(3)).join('/')} ms\n`,
          );
        }
      }
      if (pipeClosed) return EXIT_PIPE_CLOSED;
      return stats.received > 0 ? Exit.OK : Exit.FAILURE;
    } finally {
      client.close();
    }
  },
};
