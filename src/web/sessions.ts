// The sessions this account may reach (`sessions.list`, as `switchboard sessions` shows them):
// ID, owner, host, kind, tags, since, live; each opens a terminal (terminal.ts, loaded then), to
// type in or to watch.
import { SESSION_ID_RE, type SessionSummary } from '../protocol/messages.js';
import { h, type Session } from './login.js';

const when = (iso: string): string => new Date(iso).toLocaleString();

function row(s: SessionSummary, open: (readOnly: boolean) => void): HTMLTableRowElement {
  const openButton = h('button', { type: 'button', class: 'open' }, 'Open');
  const watchButton = h('button', { type: 'button', class: 'watch link' }, 'Watch');
  openButton.addEventListener('click', () => open(false));
  watchButton.addEventListener('click', () => open(true));
  const tags = Object.entries(s.tags).map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`));
  return h(
    'tr',
    { 'data-session': s.sessionId },
    h('td', {}, h('code', {}, s.sessionId)),
    h('td', {}, s.owner),
    h('td', {}, s.hostName),
    h('td', {}, s.kind),
    h('td', { class: 'tags' }, ...tags),
    h('td', {}, when(s.since)),
    h(
      'td',
      {},
      s.live ? h('span', { class: 'live' }, '● live') : h('span', { class: 'away' }, '○ away'),
    ),
    h('td', { class: 'actions' }, openButton, ' ', watchButton),
  );
}

/** What a terminal is opened on: a listed session, or one known only by its ID (a link). */
export type TerminalTarget = Pick<SessionSummary, 'sessionId'> & Partial<SessionSummary>;

/** A session named by the page's link (`https://RELAY/#attach=ID`), if the address has one. */
function linkedSession(): string | undefined {
  const m = /^#attach=(.+)$/.exec(location.hash);
  let id: string | undefined;
  try {
    id = m ? decodeURIComponent(m[1]!) : undefined;
  } catch {
    id = undefined; // not valid percent-encoding: not a session ID either
  }
  return id && SESSION_ID_RE.test(id) ? id : undefined;
}

/** The terminal shown in place of the list, if one is. */
let current: { close(): Promise<void> } | undefined;
/** Counts what was asked to be drawn (a list, a terminal): only the latest is, when it is ready. */
let drawing = 0;

/** Whether a terminal is shown (it keeps its own connection to the relay). */
export function terminalShown(): boolean {
  return current !== undefined;
}

/** Detaches from the terminal shown, if any (what replaces it is drawn next). */
export async function closeTerminal(): Promise<void> {
  const closing = current;
  current = undefined;
  await closing?.close();
}

/** Replaces the list with a terminal on `target`; back to the list when the user leaves it. */
async function open(
  session: Session,
  into: HTMLElement,
  target: TerminalTarget,
  readOnly: boolean,
): Promise<void> {
  const mine = ++drawing;
  await closeTerminal();
  if (mine !== drawing) return;
  into.replaceChildren(h('p', { role: 'status' }, 'Loading the terminal…'));
  try {
    const { openTerminal } = await import('./terminal.js');
    if (mine !== drawing) return;
    const opened = await openTerminal(session, target, {
      readOnly,
      into,
      onLeave: () => void showSessions(session, into),
    });
    // Something else was asked for while it opened (another link, the list): it goes.
    if (mine !== drawing) return void opened.close();
    current = opened;
  } catch (err) {
    if (mine === drawing)
      into.replaceChildren(
        h('p', { class: 'error' }, `The terminal could not open: ${String(err)}`),
      );
  }
}

/** What a link asks: open (or watch) the session it names, or not. */
function linkPrompt(session: Session, into: HTMLElement, sessionId: string): HTMLElement {
  const openIt = h('button', { type: 'button' }, 'Open');
  const watch = h('button', { type: 'button', class: 'link' }, 'Watch');
  const no = h('button', { type: 'button', class: 'link' }, 'Not now');
  const box = h(
    'div',
    { class: 'state', role: 'alertdialog', id: 'link-prompt', 'aria-label': 'A linked session' },
    h('p', {}, 'A link asks to open session ', h('code', {}, sessionId), '.'),
    openIt,
    ' ',
    watch,
    ' ',
    no,
  );
  openIt.addEventListener('click', () => void open(session, into, { sessionId }, false));
  watch.addEventListener('click', () => void open(session, into, { sessionId }, true));
  no.addEventListener('click', () => box.remove());
  return box;
}

/**
 * Open a session by its ID: a `share` is not listed to those it has not allowed, and its host
 * is asked about each of them (as for `switchboard attach ID`).
 */
function byId(session: Session, into: HTMLElement): HTMLElement {
  const id = h('input', {
    id: 'session-id',
    name: 'session-id',
    placeholder: 'Session ID',
    // The same rule as SESSION_ID_RE, written for the browser's v-mode patterns (dash escaped).
    pattern: '[A-Za-z0-9\\-]{3,64}',
    required: '',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const watch = h('button', { type: 'button', class: 'link' }, 'Watch');
  const form = h(
    'form',
    { class: 'by-id' },
    h('label', { for: 'session-id' }, 'Open a session by ID '),
    id,
    ' ',
    h('button', { type: 'submit' }, 'Open'),
    ' ',
    watch,
  );
  const go = (readOnly: boolean): void => {
    if (!form.reportValidity()) return;
    void open(session, into, { sessionId: id.value.trim() }, readOnly);
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    go(false);
  });
  watch.addEventListener('click', () => go(true));
  return form;
}

/** The list, in `into`; resolves once drawn (an error is drawn in its place). */
export async function showSessions(session: Session, into: HTMLElement): Promise<void> {
  // A link names a session: asked about above the list (a link alone does not attach anyone to
  // the host it names), once: the address is put back, so a reload shows just the list.
  const linked = linkedSession();
  if (linked) history.replaceState(null, '', location.pathname);
  const mine = ++drawing;
  await closeTerminal();
  const refresh = h('button', { type: 'button', class: 'link' }, 'Refresh');
  refresh.addEventListener('click', () => void showSessions(session, into));
  const title = h(
    'div',
    {},
    ...(linked ? [linkPrompt(session, into, linked)] : []),
    h('h2', {}, 'Sessions you can reach ', refresh),
    byId(session, into),
  );
  let listed: { sessions: SessionSummary[]; truncated?: boolean };
  try {
    listed = await session.relay.request('sessions.list', {});
  } catch (err) {
    if (mine === drawing)
      into.replaceChildren(title, h('p', { class: 'error' }, (err as Error).message));
    return;
  }
  if (mine !== drawing) return;
  if (listed.sessions.length === 0) {
    into.replaceChildren(
      title,
      h(
        'p',
        { id: 'no-sessions' },
        'None yet. Start one on a machine with ',
        h('code', {}, 'switchboard share'),
        ' or ',
        h('code', {}, 'switchboard agent --session ID'),
        ', or ask its owner to let you in (',
        h('code', {}, '--allow'),
        ').',
      ),
    );
    return;
  }
  const head = ['Session', 'Owner', 'Host', 'Kind', 'Tags', 'Since', '', ''].map((t) =>
    h('th', {}, t),
  );
  into.replaceChildren(
    title,
    h(
      'div',
      { class: 'scroll' },
      h(
        'table',
        { class: 'sessions', id: 'sessions' },
        h('thead', {}, h('tr', {}, ...head)),
        h(
          'tbody',
          {},
          ...listed.sessions.map((s) =>
            row(s, (readOnly) => void open(session, into, s, readOnly)),
          ),
        ),
      ),
    ),
    ...(listed.truncated ? [h('p', {}, 'More sessions exist than the relay lists at once.')] : []),
  );
}
