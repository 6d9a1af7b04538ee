// The `bench --report DIR` output: index.html with SVG charts drawn by vega-lite at report time (self-contained: no script, no network, opens from file://), results.csv and results.json.
import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import type { BenchResult, BenchRun } from './results.js';

/** What a chart line stands for: Switchboard over TLS or plaintext, or OpenSSH (--compare-ssh). */
type Series = 'TLS' | 'plaintext' | 'OpenSSH';

/** Legend order, and one colour per series on every chart so a reader learns them once. */
const SERIES_COLOURS: ReadonlyArray<readonly [Series, string]> = [
  ['TLS', '#1f77b4'],
  ['plaintext', '#ff7f0e'],
  ['OpenSSH', '#2ca02c'],
];
const CHART_WIDTH = 400; // px, the plot area; axes and legend add to it
const CHART_HEIGHT = 220; // px

/** Legends below the plot, drawn as line samples long enough to show a dash. */
const LEGEND = {
  title: null,
  orient: 'bottom',
  symbolType: 'stroke',
  symbolStrokeWidth: 2,
  symbolSize: 400, // px²: a 20 px sample
} as const;

/** Dash pattern per percentile on the response-time chart: p50 solid, p99 dashed. */
const PERCENTILE_DASH: ReadonlyArray<readonly ['p50' | 'p99', number[]]> = [
  ['p50', [1, 0]],
  ['p99', [6, 4]],
];

/** TLS/plaintext ratios of one workload at one client count (null where a divisor is 0). */
export interface TlsCost {
  workload: string;
  clients: number;
  /** TLS p50 / plaintext p50: above 1 TLS answers slower. */
  p50: number | null;
  /** TLS p99 / plaintext p99. */
  p99: number | null;
  /** TLS ops/s / plaintext ops/s: below 1 TLS does less. */
  throughput: number | null;
}

/**
 * The cost of TLS at each workload × client count measured both over TLS and plaintext
 * (Switchboard rows only), in the order workloads first appear and by client count.
 *
 * @example tlsCost(run.results).filter((c) => c.workload === 'echo') // [{ clients: 1, p50: 1.12, … }]
 */
export function tlsCost(results: readonly BenchResult[]): TlsCost[] {
  const costs: TlsCost[] = [];
  for (const [workload, rows] of byWorkload(results)) {
    const own = rows.filter((r) => r.system === 'switchboard');
    for (const clients of clientCounts(own)) {
      const tls = own.find((r) => r.clients === clients && r.tls);
      const plain = own.find((r) => r.clients === clients && !r.tls);
      if (!tls || !plain) continue;
      costs.push({
        workload,
        clients,
        p50: ratio(tls.latencyMs.p50, plain.latencyMs.p50),
        p99: ratio(tls.latencyMs.p99, plain.latencyMs.p99),
        throughput: ratio(tls.opsPerSec, plain.opsPerSec),
      });
    }
  }
  return costs;
}

/**
 * One workload's TLS cost as a sentence, for docs and terminal output (the report tabulates it).
 *
 * @example describeTlsCost(tlsCost(results).filter((c) => c.workload === 'echo'))
 * // 'TLS/plaintext p50: 1.12× at 1 client, 1.05× at 5 clients; p99: …; throughput: 0.95× at 1 client, …'
 */
export function describeTlsCost(costs: readonly TlsCost[]): string {
  if (costs.length === 0) return 'No client count was measured both over TLS and plaintext.';
  const part = (key: 'p50' | 'p99' | 'throughput') =>
    costs
      .map((c) => `${formatRatio(c[key])} at ${c.clients} client${c.clients === 1 ? '' : 's'}`)
      .join(', ');
  return `TLS/plaintext p50: ${part('p50')}; p99: ${part('p99')}; throughput: ${part('throughput')}`;
}

