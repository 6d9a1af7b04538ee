// The page's pins of other users' device keys (known_peers for the CLI): the same rules
// (client/peer-pins.ts), kept in this browser's IndexedDB. The handshake checks pins
// synchronously, so they are read from memory: reloaded from IndexedDB each time a terminal or
// chat starts, kept current by what other tabs pin (a BroadcastChannel), and written through as
// a merge inside one transaction, so two tabs pinning at once lose neither's pins.
import { PeerPins, type PinFile } from '../client/peer-pins.js';
import { open, readState, request } from './keys.js';

const PINS_ID = 'known-peers';
const STORE = 'state';

/** What this page knows is pinned (every tab's, as far as it has heard). */
let cache: PinFile = {};
/** Writes go in order. */
let writing: Promise<void> = Promise.resolve();
const tabs =
  typeof BroadcastChannel === 'function' ? new BroadcastChannel('switchboard-pins') : undefined;
if (tabs) tabs.onmessage = (e: MessageEvent<PinFile>) => void (cache = merge(cache, e.data));

/** `base` with every pin of `more` it lacks (a user's keys are added to, never dropped, here). */
function merge(base: PinFile, more: PinFile): PinFile {
  const out = structuredClone(base);
  for (const [who, list] of Object.entries(more)) {
    const have = (out[who] ??= []);
    for (const pin of list) if (!have.some((p) => p.publicKey === pin.publicKey)) have.push(pin);
  }
  return out;
}

/** Merges `pins` into what IndexedDB holds, in one read-write transaction. */
async function save(pins: PinFile): Promise<void> {
  const db = await open();
  try {
    const tx = db.transaction(STORE, 'readwrite');
    const store = tx.objectStore(STORE);
    const stored = ((await request(store.get(PINS_ID))) as PinFile | undefined) ?? {};
    store.put(merge(stored, pins), PINS_ID);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB write failed'));
    });
  } finally {
    db.close();
  }
}

const peerPins = new PeerPins({
  read: () => structuredClone(cache),
  write: (next) => {
    cache = structuredClone(next);
    const copy = cache;
    tabs?.postMessage(copy);
    writing = writing
      .then(() => save(copy))
      // The browser's console is where a page reports what it cannot show (no relay log).
      // eslint-disable-next-line no-console
      .catch((err: unknown) => console.error('could not save a pinned key', err));
  },
});

/**
 * This browser's pins, freshly loaded (after "forget this browser" that is none: what IndexedDB
 * holds replaces what this page had).
 */
export async function pins(): Promise<PeerPins> {
  await writing;
  cache = (await readState<PinFile>(PINS_ID)) ?? {};
  return peerPins;
}
