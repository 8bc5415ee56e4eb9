import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { findExecutable, parentDeathPrefix, setprivWithPdeathsig } from '../core/executables.ts';
import type { Logger } from '../core/logger.ts';
import { demoBackendCommand } from '../up/demo.ts';
import { renderKamailioConfig } from '../up/kamailio-config.ts';
import { keepalivedCommand, renderKeepalivedConfig } from './keepalived-config.ts';
import {
  createLabNetwork,
  deleteNamespace,
  type LabHost,
  type LabNetwork,
  listLabNamespaces,
} from './netns.ts';
import { kamailioDestinations, routable, timeUntil, vipHolders } from './observe.ts';
import { type LabProcess, startLabProcess } from './process.ts';

/**
 * The HA lab's cluster (docs/guides/lab.md): hosts as network namespaces on a private bridge,
 * 10.213.0.0/24, inside the namespaces only.
 *
 *   etcd1-3   .11-.13   a three-member etcd cluster
 *   lb1, lb2  .21, .22  Kamailio (own address + the VIP), switchyard dispatcher, keepalived
 *   VIP       .100      held by the VRRP master
 *   as1..asN  .31..     a switchyard agent supervising a SIP backend (sipp), or in the
 *                       baseline the original's set-up: the backend and a 20 s heartbeat, no agent
 *   caller    .50       the call generator (src/lab/caller.ts)
 */

export const SUBNET = '10.213.0';
export const VIP = `${SUBNET}.100`;
export const LBS = ['lb1', 'lb2'] as const;
export const ETCDS = ['etcd1', 'etcd2', 'etcd3'] as const;
const KAMAILIO_RPC_PORT = 5071;
const DISPATCHER_ADMIN_PORT = 9401;
const AGENT_ADMIN_PORT = 9402;
const BIN = fileURLToPath(new URL('../../bin/switchyard.js', import.meta.url));

export type LabMode = 'switchyard' | 'baseline';

/** Teardowns of the labs running in this process, for an abort that cannot wait (a second Ctrl-C). */
const ACTIVE = new Set<() => Promise<void>>();

/** Prefixes of the labs of this process, also while one is still being built. */
const PREFIXES = new Set<string>();

/** Tears down every lab of this process now (processes stopped, namespaces deleted). */
export async function teardownAllLabs(): Promise<void> {
  await Promise.all([...ACTIVE].map((t) => t().catch(() => {})));
  for (const prefix of PREFIXES) {
    for (const ns of await listLabNamespaces(prefix).catch(() => [])) await deleteNamespace(ns);
  }
}

/** The knobs that differ between switchyard and the original system (seed-systems.md §1-2). */
export interface LabSettings {
  mode: LabMode;
  backends: number;
  /** Kamailio's OPTIONS probe interval: 2 s with switchyard, 15 s in the original. */
  pingIntervalS: number;
  /** The backends' record lifetime: the agent's 3 s lease, or the original's 20 s heartbeat timeout. */
  nodeTtlMs: number;
  /** Demo call length; the agent's drain deadline is a little longer. */
  callDurationMs: number;
}

export interface HaLab {
  readonly net: LabNetwork;
  readonly settings: LabSettings;
  readonly workDir: string;
  readonly etcdEndpoints: string;
  readonly backends: string[];
  readonly processes: Map<string, LabProcess>;
  /** The backend service process of a host: the agent's child (switchyard) or the lab's own (baseline). */
  servicePid(host: string): number | undefined;
  ipOf(host: string): string;
  /** Runs the switchyard CLI inside a host's namespace (e.g. `drain as1`) against the lab's etcd. */
  cli(host: string, args: readonly string[]): Promise<string>;
  /** Kamailio destinations on the VIP holder (undefined: no holder or no answer). */
  masterDestinations(): Promise<Map<string, string> | undefined>;
  vipHolders(): Promise<string[]>;
  /** Every backend routable on the VIP holder, one VIP holder, both Kamailios answering. */
  fullCapacity(): Promise<boolean>;
  waitFullCapacity(timeoutMs: number): Promise<number | null>;
  teardown(): Promise<void>;
}

