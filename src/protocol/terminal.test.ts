// Terminal message codec: byte layouts and strict rejection of malformed messages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from './errors.js';
import { decodeTerminal, encodeTerminal, type TerminalMessage } from './terminal.js';

const utf8 = (text: string) => new TextEncoder().encode(text);

describe('terminal messages', () => {
  it('lays out output as [0x12][u64 BE offset][bytes]', () => {
    const bytes = encodeTerminal({ type: 'output', offset: 258, data: utf8('ok') });
    assert.deepEqual(bytes, Uint8Array.of(0x12, 0, 0, 0, 0, 0, 0, 1, 2, 0x6f, 0x6b));
    const far = encodeTerminal({ type: 'ack', offset: 2 ** 53 - 1 });
    assert.deepEqual(far, Uint8Array.of(0x15, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
    assert.deepEqual(decodeTerminal(far), { type: 'ack', offset: 2 ** 53 - 1 });
  });

  it('lays out resize as [0x16][u16 cols][u16 rows]', () => {
    assert.deepEqual(
      encodeTerminal({ type: 'resize', cols: 132, rows: 43 }),
      Uint8Array.of(0x16, 0, 132, 0, 43),
    );
    assert.deepEqual(
      encodeTerminal({ type: 'resize', cols: 0x1234, rows: 0xffff }),
      Uint8Array.of(0x16, 0x12, 0x34, 0xff, 0xff),
    );
  });

  it('refuses to encode an offset or a size the layout cannot carry', () => {
    for (const offset of [-1, 1.5, 2 ** 53, Number.NaN]) {
      assert.throws(
        () => encodeTerminal({ type: 'output', offset, data: utf8('x') }),
        RangeError,
        String(offset),
      );
    }
    for (const [cols, rows] of [
      [0x10000, 1],
      [1, -1],
      [2.5, 1],
    ] as const) {
      assert.throws(() => encodeTerminal({ type: 'resize', cols, rows }), RangeError);
    }
  });

  it('decodes data as a view of the record, not a copy', () => {
    const record = encodeTerminal({ type: 'input', offset: 7, data: utf8('ls\r') });
    const msg = decodeTerminal(record);
    assert.ok(msg.type === 'input');
    assert.equal(msg.data.buffer, record.buffer);
    assert.equal(msg.data.byteOffset, record.byteOffset + 9);
  });

  it('round-trips every message type', () => {
    const messages: TerminalMessage[] = [
      {
        type: 'hello',
        hello: {
          v: 1,
          cols: 80,
          rows: 24,
          readOnly: false,
          resume: { attachment: 'abcdefghijklmnop', offset: 5 },
        },
      },
      {
        type: 'welcome',
        welcome: { attachment: 'x', readOnly: true, resumed: false, inputOffset: 0, kind: 'agent' },
      },
      { type: 'output', offset: 0, data: Uint8Array.of(0, 255) },
      { type: 'snapshot', offset: 99, data: utf8('\x1b[2J') },
      { type: 'input', offset: 2 ** 40 + 3, data: utf8('ls\r') },
      { type: 'ack', offset: 12345 },
      { type: 'resize', cols: 1, rows: 1000 },
      { type: 'exit', code: 130, signal: 2 },
      { type: 'exit', code: 0 },
      { type: 'notice', text: 'waiting' },
      { type: 'bye', reason: 'detached' },
      { type: 'bye', reason: 'the host did not approve', code: 'DENIED' },
      { type: 'repaint' },
      {
        type: 'welcome',
        welcome: {
          attachment: 'y',
          readOnly: true,
          resumed: false,
          inputOffset: 0,
          kind: 'agent',
          watching: 'bob',
        },
      },
    ];
    for (const msg of messages) assert.deepEqual(decodeTerminal(encodeTerminal(msg)), msg);
  });

  it('rejects malformed messages with INVALID_MESSAGE', () => {
    const bad = [
      Buffer.alloc(0),
      Buffer.from([0x7f]),
      Buffer.from([0x12, 0, 0]),
      Buffer.from([0x15, 0, 0, 0, 0, 0, 0, 0, 1, 9]),
      Buffer.from([0x16, 0, 0, 0, 24]),
      Buffer.from([0x16, 0x10, 0, 0, 24]),
      Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      Buffer.concat([
        Buffer.from([0x10]),
        Buffer.from('{"v":1,"cols":0,"rows":24,"readOnly":false}'),
      ]),
      Buffer.concat([Buffer.from([0x17]), Buffer.from('not json')]),
      Buffer.concat([Buffer.from([0x18, 0xef, 0xbb, 0xbf]), Buffer.from('{"text":"hi"}')]),
      Buffer.from([0x1a, 0]),
    ];
    for (const buf of bad) {
      assert.throws(
        () => decodeTerminal(buf),
        (err: { code: string }) => err.code === ErrorCode.INVALID_MESSAGE,
        buf.toString('hex'),
      );
    }
  });
});
