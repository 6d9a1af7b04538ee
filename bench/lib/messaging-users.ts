// Users of the messaging benchmark: an account and a device each (sign-up, password login, token),
// a home directory of files, and a Messenger on a fresh relay connection.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Contacts } from '../../src/client/contacts.js';
import {
  contactsFileStore,
  fileStores,
  type MessengerFiles,
} from '../../src/client/file-stores.js';
import { KnownServers } from '../../src/client/known-servers.js';
import type { HistoryLine } from '../../src/client/message-history.js';
import { Messenger } from '../../src/client/messenger.js';
import { RelayClient } from '../../src/client/relay-client.js';
import { generateDeviceKey, type DeviceKeyPair } from '../../src/crypto/device-key.js';

/** The relay every user of a run talks to. */
export interface RelayAddress {
  server: string;
  fingerprint: string;
}

export interface BenchUser {
  name: string;
  key: DeviceKeyPair;
  token: string;
  files: MessengerFiles;
  /** A new connection logged in with the user's token (to `relay`, default the one signed up on). */
  connect(relay?: RelayAddress): Promise<RelayClient>;
}

/** The password of a benchmark account (the relay's rules: 8+ characters, not the name). */
export const passwordOf = (name: string): string => `${name}-bench-password`;

/** Connects to `relay` pinning its fingerprint, with the pins in `knownServers`. */
export function connectTo(relay: RelayAddress, knownServers: KnownServers): Promise<RelayClient> {
  return RelayClient.connect({
    server: relay.server,
    trust: { knownServers, fingerprint: relay.fingerprint },
  });
}

/** Signs `name` up and logs in a new device of theirs; its files live in `dir/name`. */
export async function createUser(
  relay: RelayAddress,
  dir: string,
  name: string,
): Promise<BenchUser> {
  const home = join(dir, name);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const key = generateDeviceKey();
  const knownServers = new KnownServers(join(home, 'known_servers.json'));
  const c = await connectTo(relay, knownServers);
  let token: string;
  try {
    await c.request('auth.signup', { user: name, password: passwordOf(name) });
    const login = await c.request('auth.login', {
      user: name,
      password: passwordOf(name),
      device: { publicKey: key.publicKey.toString('base64'), name: 'bench' },
    });
    token = login.token;
  } finally {
    c.close();
  }
  return {
    name,
    key,
    token,
    files: {
      knownPeers: join(home, 'known_peers.json'),
      messagingKeys: join(home, 'messaging_keys.json'),
      messages: join(home, 'messages.jsonl'),
      contacts: join(home, 'contacts.json'),
    },
    connect: async (to = relay) => {
      const client = await connectTo(to, knownServers);
      await client.request('auth.token', { token });
      return client;
    },
  };
}

/** `a` and `b` accept each other (a direct link needs both; a message is shown only if accepted). */
export function acceptEachOther(a: BenchUser, b: BenchUser): void {
  new Contacts(contactsFileStore(a.files.contacts)).set(b.name, 'accepted');
  new Contacts(contactsFileStore(b.files.contacts)).set(a.name, 'accepted');
}

/** A user online for messaging: a Messenger started live on its own connection, caught up. */
export interface Online {
  user: BenchUser;
  messenger: Messenger;
  client: RelayClient;
  stop(): Promise<void>;
}

export async function goOnline(
  user: BenchUser,
  relay: RelayAddress,
  direct: boolean,
): Promise<Online> {
  const client = await user.connect();
  const messenger = new Messenger({
    client,
    user: user.name,
    key: user.key,
    server: relay.server,
    stores: fileStores(user.files, user.key),
    direct,
    directHost: '127.0.0.1',
  });
  try {
    await messenger.start({ live: true });
    await messenger.catchUp();
  } catch (err) {
    client.close();
    throw err;
  }
  return {
    user,
    messenger,
    client,
    stop: async () => {
      await messenger.stop();
      client.close();
    },
  };
}

/**
 * Calls `onText(text, line)` for each message `m` shows; the returned function removes the
 * listener.
 */
export function onMessage(m: Messenger, onText: (text: string, line: HistoryLine) => void) {
  const listener = (line: HistoryLine): void => onText(line.text, line);
  m.on('message', listener);
  return (): void => void m.off('message', listener);
}
