// The bench report from a synthetic run: TLS cost, charts (marks, colours, axes), HTML safety, CSV and JSON, and index.html opened offline in a real Chromium.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { describeTlsCost, renderReport, tlsCost, writeReport } from './report.js';
import type { BenchResult, BenchRun } from './results.js';

/** Debian's chromium, as test/crypto-browser.test.ts launches it. Missing is a failure, never a skip. */
const CHROMIUM = '/usr/bin/chromium';
const LAUNCH_TIMEOUT = 15_000; // ms
const BROWSER_TEST_TIMEOUT = 60_000; // ms

/** The report's fixed series colours (report.ts SERIES_COLOURS). */
const COLOURS = { TLS: '#1f77b4', plaintext: '#ff7f0e', OpenSSH: '#2ca02c' } as const;
/** The namespace URIs vega writes on each <svg>: the only URLs allowed in the page. */
const NAMESPACES = new Set(['http://www.w3.org/2000/svg', 'http://www.w3.org/1999/xlink']);
const COMMAND = 'switchboard bench --report "out/<script>alert(1)</script>&\'x\'"';
const EVIL_SAMPLE = '<img src=x onerror=alert(1)>';
const CSV_SAMPLE = 'peer said "bye", then\nclosed';

function row(
  workload: string,
  clients: number,
  tls: boolean,
  extra: Partial<BenchResult> = {},
): BenchResult {
  // Distinct figures per row so a chart point can be traced to its row; short decimals, as vega
  // writes them in a point's label.
  const p50 = (workload.length + clients) * (tls ? 1.25 : 1);
  const opsPerSec = Math.round((10_000 * clients) / p50) / 10;
  return {
    workload,
    system: 'switchboard',
    clients,
    tls,
    durationS: 1,
    ops: Math.round(opsPerSec),
    opsPerSec,
    latencyMs: { p50, p95: p50 * 1.5, p99: p50 * 2, max: p50 * 4, mean: p50 * 1.1 },
    errors: 0,
    errorSamples: [],
    relay: { cpuPercent: 10 * clients, rssMiB: 80 },
    generator: { workers: 2, busiest: 0.2 * clients, saturated: false },
    ...extra,
  };
}

const CLIENTS = [1, 2, 5];
const results: BenchResult[] = [
  ...CLIENTS.flatMap((c) => [row('login', c, true), row('login', c, false)]),
  // OpenSSH first among echo's 1-client rows, and with tls set: tlsCost must still skip it.
  row('echo', 1, true, {
    system: 'openssh',
    latencyMs: { p50: 9, p95: 11, p99: 13, max: 20, mean: 9.5 },
  }),
  ...CLIENTS.flatMap((c) => [row('echo', c, true), row('echo', c, false)]),
  ...CLIENTS.flatMap((c) => [
    row('stream', c, true, { bytes: 1e8 * c, mbPerSec: 90 * c }),
    row('stream', c, false, { bytes: 1e8 * c, mbPerSec: 100 * c }),
  ]),
];
const errorRow = results.find((r) => r.workload === 'login' && r.clients === 5 && r.tls)!;
Object.assign(errorRow, { errors: 3, errorSamples: [EVIL_SAMPLE, CSV_SAMPLE] });
const saturatedRow = results.find((r) => r.workload === 'stream' && r.clients === 5 && !r.tls)!;
saturatedRow.generator = { workers: 2, busiest: 0.99, saturated: true };

const run: BenchRun = {
  results,
  machine: {
    hostname: 'bench-host-7',
    platform: 'linux',
    kernel: '6.1.0-test',
    arch: 'x64',
    cpuModel: 'Test CPU 9000',
    cpus: 8,
    memGiB: 15.6,
    node: 'v20.19.0',
    switchboard: '0.1.0-test',
    openssh: 'OpenSSH_9.2p1',
    loadAvgAtStart: 0.37,
  },
  command: COMMAND,
  startedAt: '2025-01-02T03:04:05.000Z',
  relay: 'own',
  workloads: {
    login: 'connect, TLS handshake, authenticate',
    echo: 'one keystroke & its echo <round trip>',
    stream: 'terminal output, 1 MiB chunks',
  },
};
const WORKLOADS = ['login', 'echo', 'stream'];

