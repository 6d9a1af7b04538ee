// The page's entry (scripts/build-web.mjs bundles it): the shell, then this browser's login
// (login.ts) — resumed from the token it holds, or the login and sign-up forms — and the
// signed-in view. A relay that cannot be reached gets a clear state and a retry.
import { accountBar, h, loginForm, resume, type Session } from './login.js';
import { showChat } from './chat.js';
import { closeTerminal, showSessions, terminalShown } from './sessions.js';
import { WebRelay } from './relay.js';
import { Backoff } from '../client/backoff.js';

/** When the page tries the relay again after its connection was lost: first, and at most. */
const RETRY_FIRST_MS = 1_000; // ms
const RETRY_MAX_MS = 30_000; // ms

/** Renders the heading and the relay's name (the page's own host: the page is served by the relay). */
export function renderShell(root: HTMLElement, relayHost: string): HTMLElement {
  const heading = document.createElement('h1');
  heading.textContent = 'Switchboard';
  const relay = document.createElement('p');
  relay.className = 'relay';
  relay.textContent = `Relay: ${relayHost}`;
  const body = h('div', { id: 'body' });
  root.replaceChildren(heading, relay, body);
  return body;
}

function unreachable(body: HTMLElement, why: string, retry: () => void): void {
  const again = h('button', { type: 'button' }, 'Try again');
  again.addEventListener('click', retry);
  body.replaceChildren(
    h(
      'div',
      { class: 'state', role: 'status', id: 'unreachable' },
      h('h2', {}, 'The relay cannot be reached'),
      h('p', {}, why),
      again,
    ),
  );
}

function signedIn(body: HTMLElement, session: Session, again: (notice: string) => void): void {
  // Logging out, forgetting, reconnecting: an open terminal is detached first, not abandoned.
  const restart = (notice: string): void => void closeTerminal().then(() => again(notice));
  // A lost connection is said above the views, which stay: an open terminal reconnects on its
  // own connection (terminal.ts). The lists and chat come back by themselves as soon as the relay
  // answers again — redrawn, unless a terminal is shown (redrawing would close it): then they
  // wait for the user to leave it, or for "Reconnect".
  session.relay.onClosed((reason) => {
    if (reason === 'closed by the page') return;
    const retry = new Backoff(RETRY_FIRST_MS, RETRY_MAX_MS);
    let timer: number | undefined;
    const reconnect = h('button', { type: 'button' }, 'Reconnect');
    reconnect.addEventListener('click', () => {
      window.clearTimeout(timer);
      restart('');
    });
    const banner = h(
      'div',
      { class: 'state', role: 'status', id: 'unreachable' },
      h('strong', {}, 'The relay cannot be reached. '),
      `The connection was lost: ${reason}. Trying again… `,
      reconnect,
    );
    body.prepend(banner);
    const tryAgain = async (): Promise<void> => {
      if (!banner.isConnected) return; // redrawn meanwhile (Reconnect, log out)
      if (!terminalShown()) {
        try {
          (await WebRelay.connect()).close(); // answering again: redraw on a new login
          return restart('');
        } catch {
          // still down
        }
      }
      timer = window.setTimeout(() => void tryAgain(), retry.nextDelay());
    };
    timer = window.setTimeout(() => void tryAgain(), retry.nextDelay());
  });
  // Two views, Sessions (and the terminals they open) and Chat, each kept while the other shows.
  const sessions = h('section', { class: 'sessions', id: 'sessions-view' });
  const chat = h('section', { class: 'chat', id: 'chat-view', hidden: '' });
  const tabs = h('nav', { class: 'tabs', role: 'tablist' });
  const views: Array<[string, HTMLElement]> = [
    ['Sessions', sessions],
    ['Chat', chat],
  ];
  const buttons = views.map(([name]) => {
    const button = h(
      'button',
      { type: 'button', role: 'tab', id: `tab-${name.toLowerCase()}`, 'aria-selected': 'false' },
      name,
    );
    button.addEventListener('click', () => {
      for (const [other, v] of views) v.hidden = other !== name;
      for (const b of buttons) b.setAttribute('aria-selected', String(b === button));
    });
    return button;
  });
  tabs.append(...buttons);
  buttons[0]!.setAttribute('aria-selected', 'true');
  body.replaceChildren(accountBar(session, restart), tabs, sessions, chat);
  void showSessions(session, sessions);
  // Chat starts with the login, behind its tab: this browser publishes its messaging keys (so
  // others can write to it at once), takes what waits for it and counts what is unread; nothing
  // is marked read until the view is shown.
  void showChat(session, chat);
  // A link pasted into this tab (#attach=ID) opens its session, as on a fresh load.
  const onLink = (): void => {
    if (!session.relay.closed && location.hash.startsWith('#attach=')) {
      buttons[0]!.click();
      void showSessions(session, sessions);
    }
  };
  window.addEventListener('hashchange', onLink);
  session.relay.onClosed(() => window.removeEventListener('hashchange', onLink));
}

async function start(body: HTMLElement, notice: string): Promise<void> {
  let session: Session | undefined;
  try {
    session = notice ? undefined : await resume();
    session ??= await loginForm(body, notice);
  } catch (err) {
    unreachable(body, (err as Error).message, () => void start(body, ''));
    return;
  }
  signedIn(body, session, (next) => void start(body, next));
}

const root = document.getElementById('app');
if (root) void start(renderShell(root, location.host), '');