function hostsFor(backends: number): LabHost[] {
  return [
    ...ETCDS.map((name, i) => ({ name, ip: `${SUBNET}.${11 + i}` })),
    ...LBS.map((name, i) => ({ name, ip: `${SUBNET}.${21 + i}` })),
    ...Array.from({ length: backends }, (_, i) => ({ name: `as${i + 1}`, ip: `${SUBNET}.${31 + i}` })),
    { name: 'caller', ip: `${SUBNET}.50` },
  ];
}

/**
 * One member's view through etcd's JSON gateway (`/v3/maintenance/status`): its id and the
 * leader it follows (undefined while there is none), or undefined when it does not answer.
 */
export async function etcdStatus(
  net: LabNetwork,
  host: string,
  ip: string,
): Promise<{ memberId: string; leader: string | undefined } | undefined> {
  const text = await net
    .run(
      host,
      ['curl', '-sS', '-m', '1', '-X', 'POST', '-d', '{}', `http://${ip}:2379/v3/maintenance/status`],
      {
        timeoutMs: 3000,
      },
    )
    .catch(() => '');
  try {
    const j = JSON.parse(text) as { header?: { member_id?: string }; leader?: string };
    if (j.header?.member_id === undefined) return undefined;
    return { memberId: j.header.member_id, leader: j.leader === '0' ? undefined : j.leader };
  } catch {
    return undefined;
  }
}

