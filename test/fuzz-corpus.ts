// Seeded generator of malformed, random and hostile relay messages, shared by test/fuzz.test.ts and bench/fuzz.ts.
//
// A run is a sequence of scripts, one per WebSocket connection. Script `i` of seed `s` is always
// the same bytes (except the fuzz account's token, which the driver fills in), so a failure can
// be replayed with SWITCHBOARD_FUZZ_SEED. Each frame says what the relay must do with it, as the
// protocol documents it (docs/protocol.md): answer its id with an error, answer it somehow, or
// stay silent (binary data for a channel the connection does not hold).
import { createPrivateKey, createPublicKey } from 'node:crypto';
import {
  HARD_MAX_FRAME_BYTES,
  MAX_FRAME_BYTES,
  MAX_PROTOCOL_ERRORS,
  PROTOCOL_VERSION,
} from '../src/protocol/limits.js';
import { RequestParams, isRequestType } from '../src/protocol/messages.js';

/** mulberry32: small, fast and seedable; the same seed gives the same corpus on any machine. */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  u32(): number {
    this.#state = (this.#state + 0x6d2b79f5) | 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 2 ** 32;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** Picks by weight: `[[3, 'a'], [1, 'b']]` gives 'a' three times as often as 'b'. */
  weighted<T>(table: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [w] of table) total += w;
    let x = this.float() * total;
    for (const [w, value] of table) {
      x -= w;
      if (x < 0) return value;
    }
    return table[table.length - 1]![1];
  }
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
}

/** The seed of script `index` in run `seed` (so scripts can be generated independently). */
export function scriptSeed(seed: number, index: number): number {
  return new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0).u32();
}

// --- what a frame and a script are ---------------------------------------------------------------

/**
 * What the relay must do with a frame:
 * - `error`: answer with an error frame (carrying the frame's id when it has a readable one);
 * - `answer`: answer its id once, with a reply or an error;
 * - `silent`: send nothing back (binary data on a channel this connection may not hold);
 * - `close`: end the connection (over the hard size limit, invalid UTF-8, broken WebSocket framing).
 */
export type Expect = 'error' | 'answer' | 'silent' | 'close';

export interface FuzzFrame {
  /** Family, for the report: `invalid-json`, `mutated`, `out-of-order`, … */
  kind: string;
  data: string | Buffer;
  /** A WebSocket text frame, a binary frame, or bytes written raw to the TLS socket. */
  frame: 'text' | 'binary' | 'raw';
  /** The request id the relay can read from the frame (it must then answer it); else undefined. */
  id: number | undefined;
  expect: Expect;
  /** The relay counts it as a protocol error (MAX_PROTOCOL_ERRORS of them close the connection). */
  protocolError: boolean;
}

export type ScriptKind =
  | 'anonymous' // no hello: every request must fail with HELLO_REQUIRED or a protocol error
  | 'greeted' // hello done, not logged in
  | 'authenticated' // logged in as the fuzz account: hostile requests that reach the handlers
  | 'condemned' // protocol errors until the relay closes with 1008
  | 'flood' // control messages over the rate limit until the relay closes with 1008
  | 'binary' // channel frames, mostly for channels the connection does not hold
  | 'oversize' // a frame over HARD_MAX_FRAME_BYTES: closed with 1009
  | 'invalid-utf8' // a text frame that is not UTF-8: closed with 1007
  | 'bad-framing'; // WebSocket framing the RFC forbids: closed with 1002

export interface FuzzScript {
  index: number;
  kind: ScriptKind;
  /** Before its frames the driver sends nothing, `hello`, or `hello` then `auth.token` (fuzz account). */
  setup: 'none' | 'hello' | 'token';
  frames: FuzzFrame[];
  /** The close code the relay must end the connection with; undefined: it must stay open. */
  expectClose: 1002 | 1007 | 1008 | 1009 | undefined;
}

/** What the driver knows at run time and the corpus needs. */
export interface FuzzContext {
  /** The fuzz account's name (its password is never in the corpus). */
  user: string;
}

/**
 * Request ids the driver uses for its own frames, which the corpus never uses: `hello` and
 * `auth.token` before a script, and a last `hello` with a wrong version after it, whose error
 * (answered after every frame before it was read) says the relay has judged them all.
 */
export const SETUP_IDS = Object.freeze({ hello: 1, token: 2, sentinel: 3 });

/** Session IDs the fuzz account registers, attaches to and closes: few, so they collide. */
export const SESSION_POOL = Object.freeze(['fuzz-a', 'fuzz-b', 'fuzz-c', 'fuzz-d', 'fuzz-e']);
/** Host instances: a register with the same instance takes a live session over, another is refused. */
const INSTANCE_POOL = ['fuzz-instance-0000001', 'fuzz-instance-0000002', 'fuzz-instance-0000003'];

/**
 * Scripts (by index) that carry one request costing a password hash. Fixed, not proportional to
 * the run: sign-ups and failed logins are limited per address, and the checks after the run sign
 * up and log in from the same address (127.0.0.1).
 */
