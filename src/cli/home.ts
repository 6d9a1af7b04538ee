// Client state under SWITCHBOARD_HOME: device key, login, remembered relay, pinned keys.
import type { MessengerFiles } from '../client/file-stores.js';
import { existsSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../client/atomic-file.js';
import {
  deviceKeyFromPrivatePem,
  generateDeviceKey,
  type DeviceKeyPair,
} from '../crypto/device-key.js';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';

export const FILES = {
  deviceKey: 'device_ed25519',
  devicePub: 'device_ed25519.pub',
  login: 'login.json',
  config: 'config.json',
  knownServers: 'known_servers.json',
  knownPeers: 'known_peers.json',
  messagingKeys: 'messaging_keys.json',
  messages: 'messages.jsonl',
  contacts: 'contacts.json',
  ledger: 'ledger.json',
} as const;

/** The login this client holds: the token is a secret (file mode 0600). */
export interface SavedLogin {
  server: string;
  user: string;
  token: string;
  expiresAt: string;
}

/** Remembered choices: the relay to use and how to trust it. */
export interface SavedConfig {
  server?: string;
  caFile?: string;
}

export function defaultHome(env: NodeJS.ProcessEnv): string {
  if (env['SWITCHBOARD_HOME']) return env['SWITCHBOARD_HOME'];
  const base = env['XDG_CONFIG_HOME'] || join(homedir(), '.config');
  return join(base, 'switchboard');
}

export class Home {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** The device key, made on first use (Ed25519, PKCS#8 PEM, mode 0600). */
  deviceKey(): DeviceKeyPair {
    const file = this.path(FILES.deviceKey);
    if (existsSync(file)) {
      const mode = statSync(file).mode & 0o777;
      if (mode & 0o077) {
        throw new SwitchboardError(
          ErrorCode.INTERNAL,
          `the device key ${file} is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${file}`,
        );
      }
      return deviceKeyFromPrivatePem(readFileSync(file, 'utf8'));
    }
    const key = generateDeviceKey();
    writeFileAtomic(file, key.toPrivatePem(), 0o600);
    writeFileAtomic(this.path(FILES.devicePub), `${key.publicKey.toString('base64')}\n`, 0o644);
    return key;
  }

  #readJson<T>(name: string): T | undefined {
    const file = this.path(name);
    if (!existsSync(file)) return undefined;
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as T;
    } catch {
      throw new SwitchboardError(ErrorCode.INTERNAL, `${file} is not valid JSON; fix or delete it`);
    }
  }

  /**
   * Where a Messenger of this home keeps its pins, keys, history and contacts (the stores over
   * them: client/file-stores.ts's fileStores).
   */
  messengerFiles(): MessengerFiles {
    return {
      knownPeers: this.path(FILES.knownPeers),
      messagingKeys: this.path(FILES.messagingKeys),
      messages: this.path(FILES.messages),
      contacts: this.path(FILES.contacts),
    };
  }

  login(): SavedLogin | undefined {
    const login = this.#readJson<SavedLogin>(FILES.login);
    if (
      login &&
      typeof login.token === 'string' &&
      typeof login.server === 'string' &&
      typeof login.user === 'string'
    )
      return login;
    return undefined;
  }

  saveLogin(login: SavedLogin): void {
    writeFileAtomic(this.path(FILES.login), `${JSON.stringify(login, null, 2)}\n`, 0o600);
  }

  clearLogin(): void {
    const file = this.path(FILES.login);
    if (existsSync(file)) unlinkSync(file);
  }

  config(): SavedConfig {
    return this.#readJson<SavedConfig>(FILES.config) ?? {};
  }

  saveConfig(config: SavedConfig): void {
    writeFileAtomic(this.path(FILES.config), `${JSON.stringify(config, null, 2)}\n`, 0o600);
  }
}