/** The three report files' contents. Loads vega and vega-lite (only here, so the CLI starts without them). */
export async function renderReport(
  run: BenchRun,
): Promise<{ html: string; csv: string; json: string }> {
  const toSvg = await loadChartRenderer();
  const sections: string[] = [];
  const costs = tlsCost(run.results);
  for (const [workload, rows] of byWorkload(run.results)) {
    const latency = await toSvg(latencySpec(workload, rows));
    const throughput = await toSvg(throughputSpec(workload, rows));
    sections.push(
      workloadSection(
        workload,
        run.workloads[workload],
        costs.filter((c) => c.workload === workload),
        [latency, throughput],
      ),
    );
  }
  return { html: page(run, sections), csv: toCsv(run.results), json: JSON.stringify(run, null, 2) };
}

/**
 * Writes index.html, results.csv and results.json into `dir` (created if missing).
 *
 * @returns the three files' absolute paths, index.html first.
 */
export async function writeReport(dir: string, run: BenchRun): Promise<string[]> {
  const { html, csv, json } = await renderReport(run);
  await mkdir(dir, { recursive: true });
  const files: Array<[string, string]> = [
    ['index.html', html],
    ['results.csv', csv],
    ['results.json', json],
  ];
  const paths: string[] = [];
  for (const [name, content] of files) {
    const path = resolve(dir, name);
    await writeFile(path, content);
    paths.push(path);
  }
  return paths;
}

// --- charts -----------------------------------------------------------------------------------

/** Compiles a vega-lite spec to vega and renders it headless to an SVG string. */
type ChartRenderer = (spec: TopLevelSpec) => Promise<string>;

async function loadChartRenderer(): Promise<ChartRenderer> {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  return async (spec) => {
    const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
    try {
      return await view.toSVG();
    } finally {
      view.finalize();
    }
  };
}

/** The TLS column: OpenSSH rows are over SSH, where the setting does not apply. */
function tlsLabel(r: BenchResult): string {
  if (r.system === 'openssh') return '—';
  return r.tls ? 'on' : 'off';
}

function seriesOf(r: BenchResult): Series {
  if (r.system === 'openssh') return 'OpenSSH';
  return r.tls ? 'TLS' : 'plaintext';
}

/** The colour encoding shared by both charts: only the series present, in fixed colours. */
function colourEncoding(rows: readonly BenchResult[]) {
  const present = SERIES_COLOURS.filter(([s]) => rows.some((r) => seriesOf(r) === s));
  return {
    field: 'series',
    type: 'nominal' as const,
    scale: { domain: present.map(([s]) => s), range: present.map(([, c]) => c) },
    legend: LEGEND,
  };
}

/** Clients on an ordinal axis in numeric order, so 1 and 5 stay apart as well as 10 and 20. */
function clientsEncoding(rows: readonly BenchResult[]) {
  return {
    field: 'clients',
    type: 'ordinal' as const,
    scale: { domain: clientCounts(rows) },
    axis: { title: 'clients', labelAngle: 0 },
  };
}

/** Largest over smallest figure on a latency chart past which its scale is logarithmic. */
const LOG_SCALE_RATIO = 100;