const STRONG_SIGNUP_SCRIPTS = new Set([11, 523]);
const WRONG_PASSWORD_SCRIPTS = new Set([29, 311, 947]);
/** One script in this many registers a session without an ID (the relay generates one: a new row). */
const GENERATED_SESSION_EVERY = 97;

/** Text frames a script that must stay open sends (the rate limit's burst is 200, setup included). */
const MAX_SURVIVOR_TEXT_FRAMES = 170;
/** Deepest nesting the corpus puts inside an otherwise readable request. */
const IN_REQUEST_DEPTH = 1000;
/** Documented envelope: `type` a string of at most this many characters (messages.ts). */
const MAX_TYPE_CHARS = 64;

// --- values ----------------------------------------------------------------------------------------

const WEIRD_CHARS = [
  '\u0000',
  '\u0007',
  '\n',
  '\r\n',
  '\t',
  '"',
  '\\',
  '\u2028',
  '\u202e', // right-to-left override
  '\u200b', // zero-width space
  '\ufeff', // byte-order mark
  '\ufffd',
  '\ud800', // lone surrogate (JSON.stringify escapes it; the relay's JSON.parse makes it again)
  '\udfff',
  '😀',
  '𝕏',
  'é',
  'e\u0301', // combining accent
  'ﬀ',
  'Ω',
  '中',
  'ا',
  '%s',
  '%n',
  '${x}',
  '{{7*7}}',
  '<script>',
  "'; DROP TABLE users; --",
  '../',
  '\u001b[2J',
];

/** A string of `n` characters mixing ASCII with control, RTL, surrogate and astral characters. */
function weirdString(rng: Rng, n: number): string {
  let out = '';
  while (out.length < n) {
    out += rng.chance(0.6) ? String.fromCharCode(rng.range(0x20, 0x7e)) : rng.pick(WEIRD_CHARS);
  }
  // Exactly n UTF-16 units (a cut pair becomes a lone surrogate, which is fine: it is hostile too).
  return out.slice(0, n);
}

/** A valid account name that does not exist (or the fuzz account's, when `ctx` is given). */
function userName(rng: Rng, ctx?: FuzzContext): string {
  if (ctx && rng.chance(0.3)) return ctx.user;
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789_-';
  let name = String.fromCharCode(0x61 + rng.int(26));
  const len = rng.range(1, 31);
  for (let i = 0; i < len; i++) name += alphabet[rng.int(alphabet.length)];
  return name;
}

const BAD_USER_NAMES = [
  '',
  'a',
  'A',
  'Alice',
  '1alice',
  '-alice',
  'alice smith',
  'alice\u0000',
  'ålice',
  'аlice', // Cyrillic а
  'a'.repeat(33),
  '../../etc/passwd',
  'alice;',
  '__proto__',
];

const BAD_SESSION_IDS = [
  '',
  'ab',
  'a'.repeat(65),
  'build box',
  'build_box',
  '../x',
  'x/y',
  'ses\u0000sion',
  'sessión',
  '😀😀😀',
  '%2e%2e',
  'constructor',
];

/** 44-character base64 strings that are not usable Ed25519 keys (HANDSHAKE_FAILED, no hashing). */
function badPublicKey(rng: Rng): string {
  return rng.pick([
    Buffer.alloc(32).toString('base64'), // small order
    Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]).toString('base64'), // the identity
    Buffer.concat([Buffer.from([0xec]), Buffer.alloc(30, 0xff), Buffer.from([0x7f])]).toString(
      'base64',
    ), // order 2
    rng.bytes(31).toString('base64'),
    rng.bytes(33).toString('base64'),
    Buffer.alloc(32, 0xff).toString('base64'), // not canonical
    'A'.repeat(43) + 'B', // non-zero padding bits
    '',
  ]);
}

/** A real Ed25519 public key derived from 32 seed bytes (PKCS#8 wrapping of the raw seed). */
function publicKeyFromSeed(seed: Buffer): string {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const jwk = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({
    format: 'jwk',
  });
  return Buffer.from(String(jwk.x), 'base64url').toString('base64');
}

/** Deep nesting: `[[[…]]]` or `{"a":{"a":…}}`, `depth` levels. */
function nested(depth: number, open: string, close: string, inner = ''): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

/** A value of the wrong JSON type, or deeply nested, for any field. */
function wrongType(rng: Rng): unknown {
  return rng.pick<() => unknown>([
    () => null,
    () => true,
    () => 0,
    () => -1,
    () => 1.5,
    () => Number.MAX_SAFE_INTEGER + 2,
    () => 1e308,
    () => [],
    () => ({}),
    () => [1, 'two', null],
    () => ({ $ne: null }),
    () => JSON.parse(nested(rng.range(50, IN_REQUEST_DEPTH), '[', ']')) as unknown,
    () => JSON.parse(nested(rng.range(50, IN_REQUEST_DEPTH), '{"a":', '}', '1')) as unknown,
    () => weirdString(rng, rng.range(1, 40)),
  ])();
}

