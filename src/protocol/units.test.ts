// Durations and sizes: what parses to what, what is refused with the accepted forms named.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_DURATION_MS, formatBytes, formatDuration, parseDuration, parseSize } from './units.js';

test('parseDuration reads each unit, compounds and bare seconds', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('2d'), 172_800_000);
  assert.equal(parseDuration('90'), 90_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('1d2h3m4s5ms'), 93_784_005);
  assert.equal(parseDuration(' 10m '), 600_000);
  assert.equal(parseDuration('365d'), MAX_DURATION_MS);
});

test('parseDuration refuses empty, zero, negative, fractional, unknown units and disorder', () => {
  for (const text of [
    '',
    '  ',
    '0',
    '0s',
    '-5s',
    '1.5s',
    '1.5',
    '10x',
    's',
    '5 m',
    '1m1h',
    '1h1h',
    '30sec',
    '1e3',
    '366d',
    '99999999999999999999',
  ]) {
    assert.throws(
      () => parseDuration(text),
      /is not a duration .*500ms, 30s, 5m, 1h, 2d/,
      `"${text}" should be refused`,
    );
  }
});

test('parseSize reads bytes, binary and decimal units', () => {
  assert.equal(parseSize(512), 512);
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('0'), 0);
  assert.equal(parseSize('64KiB'), 65_536);
  assert.equal(parseSize('64K'), 65_536);
  assert.equal(parseSize('10MiB'), 10 * 2 ** 20);
  assert.equal(parseSize('10 MiB'), 10 * 2 ** 20);
  assert.equal(parseSize('1GiB'), 2 ** 30);
  assert.equal(parseSize('1G'), 2 ** 30);
  assert.equal(parseSize('2KB'), 2000);
  assert.equal(parseSize('3MB'), 3_000_000);
  assert.equal(parseSize('1GB'), 1_000_000_000);
  assert.equal(parseSize('7B'), 7);
});

test('parseSize refuses garbage with the accepted forms', () => {
  for (const value of [
    '',
    'lots',
    '1.5MiB',
    '-1',
    '10 mib',
    '10Mb',
    '10XB',
    '2PiB',
    -1,
    1.5,
    NaN,
  ]) {
    assert.throws(
      () => parseSize(value),
      /is not a size .*KiB, MiB, GiB/,
      `${JSON.stringify(value)} should be refused`,
    );
  }
  assert.throws(() => parseSize('2048TiB'), /more than 1 PiB/);
});

test('formatDuration picks a readable unit', () => {
  assert.equal(formatDuration(350), '350 ms');
  assert.equal(formatDuration(0), '0 ms');
  assert.equal(formatDuration(1234), '1.2 s');
  assert.equal(formatDuration(30_000), '30.0 s');
  assert.equal(formatDuration(59_990), '1m');
  assert.equal(formatDuration(600_000), '10m');
  assert.equal(formatDuration(3_600_000), '1h');
  assert.equal(formatDuration(303_000), '5m 03s');
  assert.equal(formatDuration(5_400_000), '1h 30m');
  assert.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000), '3d 4h');
  assert.equal(formatDuration(-1500), '-1.5 s');
});

test('formatBytes uses binary units with one decimal', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(4 * 2 ** 20), '4.0 MiB');
  assert.equal(formatBytes(2 ** 20 - 1), '1.0 MiB');
  assert.equal(formatBytes(64 * 2 ** 30), '64.0 GiB');
});