function latencySpec(workload: string, rows: readonly BenchResult[]): TopLevelSpec {
  const values = rows.flatMap((r) =>
    PERCENTILE_DASH.map(([percentile]) => ({
      clients: r.clients,
      series: seriesOf(r),
      percentile,
      ms: r.latencyMs[percentile],
    })),
  );
  // Figures a hundred times apart (OpenSSH's exec next to ours, a p99 far above the p50) would
  // flatten the lower lines to the axis: then the scale is logarithmic, and says so.
  const positive = values.map((v) => v.ms).filter((ms) => ms > 0);
  const log =
    positive.length > 0 && Math.max(...positive) / Math.min(...positive) > LOG_SCALE_RATIO;
  return {
    title: `${workload}: response time (p50, p99)`,
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    data: { values: log ? values.filter((v) => v.ms > 0) : values },
    encoding: {
      x: clientsEncoding(rows),
      y: {
        field: 'ms',
        type: 'quantitative',
        ...(log ? { scale: { type: 'log' } } : {}),
        axis: { title: log ? 'response time (ms, log scale)' : 'response time (ms)' },
      },
      color: colourEncoding(rows),
    },
    // Lines and points as two layers, so the dash legend is drawn from the (stroked) lines alone.
    layer: [
      {
        mark: { type: 'line' },
        encoding: {
          strokeDash: {
            field: 'percentile',
            type: 'nominal',
            scale: {
              domain: PERCENTILE_DASH.map(([p]) => p),
              range: PERCENTILE_DASH.map(([, dash]) => dash),
            },
            legend: { ...LEGEND, symbolStrokeColor: '#444' },
          },
        },
      },
      {
        mark: { type: 'point', filled: true, opacity: 1 },
        encoding: { detail: { field: 'percentile' } },
      },
    ],
  };
}

/** Operations per second, or MB/s for workloads where bytes flow (ops/s stays in the table). */
function throughputSpec(workload: string, rows: readonly BenchResult[]): TopLevelSpec {
  const bytes = rows.some((r) => r.mbPerSec !== undefined);
  const unit = bytes ? 'MB/s' : 'operations/s';
  const values = rows.map((r) => ({
    clients: r.clients,
    series: seriesOf(r),
    value: bytes ? (r.mbPerSec ?? 0) : r.opsPerSec,
  }));
  return {
    title: `${workload}: throughput (${unit})`,
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: clientsEncoding(rows),
      y: { field: 'value', type: 'quantitative', axis: { title: unit } },
      color: colourEncoding(rows),
    },
  };
}

