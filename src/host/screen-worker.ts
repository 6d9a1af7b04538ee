// The headless emulators of every shell in this process, on one worker thread (see screen.ts).
import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import type { ScreenReply, ScreenRequest } from './screen.js';

interface HeadlessTerminal {
  write(data: Uint8Array | string, callback?: () => void): void;
  resize(cols: number, rows: number): void;
  loadAddon(addon: unknown): void;
  dispose(): void;
}
interface SerializeAddon {
  serialize(options?: { scrollback?: number }): string;
}

const require = createRequire(import.meta.url);
const { Terminal } = require('@xterm/headless') as {
  Terminal: new (options: object) => HeadlessTerminal;
};
const { SerializeAddon: Serialize } = require('@xterm/addon-serialize') as {
  SerializeAddon: new () => SerializeAddon;
};

/** Lines the emulator keeps above the screen (a snapshot repaints up to SNAPSHOT_SCROLLBACK). */
const SCROLLBACK_LINES = 1000; // lines
/** The worker reports progress at least this often while it has output queued. */
const REPORT_EVERY_BYTES = 64 * 1024; // bytes

interface Emulator {
  term: HeadlessTerminal;
  serializer: SerializeAddon;
  /** Stream offset of the last write posted, and of the last one parsed and reported. */
  posted: number;
  reported: number;
}

const port = parentPort;
if (!port) throw new Error('screen-worker.js runs as a worker thread');
const emulators = new Map<number, Emulator>();

function reply(msg: ScreenReply): void {
  port!.postMessage(msg);
}

port.on('message', (msg: ScreenRequest) => {
  if (msg.op === 'open') {
    const term = new Terminal({
      cols: msg.cols,
      rows: msg.rows,
      scrollback: SCROLLBACK_LINES,
      allowProposedApi: true,
    });
    const serializer = new Serialize();
    term.loadAddon(serializer);
    emulators.set(msg.id, { term, serializer, posted: 0, reported: 0 });
    return;
  }
  const em = emulators.get(msg.id);
  if (!em) return;
  switch (msg.op) {
    case 'write': {
      em.posted = msg.end;
      const { id, end } = msg;
      em.term.write(msg.data, () => {
        // Progress for the host's bound on queued output: often enough, and always when idle.
        if (end - em.reported >= REPORT_EVERY_BYTES || end === em.posted) {
          em.reported = end;
          reply({ op: 'parsed', id, end });
        }
      });
      return;
    }
    case 'resize':
      em.term.resize(msg.cols, msg.rows);
      return;
    case 'snapshot': {
      // Behind every write posted before it: the callback runs once they are all parsed.
      const { id, req, scrollback } = msg;
      const offset = em.posted;
      em.term.write('', () => {
        reply({ op: 'snapshot', id, req, offset, data: em.serializer.serialize({ scrollback }) });
      });
      return;
    }
    case 'close':
      em.term.dispose();
      emulators.delete(msg.id);
      return;
  }
});
