// The REST door on the relay's port: /healthz, /metrics, requests of the handler table under /v1/, and the web page (/, /assets/).
import { isLoopbackHost } from '../protocol/loopback.js';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeRequest } from '../protocol/codec.js';
import { AuthError, ErrorCode, ProtocolError, SwitchboardError } from '../protocol/errors.js';
import { MAX_FRAME_BYTES } from '../protocol/limits.js';
import {
  isRequestType,
  type Request,
  type RequestType,
  type Results,
} from '../protocol/messages.js';
import { RestCaller } from './caller.js';
import { dispatch, entryOf, type Services } from './handlers.js';
import { serveWeb, type WebAssets } from './web-assets.js';

export interface HttpContext extends Services {
  isShuttingDown: () => boolean;
  /** The address a request is throttled and logged under: the relay's own rule for sockets. */
  addressOf: (req: IncomingMessage) => string;
  /** Bearer token that opens /metrics to non-loopback clients; without it, loopback only. */
  metricsToken?: string;
  /** The web page, loaded at relay start: `/` and `/assets/NAME`. */
  web: WebAssets;
}

/** True for a connection from this machine. */
function fromLoopback(req: IncomingMessage): boolean {
  return isLoopbackHost(req.socket.remoteAddress ?? '');
}

/**
 * /metrics: without a metrics token, loopback only; with one, the token from anywhere (loopback
 * included: other users of the machine are strangers too). Compared in constant time.
 */
export function metricsAllowed(
  req: IncomingMessage,
  ctx: Pick<HttpContext, 'metricsToken'>,
): boolean {
  if (ctx.metricsToken === undefined) return fromLoopback(req);
  const given = /^Bearer (.{1,256})$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
  const want = createHash('sha256').update(ctx.metricsToken).digest();
  return timingSafeEqual(createHash('sha256').update(given).digest(), want);
}

function send(res: ServerResponse, status: number, body: unknown, headers: object = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'strict-transport-security': 'max-age=31536000',
  });
  res.end(text);
}

/** The one place a Switchboard error code becomes an HTTP status; anything else is 400. */
const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.AUTH_REQUIRED]: 401,
  [ErrorCode.TOKEN_INVALID]: 401,
  [ErrorCode.TOKEN_EXPIRED]: 401,
  [ErrorCode.TOKEN_REVOKED]: 401,
  [ErrorCode.BAD_CREDENTIALS]: 403,
  [ErrorCode.NOT_ALLOWED]: 403,
  [ErrorCode.UNKNOWN_TYPE]: 404,
  [ErrorCode.UNKNOWN_USER]: 404,
  [ErrorCode.SESSION_NOT_FOUND]: 404,
  [ErrorCode.WEBSOCKET_REQUIRED]: 405,
  [ErrorCode.USER_EXISTS]: 409,
  [ErrorCode.CONFLICT]: 409,
  [ErrorCode.FRAME_TOO_LARGE]: 413,
  [ErrorCode.THROTTLED]: 429,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.STORAGE]: 500,
  [ErrorCode.INTERNAL]: 500,
  [ErrorCode.RETRYABLE]: 503,
};

/** Answers a refusal as JSON `{code, message, retryAfterMs?}`, with `retry-after` (s) when known. */
function sendError(res: ServerResponse, err: SwitchboardError): void {
  const headers =
    err.retryAfterMs === undefined ? {} : { 'retry-after': Math.ceil(err.retryAfterMs / 1000) };
  send(res, STATUS_BY_CODE[err.code] ?? 400, err.toWire(), headers);
}

/** The bearer token of a request, or undefined without an Authorization header. */
function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer ([A-Za-z0-9_-]{1,128})$/.exec(header);
  if (!match?.[1])
    throw new AuthError(
      ErrorCode.AUTH_REQUIRED,
      'send "Authorization: Bearer <token>" (the token is in $SWITCHBOARD_HOME/login.json after login)',
    );
  return match[1];
}

/**
 * Validates REST parameters exactly as a WebSocket frame of `type` would be (codec.ts: size,
 * `__proto__`, the request's schema, unknown keys dropped).
 */
