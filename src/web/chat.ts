// Chat in the page (issue 14): contacts, conversations, approvals, marks, safety numbers and
// broadcasts, end to end with CLI users. Being built.
import { h, type Session } from './login.js';

/** Draws the chat view in `into` and keeps it live while the session lasts. */
export async function showChat(_session: Session, into: HTMLElement): Promise<void> {
  into.replaceChildren(h('p', {}, 'Chat is coming.'));
  return Promise.resolve();
}
