// Codec unit tests with byte fixtures: data frames, requests, server messages, every rejection.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeData,
  decodeRequest,
  decodeServerMessage,
  encodeControl,
  encodeData,
} from './codec.js';
import { ErrorCode } from './errors.js';
import { MAX_FRAME_BYTES } from './limits.js';

describe('data frames', () => {
  it('encodes [u32 BE channel][payload]', () => {
    const hi = new TextEncoder().encode('hi');
    assert.deepEqual(encodeData(3, hi), Uint8Array.of(0, 0, 0, 3, 0x68, 0x69));
    assert.deepEqual(encodeData(0x01020304, new Uint8Array(0)), Uint8Array.of(1, 2, 3, 4));
    assert.deepEqual(encodeData(0xfffffffe, hi), Uint8Array.of(0xff, 0xff, 0xff, 0xfe, 0x68, 0x69));
  });

  it('refuses a channel id that is not a u32', () => {
    for (const channel of [-1, 2 ** 32, 1.5, Number.NaN]) {
      assert.throws(() => encodeData(channel, new Uint8Array(1)), RangeError, String(channel));
    }
  });

  it('decodes a frame back to its channel and payload', () => {
    const frame = Uint8Array.of(0, 0, 1, 0, 0xde, 0xad);
    const d = decodeData(frame);
    assert.ok(d.ok);
    assert.equal(d.value.channel, 256);
    assert.deepEqual(d.value.payload, Uint8Array.of(0xde, 0xad));
    const high = decodeData(Uint8Array.of(0x80, 0, 0, 1));
    assert.ok(high.ok);
    assert.equal(high.value.channel, 2 ** 31 + 1);
  });

  it("decodes the payload as a view of the frame, of the frame's class", () => {
    const wire = Buffer.from([9, 0, 0, 0, 7, 1, 2, 3]).subarray(1); // a view at an offset
    const d = decodeData(wire);
    assert.ok(d.ok);
    assert.equal(d.value.payload.buffer, wire.buffer);
    assert.equal(d.value.payload.byteOffset, wire.byteOffset + 4);
    assert.ok(Buffer.isBuffer(d.value.payload));
    const frame = Uint8Array.of(0, 0, 0, 7, 1);
    const plain = decodeData(frame);
    assert.ok(plain.ok);
    assert.equal(Object.getPrototypeOf(plain.value.payload), Uint8Array.prototype);
    frame[4] = 42; // a view sees the frame change
    assert.equal(plain.value.payload[0], 42);
  });

  it('rejects short frames, channel 0 and oversized frames', () => {
    for (const [frame, code] of [
      [Buffer.from([0, 0, 1]), ErrorCode.BAD_FRAME],
      [Buffer.from([0, 0, 0, 0, 1]), ErrorCode.UNKNOWN_CHANNEL],
      [Buffer.alloc(MAX_FRAME_BYTES + 1, 1), ErrorCode.FRAME_TOO_LARGE],
    ] as const) {
      const d = decodeData(frame);
      assert.ok(!d.ok);
      assert.equal(d.error.code, code);
    }
  });
});