// --- request shapes --------------------------------------------------------------------------------

/** How the corpus builds valid and invalid values for one request parameter. */
interface Field {
  optional?: boolean;
  valid(rng: Rng, ctx: FuzzContext): unknown;
  /** Values the schema must refuse (most are; `classify` drops any that slip through). */
  invalid(rng: Rng): unknown;
}

const str = (max: number, min = 0): Field => ({
  valid: (rng) => weirdString(rng, rng.range(Math.max(1, min), Math.min(max, 40))),
  invalid: (rng) =>
    rng.chance(0.5) ? wrongType(rng) : min > 0 && rng.chance(0.3) ? '' : 'x'.repeat(max + 1),
});
const bool = (optional = false): Field => ({
  optional,
  valid: (rng) => rng.chance(0.5),
  invalid: (rng) => rng.pick<unknown>(['true', 1, 0, null, 'false', [], {}]),
});
const user: Field = {
  valid: (rng, ctx) => userName(rng, ctx),
  invalid: (rng) => (rng.chance(0.7) ? rng.pick(BAD_USER_NAMES) : wrongType(rng)),
};
const password: Field = {
  // Short: a sign-up fails WEAK_PASSWORD before any hashing.
  valid: (rng) => weirdString(rng, rng.range(1, 7)),
  invalid: (rng) => (rng.chance(0.5) ? rng.pick<unknown>(['', 'x'.repeat(1025)]) : wrongType(rng)),
};
const sessionIdField = (optional = false): Field => ({
  optional,
  valid: (rng) =>
    rng.chance(0.8)
      ? rng.pick(SESSION_POOL)
      : rng.pick(['nope-nope', 'k7m2-x9qp-4rtw-8nze-3vha', 'A'.repeat(64), 'abc']),
  invalid: (rng) => (rng.chance(0.7) ? rng.pick(BAD_SESSION_IDS) : wrongType(rng)),
});
const userList: Field = {
  valid: (rng, ctx) =>
    Array.from({ length: rng.chance(0.05) ? 256 : rng.int(4) }, () => userName(rng, ctx)),
  invalid: (rng) =>
    rng.pick<() => unknown>([
      () => 'alice',
      () => [rng.pick(BAD_USER_NAMES)],
      () => Array.from({ length: 257 }, () => 'bob'),
      () => [[]],
      () => wrongType(rng),
    ])(),
};
const channelField: Field = {
  valid: (rng) => (rng.chance(0.7) ? rng.range(1, 8) : rng.pick([0xffffffff, rng.u32() || 1])),
  invalid: (rng) => rng.pick<unknown>([0, -1, 1.5, 2 ** 32, '1', null, 1e21, [], -0.0001]),
};

const SHAPES: Record<string, Record<string, Field>> = {
  hello: {
    version: {
      valid: () => PROTOCOL_VERSION,
      invalid: (rng) => rng.pick<unknown>(['1', 1.5, null, true, [], Number.POSITIVE_INFINITY]),
    },
    client: str(128),
  },
  'auth.signup': { user, password },
  'auth.login': {
    user,
    password,
    device: {
      valid: (rng) => ({ publicKey: badPublicKey(rng), name: weirdString(rng, rng.range(1, 30)) }),
      invalid: (rng) =>
        rng.pick<() => unknown>([
          () => null,
          () => 'device',
          () => [],
          () => ({ publicKey: badPublicKey(rng) }),
          () => ({ publicKey: badPublicKey(rng), name: '' }),
          () => ({ publicKey: badPublicKey(rng), name: 'x'.repeat(65) }),
          () => ({ publicKey: '!'.repeat(44), name: 'x' }),
          () => ({ publicKey: 'A'.repeat(4097), name: 'x' }),
          () => ({ publicKey: badPublicKey(rng), name: 'x', extra: 1 }),
        ])(),
    },
  },
  'auth.token': {
    token: {
      valid: (rng) => 'sbt_' + rng.bytes(32).toString('base64url'),
      invalid: (rng) =>
        rng.chance(0.5) ? rng.pick<unknown>(['', 'x'.repeat(129)]) : wrongType(rng),
    },
  },
  'auth.logout': { all: bool(true) },
  whoami: {},
  'users.list': {},
  'keys.get': { user },
  'session.register': {
    sessionId: sessionIdField(true),
    kind: {
      valid: (rng) => rng.pick(['share', 'agent']),
      invalid: (rng) => rng.pick<unknown>(['Share', 'shell', '', null, 1, ['share']]),
    },
    instance: {
      valid: (rng) => rng.pick(INSTANCE_POOL),
      invalid: (rng) =>
        rng.pick<unknown>([
          'short',
          'x'.repeat(65),
          'has spaces in it!!',
          null,
          16,
          'é'.repeat(20),
        ]),
    },
    hostName: str(255, 1),
    allow: userList,
    viewers: userList,
  },
  'session.unregister': { sessionId: sessionIdField() },
  'sessions.list': {},
  'session.attach': { sessionId: sessionIdField(), readOnly: bool() },
  'channel.close': {
    channel: channelField,
    reason: { ...str(256), optional: true },
    code: {
      optional: true,
      valid: (rng) => rng.pick(['CHANNEL_CLOSED', 'DENIED', 'PEER_GONE', 'NOT_A_CODE', 'ZZZ']),
      invalid: (rng) => rng.pick<unknown>(['lower', 'AB', 'A'.repeat(33), 'A-B', 1, null]),
    },
  },
};

