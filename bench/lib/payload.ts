// Bulk output for the terminal benchmark: a command, the exact bytes it prints, and their hash.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { round } from '../../src/bench/stats.js';

/** Base64 line length, as `base64` writes it. */
const LINE_CHARS = 76; // characters
/** Random bytes encoded per write. */
const BLOCK_BYTES = 57 * 16 * 1024; // bytes: 57 encode to one 76-character line

export interface Payload {
  /** What the remote shell runs, e.g. `cat 'FILE'` or `seq 1 N`. */
  command: string;
  /** Short name for reports ("cat 64 MiB"). */
  label: string;
  /** Bytes the command prints. */
  bytes: number;
  lines: number;
  /** SHA-256 (hex) of the file. */
  sha256: string;
}

/** Writes exactly `bytes` bytes of base64 lines (text, so a terminal passes it untouched). */
export function writePayload(path: string, bytes: number): Payload {
  const fd = openSync(path, 'w', 0o644);
  const hash = createHash('sha256');
  let written = 0;
  let lines = 0;
  try {
    while (written < bytes) {
      const b64 = randomBytes(BLOCK_BYTES).toString('base64');
      let text = '';
      for (let i = 0; i < b64.length; i += LINE_CHARS) text += `${b64.slice(i, i + LINE_CHARS)}\n`;
      if (written + text.length > bytes) text = `${text.slice(0, bytes - written - 1)}\n`;
      writeSync(fd, text, null, 'latin1');
      hash.update(text, 'latin1');
      lines += countNewlines(text);
      written += text.length;
    }
  } finally {
    closeSync(fd);
  }
  const label = `cat ${round(bytes / 2 ** 20, 1)} MiB`;
  return { command: `cat '${path}'`, label, bytes, lines, sha256: hash.digest('hex') };
}

/**
 * `seq 1 N`: short lines, each a line feed and a scroll for a terminal emulator, so it costs more
 * per byte than long lines do.
 */
export function seqPayload(n: number): Payload {
  const hash = createHash('sha256');
  let bytes = 0;
  const BATCH = 10_000;
  for (let from = 1; from <= n; from += BATCH) {
    let text = '';
    for (let i = from; i < Math.min(n + 1, from + BATCH); i++) text += `${i}\n`;
    hash.update(text, 'latin1');
    bytes += text.length;
  }
  const label = `seq 1 ${n} (${round(bytes / 2 ** 20, 1)} MiB)`;
  return { command: `seq 1 ${n}`, label, bytes, lines: n, sha256: hash.digest('hex') };
}

function countNewlines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
