// A remote terminal in the page: xterm.js (DOM renderer, so its text stays readable by assistive
// tools and tests) over the same AttachSession as `switchboard attach` — the E2E handshake with
// this browser's key, host keys pinned in IndexedDB (pins.ts), resume after a drop, resize
// following the window, read-only enforced by the host. Loaded only when a terminal is opened.
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { WebLinksAddon } from '@xterm/addon-web-links';
import { AttachSession, type AttachedInfo, type ReconnectInfo } from '../client/attach-session.js';
import { fromBase64 } from '../crypto/bytes.js';
import { keyFingerprint } from '../crypto/fingerprint.js';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';
import { savedLogin } from './keys.js';
import { h, type Session } from './login.js';
import { pins } from './pins.js';
import type { TerminalTarget } from './sessions.js';
import { WebRelay } from './relay.js';

/** A fresh logged-in connection for each attempt: the page's own stays for the lists and chat. */
async function connect(): Promise<WebRelay> {
  const login = await savedLogin();
  if (!login) throw new SwitchboardError(ErrorCode.TOKEN_INVALID, 'log in again');
  const relay = await WebRelay.connect();
  try {
    await relay.request('auth.token', { token: login.token });
  } catch (err) {
    relay.close();
    throw err;
  }
  return relay;
}

/**
 * The cells' 24-bit colours: xterm.js's row factory sets them with `setAttribute('style', …)` on
 * spans it makes with the global document, which the CSP refuses as an inline style. A span's
 * `style` attribute set from script goes through its CSSOM instead (`style.cssText`), which the CSP
 * allows: it gives script nothing it did not have (script may always set `el.style`), and markup
 * injected into the page still has its style attributes refused by the parser. The page sets no
 * style attribute of its own, so this changes nothing else.
 */
function routeSpanStylesThroughCssom(): void {
  const proto = HTMLSpanElement.prototype;
  if (Object.prototype.hasOwnProperty.call(proto, 'setAttribute')) return; // done already
  const setAttribute = Element.prototype.setAttribute;
  proto.setAttribute = function (this: HTMLSpanElement, name: string, value: string): void {
    if (name.toLowerCase() === 'style') this.style.cssText = value;
    else setAttribute.call(this, name, value);
  };
}

/**
 * The document xterm.js is given (its `documentOverride`): the page's own, except that the
 * `<style>` elements its DOM renderer writes its theme and cell sizes into — which the page's
 * CSP (`style-src 'self'`, no inline styles) refuses — become hidden elements whose text is
 * carried into constructed stylesheets (`adoptedStyleSheets`, which the CSP allows). With
 * routeSpanStylesThroughCssom, the terminal is styled without weakening the page's policy.
 */
function styledDocument(): { doc: Document; dispose(): void } {
  const sheets: CSSStyleSheet[] = [];
  const observers: MutationObserver[] = [];
  const styleHolder = (): HTMLElement => {
    const holder = document.createElement('span');
    holder.hidden = true;
    const sheet = new CSSStyleSheet();
    sheets.push(sheet);
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    const observer = new MutationObserver(() => sheet.replaceSync(holder.textContent ?? ''));
    observer.observe(holder, { childList: true, characterData: true, subtree: true });
    observers.push(observer);
    return holder;
  };
  const doc = new Proxy(document, {
    get(target, prop) {
      if (prop === 'createElement')
        return (tag: string, options?: ElementCreationOptions) =>
          tag.toLowerCase() === 'style' ? styleHolder() : target.createElement(tag, options);
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value;
    },
  });
  return {
    doc,
    dispose: () => {
      for (const o of observers) o.disconnect();
      document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => !sheets.includes(s));
    },
  };
}