// --- HTML -------------------------------------------------------------------------------------

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 2em auto; max-width: 1200px; padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
code { background: #f3f3f3; padding: 0.1em 0.3em; border-radius: 3px; word-break: break-all; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; }
th { background: #f6f6f6; }
td.text, th.text { text-align: left; }
.machine th { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 2em; }
.charts figure { margin: 0; }
.charts svg { max-width: 100%; height: auto; }
.cost { margin-bottom: 1.5em; }
.nowrap { white-space: nowrap; }
tr.errors td { background: #fde2e1; }
tr.saturated td { background: #fff3c4; }
tr.errors.saturated td { background: #fcd9b6; }
.swatch { display: inline-block; width: 1em; height: 1em; vertical-align: middle; border: 1px solid #bbb; }
`;

/**
 * The browser enforces "no network" too: nothing may load but the inline style and SVG, even if a
 * later edit slips a URL in.
 */
const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

function page(run: BenchRun, sections: string[]): string {
  const m = run.machine;
  const machineRows: Array<[string, string]> = [
    ['Host', m.hostname],
    ['CPU', `${m.cpuModel} × ${m.cpus}`],
    ['Memory', `${fixed(m.memGiB, 1)} GiB`],
    ['System', `${m.platform} ${m.kernel} (${m.arch})`],
    ['Node', m.node],
    ['Switchboard', m.switchboard],
    ...(m.openssh !== undefined ? [['OpenSSH', m.openssh] as [string, string]] : []),
    ['Load average at start (1 min)', fixed(m.loadAvgAtStart, 2)],
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchboard bench report — ${esc(run.startedAt)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Switchboard bench report</h1>
<p>Started ${esc(run.startedAt)} against relay <code>${esc(run.relay)}</code> by</p>
<p><code>${esc(run.command)}</code></p>
<p>Raw data: <a href="results.csv">results.csv</a> · <a href="results.json">results.json</a></p>
<h2>Machine</h2>
<table class="machine">
${machineRows.map(([k, v]) => `<tr><th>${esc(k)}</th><td class="text">${esc(v)}</td></tr>`).join('\n')}
</table>
${sections.length > 0 ? sections.join('\n') : '<p>No results.</p>'}
${resultsTable(run.results)}
</body>
</html>
`;
}

function workloadSection(
  workload: string,
  description: string | undefined,
  costs: readonly TlsCost[],
  svgs: string[],
): string {
  return `<section id="workload-${esc(workload)}">
<h2>${esc(workload)}</h2>
${description !== undefined ? `<p>${esc(description)}</p>` : ''}
${costTable(costs)}
<div class="charts">
${svgs.map((svg) => `<figure>${svg}</figure>`).join('\n')}
</div>
</section>`;
}

/** TLS ÷ plaintext per client count: one row per figure, one column per client count. */
function costTable(costs: readonly TlsCost[]): string {
  if (costs.length === 0) return `<p>${esc(describeTlsCost(costs))}</p>`;
  const line = (name: string, key: 'p50' | 'p99' | 'throughput') =>
    `<tr><th class="text">${name}</th>${costs.map((c) => `<td>${formatRatio(c[key])}</td>`).join('')}</tr>`;
  return `<p>Cost of TLS, TLS ÷ plaintext (above 1× TLS answers slower; below 1× it does less):</p>
<table class="cost">
<tr><th class="text">clients</th>${costs.map((c) => `<th>${c.clients}</th>`).join('')}</tr>
${line('p50', 'p50')}
${line('p99', 'p99')}
${line('throughput', 'throughput')}
</table>`;
}

const TABLE_HEAD = [
  'workload',
  'system',
  'clients',
  'TLS',
  'ops',
  'ops/s',
  'p50 ms',
  'p95 ms',
  'p99 ms',
  'max ms',
  'MB/s',
  'errors',
  'relay CPU %',
  'relay RSS MiB',
  'machine CPU %',
  'generator busiest',
];

function resultsTable(results: readonly BenchResult[]): string {
  const rows = results.map((r) => {
    const classes = [r.errors > 0 ? 'errors' : '', r.generator.saturated ? 'saturated' : '']
      .filter(Boolean)
      .join(' ');
    const cells = [
      `<td class="text">${esc(r.workload)}</td>`,
      `<td class="text">${esc(r.system)}</td>`,
      `<td>${r.clients}</td>`,
      `<td class="text">${tlsLabel(r)}</td>`,
      `<td>${fixed(r.ops, 0)}</td>`,
      `<td>${fixed(r.opsPerSec, r.opsPerSec < 100 ? 1 : 0)}</td>`,
      ...[r.latencyMs.p50, r.latencyMs.p95, r.latencyMs.p99, r.latencyMs.max].map(
        (v) => `<td>${ms(v)}</td>`,
      ),
      `<td>${r.mbPerSec !== undefined ? fixed(r.mbPerSec, 2) : '—'}</td>`,
      `<td>${r.errors > 0 ? `<strong>${r.errors}</strong>` : '0'}</td>`,
      `<td>${r.relay ? fixed(r.relay.cpuPercent, 0) : '—'}</td>`,
      `<td>${r.relay ? fixed(r.relay.rssMiB, 0) : '—'}</td>`,
      `<td>${r.machineCpuPercent !== undefined ? fixed(r.machineCpuPercent, 0) : '—'}</td>`,
      `<td class="text nowrap">${fixed(r.generator.busiest * 100, 0)}% (${r.generator.workers} workers)${r.generator.saturated ? ' <strong>saturated</strong>' : ''}</td>`,
    ];
    return `<tr${classes ? ` class="${classes}"` : ''}>${cells.join('')}</tr>`;
  });
  const failed = results.filter((r) => r.errors > 0);
  const samples = failed.flatMap((r) =>
    r.errorSamples.map(
      (s) =>
        `<li>${esc(`${r.workload}, ${r.system}, ${r.clients} clients, TLS ${tlsLabel(r)}`)}: <code>${esc(s)}</code></li>`,
    ),
  );
  return `<h2>All results</h2>
<table class="results">
<tr>${TABLE_HEAD.map((h, i) => `<th${i < 2 ? ' class="text"' : ''}>${esc(h)}</th>`).join('')}</tr>
${rows.join('\n')}
</table>
<p><span class="swatch" style="background:#fde2e1"></span> Rows with errors.
<span class="swatch" style="background:#fff3c4"></span> Rows where the load generator was saturated:
they measure the load generator as much as the relay. “generator busiest” is the event-loop utilisation of the load generator's busiest worker.
“machine CPU %” is the whole machine's CPU use, of all its cores: near 100, the relay, the agents and the clients on it competed for cores.
OpenSSH rows (--compare-ssh) are over SSH, so TLS does not apply to them.</p>
${samples.length > 0 ? `<h3>Error samples</h3>\n<ul>\n${samples.join('\n')}\n</ul>` : ''}`;
}

// --- CSV --------------------------------------------------------------------------------------

const CSV_COLUMNS: ReadonlyArray<readonly [string, (r: BenchResult) => unknown]> = [
  ['workload', (r) => r.workload],
  ['system', (r) => r.system],
  ['clients', (r) => r.clients],
  ['tls', (r) => r.tls],
  ['duration_s', (r) => r.durationS],
  ['ops', (r) => r.ops],
  ['ops_per_sec', (r) => r.opsPerSec],
  ['latency_p50_ms', (r) => r.latencyMs.p50],
  ['latency_p95_ms', (r) => r.latencyMs.p95],
  ['latency_p99_ms', (r) => r.latencyMs.p99],
  ['latency_max_ms', (r) => r.latencyMs.max],
  ['latency_mean_ms', (r) => r.latencyMs.mean],
  ['errors', (r) => r.errors],
  ['error_samples', (r) => r.errorSamples.join(' | ')],
  ['bytes', (r) => r.bytes],
  ['mb_per_sec', (r) => r.mbPerSec],
  ['relay_cpu_percent', (r) => r.relay?.cpuPercent],
  ['relay_rss_mib', (r) => r.relay?.rssMiB],
  ['machine_cpu_percent', (r) => r.machineCpuPercent],
  ['generator_workers', (r) => r.generator.workers],
  ['generator_busiest', (r) => r.generator.busiest],
  ['generator_saturated', (r) => r.generator.saturated],
];

/** One header row and one row per result, RFC 4180 (CRLF line ends; absent values are empty). */
function toCsv(results: readonly BenchResult[]): string {
  const lines = [CSV_COLUMNS.map(([name]) => name).join(',')];
  for (const r of results) {
    lines.push(CSV_COLUMNS.map(([, get]) => csvField(get(r))).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

function csvField(value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// --- helpers ----------------------------------------------------------------------------------

/** Results grouped by workload, in the order workloads first appear. */
function byWorkload(results: readonly BenchResult[]): Map<string, BenchResult[]> {
  const groups = new Map<string, BenchResult[]>();
  for (const r of results) {
    const group = groups.get(r.workload);
    if (group) group.push(r);
    else groups.set(r.workload, [r]);
  }
  return groups;
}

function clientCounts(rows: readonly BenchResult[]): number[] {
  return [...new Set(rows.map((r) => r.clients))].sort((a, b) => a - b);
}

function ratio(a: number, b: number): number | null {
  const q = a / b;
  return Number.isFinite(q) ? q : null;
}

function formatRatio(q: number | null): string {
  return q === null ? 'n/a' : `${q.toFixed(2)}×`;
}

function fixed(n: number, digits: number): string {
  return Number.isFinite(n)
    ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '—';
}

/** Milliseconds with the precision a reader can use: 0.42, 12.3, 1,204. */
function ms(n: number): string {
  return fixed(n, n < 10 ? 2 : n < 1000 ? 1 : 0);
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}
