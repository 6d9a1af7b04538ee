// The ssh-style escape scanner: commands only right after Enter, "~~" for a literal tilde, split input.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EscapeScanner, type Scanned } from './escape.js';

function run(keys: string, ...chunks: string[]): { data: string; commands: string[] } {
  const scanner = new EscapeScanner(keys);
  const parts: Scanned[] = chunks.flatMap((c) => scanner.feed(Buffer.from(c)));
  return {
    data: parts.map((p) => (p.type === 'data' ? p.data.toString() : '')).join(''),
    commands: parts.flatMap((p) => (p.type === 'command' ? [p.key] : [])),
  };
}

describe('EscapeScanner', () => {
  it('sees "~." at the start of input and after Enter', () => {
    assert.deepEqual(run('.', '~.'), { data: '', commands: ['.'] });
    assert.deepEqual(run('.', 'ls\r~.'), { data: 'ls\r', commands: ['.'] });
  });

  it('passes a tilde in the middle of a line through', () => {
    assert.deepEqual(run('.', 'cd ~.'), { data: 'cd ~.', commands: [] });
  });

  it('turns "~~" into one tilde and "~x" into both characters', () => {
    assert.deepEqual(run('.', '~~/bin\r'), { data: '~/bin\r', commands: [] });
    assert.deepEqual(run('.', '~x'), { data: '~x', commands: [] });
  });

  it('works when the escape is split across reads', () => {
    assert.deepEqual(run('.', 'echo\r', '~', '.'), { data: 'echo\r', commands: ['.'] });
  });

  it('recognises only the configured keys', () => {
    assert.deepEqual(run('l', '~.~l'), { data: '~.~l', commands: [] });
    assert.deepEqual(run('l', '\r~l'), { data: '\r', commands: ['l'] });
  });

  it('never takes pasted text for an escape (bracketed paste), also when the markers are split', () => {
    const paste = '\x1b[200~echo one\r~.\recho two\x1b[201~';
    assert.deepEqual(run('.', 'ls\r', paste), { data: `ls\r${paste}`, commands: [] });
    assert.deepEqual(run('.', '\x1b[20', '0~a\r~', '.\x1b[2', '01~'), {
      data: '\x1b[200~a\r~.\x1b[201~',
      commands: [],
    });
    // After the paste, escapes work again from the next line.
    assert.deepEqual(run('.', paste, '\r~.'), { data: `${paste}\r`, commands: ['.'] });
  });
});