interface Mark {
  label: string;
  attrs: Record<string, string>;
}

/** The <path> elements vega drew for marks of one aria role ('line mark', 'point'). */
function marks(svg: string, role: string): Mark[] {
  const found: Mark[] = [];
  for (const [, body] of svg.matchAll(/<path\b([^>]*)>/g)) {
    const attrs = Object.fromEntries(
      [...body!.matchAll(/([\w:-]+)="([^"]*)"/g)].map(([, k, v]) => [k!, v!]),
    );
    if (attrs['aria-roledescription'] === role) found.push({ label: attrs['aria-label']!, attrs });
  }
  return found;
}

function seriesOf(r: BenchResult): keyof typeof COLOURS {
  return r.system === 'openssh' ? 'OpenSSH' : r.tls ? 'TLS' : 'plaintext';
}

/** RFC 4180: quoted fields may hold commas, doubled quotes and line breaks; records end in CRLF. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"' && field === '') {
      let quoted = '';
      let j = i + 1;
      for (;;) {
        const k = text.indexOf('"', j);
        assert.ok(k >= 0, 'unterminated quoted field');
        quoted += text.slice(j, k);
        if (text[k + 1] !== '"') {
          i = k + 1;
          break;
        }
        quoted += '"';
        j = k + 2;
      }
      field = quoted;
      assert.ok([',', '\r', undefined].includes(text[i]), `text after a quoted field at ${i}`);
      continue;
    }
    if (ch === ',') {
      record.push(field);
      field = '';
      i += 1;
    } else if (ch === '\r' && text[i + 1] === '\n') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      i += 2;
    } else {
      assert.ok(ch !== '"' && ch !== '\n' && ch !== '\r', `bare ${JSON.stringify(ch)} at ${i}`);
      field += ch;
      i += 1;
    }
  }
  assert.equal(field, '', 'the last record ends in CRLF');
  assert.equal(record.length, 0, 'the last record ends in CRLF');
  return records;
}

/** A module resolve hook that refuses vega and vega-lite, for a child process to register. */
const REFUSE_VEGA = `data:text/javascript,${encodeURIComponent(
  `export async function resolve(specifier, context, next) {
    if (/^vega(-lite)?$/.test(specifier)) throw new Error('loaded ' + specifier);
    return next(specifier, context);
  }`,
)}`;

/** Runs `body` as an ES module in a child Node with vega refused; resolves to its stdout. */
async function withoutVega(body: string): Promise<string> {
  const script = `import { register } from 'node:module';
register(${JSON.stringify(REFUSE_VEGA)});
const report = await import(${JSON.stringify(new URL('./report.js', import.meta.url).href)});
${body}`;
  const { stdout } = await promisify(execFile)(process.execPath, [
    '--input-type=module',
    '-e',
    script,
  ]);
  return stdout;
}

describe('loading', () => {
  it('imports report.js without loading vega, and loads it to render', async () => {
    assert.equal(
      await withoutVega('process.stdout.write(typeof report.renderReport);'),
      'function',
    );
    // The hook does refuse vega: rendering in the same child fails on it.
    const rendering = `await report.renderReport(${JSON.stringify(run)}).then(
  () => process.stdout.write('rendered'),
  (e) => process.stdout.write(e.message),
);`;
    assert.match(await withoutVega(rendering), /^loaded vega(-lite)?$/);
  });
});

