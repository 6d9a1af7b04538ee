// The web page's files (dist/web/, built by scripts/build-web.mjs): loaded once at relay start, served by their names in the manifest and never from a path in a URL.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where `npm run build` puts the page: dist/web/, seen from this module in dist/src/server/. */
export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

/**
 * The page may load only what the relay itself serves, and connect only to it (its WebSocket
 * included: Chromium counts wss: to the page's own host as 'self'). No inline script or style,
 * no framing, no form posts, no <base>.
 */
export const WEB_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'none'; " +
  "frame-ancestors 'none'";

/** On every answer under `/` and `/assets/`, including 304 and 503. */
const SECURITY_HEADERS = {
  'content-security-policy': WEB_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  // Other sites may not embed our scripts and styles either.
  'cross-origin-resource-policy': 'same-origin',
  'strict-transport-security': 'max-age=31536000',
};

/** index.html is checked with the relay on every load (its ETag), so a new build shows at once. */
const INDEX_CACHE = 'no-cache';
/** Hashed names never change content: a year (s), and no revalidation. */
const ASSET_CACHE = 'public, max-age=31536000, immutable';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
};

/** A manifest path: index.html (and its compressed forms) or one plain name under assets/. */
const MANIFEST_PATH = /^(index\.html(\.gz|\.br)?|assets\/[A-Za-z0-9][A-Za-z0-9._-]{0,200})$/;

type Coding = 'br' | 'gzip' | 'identity';

interface Representation {
  body: Buffer;
  /** Strong ETag: the file's sha256, with the content coding for a compressed form. */
  etag: string;
}

/** One servable file, ready to write: bodies in memory, headers decided. */
export interface WebFile {
  contentType: string;
  cacheControl: string;
  forms: Partial<Record<Coding, Representation>> & { identity: Representation };
}

/** The page as loaded at start: its files by URL path (`/`, `/assets/NAME`), or why there are none. */
export type WebAssets =
  | { ok: true; dir: string; files: ReadonlyMap<string, WebFile> }
  | { ok: false; dir: string; reason: string };

/** One file of the build's manifest.json (scripts/build-web.mjs writes it). */
export interface ManifestEntry {
  path: string;
  size: number;
  sha256: string;
  gzip?: { path: string; size: number };
  br?: { path: string; size: number };
}

function isForm(v: unknown): v is { path: string; size: number } {
  const f = v as { path?: unknown; size?: unknown } | null;
  return (
    typeof f === 'object' &&
    f !== null &&
    typeof f.path === 'string' &&
    MANIFEST_PATH.test(f.path) &&
    Number.isSafeInteger(f.size)
  );
}

function isEntry(v: unknown): v is ManifestEntry {
  if (!isForm(v)) return false;
  const e = v as Partial<ManifestEntry>;
  return (
    typeof e.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(e.sha256) &&
    (e.gzip === undefined || isForm(e.gzip)) &&
    (e.br === undefined || isForm(e.br))
  );
}

/** Reads one file of the manifest, refusing it if its size differs (a build under way). */
function readChecked(dir: string, form: { path: string; size: number }): Buffer {
  const body = readFileSync(join(dir, form.path));
  if (body.length !== form.size)
    throw new Error(`${form.path} is ${body.length} bytes, the manifest says ${form.size}`);
  return body;
}

/**
 * Loads the built page from `dir` (default dist/web/): every file the manifest names, checked
 * against its size and sha256. Never throws: a missing or inconsistent build is `{ok: false}`,
 * and the relay serves a 503 at `/` saying so.
 *
 * @example
 * const web = loadWebAssets();
 * if (!web.ok) log.warn({ reason: web.reason }, 'the web page is not built');
 */