describe('requests', () => {
  it('refuses a binary text frame that starts with a UTF-8 byte order mark', () => {
    const json = new TextEncoder().encode('{"type":"hello","id":1,"version":1}');
    const withBom = new Uint8Array(json.length + 3);
    withBom.set([0xef, 0xbb, 0xbf]);
    withBom.set(json, 3);
    const d = decodeRequest(withBom);
    assert.ok(!d.ok);
    assert.equal(d.error.code, ErrorCode.BAD_FRAME);
    assert.equal(d.id, undefined);
  });

  it('measures a text frame in UTF-8 bytes, not characters', () => {
    // 2-, 3- and 4-byte characters, and a lone surrogate (sent as U+FFFD, 3 bytes).
    for (const value of ['é', '€', '😀', '\ud800', 'a\udc00b', '\ud83d\ude00\ud83d']) {
      const text = JSON.stringify({ type: 'hello', id: 1, pad: value });
      const bytes = Buffer.byteLength(text);
      const fits = decodeRequest(text, bytes);
      assert.ok(fits.ok || fits.error.code !== ErrorCode.FRAME_TOO_LARGE, `${value} at its size`);
      const over = decodeRequest(text, bytes - 1);
      assert.ok(!over.ok && over.error.code === ErrorCode.FRAME_TOO_LARGE, `${value} one under`);
    }
  });

  it('accepts a valid request as sent, and drops a field it does not know', () => {
    const d = decodeRequest('{"type":"session.attach","id":9,"sessionId":"abc-1","readOnly":true}');
    assert.ok(d.ok);
    assert.deepEqual(d.value, {
      type: 'session.attach',
      id: 9,
      sessionId: 'abc-1',
      readOnly: true,
    });
    const extra = decodeRequest(
      '{"type":"session.attach","id":10,"sessionId":"abc-1","readOnly":true,"admin":true,"constructor":{"x":1}}',
    );
    assert.ok(extra.ok);
    assert.deepEqual(extra.value, {
      type: 'session.attach',
      id: 10,
      sessionId: 'abc-1',
      readOnly: true,
    });
    assert.ok(!Object.hasOwn(extra.value, 'admin') && !Object.hasOwn(extra.value, 'constructor'));
  });

  it('still validates every known field when unknown ones come along', () => {
    const d = decodeRequest(
      '{"type":"session.attach","id":11,"sessionId":"a b","readOnly":true,"x":1}',
    );
    assert.ok(!d.ok);
    assert.equal(d.error.code, ErrorCode.INVALID_MESSAGE);
    assert.equal(d.id, 11);
  });

  it('takes a hello with or without capabilities, and refuses a malformed capability list', () => {
    const old = decodeRequest('{"type":"hello","id":1,"version":1,"client":"old"}');
    assert.ok(old.ok);
    const offer = decodeRequest(
      '{"type":"hello","id":2,"version":1,"client":"new","capabilities":["device-proof","from-the-future"]}',
    );
    assert.ok(offer.ok);
    assert.deepEqual(offer.value, {
      type: 'hello',
      id: 2,
      version: 1,
      client: 'new',
      capabilities: ['device-proof', 'from-the-future'],
    });
    for (const caps of [
      '"device-proof"',
      '[1]',
      '["Not Valid"]',
      JSON.stringify(Array(65).fill('x')),
    ]) {
      const d = decodeRequest(
        `{"type":"hello","id":3,"version":1,"client":"x","capabilities":${caps}}`,
      );
      assert.ok(!d.ok, caps);
      assert.equal(d.error.code, ErrorCode.INVALID_MESSAGE, caps);
    }
  });

  it('answers each kind of bad input with its own code, and the id when it has one', () => {
    const cases: Array<[string, string, number | undefined]> = [
      ['{not json', ErrorCode.BAD_FRAME, undefined],
      ['[1,2]', ErrorCode.BAD_FRAME, undefined],
      ['{"type":"hello"}', ErrorCode.INVALID_MESSAGE, undefined],
      ['{"type":"no.such","id":4}', ErrorCode.UNKNOWN_TYPE, 4],
      [
        '{"type":"session.attach","id":5,"sessionId":"a b","readOnly":true}',
        ErrorCode.INVALID_MESSAGE,
        5,
      ],
      ['{"type":"users.list","id":6,"limit":"ten","extra":1}', ErrorCode.INVALID_MESSAGE, 6],
      [
        '{"type":"auth.login","id":7,"user":"Bad Name","password":"x","device":{"publicKey":"","name":"d"}}',
        ErrorCode.INVALID_MESSAGE,
        7,
      ],
    ];
    for (const [text, code, id] of cases) {
      const d = decodeRequest(text);
      assert.ok(!d.ok, text);
      assert.equal(d.error.code, code, text);
      assert.equal(d.id, id, text);
    }
  });

  it('refuses a request over the size limit before parsing it', () => {
    const big = `{"type":"hello","id":1,"version":1,"client":"${'x'.repeat(MAX_FRAME_BYTES)}"}`;
    const d = decodeRequest(big);
    assert.ok(!d.ok);
    assert.equal(d.error.code, ErrorCode.FRAME_TOO_LARGE);
  });

  it('refuses a "__proto__" key at any depth, keeping the request id', () => {
    for (const text of [
      '{"type":"whoami","id":7,"__proto__":null}',
      '{"type":"whoami","id":7,"__proto\\u005f_":null}',
      '{"type":"auth.login","id":7,"user":"al","password":"p","device":{"__proto__":{},"publicKey":"","name":"d"}}',
    ]) {
      const d = decodeRequest(text);
      assert.ok(!d.ok);
      assert.equal(d.error.code, ErrorCode.INVALID_MESSAGE);
      assert.equal(d.id, 7);
    }
    // The words alone (a password, say) are fine.
    const ok = decodeRequest('{"type":"auth.signup","id":1,"user":"al","password":"__proto__"}');
    assert.ok(ok.ok);
  });

  it('keeps error descriptions short, however many keys come with a wrong one', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => `"k${i}":0`).join(',');
    const d = decodeRequest(`{"type":"users.list","id":7,${keys},"limit":"x","all":0}`);
    assert.ok(!d.ok);
    assert.equal(d.error.code, ErrorCode.INVALID_MESSAGE);
    assert.ok(d.error.message.length <= 1024, `${d.error.message.length} characters`);
  });
});

