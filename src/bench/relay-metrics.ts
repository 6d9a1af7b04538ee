// The CPU and memory of a relay the bench did not start, from its GET /metrics (Prometheus text):
// open to loopback clients, and to others with `serve --metrics-token`. Over TLS the certificate
// is checked against the pin before the request (and its token) is sent.
import { request } from 'node:http';
import { join } from 'node:path';
import { KnownServers } from '../client/known-servers.js';
import { connectPlain } from '../client/plain-connect.js';
import { connectTrusted, parseServerAddress } from '../client/tls-connect.js';
import type { Transport } from './workload.js';

/** Time a scrape may take. */
const SCRAPE_TIMEOUT_MS = 5_000; // ms
/** The most of a metrics page read. */
const MAX_PAGE_BYTES = 1 << 20; // bytes

/** Cumulative CPU seconds and resident memory of the relay process, as it reports them. */
export interface RelayReading {
  cpuSeconds: number;
  rssBytes: number;
  /** When it was read (Date.now()): the middle of the scrape for /metrics. */
  at: number;
}

/** One metric's value from a Prometheus text page; undefined if absent. */
export function metricValue(page: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(page);
  const value = m ? Number(m[1]) : NaN;
  return Number.isFinite(value) ? value : undefined;
}

/** Reads the relay's /metrics; undefined when it cannot (not loopback without a token, refused…). */
export async function readRelayMetrics(
  transport: Transport,
  dir: string,
  token: string | undefined,
): Promise<RelayReading | undefined> {
  try {
    const address = parseServerAddress(transport.server);
    const socket = transport.tls
      ? await connectTrusted(address, {
          knownServers: new KnownServers(join(dir, 'metrics_known_servers.json')),
          fingerprint: transport.fingerprint,
        })
      : await connectPlain(address, { insecure: transport.insecure });
    const asked = Date.now();
    const page = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          createConnection: () => socket,
          host: address.host,
          path: '/metrics',
          headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
          timeout: SCRAPE_TIMEOUT_MS,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (s: string) => {
            body += s;
            if (body.length > MAX_PAGE_BYTES) req.destroy(new Error('the metrics page is too big'));
          });
          res.on('end', () =>
            res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`)),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer')));
      req.on('error', reject);
      req.end();
    });
    socket.destroy();
    const cpuSeconds = metricValue(page, 'process_cpu_seconds_total');
    const rssBytes = metricValue(page, 'process_resident_memory_bytes');
    if (cpuSeconds === undefined || rssBytes === undefined) return undefined;
    return { cpuSeconds, rssBytes, at: (asked + Date.now()) / 2 };
  } catch {
    return undefined;
  }
}
