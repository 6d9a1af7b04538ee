// Plain HTTPS endpoints on the relay's port: /healthz and the small JSON REST API under /v1/.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthError, ErrorCode, ProtocolError, SwitchboardError } from '../protocol/errors.js';
import { PROTOCOL_VERSION, USERS_PAGE_DEFAULT, USERS_PAGE_MAX } from '../protocol/limits.js';
import { USERNAME_RE } from '../protocol/messages.js';
import type { Services } from './handlers.js';
import { SERVER_NAME } from './handlers.js';

export interface HttpContext extends Services {
  fingerprint: string;
  isShuttingDown: () => boolean;
  /** Bearer token that opens /metrics to non-loopback clients; without it, loopback only. */
  metricsToken?: string;
}

/** True for a connection from this machine. */
function fromLoopback(req: IncomingMessage): boolean {
  const a = req.socket.remoteAddress ?? '';
  return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
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

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'strict-transport-security': 'max-age=31536000',
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, err: SwitchboardError): void {
  send(res, status, { code: err.code, message: err.message });
}

const STATUS_BY_CODE: Partial<Record<string, number>> = {
  [ErrorCode.AUTH_REQUIRED]: 401,
  [ErrorCode.TOKEN_INVALID]: 401,
  [ErrorCode.TOKEN_EXPIRED]: 401,
  [ErrorCode.TOKEN_REVOKED]: 401,
};

async function bearer(req: IncomingMessage, ctx: HttpContext) {
  const header = req.headers.authorization ?? '';
  const match = /^Bearer ([A-Za-z0-9_-]{1,128})$/.exec(header);
  if (!match?.[1])
    throw new AuthError(
      ErrorCode.AUTH_REQUIRED,
      'send "Authorization: Bearer <token>" (the token is in $SWITCHBOARD_HOME/login.json after login)',
    );
  return ctx.auth.authenticate(match[1]);
}

/** `?after=NAME&limit=N` of a paged listing, validated. */
function pageOf(url: URL): { after: string | undefined; limit: number } {
  const after = url.searchParams.get('after') ?? undefined;
  const limitText = url.searchParams.get('limit');
  const limit = limitText === null ? USERS_PAGE_DEFAULT : Number(limitText);
  if (after !== undefined && !USERNAME_RE.test(after))
    throw new ProtocolError(ErrorCode.INVALID_MESSAGE, '"after" must be a user name');
  if (!Number.isInteger(limit) || limit < 1 || limit > USERS_PAGE_MAX)
    throw new ProtocolError(
      ErrorCode.INVALID_MESSAGE,
      `"limit" must be a whole number from 1 to ${USERS_PAGE_MAX}`,
    );
  return { after, limit };
}

/** Routes one HTTP request. Never throws: every failure becomes a JSON {code, message}. */
export async function handleHttp(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: HttpContext,
): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'https://relay');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { code: 'METHOD_NOT_ALLOWED', message: 'only GET is supported' });
      return;
    }
    switch (url.pathname) {
      case '/healthz':
        if (ctx.isShuttingDown()) send(res, 503, { status: 'shutting-down' });
        else send(res, 200, { status: 'ok' });
        return;
      case '/v1/info':
        // What anyone may know: no host name, uptime or counts (those are on /metrics).
        send(res, 200, {
          server: SERVER_NAME,
          protocol: PROTOCOL_VERSION,
          fingerprint: ctx.fingerprint,
        });
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
      case '/v1/users': {
        await bearer(req, ctx);
        // Paged like `users.list` with `all`: never a body that grows with the number of accounts.
        const { after, limit } = pageOf(url);
        const page = await ctx.store.users.listPage(after, limit + 1);
        const users = page.slice(0, limit);
        const last = users[users.length - 1];
        send(res, 200, {
          users: users.map((u) => ({ user: u.name, online: ctx.directory.isOnline(u.id) })),
          ...(page.length > limit && last ? { next: last.name } : {}),
        });
        return;
      }
      case '/v1/whoami': {
        const auth = await bearer(req, ctx);
        send(res, 200, { user: auth.user.name, device: auth.device.fingerprint });
        return;
      }
      default:
        send(res, 404, { code: 'NOT_FOUND', message: `no such endpoint: ${url.pathname}` });
    }
  } catch (err) {
    if (err instanceof SwitchboardError) {
      sendError(res, STATUS_BY_CODE[err.code] ?? 400, err);
    } else {
      ctx.log.error({ err }, 'http handler failed');
      send(res, 500, { code: ErrorCode.INTERNAL, message: 'internal error' });
    }
  }
}
