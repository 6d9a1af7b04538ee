// `switchboard send`, `inbox`, `contacts` and `broadcast`: end-to-end encrypted messages on the
// Messenger (client/messenger.ts), directly to an online contact or stored at the relay for
// devices that are offline.
import { randomBytes } from 'node:crypto';
import { Contacts } from '../../client/contacts.js';
import { DirectListener, connectDirect, parseOffer } from '../../client/direct.js';
import { contactsFileStore, fileStores } from '../../client/file-stores.js';
import { KnownPeers } from '../../client/known-peers.js';
import type { HistoryLine } from '../../client/message-history.js';
import { MESSAGE_MAX_TEXT_BYTES } from '../../client/messaging.js';
import { Messenger, type MessengerLinks } from '../../client/messenger.js';
import type { RelayClient } from '../../client/relay-client.js';
import type { DeviceKeyPair } from '../../crypto/device-key.js';
import { keyFingerprint } from '../../crypto/fingerprint.js';
import { ServiceListener } from '../../host/service-listener.js';
import { signBroadcast } from '../../protocol/broadcast.js';
import { formatSafetyNumber, safetyNumber } from '../../crypto/safety-number.js';
import { USERNAME_RE } from '../../protocol/messages.js';
import {
  CLIENT_OPTIONS,
  bool,
  type Command,
  type Invocation,
  type OptionSpec,
} from '../command.js';
import { withSession, type Session } from '../client-context.js';
import { Exit, UsageError } from '../exit-codes.js';
import { FILES } from '../home.js';

/** `--no-direct`, for every command that may link to a peer. */
export const DIRECT_OPTION: Record<string, OptionSpec> = {
  'no-direct': {
    type: 'boolean',
    description:
      'never connect to peers directly: everything goes through the relay (env SWITCHBOARD_DIRECT_HOST sets where direct connections are accepted; default every interface)',
  },
};

/**
 * What a Node client adds to the messaging engine: the `chat` service offered on `client` (links
 * from contacts, served by a ServiceListener with the pins in `knownPeersFile`), and direct TCP
 * connections (client/direct.ts).
 */
export function nodeLinks(
  client: RelayClient,
  o: { user: string; key: DeviceKeyPair; server: string; knownPeersFile: string },
): MessengerLinks {
  return {
    async serveChat(serve, notice) {
      const services = new ServiceListener(client, {
        user: o.user,
        key: o.key,
        fingerprint: keyFingerprint(o.key.publicKey),
        server: o.server,
        knownPeers: new KnownPeers(o.knownPeersFile),
        services: [{ name: 'chat', decidesAccess: true, serve }],
      });
      services.on('notice', notice);
      await services.start();
      return () => services.stop();
    },
    direct: {
      listen: (host) => DirectListener.open(host),
      parseOffer,
      // `mine` and `theirs` are what listen() and parseOffer() above made: given back as they are.
      connect: (a) =>
        connectDirect({ ...a, mine: a.mine as never, theirs: a.theirs as never, key: o.key }),
    },
  };
}

/** The messaging engine on this session's connection. */
export function messengerOf(session: Session, inv: Invocation): Messenger {
  const home = session.home;
  const directHost = inv.io.env['SWITCHBOARD_DIRECT_HOST'];
  const key = home.deviceKey();
  const files = home.messengerFiles();
  return new Messenger({
    client: session.client,
    user: session.me.user,
    key,
    server: session.login.server,
    stores: fileStores(files, key),
    links: nodeLinks(session.client, {
      user: session.me.user,
      key,
      server: session.login.server,
      knownPeersFile: files.knownPeers,
    }),
    direct: !bool(inv, 'no-direct'),
    ...(directHost ? { directHost } : {}),
  });
}