describe('tlsCost', () => {
  it('gives TLS/plaintext ratios per workload and client count, Switchboard rows only', () => {
    const costs = tlsCost(results);
    assert.deepEqual(
      costs.map((c) => [c.workload, c.clients]),
      WORKLOADS.flatMap((w) => CLIENTS.map((c) => [w, c])),
    );
    for (const c of costs) {
      const tls = row(c.workload, c.clients, true);
      const plain = row(c.workload, c.clients, false);
      assert.equal(c.p50, tls.latencyMs.p50 / plain.latencyMs.p50);
      assert.equal(c.p99, tls.latencyMs.p99 / plain.latencyMs.p99);
      assert.equal(c.throughput, tls.opsPerSec / plain.opsPerSec);
    }
  });

  it('skips client counts without both settings and gives null for a zero divisor', () => {
    const only = [row('chat', 1, true), row('chat', 2, true), row('chat', 2, false)];
    only[2]!.opsPerSec = 0;
    assert.deepEqual(tlsCost(only), [
      { workload: 'chat', clients: 2, p50: 1.25, p99: 1.25, throughput: null },
    ]);
  });

  it('describes one workload as a sentence', () => {
    const echo = tlsCost(results).filter((c) => c.workload === 'echo');
    assert.equal(
      describeTlsCost(echo),
      'TLS/plaintext p50: 1.25× at 1 client, 1.25× at 2 clients, 1.25× at 5 clients; ' +
        'p99: 1.25× at 1 client, 1.25× at 2 clients, 1.25× at 5 clients; ' +
        'throughput: 0.80× at 1 client, 0.80× at 2 clients, 0.80× at 5 clients',
    );
    assert.match(describeTlsCost([]), /No client count/);
  });
});

