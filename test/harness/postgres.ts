import { execFile } from 'node:child_process';
import { accessSync, chownSync, constants, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import {
  type Daemon,
  registerTempDir,
  removeTempDir,
  requireBinaries,
  spawnDaemon,
  stopDaemon,
  tailFile,
} from './daemon.ts';
import { freeTcpPort } from './ports.ts';
import { sleep } from './wait.ts';

/**
 * A private PostgreSQL (Debian's `postgresql` package, server binaries under
 * /usr/lib/postgresql/<major>/bin) for integration tests: a fresh cluster in a temp dir
 * (initdb -A trust), listening on 127.0.0.1 and a free port only, its Unix socket in the temp dir
 * too, with durability off for speed (fsync, synchronous_commit, full_page_writes).
 *
 * PostgreSQL refuses to run as root. When the tests run as root, initdb and postgres run as the
 * `postgres` user through `setpriv --reuid --regid --clear-groups -- BINARY ARGS...`: an argument
 * array, no shell, and setpriv execs, so the pid we hold is the postmaster's own
 * (research/real-components.md problem 12). stop() sends that pid SIGINT, PostgreSQL's "fast"
 * shutdown (what `pg_ctl -m fast` sends; SIGTERM would wait for clients to disconnect), SIGKILLs
 * the process group after 10 s, and removes the temp dir. daemon.ts kills it and removes the dir
 * if the test process ends first.
 *
 *   const server = await startPostgres();
 *   const url = await server.createDatabase();   // postgres://postgres@127.0.0.1:PORT/sy_test_1
 *   ...
 *   await server.stop();
 */

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** `postgres://postgres@127.0.0.1:PORT/DATABASE` (default database: the one made at start). */
  url(database?: string): string;
  /** The database created at start. */
  readonly database: string;
  /** Creates an empty database (name: sy_test_N unless given) and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Fast shutdown by pid, then removes the cluster's temp dir. Idempotent. */
  stop(): Promise<void>;
  /** The last lines PostgreSQL logged, for assertion messages. */
  logTail(lines?: number): string;
}

export interface StartPostgresOptions {
  /** Database created at start; default `switchyard_test`. */
  database?: string;
  /** How long initdb plus start-up may take; default 60 s. */
  startTimeoutMs?: number;
}

const HOST = '127.0.0.1';
const DB_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
let databaseCounter = 0;

/** The newest /usr/lib/postgresql/<major>/bin holding initdb and postgres. */
export function findPostgresBin(root = '/usr/lib/postgresql'): string {
  let majors: string[] = [];
  try {
    majors = readdirSync(root).filter((d) => /^\d+$/.test(d));
  } catch {
    // no PostgreSQL at all
  }
  majors.sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const bin = join(root, major, 'bin');
    try {
      accessSync(join(bin, 'initdb'), constants.X_OK);
      accessSync(join(bin, 'postgres'), constants.X_OK);
      return bin;
    } catch {
      // an incomplete install: try the next version
    }
  }
  throw new Error(
    `not installed: PostgreSQL server binaries (initdb, postgres) under ${root}/<major>/bin; ` +
      'install the Debian package postgresql (bash .ci/run installs it)',
  );
}

/** uid and gid of a local user, from /etc/passwd. */
function lookupUser(name: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && f[3] !== undefined)
      return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(
    `no local user ${name}: PostgreSQL cannot run as root, and the postgres package creates that user`,
  );
}

/** The command line that runs `binary args` as the postgres user (when we are root) or as is. */
function asPostgres(
  user: { uid: number; gid: number } | undefined,
  binary: string,
  args: string[],
): [string, string[]] {
  if (user === undefined) return [binary, args];
  return ['setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', binary, ...args]];
}

function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new Error(
              `${args.includes('--') ? args[args.indexOf('--') + 1] : command} failed: ${err.message}\n${stdout}${stderr}`,
            ),
          );
        else resolve();
      },
    );
  });
}

async function answers(port: number): Promise<boolean> {
  const client = new pg.Client({
    host: HOST,
    port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: 1000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function adminQuery(port: number, sql: string): Promise<void> {
  const client = new pg.Client({
    host: HOST,
    port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: 5000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresServer> {
  const database = opts.database ?? 'switchyard_test';
  if (!DB_NAME.test(database))
    throw new Error(`harness: database name ${JSON.stringify(database)} not allowed`);
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const bin = findPostgresBin();
  const root = process.getuid?.() === 0;
  if (root) requireBinaries('setpriv');
  const user = root ? lookupUser('postgres') : undefined;

  const baseDir = await mkdtemp(join(tmpdir(), 'switchyard-pg-'));
  registerTempDir(baseDir);
  if (user) chownSync(baseDir, user.uid, user.gid);
  const dataDir = join(baseDir, 'data');
  const logFile = join(baseDir, 'postgres.log');
  const port = await freeTcpPort(HOST);

  let daemon: Daemon | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (daemon) await stopDaemon(daemon, { signal: 'SIGINT', killAfterMs: 10_000 });
    removeTempDir(baseDir);
  };

  try {
    const [initdb, initArgs] = asPostgres(user, join(bin, 'initdb'), [
      '-D',
      dataDir,
      '-A',
      'trust',
      '-U',
      'postgres',
      '-E',
      'UTF8',
      '--locale=C.UTF-8',
      '--no-sync',
    ]);
    await run(initdb, initArgs, baseDir, startTimeoutMs);
    const [postgres, args] = asPostgres(user, join(bin, 'postgres'), [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-k',
      baseDir,
      '-c',
      `listen_addresses=${HOST}`,
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=50',
    ]);
    // Its own process group, so that a SIGKILL at test-process exit takes the backends along.
    daemon = await spawnDaemon(postgres, args, { cwd: baseDir, logFile, group: true });
    const deadline = Date.now() + startTimeoutMs;
    while (!(await answers(port))) {
      if (!daemon.running())
        throw new Error(`postgres exited before it was ready; log tail:\n${tailFile(logFile, 20)}`);
      if (Date.now() > deadline)
        throw new Error(
          `postgres not ready within ${startTimeoutMs} ms; log tail:\n${tailFile(logFile, 20)}`,
        );
      await sleep(50);
    }
    await adminQuery(port, `CREATE DATABASE "${database}"`);
  } catch (err) {
    await stop();
    throw err;
  }

  const pid = daemon.pid;
  const url = (db = database) => `postgres://postgres@${HOST}:${port}/${db}`;
  return {
    host: HOST,
    port,
    pid,
    database,
    url,
    async createDatabase(name) {
      const db = name ?? `sy_test_${++databaseCounter}`;
      if (!DB_NAME.test(db)) throw new Error(`harness: database name ${JSON.stringify(db)} not allowed`);
      await adminQuery(port, `CREATE DATABASE "${db}"`);
      return url(db);
    },
    stop,
    logTail: (lines = 40) => tailFile(logFile, lines),
  };
}