/** The children of a pid (Linux), to find the service an agent runs. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

export async function startHaLab(opts: {
  prefix: string;
  workDir: string;
  settings: LabSettings;
  logger: Logger;
  onStep: (text: string) => void;
}): Promise<HaLab> {
  const { settings, logger, onStep } = opts;
  const hosts = hostsFor(settings.backends);
  const ipOf = (name: string) => hosts.find((h) => h.name === name)?.ip as string;
  const backends = hosts.filter((h) => h.name.startsWith('as')).map((h) => h.name);
  const sippBin = findExecutable('sipp') ?? 'sipp';
  const kamailioBin = findExecutable('kamailio') ?? 'kamailio';
  const etcdBin = findExecutable('etcd') ?? 'etcd';
  const keepalivedBin = findExecutable('keepalived') ?? 'keepalived';
  const etcdEndpoints = `etcd://${ETCDS.map((e) => `${ipOf(e)}:2379`).join(',')}`;
  const processes = new Map<string, LabProcess>();
  const total = 1 + ETCDS.length + LBS.length * 3 + settings.backends + 1;
  let done = 0;
  const step = (text: string) => onStep(`[${++done}/${total}] ${text}`);

  step(`network: ${hosts.length} namespaces on a bridge, ${SUBNET}.0/24, VIP ${VIP}`);
  PREFIXES.add(opts.prefix);
  const net = await createLabNetwork({
    prefix: opts.prefix,
    hosts,
    prefixLength: 24,
    // Kamailio listens on the VIP on both load balancers, also where it is not (yet) configured.
    sysctls: { lb1: ['net.ipv4.ip_nonlocal_bind=1'], lb2: ['net.ipv4.ip_nonlocal_bind=1'] },
  });
  const dirOf = (name: string) => {
    const d = join(opts.workDir, name);
    mkdirSync(d, { recursive: true });
    return d;
  };
  // Every lab process dies with the lab, even a SIGKILLed one: no orphan keeps running in a
  // namespace that `lab clean` would have to find.
  const setprivBin = setprivWithPdeathsig();
  const spawnIn = (host: string, name: string, argv: readonly string[], restartDelayMs = 500) => {
    const p = startLabProcess({
      name: `${host}/${name}`,
      argv: [...parentDeathPrefix('SIGKILL', setprivBin), ...net.exec(host), ...argv],
      logFile: join(dirOf(host), `${name}.log`),
      cwd: dirOf(host),
      logger,
      restartDelayMs,
    });
    processes.set(`${host}/${name}`, p);
    return p;
  };

  const teardown = async () => {
    ACTIVE.delete(teardown);
    await Promise.all([...processes.values()].map((p) => p.stop(3000).catch(() => {})));
    await net.destroy();
    PREFIXES.delete(opts.prefix);
  };
  ACTIVE.add(teardown);

  try {
    // etcd: three members, fast elections (research/real-components.md §3).
    const cluster = ETCDS.map((e) => `${e}=http://${ipOf(e)}:2380`).join(',');
    for (const e of ETCDS) {
      step(`${e}: etcd member at ${ipOf(e)}:2379`);
      const ip = ipOf(e);
      spawnIn(e, 'etcd', [
        etcdBin,
        '--name',
        e,
        '--data-dir',
        join(dirOf(e), 'data'),
        '--listen-client-urls',
        `http://${ip}:2379`,
        '--advertise-client-urls',
        `http://${ip}:2379`,
        '--listen-peer-urls',
        `http://${ip}:2380`,
        '--initial-advertise-peer-urls',
        `http://${ip}:2380`,
        '--initial-cluster',
        cluster,
        '--initial-cluster-token',
        `lab-${opts.prefix}`,
        '--initial-cluster-state',
        'new',
        '--heartbeat-interval',
        '100',
        '--election-timeout',
        '1000',
      ]);
    }
    const healthy = await timeUntil(
      async () => (await etcdStatus(net, 'etcd1', ipOf('etcd1')))?.leader !== undefined,
      { sinceMs: Date.now(), timeoutMs: 30_000, intervalMs: 250 },
    );
    if (healthy === null) throw new Error('etcd did not become healthy within 30 s');

    for (const lb of LBS) {
      const dir = dirOf(lb);
      const listFile = join(dir, 'dispatcher.list');
      writeFileSync(listFile, '');
      mkdirSync(join(dir, 'run'), { recursive: true });
      const cfg = join(dir, 'kamailio.cfg');
      writeFileSync(
        cfg,
        renderKamailioConfig({
          sipIp: ipOf(lb),
          sipPort: 5060,
          httpPort: KAMAILIO_RPC_PORT,
          runDir: join(dir, 'run'),
          listFile,
          reloadDeltaS: 1,
          pingIntervalS: settings.pingIntervalS,
          frTimerMs: 1500,
          listenVip: VIP,
        }),
      );
      step(`${lb}: Kamailio on ${ipOf(lb)}:5060 and the VIP, probing every ${settings.pingIntervalS} s`);
      // Restarted after 3 s (systemd RestartSec=3 in production): long enough for the 1 s health
      // check to see the crash and move the VIP, instead of a restart racing the check.
      spawnIn(lb, 'kamailio', [kamailioBin, '-DD', '-E', '-f', cfg, '-m', '64', '-M', '8'], 3000);
      step(`${lb}: switchyard dispatcher`);
      spawnIn(lb, 'dispatcher', [
        process.execPath,
        BIN,
        'dispatcher',
        '--registry',
        etcdEndpoints,
        '--kamailio-rpc',
        `http://127.0.0.1:${KAMAILIO_RPC_PORT}/RPC`,
        '--list-file',
        listFile,
        '--reload-delta-ms',
        '1000',
        '--admin-port',
        String(DISPATCHER_ADMIN_PORT),
        '--name',
        lb,
        '--log-level',
        'warn',
      ]);
      // The health check: Kamailio answers its JSON-RPC and the dispatcher is ready (its
      // /readyz stays ok while etcd is away: fail-static must not move the VIP).
      const check = join(dir, 'check.sh');
      writeFileSync(
        check,
        [
          '#!/bin/sh',
          '# Generated by switchyard lab: fails when Kamailio or the dispatcher on this host fails.',
          `curl -fsS -m 1 -o /dev/null -H 'content-type: application/json' -d '{"jsonrpc":"2.0","method":"core.version","id":1}' http://127.0.0.1:${KAMAILIO_RPC_PORT}/RPC || exit 1`,
          `curl -fsS -m 1 -o /dev/null http://127.0.0.1:${DISPATCHER_ADMIN_PORT}/readyz || exit 1`,
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      const peer = LBS.find((x) => x !== lb) as string;
      const kcfg = join(dir, 'keepalived.conf');
      writeFileSync(
        kcfg,
        renderKeepalivedConfig({
          routerId: lb,
          interface: 'eth0',
          virtualRouterId: 51,
          priority: lb === 'lb1' ? 150 : 100,
          advertIntervalS: 0.3,
          unicastSrcIp: ipOf(lb),
          unicastPeers: [ipOf(peer)],
          vip: VIP,
          prefixLength: 24,
          checkScript: {
            argv: ['/bin/sh', check],
            intervalS: 1,
            timeoutS: 2,
            fall: 1,
            rise: 2,
            weight: -100,
          },
        }),
      );
      step(`${lb}: keepalived (VRRP priority ${lb === 'lb1' ? 150 : 100}, health check every 1 s)`);
      spawnIn(lb, 'keepalived', keepalivedCommand({ bin: keepalivedBin, cfgPath: kcfg, workDir: dir }));
    }

    for (const as of backends) {
      const ip = ipOf(as);
      // The agent runs it with a parent-death signal: an agent killed by a scenario or by
      // teardown leaves no SIPp behind.
      const service = demoBackendCommand({ sippBin, name: as, ip, port: 5060 });
      if (settings.mode === 'switchyard') {
        step(`${as}: switchyard agent supervising a SIP backend at ${ip}:5060`);
        const agentCfg = join(dirOf(as), 'agent.yaml');
        writeFileSync(
          agentCfg,
          stringify({
            drain: { deadlineMs: settings.callDurationMs + 3000 },
            paths: { data: join(dirOf(as), 'data') },
          }),
        );
        spawnIn(as, 'agent', [
          process.execPath,
          BIN,
          'agent',
          '--registry',
          etcdEndpoints,
          '--node-id',
          as,
          '--sip-uri',
          `sip:${ip}:5060`,
          '--admin-port',
          String(AGENT_ADMIN_PORT),
          '--config',
          agentCfg,
          '--log-level',
          'warn',
          '--',
          ...service,
        ]);
      } else {
        step(
          `${as}: SIP backend at ${ip}:5060 and a ${settings.nodeTtlMs / 1000} s heartbeat (baseline: no agent)`,
        );
        spawnIn(as, 'service', service);
        spawnIn(as, 'announcer', [
          process.execPath,
          BIN,
          'lab',
          'announce',
          '--registry',
          etcdEndpoints,
          '--node-id',
          as,
          '--sip-uri',
          `sip:${ip}:5060`,
          '--ttl-ms',
          String(settings.nodeTtlMs),
        ]);
      }
    }
  } catch (err) {
    await teardown();
    throw err;
  }

  const lab: HaLab = {
    net,
    settings,
    workDir: opts.workDir,
    etcdEndpoints,
    backends,
    processes,
    ipOf,
    servicePid(host) {
      if (settings.mode === 'baseline') return processes.get(`${host}/service`)?.pid();
      const agent = processes.get(`${host}/agent`)?.pid();
      return agent === undefined ? undefined : childrenOf(agent)[0];
    },
    cli: (host, args) =>
      net.run(host, [process.execPath, BIN, ...args, '--registry', etcdEndpoints], { timeoutMs: 15_000 }),
    vipHolders: () => vipHolders(net, LBS, VIP),
    async masterDestinations() {
      const holders = await vipHolders(net, LBS, VIP);
      if (holders.length !== 1) return undefined;
      return kamailioDestinations(net, holders[0] as string, KAMAILIO_RPC_PORT);
    },
    async fullCapacity() {
      const holders = await vipHolders(net, LBS, VIP);
      if (holders.length !== 1) return false;
      for (const lb of LBS) {
        const d = await kamailioDestinations(net, lb, KAMAILIO_RPC_PORT);
        if (d === undefined) return false;
        if (lb === holders[0] && !backends.every((b) => routable(d, b))) return false;
      }
      return true;
    },
    waitFullCapacity(timeoutMs) {
      return timeUntil(() => lab.fullCapacity(), { sinceMs: Date.now(), timeoutMs, intervalMs: 250 });
    },
    teardown,
  };
  step('waiting for every backend to be in rotation behind the VIP');
  const ready = await lab.waitFullCapacity(60_000);
  if (ready === null) {
    await teardown();
    throw new Error('the lab did not reach full capacity within 60 s (logs in the work dir)');
  }
  return lab;
}
