// The bulk-output test file: base64 text lines (a terminal passes them untouched), and their hash.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';

/** Base64 line length, as `base64` writes it. */
const LINE_CHARS = 76; // characters
/** Random bytes encoded per write. */
const BLOCK_BYTES = 57 * 16 * 1024; // bytes: 57 encode to one 76-character line

export interface Payload {
  path: string;
  /** File size. */
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
  return { path, bytes, lines, sha256: hash.digest('hex') };
}

function countNewlines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
