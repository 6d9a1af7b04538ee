// The CLI's messaging files (file-stores.ts): a broken contacts or keys file reads as undefined,
// a history line cut short by a crash is skipped and the next append still lands, and every file
// is created 0600.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Contact } from './contacts.js';
import { contactsFileStore, historyFileStore, keysFileStore } from './file-stores.js';
import type { HistoryEntry } from './message-history.js';
import type { StoredKeys } from './messaging-keys.js';

const dirs: string[] = [];
function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sb-file-stores-'));
  dirs.push(dir);
  return dir;
}

const mode = (file: string): number => statSync(file).mode & 0o777;

const CONTACTS: Record<string, Contact> = {
  ana: { state: 'accepted', since: '2025-01-01T00:00:00.000Z' },
  bo: { state: 'pending', since: '2025-01-02T00:00:00.000Z', device: 'SHA256:abc' },
};
const KEYS: StoredKeys = {
  v: 1,
  deviceKey: 'ZGV2aWNl',
  identity: { privateKey: 'cHJpdg==', publicKey: 'cHVi', signature: 'c2ln' },
  prekeys: [
    {
      id: 1,
      privateKey: 'cHJpdg==',
      publicKey: 'cHVi',
      createdAt: 1,
      expiresAt: 2,
      signature: 'c2ln',
    },
  ],
};

const line = (id: string, text: string): HistoryEntry => ({
  v: 1,
  id,
  from: 'ana',
  to: 'bob',
  text,
  sentAt: '2025-01-01T00:00:00.000Z',
  direction: 'in',
});

describe('file stores', () => {
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, open, value] of [
    ['contacts', contactsFileStore, CONTACTS],
    ['messaging keys', keysFileStore, KEYS],
  ] as const) {
    it(`${name}: written whole (0600) and read back; a missing or broken file reads as undefined`, () => {
      const file = join(freshDir(), `${name}.json`);
      const store = (open as (f: string) => { read(): unknown; write(v: unknown): void })(file);
      assert.equal(store.read(), undefined, 'missing');
      store.write(value);
      assert.equal(mode(file), 0o600);
      assert.deepEqual(store.read(), value);
      // Broken: cut short, as a hand edit or another program might leave it.
      const text = readFileSync(file, 'utf8');
      writeFileSync(file, text.slice(0, text.length >> 1));
      assert.equal(store.read(), undefined, 'broken');
      // Written again, whole.
      store.write(value);
      assert.deepEqual(store.read(), value);
      assert.equal(mode(file), 0o600);
    });
  }

  it('contacts.json and messaging_keys.json are created 0600 whatever the umask allows', () => {
    const dir = freshDir();
    const old = process.umask(0o000);
    try {
      contactsFileStore(join(dir, 'contacts.json')).write(CONTACTS);
      keysFileStore(join(dir, 'messaging_keys.json')).write(KEYS);
    } finally {
      process.umask(old);
    }
    assert.equal(mode(join(dir, 'contacts.json')), 0o600);
    assert.equal(mode(join(dir, 'messaging_keys.json')), 0o600);
  });

  it('history: appended one line an entry, created 0600; a line cut short is skipped and the next append lands', () => {
    const file = join(freshDir(), 'messages.jsonl');
    const store = historyFileStore(file);
    assert.deepEqual(store.load(), [], 'missing: empty');
    const old = process.umask(0o000);
    try {
      store.append(line('m1', 'first'));
    } finally {
      process.umask(old);
    }
    assert.equal(mode(file), 0o600);
    const mark: HistoryEntry = { id: 'm1', mark: 'shown', at: '2025-01-01T00:00:01.000Z' };
    store.append(mark);
    assert.deepEqual(store.load(), [line('m1', 'first'), mark]);
    // A crash mid-write: the last line cut short, with no newline. The next run opens the file anew.
    const cut = JSON.stringify(line('m2', 'cut short'));
    writeFileSync(file, cut.slice(0, cut.length - 7), { flag: 'a' });
    const next = historyFileStore(file);
    assert.deepEqual(next.load(), [line('m1', 'first'), mark], 'the cut line is skipped');
    next.append(line('m3', 'after the crash'));
    next.append(line('m4', 'and the next'));
    assert.deepEqual(
      historyFileStore(file).load(),
      [line('m1', 'first'), mark, line('m3', 'after the crash'), line('m4', 'and the next')],
      'the appends after it are read back',
    );
    assert.equal(mode(file), 0o600);
  });
});