export function loadWebAssets(dir: string = DEFAULT_WEB_DIR): WebAssets {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
      version?: unknown;
      files?: Record<string, unknown>;
    };
    if (manifest.version !== 1 || typeof manifest.files !== 'object' || manifest.files === null)
      throw new Error('manifest.json is not a version 1 manifest');
    const files = new Map<string, WebFile>();
    for (const [name, entry] of Object.entries(manifest.files)) {
      if (!isEntry(entry)) throw new Error(`manifest.json: bad entry "${name}"`);
      const body = readChecked(dir, entry);
      const sha256 = createHash('sha256').update(body).digest('hex');
      if (sha256 !== entry.sha256) throw new Error(`${entry.path} does not match its sha256`);
      const isIndex = entry.path === 'index.html';
      const forms: WebFile['forms'] = { identity: { body, etag: `"${sha256}"` } };
      if (entry.gzip) forms.gzip = { body: readChecked(dir, entry.gzip), etag: `"${sha256}-gzip"` };
      if (entry.br) forms.br = { body: readChecked(dir, entry.br), etag: `"${sha256}-br"` };
      files.set(isIndex ? '/' : `/${entry.path}`, {
        contentType: CONTENT_TYPES[extname(entry.path)] ?? 'application/octet-stream',
        cacheControl: isIndex ? INDEX_CACHE : ASSET_CACHE,
        forms,
      });
    }
    if (!files.has('/')) throw new Error('manifest.json names no index.html');
    return { ok: true, dir, files };
  } catch (err) {
    return { ok: false, dir, reason: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * The coding to send: the client's most preferred of those we hold (`q` > 0; br before gzip on a
 * tie), else identity. An explicit `q=0` refuses a coding even when `*` would allow it.
 */
export function chooseCoding(acceptEncoding: string | undefined, held: readonly Coding[]): Coding {
  const q = new Map<string, number>();
  for (const part of (acceptEncoding ?? '').split(',')) {
    const [name = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (name === '') continue;
    const qParam = params.find((p) => p.startsWith('q='));
    const value = qParam === undefined ? 1 : Number(qParam.slice(2));
    q.set(name, Number.isFinite(value) ? value : 0);
  }
  let best: Coding = 'identity';
  let bestQ = 0;
  for (const coding of (['br', 'gzip'] as const).filter((c) => held.includes(c))) {
    const value = q.get(coding) ?? q.get('*') ?? 0;
    if (value > bestQ) [best, bestQ] = [coding, value];
  }
  return best;
}

/** True when If-None-Match names `etag` (weak comparison, as RFC 9110 asks for it) or is `*`. */
function notModified(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}

/**
 * Answers GET or HEAD of `/` and of `/assets/NAME` from the loaded page; false when `pathname` is
 * none of its files, for the caller's 404. `/` answers 503 when the page is not built.
 */
export function serveWeb(
  req: IncomingMessage,
  res: ServerResponse,
  web: WebAssets,
  pathname: string,
): boolean {
  if (!web.ok) {
    if (pathname !== '/') return false;
    const text = 'the web page is not built: run npm run build\n';
    res.writeHead(503, {
      ...SECURITY_HEADERS,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(text); // Node sends no body for HEAD
    return true;
  }
  const file = web.files.get(pathname);
  if (file === undefined) return false;
  const held = Object.keys(file.forms) as Coding[];
  const coding = chooseCoding(req.headers['accept-encoding'], held);
  const form = file.forms[coding] ?? file.forms.identity;
  const common = {
    ...SECURITY_HEADERS,
    etag: form.etag,
    'cache-control': file.cacheControl,
    ...(held.length > 1 ? { vary: 'Accept-Encoding' } : {}),
  };
  if (notModified(req.headers['if-none-match'], form.etag)) {
    res.writeHead(304, common);
    res.end();
    return true;
  }
  res.writeHead(200, {
    ...common,
    'content-type': file.contentType,
    'content-length': form.body.length,
    ...(coding === 'identity' ? {} : { 'content-encoding': coding }),
  });
  res.end(form.body); // Node sends no body for HEAD
  return true;
}
