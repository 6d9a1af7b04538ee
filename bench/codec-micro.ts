// Micro-benchmark of the per-chunk hot path: channel frames, terminal messages and E2E records on 4 KiB payloads.
//
// Usage: npm run build && node dist/bench/codec-micro.js [--iterations N] [--records N]
// Each line is one loop: total time and nanoseconds per operation. Run it before and after a
// change to src/protocol/codec.ts, terminal.ts or src/crypto/secure-channel.ts on an idle box.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { decodeData, encodeData } from '../src/protocol/codec.js';
import { decodeTerminal, encodeTerminal } from '../src/protocol/terminal.js';
import { SecureChannel } from '../src/crypto/secure-channel.js';

const { values: flags } = parseArgs({
  options: {
    iterations: { type: 'string', default: '1000000' },
    records: { type: 'string', default: '200000' },
    payload: { type: 'string', default: '4096' },
  },
});
const ITERATIONS = Number(flags.iterations);
const RECORDS = Number(flags.records);
const PAYLOAD_BYTES = Number(flags.payload); // bytes

const payload = randomBytes(PAYLOAD_BYTES);
/** Folds results into a number the loops print, so no work is optimised away. */
let sink = 0;

function time(name: string, count: number, body: () => void): void {
  body(); // warm-up pass over the same code
  const start = performance.now();
  for (let i = 0; i < count; i += 1) body();
  const ms = performance.now() - start;
  console.log(
    `${name.padEnd(28)} ${count.toLocaleString('en').padStart(10)} ops  ${ms.toFixed(0).padStart(6)} ms  ${((ms * 1e6) / count).toFixed(0).padStart(6)} ns/op`,
  );
}

const frame = encodeData(7, payload);
time('encodeData', ITERATIONS, () => {
  sink += encodeData(7, payload).length;
});
time('decodeData', ITERATIONS, () => {
  const d = decodeData(frame);
  if (d.ok) sink += d.value.payload.length;
});
let offset = 0;
time('encodeTerminal(output)', ITERATIONS, () => {
  sink += encodeTerminal({
    type: 'output',
    offset: (offset += PAYLOAD_BYTES),
    data: payload,
  }).length;
});
const message = encodeTerminal({ type: 'output', offset: 123_456, data: payload });
time('decodeTerminal(output)', ITERATIONS, () => {
  const m = decodeTerminal(message);
  if (m.type === 'output') sink += m.data.length + m.offset;
});
time('encode+decode round trip', ITERATIONS, () => {
  const wire = encodeData(7, encodeTerminal({ type: 'output', offset: 1, data: payload }));
  const d = decodeData(wire);
  if (d.ok) sink += decodeTerminal(d.value.payload).type.length;
});

const a2b = randomBytes(32);
const b2a = randomBytes(32);
const sender = new SecureChannel(a2b, b2a);
const receiver = new SecureChannel(b2a, a2b);
time('seal + open (4 KiB record)', RECORDS, () => {
  sink += receiver.open(sender.seal(message)).length;
});
console.log(`(checksum ${sink})`);
