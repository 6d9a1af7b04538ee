// `switchboard send` and `switchboard inbox`: end-to-end encrypted messages through the relay,
// delivered to devices that are offline when they are sent.
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { Contacts } from '../../client/contacts.js';
import { KnownPeers, type PinPeer } from '../../client/known-peers.js';
import { listedIfUnpinned } from '../../client/open-channel.js';
import { MessagingKeys } from '../../client/messaging-keys.js';
import {
  MESSAGE_MAX_TEXT_BYTES,
  openMessage,
  sealMessage,
  type MessageContent,
} from '../../client/messaging.js';
import { defaultCryptoProvider as provider } from '../../crypto/default-provider.js';
import { toBase64 } from '../../crypto/bytes.js';
import { keyFingerprint } from '../../crypto/device-key.js';
import { verifyBundle } from '../../crypto/prekeys.js';
import { openBroadcast, signBroadcast } from '../../protocol/broadcast.js';
import { formatSafetyNumber, safetyNumber } from '../../crypto/safety-number.js';
import { ErrorCode, SwitchboardError } from '../../protocol/errors.js';
import { USERNAME_RE, type BroadcastView, type MailboxMessage } from '../../protocol/messages.js';
import { CLIENT_OPTIONS, bool, type Command, type Invocation } from '../command.js';
import { withSession, type Session } from '../client-context.js';
import { Exit, UsageError } from '../exit-codes.js';
import { FILES } from '../home.js';

/** Whether a history line is shown: mine, or from an accepted contact (others' are held). */
function shown(l: HistoryLine, contacts: Contacts): boolean {
  return (
    l.direction === 'out' || l.broadcast === true || contacts.get(l.from)?.state === 'accepted'
  );
}

/** One line of the local history (`messages.jsonl`, 0600): what was sent or received. */
interface HistoryLine extends MessageContent {
  direction: 'in' | 'out';
  fromDevice?: string;
  /** A broadcast (to everyone; `to` is '*'). */
  broadcast?: boolean;
}

function history(session: Session): HistoryLine[] {
  try {
    return readFileSync(session.home.path(FILES.messages), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as HistoryLine);
  } catch {
    return [];
  }
}

function remember(session: Session, line: HistoryLine): void {
  appendFileSync(session.home.path(FILES.messages), `${JSON.stringify(line)}\n`, { mode: 0o600 });
}

/**
 * Checks a peer device key against this home's pins (pinning it on first contact), asking the
 * directory only when the key is not pinned yet, as the terminal does; throws PEER_KEY_CHANGED.
 */
function pinner(session: Session): (peer: PinPeer) => Promise<void> {
  const knownPeers = new KnownPeers(session.home.path(FILES.knownPeers));
  const server = session.login.server;
  return async (peer) => {
    const listed = await listedIfUnpinned(session.client, knownPeers, server, peer);
    knownPeers.verify(server, peer, 'pin', listed);
  };
}

function keysOf(session: Session): MessagingKeys {
  return new MessagingKeys(session.home.path(FILES.messagingKeys), session.home.deviceKey());
}