/** A link in the terminal, in a new tab without the page as opener or referrer; http(s) only. */
function openLink(uri: string): void {
  if (/^https?:\/\//i.test(uri)) window.open(uri, '_blank', 'noopener,noreferrer');
}

/** Why a terminal ended, in words, for the end state. */
function endText(end: { exit?: { code: number }; error?: SwitchboardError }): string {
  if (end.exit) return `The remote shell exited with ${end.exit.code}.`;
  const err = end.error ?? new SwitchboardError(ErrorCode.CHANNEL_CLOSED, 'the session ended');
  if (err.code === ErrorCode.CHANNEL_CLOSED) return `The session ended: ${err.message}.`;
  return `${err.message} (${err.code})`;
}

/**
 * Opens `target` in `into`. `onLeave` runs when the user asks to go back to the list, whose
 * drawing calls `close()`: it detaches (the remote shell keeps running, as after `~.`) and takes
 * the terminal down; another terminal or a logout calls it too.
 */
export async function openTerminal(
  session: Session,
  target: TerminalTarget,
  o: { readOnly: boolean; into: HTMLElement; onLeave: () => void },
): Promise<{ close(): Promise<void> }> {
  const status = h(
    'span',
    { class: 'term-status', id: 'term-status', role: 'status' },
    'Connecting…',
  );
  const back = h('button', { type: 'button', id: 'term-back' }, '← Sessions');
  const where = (hostName: string, owner: string): string =>
    ` on ${hostName} (${owner})${o.readOnly ? ', watching' : ''}`;
  const place = h(
    'span',
    {},
    target.hostName && target.owner ? where(target.hostName, target.owner) : '',
  );
  const title = h('span', { class: 'term-title' }, h('code', {}, target.sessionId), place);
  const info = h('p', { class: 'term-info', id: 'term-info' });
  const warning = h('div', {
    class: 'term-warning',
    id: 'term-warning',
    role: 'alert',
    hidden: '',
  });
  const screen = h('div', { class: 'term-screen', id: 'term-screen' });
  o.into.replaceChildren(
    h('div', { class: 'term-bar' }, back, title, status),
    warning,
    screen,
    info,
  );

  routeSpanStylesThroughCssom();
  const styles = styledDocument();
  const term = new Terminal({
    documentOverride: styles.doc,
    cursorBlink: true,
    fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace',
    fontSize: 14,
    scrollback: 5000,
    disableStdin: o.readOnly,
    // Hyperlinks a program prints (OSC 8) open as the web-links addon's do, and only http(s).
    linkHandler: { activate: (_event, uri) => openLink(uri) },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  // Links open in a new tab without the page as opener or referrer.
  term.loadAddon(new WebLinksAddon((_event, uri) => openLink(uri)));
  term.open(screen);
  fit.fit();

  const key = session.key;
  const attach = new AttachSession({
    sessionId: target.sessionId,
    readOnly: o.readOnly,
    user: session.user,
    key: { publicKey: key.publicKey, signAsync: (data) => key.sign(data) },
    server: location.host,
    knownPeers: await pins(),
    connect,
    cols: term.cols,
    rows: term.rows,
    term: 'xterm-256color',
    // A full-screen program gets a repaint after a drop; a shell its missed output.
    repaintOnResume: () => term.buffer.active.type === 'alternate',
  });

  const encoder = new TextEncoder();
  const typed = term.onData((data) => attach.input(encoder.encode(data)));
  const binary = term.onBinary((data) =>
    attach.input(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)),
  );
  // The size is on the element too (data-cols, data-rows), for whoever reads the page.
  const sized = ({ cols, rows }: { cols: number; rows: number }): void => {
    screen.dataset.cols = String(cols);
    screen.dataset.rows = String(rows);
  };
  sized(term);
  const resized = term.onResize((size) => {
    sized(size);
    attach.resize(size.cols, size.rows);
  });
  // The terminal follows its box, which follows the window.
  const observer = new ResizeObserver(() => fit.fit());
  observer.observe(screen);

  attach.on('output', (data: Uint8Array) => term.write(data));
  attach.on('snapshot', (data: Uint8Array) => term.write(data));
  attach.on('notice', (text: string) => {
    info.textContent = text;
  });
  attach.on('reconnecting', (r: ReconnectInfo) => {
    status.textContent = `Reconnecting (attempt ${r.attempt}, next in ${Math.ceil(r.nextInMs / 1000)} s): ${r.reason}`;
    status.dataset.state = 'reconnecting';
    status.dataset.reconnects = String(Number(status.dataset.reconnects ?? 0) + 1);
  });
  attach.on('state', (state: string) => {
    if (state === 'attached') {
      status.textContent = 'Connected';
      status.dataset.state = 'attached';
    }
  });

  let ended = false;
  let closed = false;
  /** Detaches (the remote shell keeps running) and takes the terminal down. */
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    if (!ended) await attach.detach().catch(() => undefined);
    observer.disconnect();
    typed.dispose();
    binary.dispose();
    resized.dispose();
    term.dispose();
    styles.dispose();
  };
  // Back to the list at once; what shows the list detaches this terminal (`close`).
  back.addEventListener('click', () => o.onLeave());
  attach.once(
    'end',
    (end: { exit?: { code: number }; error?: SwitchboardError; detached?: boolean }) => {
      ended = true;
      if (end.detached) return;
      status.textContent = 'Ended';
      status.dataset.state = 'ended';
      const text = endText(end);
      if (end.error?.code === ErrorCode.PEER_KEY_CHANGED) {
        // Loud, as ssh's "REMOTE HOST IDENTIFICATION HAS CHANGED".
        warning.textContent = end.error.message;
        warning.hidden = false;
      }
      info.textContent = text;
      term.options.disableStdin = true;
      term.write(`\r\n\x1b[7m[switchboard] ${text}\x1b[0m\r\n`);
    },
  );

  void attach.start().then(
    (attached) => shown(attached),
    () => undefined, // 'end' has drawn why
  );
  const shown = (attached: AttachedInfo): void => {
    status.textContent = 'Connected';
    status.dataset.state = 'attached';
    const { host, hostName, welcome, handshakeHash } = attached;
    place.textContent = where(hostName, host.user);
    // The fingerprint of the key the host proved in the handshake (not a label the relay sent).
    const proven = keyFingerprint(fromBase64(host.publicKey));
    info.textContent =
      `${hostName}: host ${host.user} ${proven}; you ${session.fingerprint}; ` +
      `E2E handshake ${handshakeHash.slice(0, 16)}` +
      (welcome.readOnly ? '; read-only: the host does not take your keystrokes' : '');
    if (!o.readOnly && !welcome.readOnly) term.focus();
  };
  return { close };
}
