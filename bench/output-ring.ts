// The replay ring under a long history of small writes (echoed keystrokes): read and append cost
// once 4 MiB of 3-byte writes are held.
//
//   npm run bench:output-ring
import { OutputRing } from '../src/host/output-ring.js';
import { REPLAY_BUFFER_BYTES } from '../src/protocol/terminal.js';

const CHUNK = Buffer.from('ab\n');
const ring = new OutputRing(REPLAY_BUFFER_BYTES);
// Fill past the capacity, so every append also drops.
const fill = Math.ceil(REPLAY_BUFFER_BYTES / CHUNK.length) + 50_000;
for (let i = 0; i < fill; i++) ring.append(CHUNK);

const READS = 2_000; // bounded: a few seconds at the old cost, milliseconds now
const reads: number[] = [];
for (let i = 0; i < READS; i++) {
  ring.append(CHUNK);
  const t = process.hrtime.bigint();
  ring.read(ring.end - CHUNK.length, 32 * 1024);
  reads.push(Number(process.hrtime.bigint() - t) / 1e3);
}
reads.sort((a, b) => a - b);
const APPENDS = 20_000;
const t = process.hrtime.bigint();
for (let i = 0; i < APPENDS; i++) ring.append(CHUNK);
const appendUs = Number(process.hrtime.bigint() - t) / 1e3 / APPENDS;
const result = {
  heldBytes: ring.end - ring.start,
  readUs: { p50: reads[Math.floor(READS * 0.5)]!, p99: reads[Math.floor(READS * 0.99)]! },
  appendUs,
};
console.log(
  `full ${REPLAY_BUFFER_BYTES / 1024 / 1024} MiB ring of 3-byte writes: read of the newest bytes p50 ` +
    `${result.readUs.p50.toFixed(1)} µs, p99 ${result.readUs.p99.toFixed(1)} µs; append ${appendUs.toFixed(2)} µs`,
);
console.log(JSON.stringify(result));