describe('renderReport', () => {
  let html: string;
  let csv: string;
  let json: string;
  let svgs: string[];

  before(async () => {
    ({ html, csv, json } = await renderReport(run));
    svgs = [...html.matchAll(/<svg\b[\s\S]*?<\/svg>/g)].map((m) => m[0]);
  });

  /** The one SVG whose title starts with `title`. */
  function chart(title: string): string {
    const found = svgs.filter((s) => s.includes(`>${title}`));
    assert.equal(found.length, 1, `one chart titled ${title}`);
    return found[0]!;
  }

  it('draws two charts per workload', () => {
    assert.equal(svgs.length, 2 * WORKLOADS.length);
    for (const w of WORKLOADS) {
      chart(`${w}: response time`);
      chart(`${w}: throughput`);
    }
  });

  it('draws p50 and p99 against clients per series, in fixed colours and dashes', () => {
    for (const w of WORKLOADS) {
      const svg = chart(`${w}: response time`);
      const rows = results.filter((r) => r.workload === w);
      const series = new Set(rows.map(seriesOf));
      assert.ok(svg.includes('>clients</text>') && svg.includes('>response time (ms)</text>'));
      assert.ok(
        svg.includes("X-axis titled 'clients' for a discrete scale with 3 values: 1, 2, 5"),
      );
      const points = marks(svg, 'point').map((m) => m.label);
      const expected = rows.flatMap((r) =>
        (['p50', 'p99'] as const).map(
          (p) =>
            `clients: ${r.clients}; ms: ${r.latencyMs[p]}; series: ${seriesOf(r)}; percentile: ${p}`,
        ),
      );
      assert.deepEqual(points.sort(), expected.sort());
      const lines = marks(svg, 'line mark');
      assert.equal(lines.length, series.size * 2);
      for (const { label, attrs } of lines) {
        const s = /series: (\w+)/.exec(label)![1] as keyof typeof COLOURS;
        assert.equal(attrs.stroke, COLOURS[s], label);
        assert.equal(attrs['stroke-dasharray'], label.endsWith('p99') ? '6,4' : '1,0', label);
      }
    }
  });

  it('draws throughput against clients per series: ops/s, or MB/s where bytes flow', () => {
    for (const w of WORKLOADS) {
      const svg = chart(`${w}: throughput`);
      const rows = results.filter((r) => r.workload === w);
      const unit = w === 'stream' ? 'MB/s' : 'operations/s';
      assert.ok(svg.includes('>clients</text>') && svg.includes(`>${unit}</text>`), w);
      const points = marks(svg, 'point').map((m) => m.label);
      const expected = rows.map(
        (r) =>
          `clients: ${r.clients}; value: ${w === 'stream' ? r.mbPerSec : r.opsPerSec}; series: ${seriesOf(r)}`,
      );
      assert.deepEqual(points.sort(), expected.sort());
      const lines = marks(svg, 'line mark');
      assert.equal(lines.length, new Set(rows.map(seriesOf)).size);
      for (const { label, attrs } of lines) {
        const s = /series: (\w+)/.exec(label)![1] as keyof typeof COLOURS;
        assert.equal(attrs.stroke, COLOURS[s], label);
      }
    }
  });

  it('has no script and loads nothing: the only URLs are the SVG namespaces', () => {
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /\s(src|href|xlink:href|action|srcset)\s*=\s*["']?\s*(\w+:|\/\/)/i);
    assert.doesNotMatch(html, /url\(|@import/i);
    const urls = html.match(/\b[a-z][\w+.-]*:\/\/[^\s"'<>]*/gi) ?? [];
    assert.ok(urls.length > 0 && urls.every((u) => NAMESPACES.has(u)), urls.join(' '));
    assert.match(
      html,
      /<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;/,
    );
  });

  it('escapes the command, descriptions and error samples', () => {
    assert.ok(!html.includes(COMMAND) && !html.includes(EVIL_SAMPLE));
    assert.ok(
      html.includes(
        '<code>switchboard bench --report &quot;out/&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#39;x&#39;&quot;</code>',
      ),
    );
    assert.ok(html.includes('<code>&lt;img src=x onerror=alert(1)&gt;</code>'));
    assert.ok(html.includes('one keystroke &amp; its echo &lt;round trip&gt;'));
  });

  it('names the run, the relay, the machine and the versions, and links the raw data', () => {
    for (const text of [
      run.startedAt,
      '<code>own</code>',
      'bench-host-7',
      'Test CPU 9000 × 8',
      '15.6 GiB',
      'linux 6.1.0-test (x64)',
      'v20.19.0',
      '0.1.0-test',
      'OpenSSH_9.2p1',
      '0.37',
      '<a href="results.csv">',
      '<a href="results.json">',
    ]) {
      assert.ok(html.includes(text), text);
    }
  });

  it('tabulates the TLS cost in each workload section, from Switchboard rows only', () => {
    const ratio = (a: number, b: number) => `<td>${(a / b).toFixed(2)}×</td>`;
    for (const w of WORKLOADS) {
      const start = html.indexOf(`<section id="workload-${w}">`);
      const section = html.slice(start, html.indexOf('</section>', start));
      const pairs = CLIENTS.map((c) => [row(w, c, true), row(w, c, false)] as const);
      const expected = [
        `<tr><th class="text">clients</th>${CLIENTS.map((c) => `<th>${c}</th>`).join('')}</tr>`,
        `<tr><th class="text">p50</th>${pairs.map(([t, p]) => ratio(t.latencyMs.p50, p.latencyMs.p50)).join('')}</tr>`,
        `<tr><th class="text">p99</th>${pairs.map(([t, p]) => ratio(t.latencyMs.p99, p.latencyMs.p99)).join('')}</tr>`,
        `<tr><th class="text">throughput</th>${pairs.map(([t, p]) => ratio(t.opsPerSec, p.opsPerSec)).join('')}</tr>`,
      ];
      for (const line of expected) assert.ok(section.includes(line), `${w}: ${line}`);
    }
  });

  it('tabulates every result and marks rows with errors and a saturated generator', () => {
    const table = html.slice(html.indexOf('<table class="results">'));
    const trs = [...table.slice(0, table.indexOf('</table>')).matchAll(/<tr\b[^>]*>/g)];
    assert.equal(trs.length, results.length + 1);
    const marked = trs.map((m) => /class="([^"]*)"/.exec(m[0])?.[1]).filter(Boolean);
    assert.deepEqual(marked, ['errors', 'saturated']);
    const errorTr = trs.findIndex((m) => m[0].includes('errors')) - 1;
    const saturatedTr = trs.findIndex((m) => m[0].includes('saturated')) - 1;
    assert.equal(results[errorTr], errorRow);
    assert.equal(results[saturatedTr], saturatedRow);
    assert.match(html, /measure the load generator as\s+much as the relay/);
  });

  it('writes CSV with one header and one RFC 4180 row per result', () => {
    assert.ok(csv.includes('"<img src=x onerror=alert(1)> | peer said ""bye"", then\nclosed"'));
    const [header, ...rows] = parseCsv(csv);
    assert.deepEqual(header, [
      'workload',
      'system',
      'clients',
      'tls',
      'duration_s',
      'ops',
      'ops_per_sec',
      'latency_p50_ms',
      'latency_p95_ms',
      'latency_p99_ms',
      'latency_max_ms',
      'latency_mean_ms',
      'errors',
      'error_samples',
      'bytes',
      'mb_per_sec',
      'relay_cpu_percent',
      'relay_rss_mib',
      'machine_cpu_percent',
      'generator_workers',
      'generator_busiest',
      'generator_saturated',
    ]);
    assert.equal(rows.length, results.length);
    rows.forEach((fields, i) => {
      const r = results[i]!;
      const get = (name: string) => fields[header!.indexOf(name)];
      assert.equal(fields.length, header!.length);
      assert.deepEqual(
        [get('workload'), get('system'), get('clients'), get('tls'), get('latency_p50_ms')],
        [r.workload, r.system, String(r.clients), String(r.tls), String(r.latencyMs.p50)],
      );
      assert.equal(Number(get('ops_per_sec')), r.opsPerSec);
      assert.equal(get('error_samples'), r.errorSamples.join(' | '));
      assert.equal(get('mb_per_sec'), r.mbPerSec === undefined ? '' : String(r.mbPerSec));
      assert.equal(get('generator_saturated'), String(r.generator.saturated));
    });
  });

  it('writes the run as JSON', () => {
    assert.deepEqual(JSON.parse(json), run);
  });
});

describe('latency scale', () => {
  it('turns logarithmic when figures are a hundred times apart, and says so', async () => {
    const axisTitles = async (rows: BenchResult[]): Promise<string> => {
      const { html } = await renderReport({ ...run, results: rows, workloads: { exec: 'x' } });
      return [...new Set([...html.matchAll(/response time \(ms[^)<]*\)/g)].map((m) => m[0]))].join(
        '|',
      );
    };
    const close = [row('exec', 1, true), row('exec', 2, true)];
    assert.equal(await axisTitles(close), 'response time (ms)');
    const far = [
      ...close,
      row('exec', 1, true, {
        system: 'openssh',
        latencyMs: { p50: 150, p95: 900, p99: 5000, max: 6000, mean: 300 },
      }),
    ];
    assert.equal(await axisTitles(far), 'response time (ms, log scale)');
  });
});

describe('writeReport opened in Chromium from file://', () => {
  let dir: string;
  let browser: Browser | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-report-'));
  });

  after(async () => {
    await browser?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'writes the three files, and the page renders its charts with no request off file://',
    { timeout: BROWSER_TEST_TIMEOUT },
    async () => {
      const out = join(dir, 'nested', 'report');
      // Given relatively, returned absolute.
      const paths = await writeReport(relative(process.cwd(), out), run);
      assert.deepEqual(paths, [
        join(out, 'index.html'),
        join(out, 'results.csv'),
        join(out, 'results.json'),
      ]);
      const rendered = await renderReport(run);
      assert.equal(await readFile(paths[0]!, 'utf8'), rendered.html);
      assert.equal(await readFile(paths[1]!, 'utf8'), rendered.csv);
      assert.equal(await readFile(paths[2]!, 'utf8'), rendered.json);

      browser = await chromium.launch({
        executablePath: CHROMIUM,
        // CI runs as root, where Chromium refuses to start with its sandbox.
        args: ['--no-sandbox'],
        timeout: LAUNCH_TIMEOUT,
      });
      const page = await browser.newPage();
      const offFile: string[] = [];
      const consoleErrors: string[] = [];
      page.on('request', (req) => {
        if (!req.url().startsWith('file:')) offFile.push(req.url());
      });
      // A resource blocked by the page's CSP makes no request but logs an error.
      page.on('console', (msg) => {
        if (msg.type() === 'error') consoleErrors.push(msg.text());
      });
      await page.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith('file:')) return route.continue();
        offFile.push(url);
        return route.abort();
      });
      await page.goto(pathToFileURL(paths[0]!).href, { waitUntil: 'load' });

      assert.deepEqual(offFile, []);
      assert.deepEqual(consoleErrors, []);
      assert.equal(await page.title(), `Switchboard bench report — ${run.startedAt}`);
      const boxes = (await page.evaluate(
        `[...document.querySelectorAll('svg')].map((s) => {
          const r = s.getBoundingClientRect();
          return [r.width, r.height];
        })`,
      )) as Array<[number, number]>;
      assert.equal(boxes.length, 2 * WORKLOADS.length);
      for (const [w, h] of boxes) assert.ok(w > 100 && h > 100, `svg box ${w}×${h}`);
    },
  );
});
