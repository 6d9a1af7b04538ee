// `switchboard chat USER`: an interactive, end-to-end encrypted conversation in the terminal.
//
// A line-based chat like irc clients: incoming messages are printed above the line being typed
// (readline keeps it), my messages get their marks as they change, the prompt shows the peer's
// presence and the path (direct or through the relay). On a terminal it is interactive; with
// standard input from a pipe each line is a message and the chat ends at end of input.
import { clearLine, createInterface, cursorTo, moveCursor, type Interface } from 'node:readline';
import { Backoff } from '../../client/backoff.js';
import { KnownPeers } from '../../client/known-peers.js';
import {
  MARK_TEXT,
  clockTime,
  type HistoryLine,
  type MarkState,
} from '../../client/message-history.js';
import { MESSAGE_MAX_TEXT_BYTES } from '../../client/messaging.js';
import type { Messenger } from '../../client/messenger.js';
import type { RelayClient } from '../../client/relay-client.js';
import { ErrorCode, SwitchboardError, isTransient } from '../../protocol/errors.js';
import { USERNAME_RE, type Results } from '../../protocol/messages.js';
import { CLIENT_OPTIONS, str, type Command } from '../command.js';
import { authedConnector } from '../client-context.js';
import { Exit, UsageError } from '../exit-codes.js';
import { FILES } from '../home.js';
import {
  DIRECT_OPTION,
  messengerOf,
  safetyNumberWith,
  safetyText,
  statusNote,
} from './messages.js';

/**
 * How often the peer's presence is asked, and a link (with a direct connection) to them tried
 * again while there is no direct one.
 */
export const PRESENCE_POLL_MS = 10_000; // ms
const DEFAULT_HISTORY = 20;

const HELP = `Type a message and press Enter to send it. Commands:
  /verify   the safety number of you and the peer (compare it with them another way)
  /accept   accept the peer's request (show their messages)
  /block    block the peer (what they send is dropped)
  /help     this help
  /quit     leave (Ctrl-D and Ctrl-C too)`;

