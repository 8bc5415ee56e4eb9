import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Daemon, registerTempDir, removeTempDir, spawnDaemon, stopDaemon, tailFile } from './daemon.ts';
import { freeTcpPort } from './ports.ts';
import { sleep } from './wait.ts';

/**
 * Real etcd (Debian's etcd-server 3.4) for integration tests: one or three members on 127.0.0.1,
 * free ports, temp data dirs. Started through daemon.ts (spawn without a shell, so every pid is
 * etcd's own and is signalled precisely; research/real-components.md §3).
 */

export interface EtcdMember {
  name: string;
  pid: number;
  /** 'http://127.0.0.1:port' */
  clientUrl: string;
}

export interface EtcdCluster {
  /** Client URLs, 'http://127.0.0.1:port', one per member. */
  endpoints: string[];
  /** Registry spec for openStore: 'etcd://127.0.0.1:p1,127.0.0.1:p2,...'. */
  spec: string;
  /** Current members (pid changes after restart). */
  readonly members: EtcdMember[];
  /** SIGTERM every member by pid, wait for exit (SIGKILL after 5 s), remove the data dirs. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) to one member and waits for it to exit. */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped member again on its data dir (--initial-cluster-state existing). */
  restart(name: string): Promise<void>;
  /** Name of the current leader, asked of the live members. */
  leaderName(): Promise<string>;
  /** The last lines etcd logged, for error messages. */
  logTail(name?: string, lines?: number): string;
}

export interface StartEtcdOptions {
  members?: 1 | 3;
  /** How long to wait for the cluster to answer; default 20 s. */
  startTimeoutMs?: number;
}

const KILL_AFTER_MS = 5000;

interface MemberState {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logFile: string;
  daemon: Daemon | undefined;
}

function clientUrl(m: MemberState): string {
  return `http://127.0.0.1:${m.clientPort}`;
}

function peerUrl(m: MemberState): string {
  return `http://127.0.0.1:${m.peerPort}`;
}

async function spawnMember(
  m: MemberState,
  all: MemberState[],
  cwd: string,
  token: string,
  state: 'new' | 'existing',
): Promise<void> {
  const args = [
    '--name',
    m.name,
    '--data-dir',
    m.dataDir,
    '--listen-client-urls',
    clientUrl(m),
    '--advertise-client-urls',
    clientUrl(m),
    '--listen-peer-urls',
    peerUrl(m),
    '--initial-advertise-peer-urls',
    peerUrl(m),
    '--initial-cluster',
    all.map((x) => `${x.name}=${peerUrl(x)}`).join(','),
    '--initial-cluster-token',
    token,
    '--initial-cluster-state',
    state,
    // research/real-components.md §3: leader loss is detected within ~1 s with these values.
    '--heartbeat-interval',
    '100',
    '--election-timeout',
    '1000',
    '--logger',
    'zap',
    '--log-outputs',
    'stderr',
  ];
  // spawnDaemon: no shell (the pid is etcd's own), tracked and SIGKILLed if the test process ends.
  m.daemon = await spawnDaemon('etcd', args, { cwd, logFile: m.logFile });
}

const running = (m: MemberState) => m.daemon?.running() === true;

/** One call to this member's JSON gateway; throws on any failure or non-200 answer. */
async function gateway<T>(url: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
  const res = await fetch(new URL(path, url), {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

/** One linearizable read through this member only: it answers once it has a leader. */
async function memberAnswers(url: string, timeoutMs: number): Promise<boolean> {
  try {
    await gateway(url, '/v3/kv/range', { key: Buffer.from('/harness-health').toString('base64') }, timeoutMs);
    return true;
  } catch {
    return false;
  }
}

function tail(m: MemberState, lines = 20): string {
  return `--- ${m.name} ---\n${tailFile(m.logFile, lines)}`;
}

async function waitHealthy(members: MemberState[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(members);
  while (pending.size > 0) {
    for (const m of [...pending]) {
      if (!running(m))
        throw new Error(`etcd member ${m.name} exited before it was healthy; log tail:\n${tail(m)}`);
      if (await memberAnswers(clientUrl(m), 300)) pending.delete(m);
    }
    if (pending.size === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `etcd not healthy within ${timeoutMs} ms; log tail:\n${[...pending].map((m) => tail(m)).join('\n')}`,
      );
    }
    await sleep(50);
  }
}

/**
 * Starts etcd with `members` members (default 1) and waits until every member answers a
 * linearizable read. The caller must `stop()` it (t.after); members are also killed and the data
 * dirs removed when the test process exits.
 */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const count = opts.members ?? 1;
  const startTimeoutMs = opts.startTimeoutMs ?? 20_000;
  const baseDir = await mkdtemp(join(tmpdir(), 'switchyard-etcd-'));
  registerTempDir(baseDir);
  const token = `switchyard-test-${process.pid}-${Date.now()}`;
  const states: MemberState[] = [];
  for (let i = 1; i <= count; i++) {
    states.push({
      name: `m${i}`,
      clientPort: await freeTcpPort(),
      peerPort: await freeTcpPort(),
      dataDir: join(baseDir, `m${i}`),
      logFile: join(baseDir, `m${i}.log`),
      daemon: undefined,
    });
  }

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(
      states.map((m) => (m.daemon ? stopDaemon(m.daemon, { killAfterMs: KILL_AFTER_MS }) : undefined)),
    );
    removeTempDir(baseDir);
  };

  try {
    for (const m of states) await spawnMember(m, states, baseDir, token, 'new');
    await waitHealthy(states, startTimeoutMs);
  } catch (err) {
    await stop();
    throw err;
  }

  const byName = (name: string): MemberState => {
    const m = states.find((x) => x.name === name);
    if (!m) throw new Error(`no etcd member named ${name}`);
    return m;
  };

  return {
    endpoints: states.map(clientUrl),
    spec: `etcd://${states.map((m) => `127.0.0.1:${m.clientPort}`).join(',')}`,
    get members() {
      return states.map((m) => ({ name: m.name, pid: m.daemon?.pid ?? -1, clientUrl: clientUrl(m) }));
    },
    stop,
    async kill(name, signal = 'SIGKILL') {
      const m = byName(name);
      if (m.daemon) await stopDaemon(m.daemon, { signal, killAfterMs: KILL_AFTER_MS });
    },
    async restart(name) {
      const m = byName(name);
      if (running(m)) throw new Error(`etcd member ${name} is still running`);
      await spawnMember(m, states, baseDir, token, 'existing');
      await waitHealthy([m], startTimeoutMs);
    },
    async leaderName() {
      for (const m of states.filter(running)) {
        try {
          const status = await gateway<{ leader?: string }>(clientUrl(m), '/v3/maintenance/status', {}, 500);
          if (!status.leader || status.leader === '0') continue;
          const list = await gateway<{ members?: { ID?: string; name?: string }[] }>(
            clientUrl(m),
            '/v3/cluster/member/list',
            {},
            500,
          );
          const leader = list.members?.find((x) => x.ID === status.leader);
          if (leader?.name) return leader.name;
        } catch {
          // this member cannot tell (no leader yet, or going away): ask the next one
        }
      }
      throw new Error('no etcd member knows a leader');
    },
    logTail(name, lines = 20) {
      return (name === undefined ? states : [byName(name)]).map((m) => tail(m, lines)).join('\n');
    },
  };
}