function decodeParams(type: RequestType, params: Record<string, unknown>): Request {
  if (Object.hasOwn(params, 'type') || Object.hasOwn(params, 'id'))
    throw new ProtocolError(ErrorCode.INVALID_MESSAGE, '"type" and "id" come from the path');
  // A spread copies an own "__proto__" key as an own key, so the codec still sees and refuses it.
  const decoded = decodeRequest(JSON.stringify({ ...params, type, id: 0 }), MAX_FRAME_BYTES);
  if (!decoded.ok) throw decoded.error;
  return decoded.value;
}

/** Reads a JSON object body of at most MAX_FRAME_BYTES; an empty body is `{}`. */
async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FRAME_BYTES)
      throw new ProtocolError(
        ErrorCode.FRAME_TOO_LARGE,
        `request body exceeds the ${MAX_FRAME_BYTES}-byte limit`,
      );
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  const type = req.headers['content-type'] ?? '';
  // Only JSON: a web page cannot send that cross-site without the relay's consent (CORS).
  if (!/^application\/json\s*(;|$)/i.test(type))
    throw new ProtocolError(ErrorCode.INVALID_MESSAGE, 'send the parameters as application/json');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError(ErrorCode.BAD_FRAME, 'the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ProtocolError(ErrorCode.BAD_FRAME, 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

/**
 * Runs one request of the handler table for a REST caller: the entry's middleware refuses what
 * only a WebSocket may send, and a bearer token stands for `auth.token` where a login is needed.
 */
async function call<T extends RequestType>(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: HttpContext,
  request: Request<T>,
): Promise<Results[T]> {
  const caller = new RestCaller(ctx.addressOf(req));
  res.once('close', () => caller.markClosed());
  const token = bearerToken(req);
  const { auth, door } = entryOf(request.type);
  // Only where a login counts, and only for a request REST may send: /v1/info ignores the header.
  if (token !== undefined && auth === 'user' && door === 'any')
    caller.auth = await ctx.auth.authenticate(token);
  return dispatch(caller, request.type, request, ctx);
}

/** `?after=NAME&limit=N` of /v1/users as `users.list` parameters (the schema checks them). */
function pageOf(url: URL): Record<string, unknown> {
  const after = url.searchParams.get('after');
  const limit = url.searchParams.get('limit');
  return {
    all: true,
    ...(after === null ? {} : { after }),
    // NaN is sent as null, which the schema refuses like any other non-number.
    ...(limit === null ? {} : { limit: Number(limit) }),
  };
}

/** GET endpoints that are one request of the table each, and how each shows its result. */
const GET_ROUTES = new Map<
  string,
  (url: URL) => { params: Request; show: (r: unknown) => unknown }
>(
  Object.entries({
    // What anyone may know: no host name, uptime or counts (those are on /metrics).
    '/v1/info': () => ({ params: decodeParams('info', {}), show: (r) => r }),
    // Paged like `users.list` with `all`: never a body that grows with the number of accounts.
    '/v1/users': (url) => ({
      params: decodeParams('users.list', pageOf(url)),
      show: (r) => {
        const { users, next } = r as Results['users.list'];
        return {
          users: users.map((u) => ({ user: u.user, online: u.online })),
          ...(next === undefined ? {} : { next }),
        };
      },
    }),
    // The sessions the caller may attach to, with their tags; ?tag=KEY=VALUE (repeatable) keeps
    // only those carrying every one.
    '/v1/sessions': (url) => {
      const tags = url.searchParams.getAll('tag').map((t) => {
        const eq = t.indexOf('=');
        // Without "=", the whole text is the key, which the schema refuses (400), as a bad value.
        return eq < 0 ? [`${t}=`, ''] : [t.slice(0, eq), t.slice(eq + 1)];
      });
      return {
        params: decodeParams(
          'sessions.list',
          tags.length > 0 ? { tags: Object.fromEntries(tags) } : {},
        ),
        show: (r) => r,
      };
    },
    // Audit entries the caller may see (as `audit.list`): ?host=ID&user=U&since=ISO-or-epoch-ms
    // &limit=N, and ?after_log=LOG&after_seq=N to continue; each entry is the signed body as is.
    '/v1/audit': (url) => {
      const q = url.searchParams;
      const since = q.get('since');
      const sinceMs =
        since === null ? undefined : /^\d+$/.test(since) ? Number(since) : Date.parse(since);
      const afterLog = q.get('after_log');
      return {
        params: decodeParams('audit.list', {
          ...(q.get('host') !== null ? { host: q.get('host') } : {}),
          ...(q.get('user') !== null ? { user: q.get('user') } : {}),
          // An unreadable time is NaN, which the schema refuses (400).
          ...(sinceMs !== undefined ? { since: sinceMs } : {}),
          ...(q.get('limit') !== null ? { limit: Number(q.get('limit')) } : {}),
          ...(afterLog !== null
            ? { after: { log: afterLog, seq: Number(q.get('after_seq')) } }
            : {}),
        }),
        show: (r) => r,
      };
    },
    // The ledger's id, key, unit and signed checkpoint: public, as `ledger.info`.
    '/v1/ledger/key': () => ({ params: decodeParams('ledger.info', {}), show: (r) => r }),
    // The caller's account's devices (as `switchboard devices --json`).
    '/v1/devices': () => ({ params: decodeParams('devices.list', {}), show: (r) => r }),
    '/v1/whoami': () => ({
      params: decodeParams('whoami', {}),
      show: (r) => {
        const { user, device } = r as Results['whoami'];
        return { user, device: device.fingerprint };
      },
    }),
  }),
);

/** POST /v1/requests/TYPE: any request of the table REST may send, its JSON body the parameters. */
const REQUESTS_PREFIX = '/v1/requests/';

/** Routes one HTTP request. Never throws: every failure becomes a JSON {code, message}. */
export async function handleHttp(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: HttpContext,
): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'https://relay');
    if (req.method === 'POST' && url.pathname.startsWith(REQUESTS_PREFIX)) {
      // Request types are ASCII: nothing to decode (and a malformed escape is not our error).
      const type = url.pathname.slice(REQUESTS_PREFIX.length);
      if (!isRequestType(type))
        throw new ProtocolError(
          ErrorCode.UNKNOWN_TYPE,
          `unknown request type "${type.slice(0, 64)}"`,
        );
      const request = decodeParams(type, await readJsonBody(req));
      send(res, 200, await call(req, res, ctx, request));
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, {
        code: 'METHOD_NOT_ALLOWED',
        message: `only GET is supported here (requests: POST ${REQUESTS_PREFIX}TYPE)`,
      });
      return;
    }
    const route = GET_ROUTES.get(url.pathname);
    if (route) {
      const { params, show } = route(url);
      send(res, 200, show(await call(req, res, ctx, params)));
      return;
    }
    switch (url.pathname) {
      case '/healthz':
        if (ctx.isShuttingDown()) send(res, 503, { status: 'shutting-down' });
        else send(res, 200, { status: 'ok' });
        return;
      case '/metrics': {
        if (!metricsAllowed(req, ctx)) {
          send(res, 403, {
            code: 'FORBIDDEN',
            message:
              'metrics are served on loopback, or with "Authorization: Bearer <token>" when the relay runs with --metrics-token',
          });
          return;
        }
        const text = await ctx.metrics.render();
        res.writeHead(200, {
          'content-type': ctx.metrics.contentType,
          'content-length': Buffer.byteLength(text),
          'cache-control': 'no-store',
        });
        res.end(text);
        return;
      }
      default:
        if (serveWeb(req, res, ctx.web, url.pathname)) return;
        send(res, 404, { code: 'NOT_FOUND', message: `no such endpoint: ${url.pathname}` });
    }
  } catch (err) {
    if (err instanceof SwitchboardError) {
      sendError(res, err);
    } else {
      ctx.log.error({ err }, 'http handler failed');
      send(res, 500, { code: ErrorCode.INTERNAL, message: 'internal error' });
    }
  }
}