/** Every request type the relay knows today (new ones get generic mutations). */
const REQUEST_TYPES = Object.keys(RequestParams);
/** Types that need no login (docs/protocol.md, "Auth" column). */
const NO_LOGIN_TYPES = new Set(['hello', 'auth.signup', 'auth.login', 'auth.token']);
/**
 * Types a logged-in fuzz connection sends only in forms the schema refuses: the valid ones would
 * end the fuzz account's login or cost password hashes (logout, password change, deletion, invites).
 */
const AUTHENTICATED_SAFE_TYPES = new Set([
  'hello',
  'whoami',
  'users.list',
  'keys.get',
  'session.register',
  'session.unregister',
  'sessions.list',
  'session.attach',
  'channel.close',
  'auth.token',
]);

const HOSTILE_KEYS = [
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '__defineGetter__',
  '',
  ' ',
  'type ',
  'ID',
  'Type',
  '\u0000',
  'пароль',
  '🔑',
  'x'.repeat(300),
  '$where',
];

/** Adds an own, enumerable property, even `__proto__` (plain assignment would set the prototype). */
function defineKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Valid parameters for `type`, or undefined for a type the corpus has no shape for. */
function validParams(
  rng: Rng,
  ctx: FuzzContext,
  type: string,
): Record<string, unknown> | undefined {
  const shape = SHAPES[type];
  if (!shape) return undefined;
  const params: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(shape)) {
    if (field.optional && rng.chance(0.5)) continue;
    params[key] = field.valid(rng, ctx);
  }
  return params;
}

/** Parameters that break the schema: a field missing, of the wrong type or range, or a key too many. */
function mutatedParams(
  rng: Rng,
  ctx: FuzzContext,
  type: string,
  protoKeys: boolean,
): { params: Record<string, unknown>; how: string } {
  const params = validParams(rng, ctx, type) ?? {};
  const shape = SHAPES[type] ?? {};
  const required = Object.keys(shape).filter((k) => !shape[k]!.optional);
  const fields = Object.keys(shape);
  const how = rng.weighted<string>([
    [required.length ? 3 : 0, 'missing'],
    [fields.length ? 6 : 0, 'wrong-value'],
    [3, 'extra-key'],
    [protoKeys ? 1 : 0, '__proto__'],
  ]);
  switch (how) {
    case 'missing':
      delete params[rng.pick(required)];
      break;
    case 'wrong-value': {
      const key = rng.pick(fields);
      params[key] = shape[key]!.invalid(rng);
      break;
    }
    case 'extra-key':
      defineKey(params, rng.pick(HOSTILE_KEYS), wrongType(rng));
      break;
    default:
      // docs/protocol.md: unknown keys are dropped, but `__proto__` is refused wherever it is.
      defineKey(params, '__proto__', rng.chance(0.5) ? { isAdmin: true } : null);
  }
  return { params, how };
}

/**
 * Whether the relay's schema accepts `params` for `type` (decides the expectation, never the
 * bytes). Unknown keys are dropped, so an `extra-key` mutation of valid parameters is accepted
 * (docs/protocol.md, "Unknown fields"): the `mutated` family skips those, and `addValidRequest`
 * sends some valid requests with an extra key, which must be answered as without it.
 */
function schemaAccepts(type: string, params: Record<string, unknown>): boolean {
  if (!isRequestType(type)) return false;
  if (Object.prototype.hasOwnProperty.call(params, '__proto__')) return false;
  return RequestParams[type].safeParse(params).success;
}

// --- frames ----------------------------------------------------------------------------------------

function readableId(value: unknown): number | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { type, id } = value as { type?: unknown; id?: unknown };
  if (typeof type !== 'string' || type.length > MAX_TYPE_CHARS) return undefined;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > Number.MAX_SAFE_INTEGER)
    return undefined;
  return id;
}

/** Builds one script's frames, keeping ids unique and counting what the rate and error limits see. */
class ScriptBuilder {
  readonly frames: FuzzFrame[] = [];
  textFrames = 0;
  protocolErrors = 0;
  readonly #ids = new Set<number>(Object.values(SETUP_IDS));
  #nextId = 1000;
  readonly rng: Rng;
  readonly ctx: FuzzContext;

  constructor(rng: Rng, ctx: FuzzContext) {
    this.rng = rng;
    this.ctx = ctx;
  }

