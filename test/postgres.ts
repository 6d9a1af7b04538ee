// A throwaway PostgreSQL server for tests: initdb in a temp dir, a unix socket there, no network.
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** Debian's `postgresql` package puts the server binaries here, one directory per version. */
const DEBIAN_PG_ROOT = '/usr/lib/postgresql';
/** The package that provides them; named in the failure so CI logs say what to install. */
const PACKAGE = 'postgresql';
/** How long initdb may take. */
const INITDB_TIMEOUT_MS = 60_000; // ms
/** How long the server has to accept a connection after it is spawned. */
const READY_TIMEOUT_MS = 30_000; // ms
/** Pause between readiness probes (each probe is a real connection attempt). */
const READY_POLL_MS = 50; // ms
/** How long a fast shutdown may take before the server is killed. */
const STOP_TIMEOUT_MS = 10_000; // ms
/** The superuser initdb creates; the relay connects as a plain role, {@link ROLE}. */
const SUPERUSER = 'postgres';
/** A login role that owns each test database and nothing else (no superuser, no createdb). */
const ROLE = 'relay';
/** The empty database every test database is cloned from. */
const TEMPLATE = 'switchboard_template';
const PORT = 5432; // only names the socket file: the server listens on no TCP address

export interface TestPostgres {
  /** The directory holding the server's socket (the `host` of every URL). */
  readonly socketDir: string;
  /**
   * Creates an empty database (ICU `en-US` collation) owned by a plain login role and returns its URL
   * (`postgresql://relay@/NAME?host=SOCKET_DIR`).
   */
  createDatabase(): Promise<string>;
  /** Stops the server and deletes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** The newest `…/bin` holding initdb and postgres, or a message naming the package to install. */
function findBinaries(): string {
  const versions = existsSync(DEBIAN_PG_ROOT)
    ? readdirSync(DEBIAN_PG_ROOT)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const v of versions) {
    const bin = join(DEBIAN_PG_ROOT, v, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'postgres'))) return bin;
  }
  throw new Error(
    `PostgreSQL server binaries (initdb, postgres) not found under ${DEBIAN_PG_ROOT}/*/bin: ` +
      `install Debian's \`${PACKAGE}\` package (apt-get install ${PACKAGE}); .ci/run does this`,
  );
}

/**
 * PostgreSQL refuses to run as root. When the tests run as root (CI), the server runs as the
 * `postgres` account the Debian package creates; otherwise as the current user.
 */
function serverAccount(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined)
    throw new Error(
      `running as root, and there is no "postgres" account to run the server as: install Debian's \`${PACKAGE}\` package`,
    );
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs a command to completion; rejects with its output on failure or after `timeoutMs`. */
function run(
  file: string,
  args: string[],
  account: { uid: number; gid: number } | undefined,
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...account });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${file} failed (${code ?? signal}):\n${output}`));
    });
  });
}

/**
 * Starts a private PostgreSQL server (fsync off: a test database need not survive a crash)
 * listening only on a unix socket in a fresh temp dir, and waits until it accepts connections.
 *
 * @throws if the binaries are missing (naming the Debian package), or it does not start in time
 * @example
 * const pgServer = await startTestPostgres(); after(() => pgServer.stop());
 * const store = await openStore({ database: await pgServer.createDatabase() });
 */
export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = findBinaries();
  const account = serverAccount();
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-pg-'));
  if (account) chownSync(dir, account.uid, account.gid);
  const dataDir = join(dir, 'data');
  let server: ChildProcess | undefined;
  let admin: pg.Client | undefined;
  let stopped: Promise<void> | undefined;
  const killOnExit = () => server?.kill('SIGKILL');
  process.once('exit', killOnExit);

  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await admin?.end().catch(() => undefined);
      const child = server;
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGINT'); // "fast" shutdown: roll back open transactions and exit
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      process.off('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    await run(
      join(bin, 'initdb'),
      ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '--no-sync', '-E', 'UTF8', '--no-locale'],
      account,
      INITDB_TIMEOUT_MS,
    );
    const child = spawn(
      join(bin, 'postgres'),
      [
        '-D',
        dataDir,
        '-p',
        String(PORT),
        '-k',
        dir,
        '-c',
        'listen_addresses=',
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=100',
        '-c',
        // Deadlock tests wait this long for the detector.
        'deadlock_timeout=100ms',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], ...account },
    );
    server = child;
    let log = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      if (log.length < 64 * 1024) log += s;
    });
    const died = new Promise<never>((_, reject) =>
      child.once('exit', (code, signal) =>
        reject(new Error(`postgres exited during start (${code ?? signal}):\n${log}`)),
      ),
    );
    died.catch(() => undefined);
    admin = await Promise.race([connectWhenReady(dir, () => log), died]);
  } catch (err) {
    await stop();
    throw err;
  }

  const client = admin;
  await client.query(`create role ${ROLE} login`);
  // An ICU English collation, like a typical production database's, so that code relying on
  // byte order (SQLite's, JavaScript's) without saying so fails here. Made once as a template:
  // cloning it takes tens of ms, building from template0 hundreds.
  await client.query(
    `create database ${TEMPLATE} template template0 locale_provider icu icu_locale 'en-US'`,
  );
  let databases = 0;
  return {
    socketDir: dir,
    async createDatabase() {
      const name = `t${++databases}`;
      await client.query(`create database ${name} owner ${ROLE} template ${TEMPLATE}`);
      return `postgresql://${ROLE}@/${name}?host=${encodeURIComponent(dir)}&port=${PORT}`;
    },
    stop,
  };
}

/** Connects as the superuser, retrying every READY_POLL_MS until READY_TIMEOUT_MS. */
async function connectWhenReady(socketDir: string, log: () => string): Promise<pg.Client> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const client = new pg.Client({
      host: socketDir,
      port: PORT,
      user: SUPERUSER,
      database: 'postgres',
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return client;
    } catch (err) {
      lastError = err;
      await client.end().catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
    }
  }
  throw new Error(
    `postgres did not accept connections within ${READY_TIMEOUT_MS} ms: ${String(lastError)}\n${log()}`,
  );
}
