// The messaging engine behind `send`, `inbox`, `chat` and the messaging benchmark: one per
// logged-in relay connection.
//
// Paths. A message goes to a peer's device over a direct link when there is one (client/direct.ts,
// acknowledged by that device), and through the relay's mailbox otherwise (sealed per device,
// stored until each device acknowledges it): to the peer's other devices and my own other ones
// always, to the linked device too when the direct send is not acknowledged in time. Receivers
// keep message ids, so a message that took both paths is kept and shown once. Messages to one
// user leave one at a time, in order.
//
// Links. A client that is online for messaging (`start({ live: true })`: chat, inbox --follow)
// offers the `chat` service. A sender opens a `chat` channel to the peer through the relay (E2E,
// pinned keys); the two exchange direct candidates on it and dial (DIRECT_BUDGET_MS). Only an
// accepted contact gets a link: a stranger's messages take the mailbox and wait for approval,
// and never learn my addresses.
//
// Receipts. The recipient's device tells the sender what became of each message, sealed like a
// message: `delivered` (it has it), `read` (shown), `pending` (held until the sender is accepted)
// or `failed` (refused; a blocked sender learns nothing more). Batched per sender.
//
// One engine for the CLI and the page. It imports no Node built-in: it talks to the relay through
// a RelayConnection (RelayClient, or the page's WebRelay), keeps its state in stores (the CLI's
// files: client/file-stores.ts; or IndexedDB: src/web/chat-store.ts), and signs with a key that may sign asynchronously
// (the page's WebCrypto key). What only Node can do — serve the `chat` service and make direct
// TCP connections — comes in as MessengerLinks (cli/commands/messages.ts's nodeLinks); without
// them (the page, the bench) everything takes the mailbox, as it does to a peer that offers no link.
import type { SecureDuplex } from '../channel/e2e.js';
import { concatBytes, fromBase64, toBase64, utf8 } from '../crypto/bytes.js';
import { keyFingerprint } from '../crypto/fingerprint.js';
import type { AsyncDeviceSigner } from '../crypto/handshake.js';
import { defaultCryptoProvider as provider } from '../crypto/default-provider.js';
import { verifyBundle, type DeviceSigner, type VerifiedBundle } from '../crypto/prekeys.js';
import { MAX_RECORD_PLAINTEXT } from '../crypto/secure-channel.js';
import { ErrorCode, RemoteError, SwitchboardError, isTransient } from '../protocol/errors.js';
import { BROADCAST_SIGNATURE_CONTEXT } from '../protocol/limits.js';
import type { BroadcastView, MailboxMessage, PeerInfo, RelayEvent } from '../protocol/messages.js';
import { Contacts, type ContactStore } from './contacts.js';
import type { HistoryLine, MarkState, MessageHistory } from './message-history.js';
import type { MessagingKeys } from './messaging-keys.js';
import { openMessage, sealMessage, type MessageContent, type ReceiptState } from './messaging.js';
import { listedIfUnpinned, openService } from './open-channel.js';
import { Emitter } from './emitter.js';
import type { PeerPins } from './peer-pins.js';
import type { RelayConnection } from './relay-connection.js';

/** How long a link (and its direct attempt) may take by default (client/direct.ts's DIRECT_BUDGET_MS). */
const DEFAULT_BUDGET_MS = 2_000; // ms
/** How long a direct send waits for the peer's acknowledgement before the relay takes it. */
export const DIRECT_ACK_TIMEOUT_MS = 2_000; // ms
/** How long keys.bundles answers are reused for further messages to the same user. */
export const BUNDLES_MEMO_MS = 30_000; // ms
/** After a failed link attempt, messages to that user take the mailbox this long without trying. */
export const LINK_RETRY_MS = 5_000; // ms
const RECEIPT_STATES: readonly ReceiptState[] = ['delivered', 'read', 'pending', 'failed'];
/** Most message ids in one receipt. */
export const RECEIPT_MAX_IDS = 256;

/**
 * Where a Messenger keeps its state: the CLI's files (client/file-stores.ts's fileStores) or the
 * page's IndexedDB (src/web/chat-store.ts).
 */
export interface MessengerStores {
  pins: PeerPins;
  keys: MessagingKeys;
  history: MessageHistory;
  contacts: ContactStore;
}

/** One chat channel a contact opened to this device (what the `chat` service is handed). */
export interface LinkContext {
  peer: PeerInfo;
  channel: SecureDuplex;
}

/** The direct listener as the engine uses it (client/direct.ts's DirectListener). */
export interface DirectListenerLike {
  expect(): { token: string; done(): void };
  candidates(observed: string | undefined): unknown;
  close(): void;
}

/**
 * What only Node can do, handed in by the CLI (cli/commands/messages.ts, nodeLinks): offer the
 * `chat` service on the connection (links from contacts), and direct TCP connections
 * (client/direct.ts). Their types are kept structural here so that the engine imports neither.
 */