/** One history line as `inbox` and `chat` print it. */
export function formatLine(l: HistoryLine): string {
  const when = l.sentAt.replace(/\.\d+Z$/, 'Z');
  const who = l.broadcast
    ? `[broadcast] ${l.from}`
    : l.direction === 'in'
      ? `${l.from} → you`
      : `you → ${l.to}`;
  return `${when}  ${who}: ${l.text}`;
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
    'ciphertext until each device has it (30 days at most). When USER is online and a contact, it\n' +
    'goes directly to their device instead (--no-direct: never). Returns once their device\n' +
    'acknowledged it or the relay stored it.',
  positionals: [2, 2],
  options: {
    json: { type: 'boolean', description: 'print {"id", "path", "status"} as JSON' },
    ...DIRECT_OPTION,
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
      const messenger = messengerOf(session, inv);
      await messenger.start();
      try {
        const r = await messenger.send(to, text);
        if (bool(inv, 'json'))
          inv.io.stdout.write(
            `${JSON.stringify({ id: r.id, path: r.path, status: r.status, relayed: r.relayed })}\n`,
          );
        else if (r.path === 'direct') inv.io.stdout.write(`delivered to ${to} directly\n`);
        else
          inv.io.stdout.write(`sent to ${to} (stored at the relay for ${r.relayed} device(s))\n`);
        return Exit.OK;
      } finally {
        await messenger.stop();
      }
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
    ...DIRECT_OPTION,
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    return withSession(inv, async (session) => {
      const json = bool(inv, 'json');
      const follow = bool(inv, 'follow');
      const messenger = messengerOf(session, inv);
      const print = (l: HistoryLine): void => {
        inv.io.stdout.write(`${json ? JSON.stringify(l) : formatLine(l)}\n`);
      };
      if (bool(inv, 'all')) {
        const contacts = messenger.contacts();
        for (const l of messenger.history.lines)
          if (l.direction === 'out' || l.broadcast || contacts.get(l.from)?.state === 'accepted')
            print(l);
      }
      // What was held or not shown before, then what the relay has waiting.
      // (My own messages sent from another device come too: the history follows me.)
      const showNew = (l: HistoryLine): void => {
        print(l);
        messenger.shown([l]);
      };
      if (!bool(inv, 'all')) for (const l of messenger.unshown()) showNew(l);
      else messenger.shown(messenger.unshown());
      messenger.on('message', showNew);
      messenger.on('request', (r: { user: string; device: string }) => {
        if (json) inv.io.stdout.write(`${JSON.stringify({ request: r.user, device: r.device })}\n`);
        else
          inv.io.stdout.write(
            `${r.user} (${r.device}) wants to message you: \`switchboard contacts accept ${r.user}\` shows their messages, \`switchboard contacts block ${r.user}\` refuses them\n`,
          );
      });
      messenger.on('payment', (p: { from: string; amount: number; memo: string }) =>
        inv.io.stdout.write(
          json
            ? `${JSON.stringify({ payment: p.from, amount: p.amount, memo: p.memo })}\n`
            : `${p.from} paid you ${p.amount}${p.memo ? ` (${p.memo})` : ''}: \`switchboard balance\`\n`,
        ),
      );

      messenger.on('refused', (r: { from: string; kind: string; message: string; code: string }) =>
        inv.io.stderr.write(
          `switchboard inbox: a ${r.kind} from ${r.from} was refused: ${r.message} [${r.code}]\n`,
        ),
      );
      if (follow && !json)
        messenger.on('status', (st: { id: string; state: string }) => {
          const line = messenger.history.get(st.id);
          if (line && (st.state === 'pending' || st.state === 'failed'))
            inv.io.stdout.write(`${statusNote(line.to, st.state)}\n`);
        });
      await messenger.start({ live: follow });
      try {
        await messenger.catchUp();
        if (!follow) return Exit.OK;
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          session.client.once('close', resolve);
        });
        return Exit.OK;
      } finally {
        await messenger.stop();
      }
    });
  },
};

/**
 * The safety number of me and `user`, from the directory's keys for both as this relay shows
 * them (a relay that showed either of us other keys gives us different numbers); `pinned`: all
 * of `user`'s listed keys are ones I pinned.
 */
export async function safetyNumberWith(
  session: Session,
  user: string,
): Promise<{ number: string; pinned: boolean }> {
  const { me, client, login } = session;
  const knownPeers = new KnownPeers(session.home.path(FILES.knownPeers));
  const mine = (await client.request('keys.get', { user: me.user })).devices.map((d) =>
    Buffer.from(d.publicKey, 'base64'),
  );
  const listed = (await client.request('keys.get', { user })).devices.map((d) => d.publicKey);
  const pins = new Set(knownPeers.list(login.server, user).map((p) => p.publicKey));
  const number = safetyNumber(
    { identifier: me.user, keys: mine },
    { identifier: user, keys: listed.map((k) => Buffer.from(k, 'base64')) },
  );
  return { number, pinned: listed.every((k) => pins.has(k)) };
}

export function safetyText(me: string, user: string, number: string, pinned: boolean): string {
  return (
    `Safety number of you and ${user}${pinned ? '' : ` (some of ${user}'s device keys are new to you)`}:\n\n` +
    `${formatSafetyNumber(number)}\n\n` +
    `Read it to ${user} another way (in person, on a call); they run \`switchboard contacts verify ${me}\`.`
  );
}

/** What a sender is told about a message held or refused at the other end. */
export function statusNote(to: string, state: string): string {
  return state === 'pending'
    ? `${to} has not accepted you yet: your messages wait until they do`
    : `a message to ${to} could not be delivered`;
}

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
      const book = new Contacts(contactsFileStore(session.home.path(FILES.contacts)));
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
        const { number, pinned } = await safetyNumberWith(session, user!);
        if (bool(inv, 'json'))
          inv.io.stdout.write(`${JSON.stringify({ user, safetyNumber: number, pinned })}\n`);
        else inv.io.stdout.write(`${safetyText(session.me.user, user!, number, pinned)}\n`);
        return Exit.OK;
      }
      book.set(user!, action === 'accept' ? 'accepted' : 'blocked');
      if (action === 'accept') {
        // What they sent so far, shown now (and their device told it was read).
        const messenger = messengerOf(session, inv);
        const held = messenger.unshown().filter((l) => !l.broadcast && l.from === user);
        inv.io.stdout.write(
          `accepted ${user}${held.length ? `; ${held.length} held message(s):` : ''}\n`,
        );
        for (const l of held) inv.io.stdout.write(`${formatLine(l)}\n`);
        messenger.shown(held);
        await messenger.flushReceipts();
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
