// The chat view (a chunk of its own, loaded by chat.ts): the shared messaging engine
// (client/messenger.ts) on the page's relay connection, with this browser's stores (chat-store.ts,
// pins.ts) and key, drawn as a list of contacts (presence, requests, unread) and one conversation
// (marks, approval, safety number), plus the broadcasts. The page has no direct connections and
// serves no `chat` service: everything goes through the relay's mailbox, sealed here.
import type { Contacts } from '../client/contacts.js';
import {
  MARK_TEXT,
  MessageHistory,
  clockTime,
  type HistoryLine,
  type MarkState,
} from '../client/message-history.js';
import { MESSAGE_MAX_TEXT_BYTES } from '../client/messaging.js';
import { MessagingKeys } from '../client/messaging-keys.js';
import { Messenger } from '../client/messenger.js';
import { fromBase64, utf8 } from '../crypto/bytes.js';
import { formatSafetyNumber, safetyNumber } from '../crypto/safety-number.js';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';
import { USERNAME_RE } from '../protocol/messages.js';
import { openChatStores } from './chat-store.js';
import { h, type Session } from './login.js';
import { pins } from './pins.js';

/** How often presence is asked while the view is open (as `switchboard chat` does). */
const PRESENCE_POLL_MS = 10_000; // ms
/** Messages of a conversation drawn (the history keeps them all). */
const SHOWN_MAX = 200;
/** The broadcasts' entry in the list. */
const BROADCASTS = '*';

function reason(err: unknown): string {
  return err instanceof SwitchboardError
    ? `${err.message} (${err.code})`
    : err instanceof Error
      ? err.message
      : String(err);
}