export interface MessengerLinks {
  /** Offers `chat`; each channel opened to it goes to `serve`. Resolves with its stop. */
  serveChat(
    serve: (ctx: LinkContext) => void,
    notice: (text: string) => void,
  ): Promise<() => Promise<void>>;
  direct?: {
    listen(host: string | undefined): Promise<DirectListenerLike>;
    parseOffer(value: unknown): { token: string } | undefined;
    connect(o: {
      mine: { token: string; done(): void };
      theirs: NonNullable<ReturnType<NonNullable<MessengerLinks['direct']>['parseOffer']>>;
      key: DeviceSigner | AsyncDeviceSigner;
      linkHash: string;
      peer: PeerInfo;
      leader: boolean;
      budgetMs: number;
      handlers: (direct: SecureDuplex) => {
        onMessage(payload: Uint8Array): void;
        onClose(): void;
      };
    }): Promise<{ duplex: SecureDuplex; socket: unknown } | undefined>;
  };
}

export interface MessengerOptions {
  client: RelayConnection;
  /** My account name. */
  user: string;
  /** This device's key: the CLI's signs at once, the page's (WebCrypto) asynchronously. */
  key: DeviceSigner | AsyncDeviceSigner;
  /** The relay's address (the key of the pins). */
  server: string;
  /** Pins, keys, history and contacts. */
  stores: MessengerStores;
  /** Serving `chat` and direct connections (Node only); without them, the mailbox. */
  links?: MessengerLinks;
  /** Try direct connections (default true when `links` has them; `--no-direct` turns it off). */
  direct?: boolean;
  /** Where the direct listener binds (default every interface). */
  directHost?: string;
  /** The direct attempt's budget (default DIRECT_BUDGET_MS). */
  budgetMs?: number;
}

export interface SendResult {
  id: string;
  path: 'direct' | 'relay';
  /** `delivered`: the peer's device acknowledged it directly; `stored`: the relay holds it. */
  status: 'delivered' | 'stored';
  /** Devices that got a copy through the relay. */
  relayed: number;
}

type LinkPath = 'direct' | 'relay';

/** A live link to one device of a peer: the relayed `chat` channel, and a direct one if made. */
class PeerLink {
  readonly peer: PeerInfo;
  readonly signal: SecureDuplex;
  readonly leader: boolean;
  direct: SecureDuplex | undefined;
  directSocket: unknown;
  /** Settles once the direct attempt is over (made or not). */
  ready: Promise<void> = Promise.resolve();
  closed = false;
  /** A direct attempt runs; `offerWaiter` takes the peer's offer for it. */
  attempting = false;
  offerWaiter: ((offer: unknown) => void) | undefined;
  readonly waiting = new Map<string, (ok: boolean) => void>();

  constructor(peer: PeerInfo, signal: SecureDuplex, leader: boolean) {
    this.peer = peer;
    this.signal = signal;
    this.leader = leader;
  }

  get path(): LinkPath {
    return this.direct && !this.direct.closed ? 'direct' : 'relay';
  }

  close(reason: string): void {
    this.closed = true;
    void this.direct?.close(reason);
    void this.signal.close(reason);
    for (const done of this.waiting.values()) done(false);
    this.waiting.clear();
  }
}

function encode(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/** 16 random bytes, base64: a message id. */
function newId(): string {
  return toBase64(globalThis.crypto.getRandomValues(new Uint8Array(16)));
}

/** Runs `fn` after the current work (setImmediate in Node, a zero timeout in the browser); returns its cancel. */
function soon(fn: () => void): () => void {
  const g = globalThis as {
    setImmediate?: (f: () => void) => unknown;
    clearImmediate?: (handle: unknown) => void;
  };
  if (g.setImmediate && g.clearImmediate) {
    const handle = g.setImmediate(fn);
    return () => g.clearImmediate!(handle);
  }
  const timer = setTimeout(fn, 0);
  return () => clearTimeout(timer);
}

/** Lets Node exit with the timer pending (a no-op in the browser). */
function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}

/** A broadcast's body, if `sig` is `key`'s signature over it (protocol/broadcast.ts's check, by the provider). */
function openBroadcastBody(
  key: Uint8Array,
  body: string,
  sig: string,
): { id: string; from: string; sentAt: string; text: string } | undefined {
  let signature: Uint8Array;
  try {
    signature = fromBase64(sig);
  } catch {
    return undefined;
  }
  const signed = concatBytes(utf8(`${BROADCAST_SIGNATURE_CONTEXT}\0`), utf8(body));
  if (signature.length !== 64 || !provider.ed25519Verify(key, signed, signature)) return undefined;
  try {
    const b = JSON.parse(body) as Record<string, unknown>;
    return b.v === 1 &&
      typeof b.id === 'string' &&
      typeof b.from === 'string' &&
      typeof b.sentAt === 'string' &&
      typeof b.text === 'string'
      ? { id: b.id, from: b.from, sentAt: b.sentAt, text: b.text }
      : undefined;
  } catch {
    return undefined;
  }
}

