// The sessions this account may reach (`sessions.list`, as `switchboard sessions` shows them):
// ID, owner, host, kind, tags, since, live. Refreshed on demand; terminals come next (issue 14).
import type { SessionSummary } from '../protocol/messages.js';
import { h, type Session } from './login.js';

const when = (iso: string): string => new Date(iso).toLocaleString();

function row(s: SessionSummary): HTMLTableRowElement {
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
  );
}

/** The list, in `into`; resolves once drawn (an error is drawn in its place). */
export async function showSessions(session: Session, into: HTMLElement): Promise<void> {
  const refresh = h('button', { type: 'button', class: 'link' }, 'Refresh');
  refresh.addEventListener('click', () => void showSessions(session, into));
  const title = h('h2', {}, 'Sessions you can reach ', refresh);
  let listed: { sessions: SessionSummary[]; truncated?: boolean };
  try {
    listed = await session.relay.request('sessions.list', {});
  } catch (err) {
    into.replaceChildren(title, h('p', { class: 'error' }, (err as Error).message));
    return;
  }
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
  const head = ['Session', 'Owner', 'Host', 'Kind', 'Tags', 'Since', ''].map((t) => h('th', {}, t));
  into.replaceChildren(
    title,
    h(
      'div',
      { class: 'scroll' },
      h(
        'table',
        { class: 'sessions', id: 'sessions' },
        h('thead', {}, h('tr', {}, ...head)),
        h('tbody', {}, ...listed.sessions.map(row)),
      ),
    ),
    ...(listed.truncated ? [h('p', {}, 'More sessions exist than the relay lists at once.')] : []),
  );
}
