// The benchmark's prompt probe: it must see the first prompt however it arrives, and nothing else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NOTICE_PREFIX } from '../../src/cli/terminal-io.js';
import { Screen } from '../../src/host/screen.js';
import { OutputWatch } from './output-watch.js';
import { PROMPT_RE } from './terminal-probes.js';

/** A status line as `switchboard attach` prints it (the banner after the first repaint). */
const banner = `\r\n${NOTICE_PREFIX}attached to s1 on host (alice, SHA256:x) read-write · ~. detaches\r\n`;

/** The host's repaint of a screen on which the shell has already printed its prompt. */
async function repaintWithPrompt(): Promise<Buffer> {
  const screen = new Screen(80, 24);
  const shown = Buffer.from('welcome\r\n$ ');
  screen.write(shown);
  const snap = await screen.snapshot();
  screen.dispose();
  assert.ok(snap, 'the emulator answered');
  assert.equal(snap.offset, shown.length);
  return snap.data;
}

describe('the prompt probe', () => {
  it('sees a prompt that arrived inside the first repaint, before the attach banner', async () => {
    const watch = new OutputWatch();
    const seen = watch.waitFor(PROMPT_RE, 5_000, 'first prompt');
    watch.push(await repaintWithPrompt());
    watch.push(Buffer.from(banner));
    await seen;
    // And when the banner came in the same chunk as the repaint.
    const once = new OutputWatch();
    once.push(Buffer.concat([await repaintWithPrompt(), Buffer.from(banner)]));
    await once.waitFor(PROMPT_RE, 5_000, 'first prompt');
  });

  it('sees a prompt that arrives after the banner, as output', async () => {
    const watch = new OutputWatch();
    watch.push(Buffer.from(banner));
    const seen = watch.waitFor(PROMPT_RE, 5_000, 'first prompt');
    watch.push(Buffer.from('$ '));
    await seen;
  });

  it('does not take a prompt followed by other output for the prompt', () => {
    for (const text of ['$ echo hi\r\nhi\r\n', `$ ${banner}ls\r\n`, 'cost: 5$', banner])
      assert.equal(PROMPT_RE.test(text), false, JSON.stringify(text));
  });
});