function decode(payload: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(payload));
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Events: 'message' (HistoryLine: a message or broadcast to show), 'request' ({user, device}: a
 * stranger's first message, held), 'status' ({id, state, path}: what became of one I sent),
 * 'link' ({user, path: 'direct' | 'relay' | 'none'}), 'refused' ({from, message, code}: a
 * message that did not open or verify), 'payment' (the relay's `payment` event: a transfer to me
 * settled), 'cheque' ({from, seq, duplicate}: a cheque handed over directly, deposited).
 */
export class Messenger extends Emitter {
  readonly history: MessageHistory;
  readonly keys: MessagingKeys;
  readonly #o: MessengerOptions;
  readonly #knownPeers: PeerPins;
  readonly #contacts: ContactStore;
  readonly #fingerprint: string;
  readonly #links = new Map<string, PeerLink>();
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #bundles = new Map<string, { at: number; devices: Promise<BundleDevice[]> }>();
  readonly #receipts = new Map<string, Map<string, ReceiptState>>();
  readonly #asked = new Set<string>();
  /** Receipts on their way (a flush does not return before they are sent). */
  readonly #receiptsSending = new Set<Promise<void>>();
  /** Users a link failed to recently: the mailbox, without asking again until then. */
  readonly #noLinkUntil = new Map<string, number>();
  #receiptTimer: (() => void) | undefined;
  #listener: DirectListenerLike | undefined;
  #stopServing: (() => Promise<void>) | undefined;
  #unlisten: (() => void) | undefined;
  #observed: string | undefined;
  #incoming: Promise<void> = Promise.resolve();
  #stopped = false;
  /** What could not be taken (a full disk...) is said, and the messages behind it still are. */
  readonly #lost = (err: unknown): void => {
    this.emit(
      'notice',
      `a message could not be taken: ${err instanceof Error ? err.message : String(err)}`,
    );
  };
  /** Messages pushed while `catchUp` fetches (undefined when it does not). */
  #deferred: RelayEvent[] | undefined;
  /** The highest seq taken (fetched or pushed): what is below it is acknowledged. */
  #fetched = 0;
  #ackUpTo = 0;
  #ackTimer: (() => void) | undefined;
  #acked = 0;
  readonly #onEvent = (e: RelayEvent): void => {
    if (this.#deferred && (e.type === 'message' || e.type === 'broadcast')) {
      this.#deferred.push(e);
      return;
    }
    if (e.type === 'payment') {
      this.emit('payment', e);
      return;
    }
    if (e.type === 'message') {
      // Fetched already by catchUp (pushed while it ran): taken once.
      if (e.seq <= this.#fetched) return;
      this.#fetched = e.seq;
      this.#incoming = this.#incoming.then(() => this.#takeMailbox(e)).catch(this.#lost);
    } else if (e.type === 'broadcast')
      this.#incoming = this.#incoming.then(() => this.#takeBroadcast(e)).catch(this.#lost);
  };

  constructor(o: MessengerOptions) {
    super();
    this.#o = o;
    this.#fingerprint = keyFingerprint(o.key.publicKey);
    this.#knownPeers = o.stores.pins;
    this.history = o.stores.history;
    this.keys = o.stores.keys;
    this.#contacts = o.stores.contacts;
  }

  /** Direct connections: asked for (not --no-direct), and possible here (Node's links). */
  get #directOn(): boolean {
    return this.#o.direct !== false && this.#o.links?.direct !== undefined;
  }

  get user(): string {
    return this.#o.user;
  }

  /** Contacts as the store says now (`contacts accept` in another terminal counts at once). */
  contacts(): Contacts {
    return new Contacts(this.#contacts);
  }

  /**
   * Publishes this device's prekeys; `live`: also takes messages as the relay pushes them, and
   * offers `chat` so contacts can link to this device (and, with direct on, listens for them).
   */
  async start({ live = false }: { live?: boolean } = {}): Promise<void> {
    const client = this.#o.client;
    await this.keys.publish(client);
    const direct = this.#o.links?.direct;
    if (direct && this.#o.direct !== false) {
      this.#listener = await direct.listen(this.#o.directHost);
      this.#observed = (await client.request('whoami', {})).address;
    }
    if (!live) return;
    this.#unlisten = client.onEvent(this.#onEvent);
    if (this.#o.links)
      this.#stopServing = await this.#o.links.serveChat(
        (ctx) => this.#acceptLink(ctx),
        (text) => this.emit('notice', text),
      );
  }

  /** Ends links, the listener and the offer; messages already stored stay stored. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unlisten?.();
    await this.#stopServing?.();
    for (const link of this.#links.values()) link.close('the chat ended');
    this.#links.clear();
    this.#listener?.close();
    await this.#incoming;
    await this.#flushAck();
    await this.flushReceipts();
  }

  /** Fetches and takes what waits at the relay for this device: broadcasts, then messages. */
  async catchUp(): Promise<void> {
    const client = this.#o.client;
    // Messages pushed meanwhile wait: acknowledging one (`upTo` its seq) before the pages
    // below it were fetched would delete those unread.
    this.#deferred = [];
    try {
      for (const b of (await client.request('broadcast.fetch', {})).broadcasts)
        await this.#takeBroadcast(b);
      for (;;) {
        const { messages, more } = await client.request('message.fetch', {
          after: this.#fetched,
        });
        for (const m of messages) {
          await this.#takeMailbox(m);
          this.#fetched = m.seq;
        }
        if (!more) break;
      }
    } finally {
      const deferred = this.#deferred;
      this.#deferred = undefined;
      for (const e of deferred) this.#onEvent(e);
    }
    await this.#incoming;
    await this.#flushAck();
    await this.flushReceipts();
  }

  /** The path to `user` now: 'direct', 'relay' (a link through the relay) or 'none'. */
  linkPath(user: string): LinkPath | 'none' {
    const link = this.#links.get(user);
    return link && !link.closed ? link.path : 'none';
  }

  /** The direct connection's socket (a node:net Socket) to `user`, if there is one (diagnostics, tests). */
  directSocket(user: string): unknown {
    const link = this.#links.get(user);
    return link?.direct && !link.direct.closed ? link.directSocket : undefined;
  }

  /**
   * Opens a link to `user` (if they are online for messaging and accept me), with a direct
   * connection if one completes within the budget. False if no link could be made.
   */
  async link(user: string): Promise<boolean> {
    const existing = this.#links.get(user);
    if (existing && !existing.closed) {
      // A link whose direct connection broke tries again.
      if (this.#directOn) await this.#attemptDirect(existing);
      await existing.ready;
      return true;
    }
    // Only with accepted contacts: a link reveals my addresses to the peer.
    if (user === this.#o.user || this.contacts().get(user)?.state !== 'accepted') return false;
    let opened;
    try {
      opened = await openService(this.#o.client, {
        service: 'chat',
        target: { kind: 'user', user },
        user: this.#o.user,
        key: this.#o.key,
        server: this.#o.server,
        knownPeers: this.#knownPeers,
        timeoutMs: this.#o.budgetMs ?? DEFAULT_BUDGET_MS,
      });
    } catch (err) {
      // A changed key is the user's to know; offline, refused or slow means the mailbox.
      if (err instanceof SwitchboardError && err.code === ErrorCode.PEER_KEY_CHANGED) throw err;
      return false;
    }
    const link = this.#addLink(opened.channel.peer, opened.channel, true);
    await link.ready;
    return !link.closed;
  }

  /** Sends a text message to `user`; resolves once a device of theirs or the relay has it. `onId` learns its id first. */
  send(to: string, text: string, onId?: (id: string) => void): Promise<SendResult> {
    const content: MessageContent = {
      v: 1,
      id: newId(),
      from: this.#o.user,
      to,
      sentAt: new Date().toISOString(),
      text,
    };
    onId?.(content.id);
    return this.#inOrder(to, async () => {
      // Writing to someone makes them a contact (their answers are shown), unless blocked.
      const contacts = this.contacts();
      if (to !== this.#o.user && !['accepted', 'blocked'].includes(contacts.get(to)?.state ?? ''))
        contacts.set(to, 'accepted');
      // In the history first: the peer's receipt may come before the acknowledgement is read.
      this.history.append({ ...content, direction: 'out' });
      return this.#deliverMine(content);
    });
  }

  /**
   * Sends again a message of mine that is in the history without a mark: one whose sending was
   * cut by a lost connection (`isTransient`). Same id, so the peer keeps it once.
   */
  resend(id: string): Promise<SendResult> {
    const line = this.history.get(id);
    if (!line || line.direction !== 'out' || line.broadcast)
      return Promise.reject(
        new SwitchboardError(ErrorCode.INVALID_MESSAGE, 'no such message of mine'),
      );
    const { direction: _d, fromDevice: _f, broadcast: _b, ...content } = line;
    return this.#inOrder(line.to, () => this.#deliverMine(content));
  }

  async #deliverMine(content: MessageContent): Promise<SendResult> {
    let result: SendResult;
    try {
      result = await this.#deliver(content.to, content, { mine: true });
    } catch (err) {
      // Left unmarked when the connection went: it is sent again (`resend`) once it is back.
      if (!isTransient(err)) this.#mark(content.id, 'failed');
      throw err;
    }
    this.#mark(content.id, result.path === 'direct' ? 'delivered' : 'sent', result.path);
    return result;
  }

  /**
   * Hands a signed transfer to `to`'s device over a direct link, if there is one (made now if
   * need be); true when their device acknowledged it (it deposits it). Never through the
   * relay's mailbox: the payer submits the cheque itself anyway.
   */
  async handCheque(
    to: string,
    cheque: { body: string; sig: string; key: string },
  ): Promise<boolean> {
    if (!this.#directOn || !(await this.link(to))) return false;
    const link = this.#links.get(to);
    if (!link || link.path !== 'direct') return false;
    return this.#sendDirect(link, {
      v: 1,
      kind: 'cheque',
      cheque,
      id: newId(),
      from: this.#o.user,
      to,
      sentAt: new Date().toISOString(),
      text: '',
    });
  }

  /** The user has seen these received messages: marked here, and `read` told to their senders. */
  shown(lines: readonly HistoryLine[]): void {
    for (const l of lines) {
      if (l.direction !== 'in') continue;
      this.history.mark(l.id, 'shown');
      if (!l.broadcast) this.#receipt(l.from, l.id, 'read');
    }
  }

  /** Received messages from accepted contacts (and broadcasts) not yet shown on this device. */
  unshown(): HistoryLine[] {
    const contacts = this.contacts();
    return this.history.lines.filter(
      (l) =>
        l.direction === 'in' &&
        this.history.status(l.id)?.state !== 'shown' &&
        (l.broadcast === true || contacts.get(l.from)?.state === 'accepted'),
    );
  }

  /** Sends the receipts gathered so far. */
  async flushReceipts(): Promise<void> {
    this.#receiptTimer?.();
    this.#receiptTimer = undefined;
    const batches = [...this.#receipts];
    this.#receipts.clear();
    for (const [user, ids] of batches) {
      const byState = new Map<ReceiptState, string[]>();
      for (const [id, state] of ids) byState.set(state, [...(byState.get(state) ?? []), id]);
      for (const [state, all] of byState)
        for (let i = 0; i < all.length; i += RECEIPT_MAX_IDS) {
          const content: MessageContent = {
            v: 1,
            kind: 'receipt',
            state,
            ids: all.slice(i, i + RECEIPT_MAX_IDS),
            id: newId(),
            from: this.#o.user,
            to: user,
            sentAt: new Date().toISOString(),
            text: '',
          };
          const send = this.#inOrder(user, () =>
            this.#deliver(user, content, { mine: false }),
          ).then(
            () => undefined,
            () => undefined, // a receipt that cannot go is not worth an error
          );
          this.#receiptsSending.add(send);
          void send.then(() => this.#receiptsSending.delete(send));
        }
    }
    // Those a scheduled flush started too: `stop()` must not return (and the CLI exit) before
    // they are sent.
    await Promise.all([...this.#receiptsSending]);
  }

  // --- sending ----------------------------------------------------------------------------------

  #inOrder<T>(user: string, work: () => Promise<T>): Promise<T> {
    const before = this.#queues.get(user) ?? Promise.resolve();
    const run = before.then(work, work);
    this.#queues.set(
      user,
      run.catch(() => undefined),
    );
    return run;
  }

  async #deliver(
    to: string,
    content: MessageContent,
    { mine }: { mine: boolean },
  ): Promise<SendResult> {
    // Links (and so my addresses) only for accepted contacts (link() checks): strangers get mail.
    if (
      this.#directOn &&
      !this.#links.get(to) &&
      (this.#noLinkUntil.get(to) ?? 0) <= Date.now() &&
      !(await this.link(to))
    )
      this.#noLinkUntil.set(to, Date.now() + LINK_RETRY_MS);
    const link = this.#links.get(to);
    if (link && !link.closed) await link.ready;
    let directDevice: string | undefined;
    if (link && link.path === 'direct' && (await this.#sendDirect(link, content)))
      directDevice = link.peer.fingerprint;
    const relayed = await this.#mailbox(to, content, { mine, except: directDevice });
    if (relayed === 0 && directDevice === undefined)
      throw new SwitchboardError(
        ErrorCode.SERVICE_UNAVAILABLE,
        `${to} has no device that can receive messages yet (it publishes its keys at login)`,
      );
    return {
      id: content.id,
      path: directDevice ? 'direct' : 'relay',
      status: directDevice ? 'delivered' : 'stored',
      relayed,
    };
  }

  /** Sends on the direct link and waits for the peer's acknowledgement; false if none came. */
  #sendDirect(link: PeerLink, content: MessageContent): Promise<boolean> {
    const frame = encode({ t: 'msg', content });
    if (frame.length > MAX_RECORD_PLAINTEXT || !link.direct) return Promise.resolve(false);
    const direct = link.direct;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        // A direct connection that stops answering is dropped: the relay carries on.
        void direct.close('no acknowledgement in time', ErrorCode.TIMEOUT);
        done(false);
      }, DIRECT_ACK_TIMEOUT_MS);
      unref(timer);
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        link.waiting.delete(content.id);
        resolve(ok);
      };
      link.waiting.set(content.id, done);
      direct.send(frame);
    });
  }

  /** Seals `content` for `to`'s devices (and mine with `mine`) except `except`; stores them. */
  async #mailbox(
    to: string,
    content: MessageContent,
    { mine, except }: { mine: boolean; except?: string | undefined },
  ): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const envelopes: Array<{ device: string; body: string }> = [];
      for (const user of new Set(mine ? [to, this.#o.user] : [to])) {
        for (const d of await this.#devices(user)) {
          if (d.info.fingerprint === this.#fingerprint || d.info.fingerprint === except) continue;
          envelopes.push({
            device: d.info.fingerprint,
            body: sealMessage(
              provider,
              { deviceKey: this.#o.key.publicKey, identity: this.keys.identity },
              d.bundle,
              content,
            ),
          });
        }
      }
      if (envelopes.length === 0) return 0;
      try {
        await this.#o.client.request('message.send', {
          to,
          messageId: content.id,
          envelopes,
        });
        return envelopes.length;
      } catch (err) {
        // A device revoked since the bundles were fetched: ask again, once.
        if (attempt > 0 || !(err instanceof RemoteError && err.code === ErrorCode.INVALID_MESSAGE))
          throw err;
        this.#bundles.delete(to);
        this.#bundles.delete(this.#o.user);
      }
    }
  }

  /** A user's devices with verified prekey bundles, their keys checked against my pins. */
  #devices(user: string): Promise<BundleDevice[]> {
    const hit = this.#bundles.get(user);
    if (hit && Date.now() - hit.at < BUNDLES_MEMO_MS) return hit.devices;
    const devices = (async () => {
      const { devices } = await this.#o.client.request('keys.bundles', { user });
      const out: BundleDevice[] = [];
      for (const d of devices) {
        if (d.fingerprint === this.#fingerprint) continue;
        await this.#pin(d);
        out.push({
          info: d,
          bundle: verifyBundle(provider, d.bundle, {
            deviceKey: fromBase64(d.publicKey),
          }),
        });
      }
      return out;
    })();
    this.#bundles.set(user, { at: Date.now(), devices });
    devices.catch(() => this.#bundles.delete(user));
    return devices;
  }

  /** Checks a peer device key against the pins (pinning first contact); PEER_KEY_CHANGED. */
  async #pin(peer: { user: string; publicKey: string; deviceName?: string }): Promise<void> {
    const full = { deviceName: '', ...peer };
    const listed = await listedIfUnpinned(this.#o.client, this.#knownPeers, this.#o.server, full);
    this.#knownPeers.verify(this.#o.server, full, 'pin', listed);
  }

  #mark(id: string, state: MarkState, path?: LinkPath): void {
    if (this.history.mark(id, state, path)) this.emit('status', { id, state, path });
  }

  #receipt(user: string, id: string, state: ReceiptState): void {
    if (user === this.#o.user) return;
    let ids = this.#receipts.get(user);
    if (!ids) this.#receipts.set(user, (ids = new Map()));
    const rank = { pending: 0, failed: 0, delivered: 1, read: 2 } as const;
    const old = ids.get(id);
    if (old === undefined || rank[state] > rank[old]) ids.set(id, state);
    this.#receiptTimer ??= soon(() => void this.flushReceipts());
  }

  // --- receiving --------------------------------------------------------------------------------

  async #takeMailbox(m: MailboxMessage): Promise<void> {
    const me = this.#o.user;
    try {
      const { content, senderDeviceKey } = openMessage(
        provider,
        {
          deviceKey: this.#o.key.publicKey,
          identity: this.keys.identity,
          prekey: (id) => this.keys.prekey(id),
        },
        m.body,
        // My own message (sent from my other device) may be to anyone; others' are to me.
        m.from === me ? { from: m.from } : { from: m.from, to: me },
      );
      if (keyFingerprint(senderDeviceKey) !== m.fromDevice)
        throw new SwitchboardError(
          ErrorCode.DECRYPT_FAILED,
          'sealed by another device than the relay says',
        );
      await this.#pin({ user: m.from, publicKey: toBase64(senderDeviceKey) });
      this.#take(content, m.fromDevice, 'relay');
    } catch (err) {
      // Whatever a sender put in it, one bad message must not stop the ones behind it.
      const e =
        err instanceof SwitchboardError
          ? err
          : new SwitchboardError(ErrorCode.DECRYPT_FAILED, 'a malformed message');
      this.emit('refused', { from: m.from, kind: 'message', code: e.code, message: e.message });
    }
    // One acknowledgement for everything taken in this tick (a page, a burst of pushes).
    this.#ackUpTo = Math.max(this.#ackUpTo, m.seq);
    this.#ackTimer ??= soon(() => void this.#flushAck());
  }

  async #flushAck(): Promise<void> {
    this.#ackTimer?.();
    this.#ackTimer = undefined;
    const upTo = this.#ackUpTo;
    if (upTo === 0 || upTo === this.#acked) return;
    this.#acked = upTo;
    await this.#o.client.request('message.ack', { upTo }).catch(() => undefined);
  }

  async #takeBroadcast(b: BroadcastView): Promise<void> {
    try {
      const body = openBroadcastBody(fromBase64(b.key), b.body, b.sig);
      if (!body || body.from !== b.from)
        throw new SwitchboardError(ErrorCode.SIGNATURE_INVALID, 'its signature does not hold');
      await this.#pin({ user: b.from, publicKey: b.key });
      if (!this.history.has(body.id) && this.contacts().get(b.from)?.state !== 'blocked') {
        const line: HistoryLine = {
          v: 1,
          id: body.id,
          from: b.from,
          to: '*',
          sentAt: body.sentAt,
          text: body.text,
          direction: b.from === this.#o.user ? 'out' : 'in',
          broadcast: true,
        };
        this.history.append(line);
        this.emit('message', line);
      }
    } catch (err) {
      const e =
        err instanceof SwitchboardError
          ? err
          : new SwitchboardError(ErrorCode.SIGNATURE_INVALID, 'a malformed broadcast');
      this.emit('refused', {
        from: b.from,
        kind: 'broadcast',
        code: e.code,
        message: e.message,
      });
    }
    await this.#o.client.request('broadcast.ack', { ids: [b.id] }).catch(() => undefined);
  }

  /** One opened message or receipt, whichever path it came by (from a proven device). */
  #take(content: MessageContent, fromDevice: string, via: LinkPath): void {
    const me = this.#o.user;
    if (content.kind === 'cheque') {
      // Handed over on a direct link: deposited by #onDirect before it acknowledges.
      return;
    }
    if (content.kind === 'receipt') {
      if (
        content.from === me ||
        !Array.isArray(content.ids) ||
        !RECEIPT_STATES.includes(content.state as ReceiptState)
      )
        return;
      for (const id of content.ids.slice(0, RECEIPT_MAX_IDS)) {
        const line = this.history.get(id);
        // Only a message of mine to that user: a receipt cannot mark anyone else's.
        if (line?.direction === 'out' && line.to === content.from)
          this.#mark(id, content.state as MarkState);
      }
      return;
    }
    if (typeof content.text !== 'string' || this.history.has(content.id)) return;
    if (content.from === me) {
      const line: HistoryLine = { ...content, direction: 'out' };
      this.history.append(line);
      this.emit('message', line);
      return;
    }
    const contacts = this.contacts();
    const state = contacts.get(content.from)?.state;
    if (state === 'blocked') {
      this.#receipt(content.from, content.id, 'failed');
      return;
    }
    const line: HistoryLine = { ...content, direction: 'in', fromDevice };
    this.history.append(line);
    if (state === 'accepted') {
      this.emit('message', line);
      // A direct message was acknowledged on the link already.
      if (via === 'relay') this.#receipt(content.from, content.id, 'delivered');
      return;
    }
    // A stranger: held until accepted, asked once.
    if (state === undefined) contacts.set(content.from, 'pending', fromDevice);
    this.#receipt(content.from, content.id, 'pending');
    if (!this.#asked.has(content.from)) {
      this.#asked.add(content.from);
      this.emit('request', { user: content.from, device: fromDevice });
    }
  }

  // --- links ------------------------------------------------------------------------------------

  /** A contact's `chat` channel to this device: a link, for accepted contacts only. */
  #acceptLink(ctx: LinkContext): void {
    const peer = ctx.peer;
    if (this.#stopped || peer.user === this.#o.user) {
      void ctx.channel.close('not linking', ErrorCode.NOT_ALLOWED);
      return;
    }
    if (this.contacts().get(peer.user)?.state !== 'accepted') {
      // The sender falls back to the mailbox, where a stranger's messages wait for approval.
      void ctx.channel.close(`${this.#o.user} has not accepted you`, ErrorCode.NOT_ALLOWED);
      return;
    }
    this.#addLink(peer, ctx.channel, false);
  }

  #addLink(peer: PeerInfo, signal: SecureDuplex, leader: boolean): PeerLink {
    const link = new PeerLink(peer, signal, leader);
    // Both sides may open a link at once: keep the one opened by the lower fingerprint.
    const old = this.#links.get(peer.user);
    const openerOf = (l: PeerLink): string => (l.leader ? this.#fingerprint : l.peer.fingerprint);
    if (old && !old.closed && openerOf(old) <= openerOf(link)) {
      link.close('a link exists');
      return old;
    }
    if (old && !old.closed) old.close('replaced by another link');
    this.#links.set(peer.user, link);
    signal.setHandlers({
      onMessage: (payload) => {
        const frame = decode(payload);
        if (frame?.t !== 'offer') return;
        // The answer to my offer, or the peer starting an attempt (after a direct cut).
        if (link.offerWaiter) link.offerWaiter(frame);
        else void this.#attemptDirect(link, frame);
      },
      onClose: () => {
        link.offerWaiter?.(undefined);
        link.close('the link closed');
        if (this.#links.get(peer.user) === link) {
          this.#links.delete(peer.user);
          this.emit('link', { user: peer.user, path: 'none' });
        }
      },
    });
    void this.#attemptDirect(link);
    return link;
  }

  /**
   * One direct attempt on a link (none if one runs or a direct connection is up): sends my
   * offer, takes theirs (given, when they started it), dials. `link.ready` settles after it.
   */
  #attemptDirect(link: PeerLink, theirs?: unknown): Promise<void> {
    if (link.attempting || link.path === 'direct' || link.closed) return link.ready;
    link.attempting = true;
    const offered =
      theirs !== undefined
        ? Promise.resolve(theirs)
        : new Promise<unknown>((resolve) => (link.offerWaiter = resolve));
    link.ready = this.#tryDirect(link, offered).then(() => {
      link.attempting = false;
      link.offerWaiter = undefined;
      if (!link.closed && this.#links.get(link.peer.user) === link)
        this.emit('link', { user: link.peer.user, path: link.path });
    });
    return link.ready;
  }

  async #tryDirect(link: PeerLink, offered: Promise<unknown>): Promise<void> {
    const listener = this.#listener;
    const direct = this.#o.links?.direct;
    const budgetMs = this.#o.budgetMs ?? DEFAULT_BUDGET_MS;
    if (!listener || !direct || !this.#directOn) {
      link.signal.send(encode({ t: 'offer', token: '', candidates: [] }));
      return;
    }
    const mine = listener.expect();
    link.signal.send(
      encode({ t: 'offer', token: mine.token, candidates: listener.candidates(this.#observed) }),
    );
    const timer = new Promise<undefined>((resolve) => {
      unref(setTimeout(() => resolve(undefined), budgetMs));
    });
    const theirs = direct.parseOffer(await Promise.race([offered, timer]));
    if (!theirs || theirs.token === '' || link.closed) {
      mine.done();
      return;
    }
    const made = await direct.connect({
      mine,
      theirs,
      key: this.#o.key,
      linkHash: link.signal.handshakeHash,
      peer: link.peer,
      leader: link.leader,
      budgetMs,
      handlers: (direct) => ({
        onMessage: (payload) => this.#onDirect(link, direct, payload),
        onClose: () => {
          if (link.direct === direct) link.direct = undefined;
          // What waited for an acknowledgement goes through the relay instead.
          for (const done of link.waiting.values()) done(false);
          link.waiting.clear();
          if (!link.closed && this.#links.get(link.peer.user) === link)
            this.emit('link', { user: link.peer.user, path: 'relay' });
        },
      }),
    });
    if (!made) return;
    if (link.closed) {
      void made.duplex.close('the link closed');
      return;
    }
    link.direct = made.duplex;
    link.directSocket = made.socket;
  }

  #onDirect(link: PeerLink, direct: SecureDuplex, payload: Uint8Array): void {
    const frame = decode(payload);
    if (frame?.t === 'ack' && typeof frame.id === 'string') {
      link.waiting.get(frame.id)?.(true);
      return;
    }
    if (frame?.t !== 'msg') return;
    // Blocked (or no longer accepted) since the link was made: the link ends, unacknowledged,
    // and the message takes the mailbox like any other from them.
    if (this.contacts().get(link.peer.user)?.state !== 'accepted') {
      link.close('not accepted');
      return;
    }
    const content = frame.content as MessageContent;
    // The handshake proved who sent it: the content must say the same, and be for me.
    if (
      content?.v !== 1 ||
      typeof content.id !== 'string' ||
      content.from !== link.peer.user ||
      content.to !== this.#o.user
    ) {
      void direct.close('a message that is not from the linked peer', ErrorCode.INVALID_MESSAGE);
      return;
    }
    this.#incoming = this.#incoming
      .then(async () => {
        if (content.kind === 'cheque') await this.#deposit(content);
        else this.#take(content, link.peer.fingerprint, 'direct');
        direct.send(encode({ t: 'ack', id: content.id }));
      })
      .catch(this.#lost);
  }

  /**
   * A cheque an accepted contact handed over directly: submitted to the ledger (as payee) before
   * it is acknowledged, so the payer knows it settled. The ledger checks everything; the payer
   * submits it too, and it settles once.
   */
  async #deposit(content: MessageContent): Promise<void> {
    const c = content.cheque;
    if (typeof c?.body !== 'string' || typeof c.sig !== 'string' || typeof c.key !== 'string')
      return;
    try {
      const r = await this.#o.client.request('ledger.pay', {
        transfer: { body: c.body, sig: c.sig, key: c.key },
      });
      this.emit('cheque', { from: content.from, seq: r.seq, duplicate: r.duplicate });
    } catch (err) {
      this.emit('refused', {
        from: content.from,
        kind: 'cheque',
        code: err instanceof SwitchboardError ? err.code : ErrorCode.INTERNAL,
        message: err instanceof Error ? err.message : String(err),
      });
    }
  }
}

interface BundleDevice {
  info: PeerInfo & { bundle: unknown };
  bundle: VerifiedBundle;
}
