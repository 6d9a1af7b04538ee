// The alternate-screen tracker behind restoring the local terminal: whole, split and combined sequences.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TerminalModes } from './terminal-modes.js';

const feed = (modes: TerminalModes, ...chunks: string[]) => {
  for (const c of chunks) modes.feed(Buffer.from(c, 'latin1'));
  return modes;
};

describe('TerminalModes', () => {
  it('follows the alternate screen in and out, also when a sequence is split across reads', () => {
    assert.equal(feed(new TerminalModes(), 'a\x1b[?1049hvim').altScreen, true);
    assert.equal(feed(new TerminalModes(), 'x\x1b[?10', '49h').altScreen, true);
    assert.equal(feed(new TerminalModes(), 'x\x1b', '[?1049', 'h').altScreen, true);
    assert.equal(feed(new TerminalModes(), '\x1b[?1049h', 'text', '\x1b[?1049l').altScreen, false);
    assert.equal(feed(new TerminalModes(), '\x1b[?1000;1049h').altScreen, true, 'combined');
    assert.equal(feed(new TerminalModes(), '\x1b[?47h').altScreen, true, 'older mode 47');
    assert.equal(feed(new TerminalModes(), '\x1b[?1000h\x1b[?25l').altScreen, false);
  });

  it('leaves the alternate screen on restore only if the program entered it', () => {
    const inside = feed(new TerminalModes(), '\x1b[?1049h').restoreSequence();
    const outside = new TerminalModes().restoreSequence();
    assert.ok(inside.startsWith('\x1b[?1049l'));
    assert.equal(outside.includes('\x1b[?1049l'), false, 'it would restore a cursor never saved');
    for (const reset of ['\x1b[?1000l', '\x1b[?1006l', '\x1b[?1l', '\x1b[?25h', '\x1b>'])
      assert.ok(outside.includes(reset), JSON.stringify(reset));
  });
});