  /** A fresh request id: mostly small, sometimes 0 or 2^53−1 (the documented edges). */
  newId(): number {
    const edge = this.rng.weighted<number | undefined>([
      [20, undefined],
      [1, 0],
      [1, Number.MAX_SAFE_INTEGER],
      [1, 2 ** 52 + this.rng.int(1000)],
    ]);
    if (edge !== undefined && !this.#ids.has(edge)) return edge;
    return this.#nextId++;
  }

  /**
   * Adds a text frame. `valid`: the request passes the schema (then `expect` says what the relay
   * must answer); otherwise the relay must answer with an error and count a protocol error.
   * Returns false (and adds nothing) when the frame would reuse an id.
   */
  text(kind: string, text: string, valid: boolean, expect: Expect = 'error'): boolean {
    const bytes = Buffer.byteLength(text);
    let id: number | undefined;
    if (bytes <= MAX_FRAME_BYTES) {
      try {
        id = readableId(JSON.parse(text));
      } catch {
        id = undefined;
      }
    }
    if (id !== undefined) {
      if (this.#ids.has(id)) return false;
      this.#ids.add(id);
    }
    const protocolError = !valid || bytes > MAX_FRAME_BYTES;
    this.frames.push({
      kind,
      data: text,
      frame: 'text',
      id,
      expect: protocolError ? 'error' : expect,
      protocolError,
    });
    this.textFrames++;
    if (protocolError) this.protocolErrors++;
    return true;
  }

  /** Adds a request object (type and id included) as JSON text. */
  request(kind: string, obj: Record<string, unknown>, valid: boolean, expect: Expect): boolean {
    return this.text(kind, JSON.stringify(obj), valid, expect);
  }

  binary(kind: string, data: Buffer, expect: 'silent' | 'error'): void {
    const protocolError = expect === 'error';
    this.frames.push({ kind, data, frame: 'binary', id: undefined, expect, protocolError });
    if (protocolError) this.protocolErrors++;
  }

  /** A frame that ends the connection. */
  closing(kind: string, data: string | Buffer, frame: FuzzFrame['frame']): void {
    this.frames.push({ kind, data, frame, id: undefined, expect: 'close', protocolError: false });
  }
}

/** The state a script's requests are judged in. */
type State = 'anonymous' | 'greeted' | 'authenticated';

/** Share of valid requests sent with one unknown key added. */
const EXTRA_KEY_SHARE = 0.1;

/** A request the schema accepts, with what the relay must answer in `state`; undefined if none fits. */
function addValidRequest(b: ScriptBuilder, state: State): void {
  const { rng, ctx } = b;
  const candidates =
    state === 'authenticated'
      ? REQUEST_TYPES.filter((t) => AUTHENTICATED_SAFE_TYPES.has(t))
      : REQUEST_TYPES.filter((t) => SHAPES[t] !== undefined);
  const type = rng.pick(candidates);
  const params = validParams(rng, ctx, type) ?? {};
  let expect: Expect = 'answer';
  let kind = 'valid-request';
  if (type === 'hello') {
    // A valid hello before hello would change the state: anonymous scripts only send other versions.
    if (state === 'anonymous') params['version'] = rng.pick([0, 2, -1, 2 ** 31, 1e300]);
    expect = state === 'anonymous' ? 'error' : 'answer';
  } else if (state === 'anonymous') {
    expect = 'error'; // HELLO_REQUIRED
    kind = 'out-of-order';
  } else if (state === 'greeted') {
    // Signups with short passwords, logins with unusable keys, unknown tokens, or no login yet.
    expect = 'error';
    kind = NO_LOGIN_TYPES.has(type) ? 'valid-request' : 'out-of-order';
  } else if (type === 'auth.token') {
    expect = 'error'; // an unknown token; the driver's own token is only sent in setup
  } else if (type === 'session.register' && params['sessionId'] === undefined) {
    // A relay-generated ID is a new row each time: only in some scripts.
    if (b.rng.int(GENERATED_SESSION_EVERY) !== 0) params['sessionId'] = rng.pick(SESSION_POOL);
  }
  if (rng.chance(EXTRA_KEY_SHARE)) {
    // A neighbouring version's field: dropped by the relay, the answer the same as without it.
    defineKey(params, rng.pick(HOSTILE_KEYS), wrongType(rng));
    kind += '+extra-key';
  }
  if (!schemaAccepts(type, params)) return;
  b.request(kind, { type, id: b.newId(), ...params }, true, expect);
}

/** A frame the relay must refuse with a protocol error (BAD_FRAME, INVALID_MESSAGE, …). */
function addProtocolError(
  b: ScriptBuilder,
  opts: { protoKeys: boolean; binary: boolean; authenticated?: boolean },
): void {
  const { rng, ctx } = b;
  const family = rng.weighted<string>([
    [10, 'mutated'],
    [4, 'random-text'],
    [4, 'truncated-json'],
    [4, 'invalid-json'],
    [3, 'json-non-object'],
    [4, 'bad-envelope'],
    [4, 'unknown-type'],
    [1, 'deep-nesting'],
    [0.4, 'near-limit'],
    [0.2, 'over-limit'],
    [opts.binary ? 3 : 0, 'bad-binary-header'],
    [opts.binary ? 0.1 : 0, 'binary-over-limit'],
  ]);
  switch (family) {
    case 'mutated': {
      const type = rng.pick(REQUEST_TYPES);
      const { params, how } = mutatedParams(rng, ctx, type, opts.protoKeys);
      if (how !== '__proto__' && schemaAccepts(type, params)) return;
      // A relay that dropped the `__proto__` key would run the request: never a logout or the like.
      if (how === '__proto__' && opts.authenticated && !AUTHENTICATED_SAFE_TYPES.has(type)) return;
      b.request(`mutated:${how}`, { type, id: b.newId(), ...params }, false, 'error');
      return;
    }
    case 'random-text':
      b.text(family, weirdString(rng, rng.range(0, 200)), false);
      return;
    case 'truncated-json': {
      const type = rng.pick(REQUEST_TYPES);
      const text = JSON.stringify({ type, id: b.newId(), ...(validParams(rng, ctx, type) ?? {}) });
      b.text(family, text.slice(0, rng.int(text.length)), false);
      return;
    }
    case 'invalid-json': {
      const id = b.newId();
      b.text(
        family,
        rng.pick([
          `{"type":"whoami","id":${id},}`,
          `{'type':'whoami','id':${id}}`,
          `{type:"whoami",id:${id}}`,
          `{"type":"whoami","id":NaN}`,
          `{"type":"whoami","id":Infinity}`,
          `{"type":"whoami","id":0x${id.toString(16)}}`,
          `{"type":"whoami","id":0${id}}`,
          `{"type":"whoami" "id":${id}}`,
          `{"type":"whoami","id":${id}}{"type":"whoami","id":${id + 1}}`,
          `\ufeff{"type":"whoami","id":${id}}`,
          `{"type":"who\nami","id":${id}}`,
          `{"type":"\\x41","id":${id}}`,
          `{"type":"\\u12","id":${id}}`,
          `/* c */{"type":"whoami","id":${id}}`,
          `{"type":"whoami","id":${id}`,
          `{"type":undefined,"id":${id}}`,
          '',
          ' ',
          '{',
          '}',
          '"',
        ]),
        false,
      );
      return;
    }
    case 'json-non-object':
      b.text(
        family,
        rng.pick([
          'null',
          'true',
          '0',
          '-1e999',
          '"whoami"',
          '[]',
          `[{"type":"whoami","id":${b.newId()}}]`,
          JSON.stringify(JSON.stringify({ type: 'whoami', id: 5 })),
          '1'.repeat(rng.range(1, 5000)),
        ]),
        false,
      );
      return;
    case 'bad-envelope': {
      const type = rng.pick(REQUEST_TYPES);
      const obj: Record<string, unknown> = { type, id: b.newId() };
      const what = rng.int(6);
      if (what === 0) delete obj['type'];
      else if (what === 1) delete obj['id'];
      else if (what === 2) obj['type'] = wrongType(rng);
      else if (what === 3) obj['type'] = 'x'.repeat(MAX_TYPE_CHARS + 1 + rng.int(1000));
      else
        obj['id'] = rng.pick<unknown>([
          -1,
          -0.5,
          1.5,
          '7',
          null,
          true,
          [],
          {},
          2 ** 53,
          1e308,
          -(2 ** 53),
          'NaN',
        ]);
      b.request(family, obj, false, 'error');
      return;
    }
    case 'unknown-type': {
      const type = rng.pick([
        'Hello',
        'hello ',
        'HELLO',
        'һello', // Cyrillic һ
        'whoami\u0000',
        '__proto__',
        'constructor',
        'toString',
        'hasOwnProperty',
        'valueOf',
        'auth.',
        '',
        'reply',
        'error',
        'channel.open',
        'shutdown',
        '../../etc/passwd',
        '%s%s%s%n',
        '${jndi:ldap://127.0.0.1/a}',
        'x'.repeat(MAX_TYPE_CHARS),
      ]);
      b.request(family, { type, id: b.newId() }, false, 'error');
      return;
    }
    case 'deep-nesting': {
      const depth = rng.range(1000, 10_000);
      const what = rng.int(4);
      if (what === 0) b.text(family, nested(depth, '[', ']'), false);
      else if (what === 1) b.text(family, '['.repeat(depth * 10), false);
      else if (what === 2) b.text(family, nested(depth, '{"a":', '}', '1'), false);
      else
        // Inside a request, at most IN_REQUEST_DEPTH: deeper, whether the relay can read the id
        // depends on its stack (a JSON.parse reviver recurses), so the expectation would be a guess.
        b.text(
          family,
          `{"type":"session.register","id":${b.newId()},"kind":"share","instance":"${INSTANCE_POOL[0]}",` +
            `"hostName":"h","viewers":[],"allow":${nested(Math.min(depth, IN_REQUEST_DEPTH), '[', ']')}}`,
          false,
        );
      return;
    }
    case 'near-limit':
    case 'over-limit': {
      // Sized to land just under MAX_FRAME_BYTES or just over it.
      const target =
        family === 'near-limit'
          ? MAX_FRAME_BYTES - rng.int(64)
          : MAX_FRAME_BYTES + 1 + rng.int(4096);
      const head = `{"type":"hello","id":${b.newId()},"version":1,"client":"`;
      const what = rng.int(4);
      let text: string;
      if (what === 0) text = head + 'x'.repeat(Math.max(0, target - head.length - 2)) + '"}';
      else if (what === 1) text = '9'.repeat(target);
      else if (what === 2)
        // Many unknown keys (dropped) around a wrong known one: still refused, the error still fits.
        text = keysObject(b, target);
      else text = head + '\\u0000'.repeat(Math.floor((target - head.length - 2) / 6)) + '"}';
      b.text(family, text, false);
      return;
    }
    case 'bad-binary-header': {
      const what = rng.int(3);
      if (what === 0) b.binary(family, Buffer.alloc(0), 'error');
      else if (what === 1) b.binary(family, rng.bytes(rng.range(1, 3)), 'error');
      else b.binary(family, Buffer.concat([Buffer.alloc(4), rng.bytes(rng.int(64))]), 'error'); // channel 0
      return;
    }
    default: {
      const frame = rng.bytes(MAX_FRAME_BYTES + 1 + rng.int(4096));
      frame.writeUInt32BE(rng.u32() || 1, 0);
      b.binary(family, frame, 'error');
    }
  }
}

/** `{"type":"users.list","id":N,"limit":"x","k0":0,"k1":0,…}` of about `target` bytes. */
function keysObject(b: ScriptBuilder, target: number): string {
  const parts = [`{"type":"users.list","id":${b.newId()},"limit":"x"`];
  let size = parts[0]!.length + 1;
  for (let i = 0; size < target - 16; i++) {
    const part = `,"k${i}":0`;
    parts.push(part);
    size += part.length;
  }
  parts.push('}');
  return parts.join('');
}

/** Channel data that reaches no error path: a channel this connection does not hold (or may). */
function addChannelData(b: ScriptBuilder, ownChannels: boolean): void {
  const { rng } = b;
  const channel = ownChannels && rng.chance(0.6) ? rng.range(1, 8) : rng.u32() || 0xffffffff;
  const size = rng.weighted<number>([
    [60, rng.int(64)],
    [30, rng.int(2048)],
    [1, MAX_FRAME_BYTES - 4 - rng.int(64)],
  ]);
  const frame = Buffer.concat([
    Buffer.alloc(4),
    rng.chance(0.2) ? Buffer.alloc(size) : rng.bytes(size),
  ]);
  frame.writeUInt32BE(channel, 0);
  b.binary(ownChannels ? 'authed-binary' : 'random-binary', frame, 'silent');
}

// --- scripts ---------------------------------------------------------------------------------------

const SCRIPT_MIX: ReadonlyArray<readonly [number, ScriptKind]> = [
  [14, 'anonymous'],
  [20, 'greeted'],
  [25, 'authenticated'],
  [22, 'condemned'],
  [6, 'flood'],
  [8, 'binary'],
  [1.5, 'oversize'],
  [1.5, 'invalid-utf8'],
  [2, 'bad-framing'],
];

/** Generates script `index` of run `seed`. */
export function generateScript(seed: number, index: number, ctx: FuzzContext): FuzzScript {
  const rng = new Rng(scriptSeed(seed, index));
  const kind = rng.weighted(SCRIPT_MIX);
  const b = new ScriptBuilder(rng, ctx);
  switch (kind) {
    case 'anonymous':
    case 'greeted':
    case 'authenticated': {
      // Stays open: under the rate limit's burst, fewer protocol errors than close a connection.
      const state: State = kind;
      const textTarget = rng.range(40, MAX_SURVIVOR_TEXT_FRAMES);
      const errorBudget = rng.int(MAX_PROTOCOL_ERRORS); // 0 … 9
      const binaryShare = rng.float() * 0.6;
      if (state === 'greeted' && STRONG_SIGNUP_SCRIPTS.has(index)) {
        const name = `fz${(seed % 1e6).toString(36)}x${index}`;
        b.request(
          'valid-request',
          {
            type: 'auth.signup',
            id: b.newId(),
            user: name,
            password: `pw-${rng.u32()}-${rng.u32()}`,
          },
          true,
          'answer',
        );
      }
      if (state === 'greeted' && WRONG_PASSWORD_SCRIPTS.has(index)) {
        const device = { publicKey: publicKeyFromSeed(rng.bytes(32)), name: 'fuzz' };
        b.request(
          'valid-request',
          { type: 'auth.login', id: b.newId(), user: ctx.user, password: 'wrong-password', device },
          true,
          'error',
        );
      }
      for (let guard = 0; b.textFrames < textTarget && guard < 10_000; guard++) {
        if (rng.chance(binaryShare)) addChannelData(b, state === 'authenticated');
        else if (b.protocolErrors < errorBudget && rng.chance(0.3))
          addProtocolError(b, {
            protoKeys: true,
            binary: true,
            authenticated: state === 'authenticated',
          });
        else addValidRequest(b, state);
      }
      return { index, kind, setup: setupFor(state), frames: b.frames, expectClose: undefined };
    }
    case 'condemned': {
      const state = rng.pick(['anonymous', 'greeted', 'authenticated'] as const);
      const n = rng.chance(0.05) ? rng.range(200, 1000) : rng.range(MAX_PROTOCOL_ERRORS, 60);
      for (let guard = 0; b.protocolErrors < n && guard < 10 * n; guard++) {
        if (rng.chance(0.1)) addValidRequest(b, state);
        else addProtocolError(b, { protoKeys: false, binary: true });
      }
      return { index, kind, setup: setupFor(state), frames: b.frames, expectClose: 1008 };
    }
    case 'flood': {
      const state: State = rng.pick(['anonymous', 'greeted'] as const);
      const n = rng.range(300, 400);
      for (let guard = 0; b.textFrames < n && guard < 10 * n; guard++) addValidRequest(b, state);
      return { index, kind, setup: setupFor(state), frames: b.frames, expectClose: 1008 };
    }
    case 'binary': {
      const n = rng.range(100, 600);
      const errorBudget = rng.int(MAX_PROTOCOL_ERRORS);
      for (let i = 0; i < n; i++) {
        if (b.protocolErrors < errorBudget && rng.chance(0.02)) {
          const what = rng.int(3);
          if (what === 0) b.binary('bad-binary-header', Buffer.alloc(0), 'error');
          else if (what === 1) b.binary('bad-binary-header', rng.bytes(rng.range(1, 3)), 'error');
          else
            b.binary('bad-binary-header', Buffer.concat([Buffer.alloc(4), rng.bytes(8)]), 'error');
        } else addChannelData(b, false);
      }
      return { index, kind, setup: 'none', frames: b.frames, expectClose: undefined };
    }
    case 'oversize': {
      for (let i = rng.int(5); i > 0; i--) addValidRequest(b, 'anonymous');
      const size = HARD_MAX_FRAME_BYTES + 1 + rng.int(4096);
      if (rng.chance(0.5))
        b.closing('over-hard-limit', Buffer.alloc(size, 0x20).toString(), 'text');
      else b.closing('over-hard-limit', Buffer.alloc(size, 0x01), 'binary');
      return { index, kind, setup: 'none', frames: b.frames, expectClose: 1009 };
    }
    case 'invalid-utf8': {
      for (let i = rng.int(5); i > 0; i--) addValidRequest(b, 'greeted');
      const bad = rng.pick([
        [0xff],
        [0xc0, 0xaf], // overlong '/'
        [0x80], // lone continuation byte
        [0xe2, 0x82], // truncated sequence
        [0xed, 0xa0, 0x80], // an encoded surrogate
        [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
      ]);
      const text = Buffer.concat([
        Buffer.from('{"type":"whoami","id":7,"x":"'),
        Buffer.from(bad),
        Buffer.from('"}'),
      ]);
      b.closing('invalid-utf8', text, 'text');
      return { index, kind, setup: 'hello', frames: b.frames, expectClose: 1007 };
    }
    default: {
      for (let i = rng.int(5); i > 0; i--) addValidRequest(b, 'greeted');
      b.closing('bad-framing', badWebSocketFrame(rng), 'raw');
      return { index, kind, setup: 'hello', frames: b.frames, expectClose: 1002 };
    }
  }
}

function setupFor(state: State): FuzzScript['setup'] {
  return state === 'anonymous' ? 'none' : state === 'greeted' ? 'hello' : 'token';
}

/** A client-to-server WebSocket frame that RFC 6455 forbids (the relay's ws closes with 1002). */
function badWebSocketFrame(rng: Rng): Buffer {
  const mask = rng.bytes(4);
  const masked = (first: number, payload: Buffer): Buffer => {
    const body = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
    if (payload.length < 126)
      return Buffer.concat([Buffer.from([first, 0x80 | payload.length]), mask, body]);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(payload.length);
    return Buffer.concat([Buffer.from([first, 0x80 | 126]), len, mask, body]);
  };
  return rng.pick<() => Buffer>([
    () => masked(0x83, rng.bytes(8)), // reserved opcode 3
    () => masked(0x8b, Buffer.alloc(0)), // reserved control opcode 0xB
    () => masked(0xc1, Buffer.from('{}')), // RSV1 without an extension
    () => masked(0x80, Buffer.from('{}')), // continuation with nothing to continue
    () => masked(0x09, Buffer.alloc(0)), // fragmented control frame (ping without FIN)
    () => masked(0x89, rng.bytes(126)), // control frame over 125 bytes
    () => Buffer.from([0x81, 0x02, 0x7b, 0x7d]), // unmasked client frame
    () => masked(0x88, Buffer.from([0x03, 0xed])), // close with an invalid code (1005)
    () => masked(0x88, Buffer.from([0x03])), // close with a one-byte body
  ])();
}
