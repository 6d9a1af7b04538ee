// Logging in from the page: sign-up and login forms (the standard autocomplete fields, so
// password managers work), this browser registered as a device of the account with its own key
// (keys.ts), its fingerprint shown, and log out / forget this browser.
import { loginProofMessage } from '../protocol/proof-messages.js';
import { toBase64 } from '../crypto/bytes.js';
import {
  clearLogin,
  deviceKey,
  fingerprint,
  forgetBrowser,
  saveLogin,
  savedLogin,
  type BrowserKey,
} from './keys.js';
import { RemoteError, SwitchboardError } from '../protocol/errors.js';
import { WebRelay } from './relay.js';

/** A signed-in page: its relay connection, the account, this browser's key. */
export interface Session {
  relay: WebRelay;
  user: string;
  key: BrowserKey;
  fingerprint: string;
}

/** "Chromium on Linux": how `switchboard devices` will name this browser (at most 64 chars). */
function deviceName(): string {
  const ua = navigator.userAgent;
  const browser = /Firefox\//.test(ua)
    ? 'Firefox'
    : /Edg\//.test(ua)
      ? 'Edge'
      : /Chrome\//.test(ua)
        ? 'Chromium'
        : /Safari\//.test(ua)
          ? 'Safari'
          : 'Browser';
  const os = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad/.test(ua)
      ? 'iOS'
      : /Mac OS X/.test(ua)
        ? 'macOS'
        : /Windows/.test(ua)
          ? 'Windows'
          : /Linux/.test(ua)
            ? 'Linux'
            : 'an unknown system';
  return `${browser} on ${os} (web)`.slice(0, 64);
}

/** An element with attributes and children (text or elements). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/** Logs in with the saved token, if this browser holds one that still works. */
export async function resume(): Promise<Session | undefined> {
  const login = await savedLogin();
  if (!login) return undefined;
  const relay = await WebRelay.connect();
  try {
    await relay.request('auth.token', { token: login.token });
  } catch (err) {
    relay.close();
    if (err instanceof RemoteError) {
      // The relay refused the token (expired, revoked): log in again.
      await clearLogin();
      return undefined;
    }
    throw err;
  }
  const key = await deviceKey();
  return { relay, user: login.user, key, fingerprint: await fingerprint(key.publicKey) };
}

/** Signs up (when `signup`), then logs this browser in as a device of `user`. */
async function logIn(user: string, password: string, signup: boolean, invite: string) {
  const relay = await WebRelay.connect();
  try {
    if (signup)
      await relay.request('auth.signup', { user, password, ...(invite ? { invite } : {}) });
    const key = await deviceKey();
    const proof = await key.sign(loginProofMessage(relay.challenge, user));
    const login = await relay.request('auth.login', {
      user,
      password,
      device: { publicKey: toBase64(key.publicKey), name: deviceName() },
      deviceProof: toBase64(proof),
    });
    await saveLogin({ user: login.user, token: login.token, expiresAt: login.expiresAt });
    return { relay, user: login.user, key, fingerprint: await fingerprint(key.publicKey) };
  } catch (err) {
    relay.close();
    throw err;
  }
}

/** The login and sign-up forms; resolves once the user is in. */
export function loginForm(root: HTMLElement, notice = ''): Promise<Session> {
  return new Promise((resolve) => {
    let signup = false;
    const user = h('input', {
      id: 'user',
      name: 'username',
      autocomplete: 'username',
      autocapitalize: 'none',
      spellcheck: 'false',
      required: '',
    });
    const password = h('input', {
      id: 'password',
      name: 'password',
      type: 'password',
      autocomplete: 'current-password',
      required: '',
    });
    const invite = h('input', { id: 'invite', name: 'invite', autocomplete: 'off' });
    const inviteRow = h(
      'p',
      { class: 'field', hidden: '' },
      h('label', { for: 'invite' }, 'Invite code'),
      invite,
    );
    const error = h('p', { class: 'error', role: 'alert' });
    const submit = h('button', { type: 'submit' }, 'Log in');
    const toggle = h('button', { type: 'button', class: 'link' }, 'Create an account instead');
    const heading = h('h2', {}, 'Log in');
    const form = h(
      'form',
      { class: 'login', novalidate: '' },
      heading,
      h('p', { class: 'field' }, h('label', { for: 'user' }, 'User name'), user),
      h('p', { class: 'field' }, h('label', { for: 'password' }, 'Password'), password),
      inviteRow,
      error,
      h('p', { class: 'actions' }, submit, toggle),
    );
    if (notice) form.prepend(h('p', { class: 'notice' }, notice));
    toggle.addEventListener('click', () => {
      signup = !signup;
      heading.textContent = signup ? 'Create an account' : 'Log in';
      submit.textContent = signup ? 'Sign up' : 'Log in';
      toggle.textContent = signup ? 'I have an account' : 'Create an account instead';
      password.autocomplete = signup ? 'new-password' : 'current-password';
      error.textContent = '';
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      error.textContent = '';
      if (!user.value || !password.value) {
        error.textContent = 'Enter a user name and a password.';
        return;
      }
      submit.disabled = true;
      logIn(user.value.trim(), password.value, signup, invite.value.trim()).then(
        (session) => {
          password.value = '';
          resolve(session);
        },
        (err: unknown) => {
          submit.disabled = false;
          if (err instanceof RemoteError && err.code === 'INVITE_REQUIRED')
            inviteRow.hidden = false;
          error.textContent =
            err instanceof SwitchboardError
              ? `${err.message} (${err.code})`
              : String((err as Error).message ?? err);
        },
      );
    });
    root.replaceChildren(form);
    user.focus();
  });
}

/** Who is signed in, this browser's key, and the way out. `onOut` runs after either button. */
export function accountBar(session: Session, onOut: (notice: string) => void): HTMLElement {
  const logout = h('button', { type: 'button' }, 'Log out');
  const forget = h('button', { type: 'button', class: 'danger' }, 'Forget this browser');
  logout.addEventListener('click', () => {
    void session.relay
      .request('auth.logout', {})
      .catch(() => undefined)
      .then(() => clearLogin())
      .then(() => {
        session.relay.close();
        onOut('You are logged out. This browser keeps its key for the next login.');
      });
  });
  forget.addEventListener('click', () => {
    void session.relay
      .request('devices.revoke', { fingerprint: session.fingerprint })
      .catch(() => undefined)
      .then(() => forgetBrowser())
      .then(() => {
        session.relay.close();
        onOut('This browser is forgotten: its key is revoked and deleted.');
      });
  });
  return h(
    'header',
    { class: 'account' },
    h('span', { class: 'who' }, 'Signed in as ', h('strong', { id: 'me' }, session.user)),
    h(
      'span',
      { class: 'key' },
      'This browser’s key: ',
      h('code', { id: 'fingerprint', title: 'switchboard devices lists it' }, session.fingerprint),
      ` (${session.key.kind === 'webcrypto' ? 'WebCrypto, not extractable' : '@noble, stored in this browser'})`,
    ),
    h('span', { class: 'buttons' }, logout, forget),
  );
}
