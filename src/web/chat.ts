// Chat in the page (issue 14): contacts with presence, conversations kept in this browser,
// approvals, marks, safety numbers and broadcasts, end to end with CLI users. The view and the
// messaging engine it runs (client/messenger.ts, with @noble's primitives) are a chunk of their
// own, fetched the first time the Chat tab opens, so the login page stays light.
import { h, type Session } from './login.js';

/** Draws the chat view in `into` and keeps it live while the session lasts. */
export async function showChat(session: Session, into: HTMLElement): Promise<void> {
  into.replaceChildren(h('p', { class: 'loading' }, 'Opening your conversations…'));
  try {
    const { startChat } = await import('./chat-view.js');
    await startChat(session, into);
  } catch (err) {
    into.replaceChildren(
      h(
        'p',
        { class: 'error', role: 'alert', id: 'chat-error' },
        `Chat could not start: ${err instanceof Error ? err.message : String(err)}`,
      ),
    );
  }
}
