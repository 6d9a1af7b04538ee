// The page's entry (scripts/build-web.mjs bundles it): the shell, then this browser's login
// (login.ts) — resumed from the token it holds, or the login and sign-up forms — and the
// signed-in view. A relay that cannot be reached gets a clear state and a retry.
import { accountBar, h, loginForm, resume, type Session } from './login.js';
import { showSessions } from './sessions.js';

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

function signedIn(body: HTMLElement, session: Session, restart: (notice: string) => void): void {
  session.relay.onClosed((reason) => {
    if (reason !== 'closed by the page')
      unreachable(body, `The connection was lost: ${reason}`, () => restart(''));
  });
  const sessions = h('section', { class: 'sessions' });
  body.replaceChildren(accountBar(session, restart), sessions);
  void showSessions(session, sessions);
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
