// Loaded into every test file's process (see run-tests.mjs). A file whose tests have all finished
// but whose process does not exit (a socket, timer, child or worker left open) would otherwise sit
// until the runner's 300 s timeout and say nothing; this fails it after LEAK_GRACE_MS instead,
// naming what is still open.
import { after } from 'node:test';
import { setTimeout } from 'node:timers';

const LEAK_GRACE_MS = 20_000;

function describe(handle) {
  const name = handle?.constructor?.name ?? typeof handle;
  try {
    if (name === 'Socket' || name === 'TLSSocket') {
      if (handle.remotePort === undefined && handle.localPort === undefined) return null; // stdio
      return `${name} ${handle.localAddress}:${handle.localPort} -> ${handle.remoteAddress}:${handle.remotePort}`;
    }
    if (name === 'Server') return `Server ${JSON.stringify(handle.address())}`;
    if (name === 'ChildProcess')
      return `ChildProcess pid ${handle.pid}: ${handle.spawnargs.join(' ')}`;
    if (name === 'Timeout')
      return `Timeout ${handle._idleTimeout} ms: ${String(handle._onTimeout).slice(0, 160)}`;
  } catch {
    // fall through to the bare name
  }
  return name;
}

after(() => {
  setTimeout(() => {
    const handles = process._getActiveHandles().map(describe).filter(Boolean);
    process.stderr.write(
      `\nLEAK: ${process.argv[1]} still running ${LEAK_GRACE_MS / 1000} s after its last test.\n` +
        `Open: ${JSON.stringify(process.getActiveResourcesInfo())}\n` +
        handles.map((h) => `  ${h}\n`).join(''),
    );
    process.exit(1);
  }, LEAK_GRACE_MS).unref();
});
