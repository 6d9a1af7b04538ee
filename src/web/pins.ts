// The page's pins of other users' device keys (known_peers for the CLI): the same rules
// (client/peer-pins.ts), kept in this browser's IndexedDB. Loaded once, then read from memory
// and written through, so the handshake's synchronous pin check can use them.
import { PeerPins, type PinFile } from '../client/peer-pins.js';
import { readState, writeState } from './keys.js';

const PINS_ID = 'known-peers';

let loaded: Promise<PeerPins> | undefined;

/** This browser's pins (one instance per page). */
export function pins(): Promise<PeerPins> {
  loaded ??= (async () => {
    let cache: PinFile = (await readState<PinFile>(PINS_ID)) ?? {};
    // Writes go in order; a failed one is reported, and the pin still holds for this page.
    let writing: Promise<void> = Promise.resolve();
    return new PeerPins({
      read: () => structuredClone(cache),
      write: (next) => {
        cache = structuredClone(next);
        const copy = cache;
        writing = writing
          .then(() => writeState(PINS_ID, copy))
          // The browser's console is where a page reports what it cannot show (no relay log).
          // eslint-disable-next-line no-console
          .catch((err: unknown) => console.error('could not save a pinned key', err));
      },
    });
  })();
  return loaded;
}