export const chat: Command = {
  name: 'chat',
  summary: 'Chat with USER, end to end encrypted: live, direct when possible, with history.',
  usage: 'USER [--history N] [--no-direct]',
  details:
    'Opens with your recent history with USER, shows their messages as they come and marks yours\n' +
    '✓ sent (stored at the relay), ✓✓ delivered, read. When you are both online and have accepted\n' +
    "each other, your clients connect directly (peer to peer; each then learns the other's IP\n" +
    "addresses) and fall back to the relay when they cannot. The prompt shows USER's presence and\n" +
    'the path. /help lists the commands. With standard input not a terminal, each line is sent.',
  positionals: [1, 1],
  options: {
    history: {
      type: 'string',
      value: 'N',
      description: `messages of history shown first (default ${DEFAULT_HISTORY})`,
    },
    ...DIRECT_OPTION,
    ...CLIENT_OPTIONS,
  },
  async run(inv) {
    const peer = inv.positionals[0]!;
    if (!USERNAME_RE.test(peer)) throw new UsageError(`"${peer}" is not a user name`);
    const historyN = Number(str(inv, 'history') ?? DEFAULT_HISTORY);
    if (!Number.isInteger(historyN) || historyN < 0)
      throw new UsageError('--history takes a whole number of messages');
    const session = await authedConnector(inv);
    if (peer === session.me.user) {
      session.client.close();
      throw new UsageError('that is you: chat with another user');
    }
    // An unknown user is an error now, not a chat with nobody; their keys are checked below.
    let listed: Results['keys.get']['devices'];
    try {
      listed = (await session.client.request('keys.get', { user: peer })).devices;
    } catch (err) {
      session.client.close();
      throw err;
    }
    const out = inv.io.stdout;
    const tty = inv.io.stdin.isTTY === true && out.isTTY === true;
    const rl = createInterface({ input: inv.io.stdin, output: out, terminal: tty });
    // Lines typed (or piped) while the chat sets up wait for it.
    const early: string[] = [];
    let onLine: ((line: string) => void) | undefined;
    let inputClosed = false;
    let onInputClosed: (() => void) | undefined;
    rl.on('line', (line: string) => (onLine ? onLine(line) : early.push(line)));
    rl.on('close', () => {
      inputClosed = true;
      onInputClosed?.();
    });
    const ui = new ChatScreen(rl, out, tty);
    let messenger: Messenger;
    let client: RelayClient = session.client;
    let quitting = false;
    let requested = false;
    let presence = { online: false, lastSeen: null as string | null };
    /** Texts of my recent messages, to name them in status lines. */
    const pendingStatus = new Map<string, { state: MarkState; text: string }>();
    let statusTimer: NodeJS.Immediate | undefined;
    /** Ids of lines typed here and not printed yet. */
    const sendingIds = new Set<string>();

    const keyWarning = (): void =>
      ui.say(
        `\x1b[1;31m!!! ${peer}'s device key CHANGED !!!\x1b[0m\n` +
          `The relay now gives another key for ${peer} than the one you pinned: a reinstall, or\n` +
          `someone impersonating them. Nothing is sent to ${peer} until you check: compare safety\n` +
          `numbers with them (/verify), then run \`switchboard trust ${peer}\`.`,
      );

    const refreshPrompt = (): void => {
      const path = messenger?.linkPath(peer) ?? 'none';
      const state =
        path === 'direct'
          ? '● direct'
          : path === 'relay'
            ? '● via relay'
            : presence.online
              ? '● online'
              : `○ offline${presence.lastSeen ? `, seen ${clockTime(presence.lastSeen)}` : ''}`;
      ui.setPrompt(`[${peer} ${state}] `);
    };

    const showLine = (l: HistoryLine): void => {
      if (l.direction === 'out') {
        const mark = messenger.history.status(l.id)?.state;
        ui.say(`${clockTime(l.sentAt)}  you: ${l.text}${mark ? `  ${MARK_TEXT[mark]}` : ''}`);
      } else ui.say(`${clockTime(l.sentAt)}  ${l.from}: ${l.text}`);
    };

    const flushStatus = (): void => {
      statusTimer = undefined;
      const byState = new Map<MarkState, string[]>();
      for (const { state, text } of pendingStatus.values())
        byState.set(state, [...(byState.get(state) ?? []), text]);
      pendingStatus.clear();
      for (const [state, texts] of byState) {
        if (state === 'sent') continue;
        if (state === 'pending' || state === 'failed') {
          ui.say(`  \x1b[2m${statusNote(peer, state)}\x1b[0m`);
          continue;
        }
        const what =
          texts.length === 1
            ? `"${texts[0]!.length > 40 ? `${texts[0]!.slice(0, 39)}…` : texts[0]}"`
            : `${texts.length} messages`;
        ui.say(`  \x1b[2m${MARK_TEXT[state]}: ${what}\x1b[0m`);
      }
    };

    const attach = async (c: RelayClient): Promise<Messenger> => {
      const m = messengerOf({ ...session, client: c }, inv);
      m.on('message', (l: HistoryLine) => {
        if (l.broadcast) {
          ui.say(`${clockTime(l.sentAt)}  [broadcast] ${l.from}: ${l.text}`);
          m.shown([l]);
        } else if (l.direction === 'in' && l.from === peer) {
          showLine(l);
          m.shown([l]);
        } else if (l.direction === 'out' && l.to === peer) showLine(l);
        else if (l.direction === 'in')
          ui.say(`  \x1b[2m(a message from ${l.from}: \`switchboard inbox\` shows it)\x1b[0m`);
      });
      m.on('request', (r: { user: string; device: string }) => {
        if (r.user === peer) requested = true;
        ui.say(
          r.user === peer
            ? `${peer} (${r.device}) is not a contact yet and wants to message you: /accept shows their messages, /block refuses them`
            : `  \x1b[2m(${r.user} wants to message you: \`switchboard contacts\`)\x1b[0m`,
        );
      });
      m.on('status', (s: { id: string; state: MarkState }) => {
        const line = m.history.get(s.id);
        // A message being sent gets its first mark when it is printed.
        if (line?.to !== peer || sendingIds.has(s.id)) return;
        pendingStatus.set(s.id, { state: s.state, text: line.text });
        statusTimer ??= setImmediate(flushStatus);
      });
      m.on('link', (e: { user: string; path: string }) => {
        if (e.user !== peer) return;
        if (e.path !== 'none') presence = { ...presence, online: true };
        // The link went: are they still online at all?
        else void checkPresence();
        refreshPrompt();
      });
      m.on('payment', (p: { from: string; amount: number; memo: string }) =>
        ui.say(
          `  \x1b[32m${p.from} paid you ${p.amount}${p.memo ? ` (${p.memo})` : ''}: \`switchboard balance\`\x1b[0m`,
        ),
      );
      m.on('refused', (r: { from: string; kind: string; message: string }) =>
        ui.say(`  \x1b[31ma ${r.kind} from ${r.from} was refused: ${r.message}\x1b[0m`),
      );
      await m.start({ live: true });
      await m.catchUp();
      // What the peer sent while I was away, now shown here.
      const missed = m.unshown().filter((l) => l.from === peer && !l.broadcast);
      for (const l of missed) showLine(l);
      m.shown(missed);
      return m;
    };

    const checkPresence = async (): Promise<void> => {
      try {
        const { users } = await client.request('users.list', {});
        const row = users.find((u) => u.user === peer);
        const now = { online: row?.online ?? false, lastSeen: row?.lastSeen ?? null };
        if (now.online !== presence.online)
          ui.say(`  \x1b[2m${peer} is ${now.online ? 'online' : 'offline'}\x1b[0m`);
        presence = now;
        refreshPrompt();
      } catch {
        // The connection is going: the reconnect loop says so.
      }
    };

    const tryLink = async (): Promise<void> => {
      try {
        await messenger.link(peer);
      } catch (err) {
        if (err instanceof SwitchboardError && err.code === ErrorCode.PEER_KEY_CHANGED)
          keyWarning();
      }
      refreshPrompt();
    };

    // The conversation so far (a stranger's held messages stay held), then what came meanwhile.
    const knownPeers = new KnownPeers(session.home.path(FILES.knownPeers));
    {
      const m = messengerOf(session, inv);
      const accepted = m.contacts().get(peer)?.state === 'accepted';
      const past = m.history
        .conversation(peer, historyN)
        .filter(
          (l) => l.direction === 'out' || (accepted && m.history.status(l.id)?.state === 'shown'),
        );
      ui.say(
        `Chat with ${peer}, end to end encrypted. /help for commands.${past.length ? '' : ' (no messages yet)'}`,
      );
      for (const l of past) {
        const mark = l.direction === 'out' ? m.history.status(l.id)?.state : undefined;
        ui.say(
          l.direction === 'out'
            ? `${clockTime(l.sentAt)}  you: ${l.text}${mark ? `  ${MARK_TEXT[mark]}` : ''}`
            : `${clockTime(l.sentAt)}  ${l.from}: ${l.text}`,
        );
      }
    }
    messenger = await attach(client);
    if (listed.some((d) => knownPeers.check(session.login.server, peer, d.publicKey) === 'changed'))
      keyWarning();
    if (!requested && messenger.contacts().get(peer)?.state === 'pending')
      ui.say(`${peer} is not a contact yet: /accept shows their messages, /block refuses them`);
    await checkPresence();
    void tryLink();
    const poll = setInterval(() => {
      void checkPresence();
      if (messenger.linkPath(peer) !== 'direct') void tryLink();
    }, PRESENCE_POLL_MS);
    poll.unref();

    // Losing the relay: reconnect with backoff; the history and unsent lines wait.
    const reconnect = async (): Promise<void> => {
      if (quitting) return;
      ui.say(`  \x1b[33mlost the relay; reconnecting…\x1b[0m`);
      const backoff = new Backoff(500, 15_000);
      for (;;) {
        await backoff.wait();
        if (quitting) return;
        try {
          client = await session.connect();
          break;
        } catch {
          // retried
        }
      }
      await messenger.stop().catch(() => undefined);
      messenger = await attach(client);
      client.once('close', () => void reconnect());
      ui.say(`  \x1b[32mback online\x1b[0m`);
      sending = sending.then(async () => {
        for (const id of unsent.splice(0)) {
          try {
            await messenger.resend(id);
            const line = messenger.history.get(id);
            if (line) showLine(line);
          } catch (err) {
            if (isTransient(err)) unsent.push(id);
            else
              ui.say(
                `  \x1b[31mnot sent: ${err instanceof Error ? err.message : String(err)}\x1b[0m`,
              );
          }
          sendingIds.delete(id);
        }
      });
      await checkPresence();
      void tryLink();
    };
    client.once('close', () => void reconnect());

    let sending = Promise.resolve();
    /** My messages cut off by a lost relay connection: sent again after the reconnect. */
    const unsent: string[] = [];
    const sendLine = (text: string): void => {
      sending = sending.then(async () => {
        let id = '';
        try {
          const r = await messenger.send(peer, text, (i) => sendingIds.add((id = i)));
          const line = messenger.history.get(r.id);
          if (line) showLine(line);
          sendingIds.delete(r.id);
        } catch (err) {
          if (isTransient(err)) {
            // Kept, and sent (same id) once the relay is back.
            unsent.push(id);
            const line = messenger.history.get(id);
            if (line)
              ui.say(
                `${clockTime(line.sentAt)}  you: ${line.text}  … (sent when the relay is back)`,
              );
            return;
          }
          if (err instanceof SwitchboardError && err.code === ErrorCode.PEER_KEY_CHANGED)
            keyWarning();
          else
            ui.say(
              `  \x1b[31mnot sent: ${err instanceof Error ? err.message : String(err)}\x1b[0m`,
            );
        }
      });
    };

    refreshPrompt();
    ui.prompt();
    await new Promise<void>((resolve) => {
      const quit = (): void => {
        quitting = true;
        resolve();
      };
      rl.on('SIGINT', quit);
      onInputClosed = quit;
      onLine = (input: string): void => {
        const text = input.replace(/\s+$/, '');
        if (tty && !quitting) ui.eraseTyped();
        if (text === '') return ui.prompt();
        if (text === '/quit' || text === '/exit') return rl.close();
        if (text === '/help') {
          ui.say(HELP);
          return ui.prompt();
        }
        if (text === '/verify') {
          void safetyNumberWith({ ...session, client }, peer).then(
            ({ number, pinned }) => ui.say(safetyText(session.me.user, peer, number, pinned)),
            (err: unknown) => ui.say(`  cannot compute it now: ${String(err)}`),
          );
          return ui.prompt();
        }
        if (text === '/accept' || text === '/block') {
          const contacts = messenger.contacts();
          contacts.set(peer, text === '/accept' ? 'accepted' : 'blocked');
          if (text === '/accept') {
            const held = messenger.unshown().filter((l) => l.from === peer && !l.broadcast);
            ui.say(`accepted ${peer}${held.length ? `; ${held.length} held message(s):` : ''}`);
            for (const l of held) showLine(l);
            messenger.shown(held);
            void tryLink();
          } else ui.say(`blocked ${peer}: what they send is dropped`);
          return ui.prompt();
        }
        if (text.startsWith('/') && !text.startsWith('//')) {
          ui.say(`unknown command ${text.split(' ')[0]}: /help lists them`);
          return ui.prompt();
        }
        const body = text.startsWith('//') ? text.slice(1) : text;
        if (Buffer.byteLength(body) > MESSAGE_MAX_TEXT_BYTES) {
          ui.say(`a message is at most ${MESSAGE_MAX_TEXT_BYTES} bytes`);
          return ui.prompt();
        }
        sendLine(body);
        ui.prompt();
      };
      for (const line of early.splice(0)) onLine(line);
      if (inputClosed) quit();
    });
    clearInterval(poll);
    // Lines already typed are sent before leaving (a pipe's last lines too).
    await sending;
    await messenger.stop().catch(() => undefined);
    client.close();
    if (tty) out.write('\n');
    return Exit.OK;
  },
};

/** Output above the line being typed; the prompt redrawn under it. */
class ChatScreen {
  readonly #rl: Interface;
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;

  constructor(rl: Interface, out: NodeJS.WriteStream, tty: boolean) {
    this.#rl = rl;
    this.#out = out;
    this.#tty = tty;
  }

  say(text: string): void {
    if (!this.#tty) {
      // No colours into a pipe.
      this.#out.write(`${text.replace(/\x1b\[[0-9;]*m/g, '')}\n`); // eslint-disable-line no-control-regex
      return;
    }
    clearLine(this.#out, 0);
    cursorTo(this.#out, 0);
    this.#out.write(`${text}\n`);
    this.#rl.prompt(true);
  }

  setPrompt(prompt: string): void {
    if (!this.#tty) return;
    this.#rl.setPrompt(prompt);
    this.#rl.prompt(true);
  }

  prompt(): void {
    if (this.#tty) this.#rl.prompt();
  }

  /** The typed line as echoed (it is printed again with its time and marks). */
  eraseTyped(): void {
    moveCursor(this.#out, 0, -1);
    clearLine(this.#out, 0);
    cursorTo(this.#out, 0);
  }
}
