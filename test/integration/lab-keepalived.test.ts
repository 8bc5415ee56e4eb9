import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { keepalivedCommand, renderKeepalivedConfig } from '../../src/lab/keepalived-config.ts';
import {
  type Daemon,
  registerTempDir,
  removeTempDir,
  spawnDaemon,
  stopDaemon,
  tailFile,
} from '../harness/daemon.ts';
import { sleep } from '../harness/wait.ts';

/**
 * The rendered keepalived.conf on real keepalived (2.2.7) in two network namespaces on a bridge
 * (research/real-components.md §4.1, §4.3). Everything (bridge, veths, the 10.213.0.0/24 subnet)
 * lives in namespaces this test creates under a random prefix and deletes in after(): the root
 * namespace gets no link and no address.
 */

const KEEPALIVED = '/usr/sbin/keepalived';
const PREFIX = `syka${randomBytes(3).toString('hex')}`;
const SW = `${PREFIX}-sw`;
const LB1 = `${PREFIX}-lb1`;
const LB2 = `${PREFIX}-lb2`;
const SUBNET = '10.213.0';
const LB1_IP = `${SUBNET}.11`;
const LB2_IP = `${SUBNET}.12`;
const VIP = `${SUBNET}.100`;
/** Sub-second, as the lab uses it: exercises VRRPv3's centisecond intervals. */
const ADVERT_INTERVAL_S = 0.2;

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, VRRP raw sockets)';
  if (spawnSync('ip', ['netns', 'list'], { stdio: 'ignore' }).status !== 0)
    return '`ip netns` is unavailable';
  if (spawnSync(KEEPALIVED, ['--version'], { stdio: 'ignore' }).status !== 0)
    return `${KEEPALIVED} not installed`;
  return undefined;
}
const skip = skipReason();

function run(argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: 5000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${argv.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

const namespaces: string[] = [];

async function addNamespace(name: string): Promise<void> {
  await run(['ip', 'netns', 'add', name]);
  namespaces.push(name);
  await run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
}

/** A host namespace with eth0 whose veth peer sits on the bridge in the switch namespace. */
async function addHost(name: string, peer: string, ip: string): Promise<void> {
  await addNamespace(name);
  await run(['ip', '-n', name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', peer, 'netns', SW]);
  await run(['ip', '-n', SW, 'link', 'set', peer, 'master', 'br0', 'up']);
  await run(['ip', '-n', name, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  await run(['ip', '-n', name, 'link', 'set', 'eth0', 'up']);
}

async function hasVip(ns: string): Promise<boolean> {
  const out = await run(['ip', '-n', ns, '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
  return out.includes(` ${VIP}/24 `);
}

/** Polls until `ns` holds the VIP and the other one does not; resolves with the time it took. */
async function vipMovesTo(ns: string, other: string, timeoutMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    if ((await hasVip(ns)) && !(await hasVip(other))) return Date.now() - start;
    if (Date.now() - start > timeoutMs) {
      throw new Error(
        `VIP not on ${ns} alone after ${timeoutMs} ms\n--- lb1 ---\n${tailFile(join(workDir, 'lb1', 'keepalived.log'), 15)}` +
          `\n--- lb2 ---\n${tailFile(join(workDir, 'lb2', 'keepalived.log'), 15)}`,
      );
    }
    await sleep(50);
  }
}

let workDir: string;
const daemons = new Map<string, Daemon>();

async function startKeepalived(name: 'lb1' | 'lb2', ns: string): Promise<Daemon> {
  const dir = join(workDir, name);
  await run(['mkdir', '-p', dir]);
  const cfgPath = join(dir, 'keepalived.conf');
  const self = name === 'lb1' ? LB1_IP : LB2_IP;
  const peer = name === 'lb1' ? LB2_IP : LB1_IP;
  await writeFile(
    cfgPath,
    renderKeepalivedConfig({
      routerId: name,
      interface: 'eth0',
      virtualRouterId: 51,
      priority: name === 'lb1' ? 150 : 100,
      advertIntervalS: ADVERT_INTERVAL_S,
      unicastSrcIp: self,
      unicastPeers: [peer],
      vip: VIP,
      prefixLength: 24,
      // The health check stands in for `curl .../readyz`: ready while the file exists.
      checkScript: {
        argv: ['/usr/bin/test', '-f', join(workDir, `${name}.ready`)],
        intervalS: 1,
        timeoutS: 1,
        fall: 1,
        rise: 1,
        weight: -100,
      },
    }),
  );
  const argv = ['ip', 'netns', 'exec', ns, ...keepalivedCommand({ bin: KEEPALIVED, cfgPath, workDir: dir })];
  const daemon = await spawnDaemon(argv[0]!, argv.slice(1), {
    cwd: dir,
    logFile: join(dir, 'keepalived.log'),
    group: true,
  });
  daemons.set(name, daemon);
  return daemon;
}

describe('lab keepalived config on real keepalived in namespaces', { skip, timeout: 60_000 }, () => {
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'sy-lab-ka-'));
    registerTempDir(workDir);
    await addNamespace(SW);
    await run(['ip', '-n', SW, 'link', 'add', 'br0', 'type', 'bridge']);
    await run(['ip', '-n', SW, 'link', 'set', 'br0', 'up']);
    await addHost(LB1, 'v-lb1', LB1_IP);
    await addHost(LB2, 'v-lb2', LB2_IP);
    await writeFile(join(workDir, 'lb1.ready'), '');
    await writeFile(join(workDir, 'lb2.ready'), '');
  });

  after(async () => {
    for (const d of daemons.values()) await stopDaemon(d, { killAfterMs: 3000 });
    // Deleting the namespaces also deletes their veths, the bridge and any stale VIP.
    for (const ns of namespaces.reverse()) await run(['ip', 'netns', 'del', ns]).catch(() => undefined);
    removeTempDir(workDir);
  });

  test('keepalived - the higher priority takes the VIP, a failing check and SIGTERM move it to the peer', async (t) => {
    await startKeepalived('lb1', LB1);
    await startKeepalived('lb2', LB2);
    const elected = await vipMovesTo(LB1, LB2, 10_000);
    t.diagnostic(`lb1 MASTER ${elected} ms after start`);

    // The health check fails on lb1: priority 150 - 100 = 50 < 100, lb2 preempts.
    await rm(join(workDir, 'lb1.ready'));
    const onCheck = await vipMovesTo(LB2, LB1, 5000);
    t.diagnostic(`failing check: VIP on lb2 after ${onCheck} ms`);
    assert.ok(onCheck <= 4000, `check failover took ${onCheck} ms`);

    // Ready again: preemption (the default we keep) brings the VIP home.
    await writeFile(join(workDir, 'lb1.ready'), '');
    const back = await vipMovesTo(LB1, LB2, 5000);
    t.diagnostic(`check good again: VIP back on lb1 after ${back} ms`);

    // SIGTERM: keepalived sends a priority-0 advert and removes the VIP; lb2 takes over at once.
    const lb1 = daemons.get('lb1')!;
    const stopped = Date.now();
    lb1.child.kill('SIGTERM');
    const onTerm = await vipMovesTo(LB2, LB1, 3000);
    t.diagnostic(`SIGTERM: VIP on lb2 after ${onTerm} ms`);
    await lb1.exited;
    assert.ok(Date.now() - stopped < 10_000);
    assert.equal(await hasVip(LB1), false, 'a SIGTERMed keepalived removes its VIP');
  });
});