/** Starts the engine and draws the view into `into`; resolves once it is live. */
export async function startChat(session: Session, into: HTMLElement): Promise<void> {
  const { relay, user: me } = session;
  // The pins' key, as the CLI's is the relay's address: this page's relay is its origin.
  const server = location.host;
  const notice = h('p', { class: 'chat-notice', id: 'chat-notice', role: 'status' });
  const say = (text: string): void => {
    notice.textContent = text;
  };
  const stores = await openChatStores(me, (err) =>
    say(`Could not save to this browser: ${reason(err)}`),
  );
  // The engine takes a key that signs asynchronously: the WebCrypto key never leaves its object.
  const signer = {
    publicKey: session.key.publicKey,
    signAsync: (d: Uint8Array) => session.key.sign(d),
  };
  const messenger = new Messenger({
    client: relay,
    user: me,
    key: signer,
    server,
    stores: {
      pins: await pins(),
      keys: await MessagingKeys.open(stores.keys, signer),
      history: new MessageHistory(stores.history),
      contacts: stores.contacts,
    },
    direct: false,
  });
  const history = messenger.history;
  const contacts = (): Contacts => messenger.contacts();

  let open: string | undefined;
  /** The connection closed: the view is stopped, a new one takes over on "Reconnect". */
  let ended = false;
  const presence = new Map<string, { online: boolean; lastSeen: string | null }>();
  /** My messages being sent (no mark yet). */
  const sending = new Set<string>();
  /** Users who asked to message me in this page's life (their request shown). */
  const requests = new Map<string, string>();
  const safety = new Map<string, { digits: string; pinned: boolean } | 'computing' | string>();

  // --- the layout ---------------------------------------------------------------------------
  const newUser = h('input', {
    id: 'chat-new',
    name: 'chat-user',
    placeholder: 'User name',
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    'aria-label': 'Start a conversation with',
  });
  const newForm = h(
    'form',
    { class: 'chat-new' },
    newUser,
    h('button', { type: 'submit' }, 'Chat'),
  );
  const list = h('ul', { class: 'chat-contacts', id: 'chat-contacts' });
  const aside = h('aside', { class: 'chat-list' }, newForm, list);
  const peerName = h('h2', { id: 'chat-peer' });
  const peerState = h('span', { class: 'chat-presence', id: 'chat-presence' });
  const back = h('button', { type: 'button', class: 'chat-back', id: 'chat-back' }, '‹ Back');
  const verify = h('button', { type: 'button', id: 'chat-verify' }, 'Safety number');
  const head = h(
    'header',
    { class: 'chat-head' },
    back,
    h('div', { class: 'chat-title' }, peerName, peerState),
    verify,
  );
  const banner = h('div', { class: 'chat-request', id: 'chat-request', hidden: '' });
  const safetyBox = h('div', { class: 'chat-safety', id: 'chat-safety', hidden: '' });
  const messages = h('ol', { class: 'chat-messages', id: 'chat-messages', 'aria-live': 'polite' });
  const text = h('textarea', {
    id: 'chat-text',
    rows: '1',
    placeholder: 'Message (Enter sends, Shift+Enter a new line)',
    'aria-label': 'Message',
  });
  const compose = h(
    'form',
    { class: 'chat-compose', id: 'chat-compose' },
    text,
    h('button', { type: 'submit', id: 'chat-send' }, 'Send'),
  );
  const pane = h(
    'section',
    { class: 'chat-pane', hidden: '' },
    head,
    banner,
    safetyBox,
    messages,
    compose,
  );
  const empty = h(
    'p',
    { class: 'chat-empty', id: 'chat-empty' },
    'Pick a conversation, or start one with a user name. Messages are end-to-end encrypted in this browser; the relay only carries sealed envelopes.',
  );
  const layout = h('div', { class: 'chat-layout' }, aside, pane, empty);
  into.replaceChildren(notice, layout);

  // --- what the list and the pane show -------------------------------------------------------
  const visibleIn = (l: HistoryLine): boolean =>
    l.direction === 'out' || contacts().get(l.from)?.state === 'accepted';

  const unread = (user: string): number =>
    history.lines.filter(
      (l) =>
        l.direction === 'in' &&
        (user === BROADCASTS ? l.broadcast === true : !l.broadcast && l.from === user) &&
        history.status(l.id)?.state !== 'shown',
    ).length;

  const people = (): string[] => {
    const names = new Set<string>(
      contacts()
        .list()
        .map((c) => c.user),
    );
    for (const l of history.lines)
      if (!l.broadcast) names.add(l.direction === 'in' ? l.from : l.to);
    names.delete(me);
    return [...names].sort((a, b) => a.localeCompare(b));
  };

  const presenceText = (user: string): string => {
    const p = presence.get(user);
    if (!p) return '';
    return p.online
      ? '● online'
      : `○ offline${p.lastSeen ? `, seen ${clockTime(p.lastSeen)}` : ''}`;
  };

  const drawList = (): void => {
    const rows: HTMLElement[] = [];
    const entry = (user: string, label: string, extra: Array<Node | string>): HTMLElement => {
      const n = unread(user);
      const button = h(
        'button',
        { type: 'button', class: 'chat-contact' },
        h('span', { class: 'chat-contact-name' }, label),
        ...extra,
        ...(n > 0 ? [h('span', { class: 'chat-unread', title: 'unread' }, String(n))] : []),
      );
      button.addEventListener('click', () => select(user));
      return h(
        'li',
        { 'data-user': user, ...(open === user ? { 'aria-current': 'true' } : {}) },
        button,
      );
    };
    rows.push(entry(BROADCASTS, 'Broadcasts', []));
    for (const user of people()) {
      const state = contacts().get(user)?.state;
      const p = presence.get(user);
      rows.push(
        entry(user, user, [
          h(
            'span',
            {
              class: 'chat-dot',
              'data-online': String(p?.online ?? false),
              title: presenceText(user) || 'presence unknown',
            },
            p?.online ? '●' : '○',
          ),
          ...(state === 'pending'
            ? [h('span', { class: 'chat-badge', 'data-state': 'pending' }, 'request')]
            : state === 'blocked'
              ? [h('span', { class: 'chat-badge', 'data-state': 'blocked' }, 'blocked')]
              : []),
        ]),
      );
    }
    list.replaceChildren(...rows);
  };

  const lineItem = (l: HistoryLine): HTMLElement => {
    const mark: MarkState | 'sending' | undefined =
      l.direction === 'out'
        ? (history.status(l.id)?.state ?? (sending.has(l.id) ? 'sending' : undefined))
        : undefined;
    const who = l.broadcast ? l.from : l.direction === 'in' ? l.from : 'you';
    return h(
      'li',
      { class: 'msg', 'data-id': l.id, 'data-dir': l.direction },
      h('span', { class: 'msg-meta' }, `${clockTime(l.sentAt)} ${who}`),
      h('span', { class: 'msg-text' }, l.text),
      ...(mark !== undefined
        ? [h('span', { class: 'msg-mark', 'data-mark': mark }, MARK_TEXT[mark])]
        : []),
    );
  };

  const drawPane = (): void => {
    const user = open;
    layout.toggleAttribute('data-open', user !== undefined);
    pane.hidden = user === undefined;
    empty.hidden = user !== undefined;
    if (user === undefined) return;
    const isBroadcasts = user === BROADCASTS;
    peerName.textContent = isBroadcasts ? 'Broadcasts' : user;
    peerState.textContent = isBroadcasts
      ? 'signed by their senders, public to every user'
      : presenceText(user);
    verify.hidden = isBroadcasts;
    compose.hidden = isBroadcasts;
    const state = isBroadcasts ? undefined : contacts().get(user)?.state;
    // The request: a stranger's messages are held until accepted (as `switchboard contacts`).
    if (state === 'pending') {
      const held = history
        .conversation(user, Number.MAX_SAFE_INTEGER)
        .filter((l) => l.direction === 'in').length;
      const accept = h('button', { type: 'button', id: 'chat-accept' }, 'Accept');
      const block = h('button', { type: 'button', class: 'danger', id: 'chat-block' }, 'Block');
      accept.addEventListener('click', () => decide(user, 'accepted'));
      block.addEventListener('click', () => decide(user, 'blocked'));
      const device = requests.get(user) ?? contacts().get(user)?.device;
      banner.replaceChildren(
        h(
          'p',
          {},
          `${user}${device ? ` (${device})` : ''} is not a contact yet and wants to message you` +
            `${held ? ` (${held} message${held === 1 ? '' : 's'} held)` : ''}. Accept shows their messages; Block drops what they send.`,
        ),
        h('p', { class: 'actions' }, accept, block),
      );
      banner.hidden = false;
    } else if (state === 'blocked') {
      const unblock = h('button', { type: 'button', id: 'chat-unblock' }, 'Accept instead');
      unblock.addEventListener('click', () => decide(user, 'accepted'));
      banner.replaceChildren(
        h('p', {}, `You blocked ${user}: what they send is dropped.`),
        h('p', { class: 'actions' }, unblock),
      );
      banner.hidden = false;
    } else banner.hidden = true;
    drawSafety();
    const lines = isBroadcasts
      ? history.lines.filter((l) => l.broadcast)
      : history.conversation(user, Number.MAX_SAFE_INTEGER).filter(visibleIn);
    const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    messages.replaceChildren(
      ...lines.slice(-SHOWN_MAX).map(lineItem),
      ...(lines.length === 0 ? [h('li', { class: 'chat-none' }, 'No messages yet.')] : []),
    );
    if (atBottom) messages.scrollTop = messages.scrollHeight;
    markShown();
  };

  const drawSafety = (): void => {
    const s = open && open !== BROADCASTS ? safety.get(open) : undefined;
    if (s === undefined) {
      safetyBox.hidden = true;
      return;
    }
    safetyBox.hidden = false;
    if (s === 'computing') safetyBox.replaceChildren(h('p', {}, 'Computing…'));
    else if (typeof s === 'string') safetyBox.replaceChildren(h('p', { class: 'error' }, s));
    else
      safetyBox.replaceChildren(
        h(
          'p',
          {},
          `Safety number of you and ${open}${s.pinned ? '' : ` (some of ${open}'s device keys are new to this browser)`}:`,
        ),
        h(
          'pre',
          { id: 'chat-safety-number', 'data-digits': s.digits },
          formatSafetyNumber(s.digits),
        ),
        h(
          'p',
          {},
          `Read it to ${open} another way (in person, on a call); they run `,
          h('code', {}, `switchboard contacts verify ${me}`),
          '. If the numbers match, the relay gave each of you the other’s real keys.',
        ),
      );
  };

  const draw = (): void => {
    drawList();
    drawPane();
  };

  /** Received messages of the open conversation that are on screen: shown, and `read` told. */
  const markShown = (): void => {
    if (ended || !open || document.visibilityState !== 'visible' || into.hidden) return;
    const user = open;
    const seen = history.lines.filter(
      (l) =>
        l.direction === 'in' &&
        history.status(l.id)?.state !== 'shown' &&
        (user === BROADCASTS
          ? l.broadcast === true
          : !l.broadcast && l.from === user && contacts().get(user)?.state === 'accepted'),
    );
    if (seen.length === 0) return;
    messenger.shown(seen);
    drawList();
  };

  const select = (user: string): void => {
    open = user;
    draw();
    if (user !== BROADCASTS) text.focus();
  };

  const decide = (user: string, state: 'accepted' | 'blocked'): void => {
    contacts().set(user, state);
    say(state === 'accepted' ? `Accepted ${user}.` : `Blocked ${user}: what they send is dropped.`);
    draw();
  };

  // --- presence -----------------------------------------------------------------------------
  const checkPresence = async (): Promise<void> => {
    try {
      const { users } = await relay.request('users.list', {});
      for (const u of users) presence.set(u.user, { online: u.online, lastSeen: u.lastSeen });
      // Someone I talk to that the relay did not list is not online.
      for (const user of people())
        if (!users.some((u) => u.user === user))
          presence.set(user, { online: false, lastSeen: presence.get(user)?.lastSeen ?? null });
      draw();
    } catch {
      // The connection is going: the page says so.
    }
  };

  // --- the engine's events ------------------------------------------------------------------
  messenger.on('message', (l: HistoryLine) => {
    if (l.broadcast && l.direction === 'in') say(`A broadcast from ${l.from}.`);
    draw();
  });
  messenger.on('request', (r: { user: string; device: string }) => {
    requests.set(r.user, r.device);
    say(`${r.user} wants to message you: open their conversation to accept or block them.`);
    draw();
  });
  messenger.on('status', () => drawPane());
  messenger.on('refused', (r: { from: string; kind: string; message: string }) =>
    say(`A ${r.kind} from ${r.from} was refused: ${r.message}`),
  );
  messenger.on('notice', (t: string) => say(t));

  // --- input ----------------------------------------------------------------------------------
  newForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const user = newUser.value.trim();
    if (!USERNAME_RE.test(user)) return say(`"${user}" is not a user name.`);
    if (user === me) return say('That is you: chat with another user.');
    newUser.value = '';
    void relay.request('keys.get', { user }).then(
      () => select(user),
      (err: unknown) => say(`Cannot chat with ${user}: ${reason(err)}`),
    );
  });
  back.addEventListener('click', () => {
    open = undefined;
    draw();
  });
  verify.addEventListener('click', () => {
    const user = open;
    if (!user || user === BROADCASTS) return;
    safety.set(user, 'computing');
    drawSafety();
    void safetyWith(user)
      .then(
        (s) => safety.set(user, s),
        (err: unknown) => safety.set(user, `Cannot compute it now: ${reason(err)}`),
      )
      .then(drawSafety);
  });
  /** As `switchboard contacts verify`: the directory's device keys of both, as this relay shows them. */
  const safetyWith = async (user: string): Promise<{ digits: string; pinned: boolean }> => {
    const mine = (await relay.request('keys.get', { user: me })).devices.map((d) =>
      fromBase64(d.publicKey),
    );
    const listed = (await relay.request('keys.get', { user })).devices.map((d) => d.publicKey);
    const pinned = new Set((await pins()).list(server, user).map((p) => p.publicKey));
    const digits = safetyNumber(
      { identifier: me, keys: mine },
      { identifier: user, keys: listed.map((k) => fromBase64(k)) },
    );
    return { digits, pinned: listed.every((k) => pinned.has(k)) };
  };
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      compose.requestSubmit();
    }
  });
  let queue: Promise<void> = Promise.resolve();
  compose.addEventListener('submit', (e) => {
    e.preventDefault();
    const to = open;
    const body = text.value.replace(/\s+$/, '');
    if (!to || to === BROADCASTS || body === '') return;
    if (utf8(body).length > MESSAGE_MAX_TEXT_BYTES)
      return say(`A message is at most ${MESSAGE_MAX_TEXT_BYTES} bytes.`);
    text.value = '';
    queue = queue.then(async () => {
      let id = '';
      try {
        await messenger.send(to, body, (i) => {
          sending.add((id = i));
          drawPane();
        });
      } catch (err) {
        if (err instanceof SwitchboardError && err.code === ErrorCode.PEER_KEY_CHANGED)
          say(
            `!!! ${to}'s device key CHANGED: nothing is sent to ${to} until you compare safety numbers with them another way. ${err.message}`,
          );
        else say(`Not sent: ${reason(err)}`);
      } finally {
        sending.delete(id);
        drawPane();
      }
    });
  });
  // --- live ---------------------------------------------------------------------------------
  // The connection's end ends what this view started: the document's listener, the observer, the
  // presence poll and the engine (its writes saved, then the database closed). "Reconnect" draws
  // a new view on a new connection; this one must not mark messages shown on a stopped engine.
  // Registered before the engine starts, so a connection lost while it starts ends it too.
  document.addEventListener('visibilitychange', markShown);
  // The Chat tab shown again (app.ts unhides the section): what arrived meanwhile is seen now.
  const unhidden = new MutationObserver(markShown);
  unhidden.observe(into, { attributes: true, attributeFilter: ['hidden'] });
  let poll: number | undefined;
  relay.onClosed(() => {
    ended = true;
    document.removeEventListener('visibilitychange', markShown);
    unhidden.disconnect();
    window.clearInterval(poll);
    void messenger
      .stop()
      .catch(() => undefined)
      .then(() => stores.saved())
      .catch(() => undefined)
      .finally(() => stores.close());
  });
  await messenger.start({ live: true });
  await messenger.catchUp();
  draw();
  await checkPresence();
  if (!ended) poll = window.setInterval(() => void checkPresence(), PRESENCE_POLL_MS);
  into.dataset['ready'] = 'true';
}