describe('server messages', () => {
  it('round-trips a reply, an error and an event', () => {
    for (const msg of [
      { type: 'reply', id: 1, result: { ok: true } },
      { type: 'error', id: 2, code: 'NOT_ALLOWED', message: 'no' },
      { type: 'channel.closed', channel: 7, code: 'PEER_GONE', reason: 'gone' },
    ]) {
      const d = decodeServerMessage(encodeControl(msg));
      assert.ok(d.ok, JSON.stringify(msg));
      assert.deepEqual(d.value, msg);
    }
  });

  it("marks an unknown type (a newer relay's event) as ignored, not as an error", () => {
    for (const type of ['surprise', 'toString', 'constructor']) {
      const unknown = decodeServerMessage(JSON.stringify({ type, channel: 'x' }));
      assert.ok(!unknown.ok);
      assert.ok('ignored' in unknown && unknown.ignored, type);
      assert.equal(unknown.type, type);
    }
  });

  it('drops fields it does not know from events and errors', () => {
    const event = decodeServerMessage(
      '{"type":"channel.closed","channel":7,"code":"PEER_GONE","reason":"gone","since":"later"}',
    );
    assert.ok(event.ok);
    assert.deepEqual(event.value, {
      type: 'channel.closed',
      channel: 7,
      code: 'PEER_GONE',
      reason: 'gone',
    });
    const error = decodeServerMessage(
      '{"type":"error","id":3,"code":"DENIED","message":"no","hint":1}',
    );
    assert.ok(error.ok);
    assert.deepEqual(error.value, { type: 'error', id: 3, code: 'DENIED', message: 'no' });
  });

  it('rejects a message without a string type, and malformed events', () => {
    for (const text of ['{"type":7}', '{"channel":1}']) {
      const d = decodeServerMessage(text);
      assert.ok(!d.ok && !('ignored' in d), text);
      assert.equal(d.error.code, ErrorCode.INVALID_MESSAGE, text);
    }
    const malformed = decodeServerMessage('{"type":"channel.closed","channel":"seven"}');
    assert.ok(!malformed.ok);
    assert.equal(malformed.error.code, ErrorCode.INVALID_MESSAGE);
  });
});
