// `switchboard send` and `switchboard inbox`: end-to-end encrypted messages through the relay,
// delivered to devices that are offline when they are sent.
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { KnownPeers } from '../../client/known-peers.js';
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
import { ErrorCode, SwitchboardError } from '../../protocol/errors.js';
import { USERNAME_RE, type MailboxMessage } from '../../protocol/messages.js';
import { CLIENT_OPTIONS, bool, type Command, type Invocation } from '../command.js';
import { withSession, type Session } from '../client-context.js';
import { Exit, UsageError } from '../exit-codes.js';
import { FILES } from '../home.js';

/** One line of the local history (`messages.jsonl`, 0600): what was sent or received. */
interface HistoryLine extends MessageContent {
  direction: 'in' | 'out';
  fromDevice?: string;
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
      const { client, me, login } = session;
      const keys = keysOf(session);
      await keys.publish(client);
      const knownPeers = new KnownPeers(session.home.path(FILES.knownPeers));
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
        const listed = (await client.request('keys.get', { user })).devices.map((d) => d.publicKey);
        for (const d of devices) {
          if (d.fingerprint === myFingerprint) continue;
          // The key the relay gives must be one we pinned (or pin now, on first contact).
          knownPeers.verify(login.server, d, 'pin', listed);
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
      const { client, me, login } = session;
      const keys = keysOf(session);
      await keys.publish(client);
      const knownPeers = new KnownPeers(session.home.path(FILES.knownPeers));
      const json = bool(inv, 'json');
      const seen = new Set(history(session).map((l) => l.id));
      const print = (l: HistoryLine): void => {
        if (json) inv.io.stdout.write(`${JSON.stringify(l)}\n`);
        else
          inv.io.stdout.write(
            `${l.sentAt.replace(/\.\d+Z$/, 'Z')}  ${l.direction === 'in' ? `${l.from} → you` : `you → ${l.to}`}: ${l.text}\n`,
          );
      };
      if (bool(inv, 'all')) for (const l of history(session)) print(l);
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
          const listed = (await client.request('keys.get', { user: m.from })).devices.map(
            (d) => d.publicKey,
          );
          knownPeers.verify(
            login.server,
            { user: m.from, publicKey: toBase64(senderDeviceKey), deviceName: '' },
            'pin',
            listed,
          );
          if (!seen.has(content.id)) {
            seen.add(content.id);
            const line: HistoryLine = {
              ...content,
              direction: content.from === me.user ? 'out' : 'in',
              fromDevice: m.fromDevice,
            };
            remember(session, line);
            print(line);
          }
        } catch (err) {
          if (!(err instanceof SwitchboardError)) throw err;
          inv.io.stderr.write(
            `switchboard inbox: a message from ${m.from} was refused: ${err.message} [${err.code}]\n`,
          );
        }
        await client.request('message.ack', { upTo: m.seq });
      };
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
      client.on('event', (e: { type: string } & MailboxMessage) => {
        if (e.type === 'message') queue = queue.then(() => take(e));
      });
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        client.once('close', resolve);
      });
      return Exit.OK;
    });
  },
};
