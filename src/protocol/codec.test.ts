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
    assert.deepEqual(encodeData(3, Buffer.from('hi')), Buffer.from([0, 0, 0, 3, 0x68, 0x69]));
    assert.deepEqual(encodeData(0x01020304, Buffer.alloc(0)), Buffer.from([1, 2, 3, 4]));
  });

  it('decodes a frame back to its channel and payload', () => {
    const frame = Buffer.from([0, 0, 1, 0, 0xde, 0xad]);
    const d = decodeData(frame);
    assert.ok(d.ok);
    assert.equal(d.value.channel, 256);
    assert.deepEqual(d.value.payload, Buffer.from([0xde, 0xad]));
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
  it('accepts a valid request as sent, and refuses one with a field it does not know', () => {
    const d = decodeRequest('{"type":"session.attach","id":9,"sessionId":"abc-1","readOnly":true}');
    assert.ok(d.ok);
    assert.deepEqual(d.value, {
      type: 'session.attach',
      id: 9,
      sessionId: 'abc-1',
      readOnly: true,
    });
    const extra = decodeRequest(
      '{"type":"session.attach","id":10,"sessionId":"abc-1","readOnly":true,"admin":true}',
    );
    assert.ok(!extra.ok);
    assert.equal(extra.error.code, ErrorCode.INVALID_MESSAGE);
    assert.equal(extra.id, 10);
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
      ['{"type":"whoami","id":6,"extra":1}', ErrorCode.INVALID_MESSAGE, 6],
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

  it('keeps error descriptions short, however many keys are wrong', () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => `"k${i}":0`).join(',');
    const d = decodeRequest(`{"type":"whoami","id":7,${keys}}`);
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

  it('rejects unknown types and malformed events', () => {
    const unknown = decodeServerMessage('{"type":"surprise"}');
    assert.ok(!unknown.ok);
    assert.equal(unknown.error.code, ErrorCode.UNKNOWN_TYPE);
    const malformed = decodeServerMessage('{"type":"channel.closed","channel":"seven"}');
    assert.ok(!malformed.ok);
    assert.equal(malformed.error.code, ErrorCode.INVALID_MESSAGE);
  });
});
