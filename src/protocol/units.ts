// Durations and sizes as people write them (`30s`, `1h30m`, `64MiB`), parsed and printed.

/** The longest duration `parseDuration` accepts: 365 days, in ms. */
export const MAX_DURATION_MS = 365 * 86_400_000;
/** The largest size `parseSize` accepts: 1 PiB, in bytes (well inside a safe integer). */
export const MAX_SIZE_BYTES = 2 ** 50;

const DURATION_UNIT_MS: Record<string, number> = {
  d: 86_400_000,
  h: 3_600_000,
  m: 60_000,
  s: 1000,
  ms: 1,
};
/** Units in the only order a compound duration may use them. */
const DURATION_ORDER = ['d', 'h', 'm', 's', 'ms'];
const DURATION_FORMS =
  'write a whole number and a unit (500ms, 30s, 5m, 1h, 2d), units from largest to smallest ' +
  '(1h30m), or a bare whole number of seconds';

/**
 * A duration in milliseconds: `500ms`, `30s`, `5m`, `1h`, `2d`, compounds from the largest unit
 * to the smallest (`1h30m`, `2m30s`), or a bare whole number meaning seconds (`90`). Zero,
 * negative, fractional and anything over 365 days are errors whose message says what is
 * accepted.
 * @example parseDuration('1h30m') // 5_400_000
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  const bad = (why: string) => new Error(`"${text}" is not a duration (${why}): ${DURATION_FORMS}`);
  if (s === '') throw bad('it is empty');
  let ms: number;
  if (/^\d+$/.test(s)) ms = Number(s) * 1000;
  else {
    const parts = [...s.matchAll(/(\d+)(ms|[dhms])/gy)];
    if (parts.map((p) => p[0]).join('') !== s) throw bad('not a number and a unit');
    ms = 0;
    let last = -1;
    for (const [, digits, unit] of parts) {
      const order = DURATION_ORDER.indexOf(unit ?? '');
      if (order <= last) throw bad(`"${unit}" is out of order or repeated`);
      last = order;
      ms += Number(digits) * (DURATION_UNIT_MS[unit ?? ''] ?? Number.NaN);
    }
  }
  if (!Number.isSafeInteger(ms) || ms > MAX_DURATION_MS) throw bad('more than 365 days');
  if (ms === 0) throw bad('it is zero');
  return ms;
}

const SIZE_UNIT_BYTES: Record<string, number> = {
  B: 1,
  K: 2 ** 10,
  KiB: 2 ** 10,
  M: 2 ** 20,
  MiB: 2 ** 20,
  G: 2 ** 30,
  GiB: 2 ** 30,
  T: 2 ** 40,
  TiB: 2 ** 40,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
};
const SIZE_FORMS =
  'write a whole number of bytes (512), or a whole number and a unit: KiB, MiB, GiB, TiB ' +
  '(or K, M, G, T) are powers of 1024, KB, MB, GB, TB powers of 1000 (64KiB, 10MiB, 1GB)';

/**
 * A size in bytes: a whole number (`512`, or the number 512), or a whole number and a unit
 * (`64KiB`, `10 MiB`, `1GB`); K/KiB, M/MiB, G/GiB, T/TiB are binary, KB, MB, GB, TB decimal.
 * Zero is a size (no output at all); fractions, negatives and more than 1 PiB are errors.
 * @example parseSize('64KiB') // 65_536
 */
export function parseSize(text: string | number): number {
  const bad = (why: string) =>
    new Error(`${JSON.stringify(text)} is not a size (${why}): ${SIZE_FORMS}`);
  let bytes: number;
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw bad('not a whole number of bytes');
    bytes = text;
  } else {
    const m = /^(\d+) ?([A-Za-z]*)$/.exec(text.trim());
    if (!m) throw bad(text.trim() === '' ? 'it is empty' : 'not a whole number and a unit');
    const unit = m[2] ? SIZE_UNIT_BYTES[m[2]] : 1;
    if (unit === undefined) throw bad(`unknown unit "${m[2]}"`);
    bytes = Number(m[1]) * unit;
  }
  if (!Number.isSafeInteger(bytes) || bytes > MAX_SIZE_BYTES) throw bad('more than 1 PiB');
  return bytes;
}

/**
 * A duration for people: `350 ms`, `1.2 s`, `5m 03s`, `10m`, `1h 30m`, `2d 3h` (a zero second
 * part is left out; past a minute, seconds are rounded, past an hour, minutes).
 * @example formatDuration(1234) // '1.2 s'
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)} s`;
  const two = (big: number, bigUnit: string, small: number, smallUnit: string, pad: boolean) =>
    small === 0
      ? `${big}${bigUnit}`
      : `${big}${bigUnit} ${pad ? String(small).padStart(2, '0') : small}${smallUnit}`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return two(Math.floor(s / 60), 'm', s % 60, 's', true);
  const m = Math.round(s / 60);
  if (m < 1440) return two(Math.floor(m / 60), 'h', m % 60, 'm', true);
  const h = Math.round(m / 60);
  return two(Math.floor(h / 24), 'd', h % 24, 'h', false);
}

const BINARY_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/**
 * A byte count for people: `512 B`, `1.5 KiB`, `4.0 MiB` (binary units, one decimal).
 * @example formatBytes(4 * 2 ** 20) // '4.0 MiB'
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n < 0) return `-${formatBytes(-n)}`;
  if (n < 1024) return `${Math.round(n)} B`;
  let value = n / 1024;
  let i = 0;
  // Move up a unit when rounding to one decimal would print 1024.0.
  while (value >= 1023.95 && i < BINARY_UNITS.length - 1) {
    value /= 1024;
    i++;
  }
  return `${value.toFixed(1)} ${BINARY_UNITS[i]}`;
}
