// Plain HTTPS endpoints on the relay's port: /healthz and the small JSON REST API under /v1/.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthError, ErrorCode, SwitchboardError } from '../protocol/errors.js';
import { PROTOCOL_VERSION } from '../protocol/limits.js';
import type { Services } from './handlers.js';
import { SERVER_NAME } from './handlers.js';

export interface HttpContext extends Services {
  fingerprint: string;
  startedAt: number;
  isShuttingDown: () => boolean;
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
        send(res, 200, {
          server: SERVER_NAME,
          protocol: PROTOCOL_VERSION,
          fingerprint: ctx.fingerprint,
          uptimeSec: Math.floor((ctx.now() - ctx.startedAt) / 1000),
          liveSessions: ctx.directory.liveCount,
          usersOnline: ctx.directory.onlineCount,
        });
        return;
      case '/v1/users': {
        await bearer(req, ctx);
        const users = await ctx.store.users.list();
        send(res, 200, {
          users: users.map((u) => ({ user: u.name, online: ctx.directory.isOnline(u.id) })),
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