async function readText(inv: Invocation, arg: string): Promise<string> {
  if (arg !== '-') return arg;
  const chunks: Buffer[] = [];
  for await (const c of inv.io.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
}

export const send: Command = {
  name: 'send',
  summary: 'Send USER an end-to-end encrypted message (- reads it from standard input).',
  usage: 'USER MESSAGE|- [--json]',
  details:
    "The message is sealed on this device for each of USER's devices (and your other ones) with\n" +
    'keys they published, checked against the keys you pinned for them; the relay stores only\n' +
    'ciphertext until each device has it (30 days at most). Returns once the relay has stored it.',
  positionals: [2, 2],
  options: {
    json: { type: 'boolean', description: 'print {"id", "path", "status"} as JSON' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const [to, arg] = inv.positionals as [string, string];
    if (!USERNAME_RE.test(to)) throw new UsageError(`"${to}" is not a user name`);
    const text = await readText(inv, arg);
    if (text.length === 0) throw new UsageError('an empty message');
    if (Buffer.byteLength(text) > MESSAGE_MAX_TEXT_BYTES)
      throw new UsageError(`a message is at most ${MESSAGE_MAX_TEXT_BYTES} bytes`);
    return withSession(inv, async (session) => {
      const { client, me } = session;
      const keys = keysOf(session);
      await keys.publish(client);
      const pin = pinner(session);
      const id = randomBytes(16).toString('base64');
      const content: MessageContent = {
        v: 1,
        id,
        from: me.user,
        to,
        sentAt: new Date().toISOString(),
        text,
      };
      const envelopes: Array<{ device: string; body: string }> = [];
      const myFingerprint = keyFingerprint(session.home.deviceKey().publicKey);
      for (const user of new Set([to, me.user])) {
        const { devices } = await client.request('keys.bundles', { user });
        for (const d of devices) {
          if (d.fingerprint === myFingerprint) continue;
          // The key the relay gives must be one we pinned (or pin now, on first contact).
          await pin(d);
          const bundle = verifyBundle(provider, d.bundle, {
            deviceKey: Buffer.from(d.publicKey, 'base64'),
          });
          envelopes.push({
            device: d.fingerprint,
            body: sealMessage(
              provider,
              { deviceKey: session.home.deviceKey().publicKey, identity: keys.identity },
              bundle,
              content,
            ),
          });
        }
      }
      if (envelopes.length === 0)
        throw new SwitchboardError(
          ErrorCode.SERVICE_UNAVAILABLE,
          `${to} has no device that can receive messages yet (it publishes its keys at login)`,
        );
      const result = await client.request('message.send', { to, messageId: id, envelopes });
      remember(session, { ...content, direction: 'out' });
      // Writing to someone makes them a contact (their answers are shown), unless blocked.
      const contacts = new Contacts(session.home.path(FILES.contacts));
      if (to !== me.user && contacts.get(to)?.state !== 'blocked') contacts.set(to, 'accepted');
      if (bool(inv, 'json'))
        inv.io.stdout.write(
          `${JSON.stringify({ id, path: 'relay', status: 'stored', devices: result.stored })}\n`,
        );
      else
        inv.io.stdout.write(
          `sent to ${to} (stored at the relay for ${envelopes.length} device(s))\n`,
        );
      return Exit.OK;
    });
  },
};

export const inbox: Command = {
  name: 'inbox',
  summary: 'Print messages not yet shown on this device, and mark them read (--all: the history).',
  usage: '[--all] [--follow] [--json]',
  details:
    'Fetches what waits at the relay for this device, opens it here, keeps it in\n' +
    '$SWITCHBOARD_HOME/messages.jsonl (0600), and tells the relay to delete it. --follow stays\n' +
    'connected and prints new messages as they come, until Ctrl-C.',
  positionals: [0, 0],
  options: {
    all: { type: 'boolean', description: 'print the whole history kept on this device' },
    follow: { type: 'boolean', description: 'stay online and print new messages as they come' },
    json: { type: 'boolean', description: 'print one JSON object per message' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    return withSession(inv, async (session) => {
      const { client, me } = session;
      const keys = keysOf(session);
      await keys.publish(client);
      const pin = pinner(session);
      const json = bool(inv, 'json');
      const seen = new Set(history(session).map((l) => l.id));
      const contacts = new Contacts(session.home.path(FILES.contacts));
      const asked = new Set<string>();
      const print = (l: HistoryLine): void => {
        if (json) inv.io.stdout.write(`${JSON.stringify(l)}\n`);
        else
          inv.io.stdout.write(
            `${l.sentAt.replace(/\.\d+Z$/, 'Z')}  ${l.broadcast ? `[broadcast] ${l.from}` : l.direction === 'in' ? `${l.from} → you` : `you → ${l.to}`}: ${l.text}\n`,
          );
      };
      if (bool(inv, 'all')) for (const l of history(session)) if (shown(l, contacts)) print(l);
      const take = async (m: MailboxMessage): Promise<void> => {
        try {
          const { content, senderDeviceKey } = openMessage(
            provider,
            {
              deviceKey: session.home.deviceKey().publicKey,
              identity: keys.identity,
              prekey: (id) => keys.prekey(id),
            },
            m.body,
            // My own message (sent from my other device) may be to anyone; others' are to me.
            m.from === me.user ? { from: m.from } : { from: m.from, to: me.user },
          );
          if (keyFingerprint(senderDeviceKey) !== m.fromDevice)
            throw new SwitchboardError(
              ErrorCode.DECRYPT_FAILED,
              'sealed by another device than the relay says',
            );
          await pin({ user: m.from, publicKey: toBase64(senderDeviceKey), deviceName: '' });
          const state = content.from === me.user ? 'accepted' : contacts.get(content.from)?.state;
          if (!seen.has(content.id) && state !== 'blocked') {
            seen.add(content.id);
            const line: HistoryLine = {
              ...content,
              direction: content.from === me.user ? 'out' : 'in',
              fromDevice: m.fromDevice,
            };
            remember(session, line);
            if (state === 'accepted') print(line);
            else {
              // A stranger: held until accepted, asked once.
              if (state === undefined) contacts.set(content.from, 'pending', m.fromDevice);
              if (!asked.has(content.from)) {
                asked.add(content.from);
                const note = `${content.from} (${m.fromDevice}) wants to message you: \`switchboard contacts accept ${content.from}\` shows their messages, \`switchboard contacts block ${content.from}\` refuses them`;
                if (json)
                  inv.io.stdout.write(
                    `${JSON.stringify({ request: content.from, device: m.fromDevice })}\n`,
                  );
                else inv.io.stdout.write(`${note}\n`);
              }
            }
          }
        } catch (err) {
          if (!(err instanceof SwitchboardError)) throw err;
          inv.io.stderr.write(
            `switchboard inbox: a message from ${m.from} was refused: ${err.message} [${err.code}]\n`,
          );
        }
        await client.request('message.ack', { upTo: m.seq });
      };
      const takeBroadcast = async (b: BroadcastView): Promise<void> => {
        const body = openBroadcast(Buffer.from(b.key, 'base64'), b.body, b.sig);
        try {
          if (!body || body.from !== b.from)
            throw new SwitchboardError(ErrorCode.SIGNATURE_INVALID, 'its signature does not hold');
          await pin({ user: b.from, publicKey: b.key, deviceName: '' });
          if (!seen.has(body.id) && contacts.get(b.from)?.state !== 'blocked') {
            seen.add(body.id);
            const line: HistoryLine = {
              v: 1,
              id: body.id,
              from: b.from,
              to: '*',
              sentAt: body.sentAt,
              text: body.text,
              direction: b.from === me.user ? 'out' : 'in',
              broadcast: true,
            };
            remember(session, line);
            print(line);
          }
        } catch (err) {
          if (!(err instanceof SwitchboardError)) throw err;
          inv.io.stderr.write(
            `switchboard inbox: a broadcast from ${b.from} was refused: ${err.message} [${err.code}]\n`,
          );
        }
        await client.request('broadcast.ack', { ids: [b.id] });
      };
      for (const b of (await client.request('broadcast.fetch', {})).broadcasts)
        await takeBroadcast(b);
      let after = 0;
      for (;;) {
        const { messages, more } = await client.request('message.fetch', { after });
        for (const m of messages) {
          await take(m);
          after = m.seq;
        }
        if (!more) break;
      }
      if (!bool(inv, 'follow')) return Exit.OK;
      let queue = Promise.resolve();
      client.on('event', (e: { type: string } & MailboxMessage & BroadcastView) => {
        if (e.type === 'message') queue = queue.then(() => take(e));
        if (e.type === 'broadcast') queue = queue.then(() => takeBroadcast(e));
      });
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        client.once('close', resolve);
      });
      return Exit.OK;
    });
  },
};

export const contacts: Command = {
  name: 'contacts',
  summary: 'Your contacts and requests; accept, block, or verify one (safety number).',
  usage: '[--json] | accept USER | block USER | verify USER',
  details:
    "A stranger's first message arrives as a request: `inbox` names them and their device and\n" +
    'holds their messages until you `accept` them (then shows them); `block` drops what they send.\n' +
    '`verify` prints the safety number of you and USER: 60 digits computed from both your device\n' +
    'keys as Signal computes them; read them to each other: if they match, the relay gave each of\n' +
    "you the other's real keys.",
  positionals: [0, 2],
  options: { json: { type: 'boolean', description: 'print JSON' }, ...CLIENT_OPTIONS },
  async run(inv) {
    const [action, user] = inv.positionals;
    if (action !== undefined && !['accept', 'block', 'verify'].includes(action))
      throw new UsageError(`unknown action "${action}": use accept, block or verify`);
    if (action !== undefined && (user === undefined || !USERNAME_RE.test(user)))
      throw new UsageError(`which user? \`switchboard contacts ${action} USER\``);
    return withSession(inv, async (session) => {
      const book = new Contacts(session.home.path(FILES.contacts));
      if (action === undefined) {
        const rows = book.list();
        if (bool(inv, 'json')) inv.io.stdout.write(`${JSON.stringify(rows)}\n`);
        else if (rows.length === 0) inv.io.stdout.write('(no contacts yet)\n');
        else
          for (const c of rows)
            inv.io.stdout.write(
              `${c.user.padEnd(20)} ${c.state.padEnd(9)} since ${c.since}${c.device ? `  ${c.device}` : ''}\n`,
            );
        return Exit.OK;
      }
      if (action === 'verify') {
        const { me, client, login } = session;
        const knownPeers = new KnownPeers(session.home.path(FILES.knownPeers));
        const mine = (await client.request('keys.get', { user: me.user })).devices.map((d) =>
          Buffer.from(d.publicKey, 'base64'),
        );
        // Both sides from the directory, as each of you sees it: a relay that showed either of
        // you other keys gives you different numbers. Pins say whether you have met those keys.
        const listed = (await client.request('keys.get', { user: user! })).devices.map(
          (d) => d.publicKey,
        );
        const theirs = listed.map((k) => Buffer.from(k, 'base64'));
        const pins = new Set(knownPeers.list(login.server, user!).map((p) => p.publicKey));
        const pinned = listed.every((k) => pins.has(k));
        const number = safetyNumber(
          { identifier: me.user, keys: mine },
          { identifier: user!, keys: theirs },
        );
        if (bool(inv, 'json'))
          inv.io.stdout.write(`${JSON.stringify({ user, safetyNumber: number, pinned })}\n`);
        else
          inv.io.stdout.write(
            `Safety number of you and ${user}${pinned ? '' : ` (some of ${user}'s device keys are new to you)`}:\n\n` +
              `${formatSafetyNumber(number)}\n\n` +
              `Read it to ${user} another way (in person, on a call); they run \`switchboard contacts verify ${me.user}\`.\n`,
          );
        return Exit.OK;
      }
      book.set(user!, action === 'accept' ? 'accepted' : 'blocked');
      if (action === 'accept') {
        const held = history(session).filter((l) => l.direction === 'in' && l.from === user);
        inv.io.stdout.write(
          `accepted ${user}${held.length ? `; ${held.length} held message(s):` : ''}\n`,
        );
        for (const l of held)
          inv.io.stdout.write(`${l.sentAt.replace(/\.\d+Z$/, 'Z')}  ${l.from} → you: ${l.text}\n`);
      } else inv.io.stdout.write(`blocked ${user}: what they send is dropped\n`);
      return Exit.OK;
    });
  },
};

export const broadcast: Command = {
  name: 'broadcast',
  summary: 'Send a signed message to every user: those online now and those who come online soon.',
  usage: 'MESSAGE|- [--json]',
  details:
    'Broadcasts are public to every user of the relay by design (not end-to-end encrypted): signed\n' +
    "by this device's key, which every recipient checks, and offered to each user once until the\n" +
    "relay's window closes (serve --broadcast-window, default 30 minutes). Rate-limited per user.",
  positionals: [1, 1],
  options: {
    json: { type: 'boolean', description: 'print {"id", "expiresAt", "online"} as JSON' },
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const text = await readText(inv, inv.positionals[0]!);
    if (text.length === 0) throw new UsageError('an empty broadcast');
    return withSession(inv, async (session) => {
      const signed = signBroadcast(session.home.deviceKey(), {
        v: 1,
        id: randomBytes(16).toString('base64'),
        from: session.me.user,
        sentAt: new Date().toISOString(),
        text,
      });
      const r = await session.client.request('broadcast.send', signed);
      if (bool(inv, 'json')) inv.io.stdout.write(`${JSON.stringify(r)}\n`);
      else
        inv.io.stdout.write(
          `broadcast to ${r.online} user(s) online now, and to whoever comes online until ${r.expiresAt}\n`,
        );
      return Exit.OK;
    });
  },
};
