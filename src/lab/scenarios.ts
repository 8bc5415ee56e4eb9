import { findExecutable, setprivWithPdeathsig } from '../core/executables.ts';
import type { Logger } from '../core/logger.ts';
import { startLabCaller } from './caller.ts';
import { ETCDS, etcdStatus, type HaLab, VIP } from './ha-lab.ts';
import { routable, timeUntil } from './observe.ts';
import type { ScenarioResult } from './report.ts';
import { evaluateTargets } from './report.ts';

/**
 * The ten fault scenarios of the HA lab (docs/guides/lab.md), each under steady load from the
 * caller host: inject the fault, measure how long the system takes to notice and to route
 * correctly again (and to move the VIP), undo the fault the way the world would (a host comes
 * back, a link is plugged in again), and check that the cluster returns to full capacity by
 * itself. Calls are counted by the caller (src/lab/caller.ts).
 */

export interface LabProfile {
  name: 'short' | 'full';
  ratePerSecond: number;
  callDurationMs: number;
  /** Load before the fault. */
  warmupMs: number;
  /** How long a lost host, a pulled cable or a lost etcd member stays lost. */
  outageMs: number;
  /** etcd fully down (scenario 9). */
  etcdOutageMs: number;
  /** Load after recovery, before the counts are taken. */
  settleMs: number;
}

export const PROFILES: Record<'short' | 'full', LabProfile> = {
  short: {
    name: 'short',
    ratePerSecond: 10,
    callDurationMs: 3000,
    warmupMs: 3000,
    outageMs: 5000,
    etcdOutageMs: 10_000,
    settleMs: 3000,
  },
  full: {
    name: 'full',
    ratePerSecond: 20,
    callDurationMs: 6000,
    warmupMs: 5000,
    outageMs: 10_000,
    etcdOutageMs: 30_000,
    settleMs: 6000,
  },
};

interface Measured {
  detectMs: number | null;
  routedMs: number | null;
  vipFailoverMs: number | null;
  notes: string[];
}

interface Scenario {
  id: number;
  name: string;
  target: ScenarioResult['target'];
  run(lab: HaLab, profile: LabProfile, logger: Logger): Promise<Measured>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TIMEOUT_MS = 60_000;

const notRoutable = (lab: HaLab, node: string) => async () => !routable(await lab.masterDestinations(), node);
const isRoutable = (lab: HaLab, node: string) => async () => routable(await lab.masterDestinations(), node);
const vipOn = (lab: HaLab, lb: string) => async () => {
  const h = await lab.vipHolders();
  return h.length === 1 && h[0] === lb;
};
const proc = (lab: HaLab, name: string) => {
  const p = lab.processes.get(name);
  if (!p) throw new Error(`lab: no process ${name}`);
  return p;
};

/** The baseline has no drain: the operator stops the heartbeat, and the box leaves after the timeout. */
async function takeOut(lab: HaLab, node: string): Promise<void> {
  if (lab.settings.mode === 'switchyard') await lab.cli('lb1', ['drain', node, '--reason', 'lab']);
  else proc(lab, `${node}/announcer`).kill('SIGTERM', { hold: true });
}
async function putBack(lab: HaLab, node: string): Promise<void> {
  if (lab.settings.mode === 'switchyard') await lab.cli('lb1', ['undrain', node]);
  else proc(lab, `${node}/announcer`).release();
}

/** Backend failure, then return: detect = out of rotation, routed = back in rotation. */
async function backendFault(
  lab: HaLab,
  node: string,
  inject: () => void,
  restore: () => void,
  outageMs: number,
) {
  const t0 = Date.now();
  inject();
  const detectMs = await timeUntil(notRoutable(lab, node), { sinceMs: t0, timeoutMs: TIMEOUT_MS });
  const remaining = Math.max(0, outageMs - (Date.now() - t0));
  await sleep(remaining);
  const t1 = Date.now();
  restore();
  const routedMs = await timeUntil(isRoutable(lab, node), { sinceMs: t1, timeoutMs: TIMEOUT_MS });
  return { detectMs, routedMs };
}

/** The member every answering member follows, as a host name. */
async function etcdLeader(lab: HaLab): Promise<string | undefined> {
  const ids = new Map<string, string>();
  let leader: string | undefined;
  for (const e of ETCDS) {
    const st = await etcdStatus(lab.net, e, lab.ipOf(e));
    if (!st) continue;
    ids.set(st.memberId, e);
    leader ??= st.leader;
  }
  return leader === undefined ? undefined : ids.get(leader);
}

export const SCENARIOS: readonly Scenario[] = [
  {
    id: 1,
    name: 'planned drain of a backend, then undrain',
    target: { noLoss: true },
    async run(lab, profile) {
      const node = lab.backends[0] as string;
      const t0 = Date.now();
      await takeOut(lab, node);
      const detectMs = await timeUntil(notRoutable(lab, node), { sinceMs: t0, timeoutMs: TIMEOUT_MS });
      await sleep(profile.callDurationMs + 1000);
      const t1 = Date.now();
      await putBack(lab, node);
      const routedMs = await timeUntil(isRoutable(lab, node), { sinceMs: t1, timeoutMs: TIMEOUT_MS });
      return { detectMs, routedMs, vipFailoverMs: null, notes: [] };
    },
  },
  {
    id: 2,
    name: 'rolling restart of every backend, each drained first',
    target: { noLoss: true },
    async run(lab) {
      const t0 = Date.now();
      let first: number | null = null;
      let lastRouted: number | null = null;
      for (const node of lab.backends) {
        const tn = Date.now();
        if (lab.settings.mode === 'switchyard') {
          // SIGTERM is the agent's drain: out of rotation, wait for calls (its deadline), stop.
          const agent = proc(lab, `${node}/agent`);
          agent.kill('SIGTERM', { hold: true });
          first ??= await timeUntil(notRoutable(lab, node), { sinceMs: tn, timeoutMs: TIMEOUT_MS });
          await timeUntil(async () => !agent.running(), { sinceMs: tn, timeoutMs: TIMEOUT_MS });
          const t1 = Date.now();
          agent.release();
          lastRouted = await timeUntil(isRoutable(lab, node), { sinceMs: t1, timeoutMs: TIMEOUT_MS });
        } else {
          await takeOut(lab, node);
          first ??= await timeUntil(notRoutable(lab, node), { sinceMs: tn, timeoutMs: TIMEOUT_MS });
          await timeUntil(notRoutable(lab, node), { sinceMs: tn, timeoutMs: TIMEOUT_MS });
          // The original had no wait for calls: restart as soon as the box is out of the list.
          proc(lab, `${node}/service`).kill('SIGTERM');
          const t1 = Date.now();
          await putBack(lab, node);
          lastRouted = await timeUntil(isRoutable(lab, node), { sinceMs: t1, timeoutMs: TIMEOUT_MS });
        }
      }
      return {
        detectMs: first,
        routedMs: lastRouted,
        vipFailoverMs: null,
        notes: [`whole rolling restart ${((Date.now() - t0) / 1000).toFixed(1)} s`],
      };
    },
  },
  {
    id: 3,
    name: 'backend SIP service crash (agent alive)',
    target: { noNewCallFailed: true },
    async run(lab) {
      const node = lab.backends[0] as string;
      const inject = () => {
        if (lab.settings.mode === 'baseline') {
          // A container restart of the original: the service is back after a few seconds.
          proc(lab, `${node}/service`).kill('SIGKILL', { hold: true });
          setTimeout(() => proc(lab, `${node}/service`).release(), 5000).unref();
          return;
        }
        const pid = lab.servicePid(node);
        if (pid === undefined) throw new Error(`no service process under the agent of ${node}`);
        process.kill(pid, 'SIGKILL'); // a pid of ours: the agent is a child of this lab
      };
      const r = await backendFault(lab, node, inject, () => {}, 0);
      return { ...r, vipFailoverMs: null, notes: [] };
    },
  },
  {
    id: 4,
    name: 'backend host loss (agent and service killed together)',
    target: { noNewCallFailed: true },
    async run(lab, profile) {
      const node = lab.backends[0] as string;
      const names =
        lab.settings.mode === 'switchyard' ? [`${node}/agent`] : [`${node}/service`, `${node}/announcer`];
      const inject = () => {
        const service = lab.servicePid(node);
        for (const n of names) proc(lab, n).kill('SIGKILL', { hold: true });
        // The agent's service runs in a process group of its own: the host takes it down too.
        if (service !== undefined)
          try {
            process.kill(service, 'SIGKILL');
          } catch {
            // gone already
          }
      };
      const restore = () => {
        for (const n of names) proc(lab, n).release();
      };
      const r = await backendFault(lab, node, inject, restore, profile.outageMs);
      return { ...r, vipFailoverMs: null, notes: [] };
    },
  },
  {
    id: 5,
    name: 'dispatcher process killed on the master load balancer',
    target: {},
    async run(lab) {
      const t0 = Date.now();
      proc(lab, 'lb1/dispatcher').kill('SIGKILL');
      const vipFailoverMs = await timeUntil(vipOn(lab, 'lb2'), {
        sinceMs: t0,
        timeoutMs: 15_000,
        intervalMs: 50,
      });
      const routedMs = await timeUntil(() => lab.fullCapacity(), { sinceMs: t0, timeoutMs: TIMEOUT_MS });
      return {
        detectMs: vipFailoverMs,
        routedMs,
        vipFailoverMs,
        notes:
          vipFailoverMs === null
            ? ['the VIP stayed on lb1 (the dispatcher was back before the check failed)']
            : [],
      };
    },
  },
  {
    id: 6,
    name: 'Kamailio killed on the master load balancer (VIP moves)',
    target: { vipWithinMs: 3000 },
    async run(lab) {
      const t0 = Date.now();
      proc(lab, 'lb1/kamailio').kill('SIGKILL');
      const vipFailoverMs = await timeUntil(vipOn(lab, 'lb2'), {
        sinceMs: t0,
        timeoutMs: 15_000,
        intervalMs: 50,
      });
      const routedMs = await timeUntil(() => lab.fullCapacity(), { sinceMs: t0, timeoutMs: TIMEOUT_MS });
      return { detectMs: vipFailoverMs, routedMs, vipFailoverMs, notes: [] };
    },
  },
  {
    id: 7,
    name: "master load balancer's link down",
    target: { vipWithinMs: 3000 },
    async run(lab, profile) {
      const t0 = Date.now();
      await lab.net.setLink('lb1', false);
      const vipFailoverMs = await timeUntil(vipOn(lab, 'lb2'), {
        sinceMs: t0,
        timeoutMs: 15_000,
        intervalMs: 50,
      });
      await sleep(Math.max(0, profile.outageMs - (Date.now() - t0)));
      const t1 = Date.now();
      await lab.net.setLink('lb1', true);
      const routedMs = await timeUntil(() => lab.fullCapacity(), { sinceMs: t1, timeoutMs: TIMEOUT_MS });
      return { detectMs: vipFailoverMs, routedMs, vipFailoverMs, notes: [] };
    },
  },
  {
    id: 8,
    name: 'etcd leader killed',
    target: { noLoss: true },
    async run(lab, profile) {
      const leader = await etcdLeader(lab);
      if (!leader) throw new Error('no etcd leader found');
      const t0 = Date.now();
      proc(lab, `${leader}/etcd`).kill('SIGKILL', { hold: true });
      const detectMs = await timeUntil(
        async () => {
          const l = await etcdLeader(lab);
          return l !== undefined && l !== leader;
        },
        { sinceMs: t0, timeoutMs: 20_000, intervalMs: 200 },
      );
      await sleep(Math.max(0, profile.outageMs - (Date.now() - t0)));
      proc(lab, `${leader}/etcd`).release();
      return {
        detectMs,
        routedMs: null,
        vipFailoverMs: null,
        notes: [`killed ${leader}; detect = a new leader elected`],
      };
    },
  },
  {
    id: 9,
    name: 'etcd fully down, then back (fail-static)',
    target: { noLoss: true },
    async run(lab, profile) {
      const t0 = Date.now();
      for (const e of ETCDS) proc(lab, `${e}/etcd`).kill('SIGKILL', { hold: true });
      let flaps = 0;
      let samples = 0;
      while (Date.now() - t0 < profile.etcdOutageMs) {
        const d = await lab.masterDestinations();
        samples++;
        if (!lab.backends.every((b) => routable(d, b))) flaps++;
        await sleep(500);
      }
      for (const e of ETCDS) proc(lab, `${e}/etcd`).release();
      return {
        detectMs: null,
        routedMs: null,
        vipFailoverMs: null,
        notes: [`${flaps} of ${samples} looks at Kamailio during the outage missed a backend`],
      };
    },
  },
  {
    id: 10,
    name: 'one agent cut off from etcd while its backend is healthy',
    target: {},
    async run(lab, profile) {
      const node = lab.backends[0] as string;
      const routes = ETCDS.map((e) => `${lab.ipOf(e)}/32`);
      const inject = async () => {
        for (const r of routes) await lab.net.run(node, ['ip', 'route', 'add', 'blackhole', r]);
      };
      const restore = async () => {
        for (const r of routes)
          await lab.net.run(node, ['ip', 'route', 'del', 'blackhole', r]).catch(() => '');
      };
      const t0 = Date.now();
      await inject();
      const detectMs = await timeUntil(notRoutable(lab, node), { sinceMs: t0, timeoutMs: TIMEOUT_MS });
      await sleep(Math.max(0, profile.outageMs - (Date.now() - t0)));
      const t1 = Date.now();
      await restore();
      const routedMs = await timeUntil(isRoutable(lab, node), { sinceMs: t1, timeoutMs: TIMEOUT_MS });
      return {
        detectMs,
        routedMs,
        vipFailoverMs: null,
        notes:
          detectMs === null
            ? ['the node stayed in rotation']
            : ['out of rotation while its liveness could not be proven'],
      };
    },
  },
];

/** Runs one scenario under load and returns its row. */
export async function runScenario(
  lab: HaLab,
  scenario: Scenario,
  profile: LabProfile,
  opts: { logger: Logger; onStep: (text: string) => void },
): Promise<ScenarioResult> {
  const { onStep, logger } = opts;
  onStep(`scenario ${scenario.id} (${lab.settings.mode}): ${scenario.name}`);
  const notes: string[] = [];
  if ((await lab.waitFullCapacity(TIMEOUT_MS)) === null) notes.push('not at full capacity before the fault');
  const caller = await startLabCaller({
    sippBin: findExecutable('sipp') ?? 'sipp',
    prefix: lab.net.exec('caller'),
    target: `${VIP}:5060`,
    localIp: lab.ipOf('caller'),
    localPort: 5060,
    ratePerSecond: profile.ratePerSecond,
    callDurationMs: profile.callDurationMs,
    maxConcurrent: Math.ceil(profile.ratePerSecond * (profile.callDurationMs / 1000 + 5)) + 50,
    workDir: lab.workDir,
    logger,
    setprivBin: setprivWithPdeathsig(),
  });
  let measured: Measured = { detectMs: null, routedMs: null, vipFailoverMs: null, notes: [] };
  try {
    await sleep(profile.warmupMs);
    measured = await scenario.run(lab, profile, logger);
  } catch (err) {
    notes.push(`scenario error: ${(err as Error).message}`);
  }
  const back = await lab.waitFullCapacity(TIMEOUT_MS);
  await sleep(profile.settleMs);
  // SIPp gives up on an unanswered INVITE or BYE about 32 s after sending it (64 x T1): wait
  // that long, so a call still retransmitting ends as lost or failed, not as "in progress".
  const counts = await caller.stop({ graceMs: profile.callDurationMs + 35_000 });
  const result: ScenarioResult = {
    id: scenario.id,
    name: scenario.name,
    mode: lab.settings.mode,
    attempted: counts.attempted,
    failedNew: counts.failedNew,
    lostEstablished: counts.lostEstablished,
    detectMs: measured.detectMs,
    routedMs: measured.routedMs,
    vipFailoverMs: measured.vipFailoverMs,
    backToFullCapacity: back !== null,
    notes: [...notes, ...measured.notes],
    target: scenario.target,
    passed: null,
  };
  result.passed = lab.settings.mode === 'switchyard' ? evaluateTargets(result).passed : null;
  onStep(
    `  ${result.attempted} calls, ${result.failedNew} new failed, ${result.lostEstablished} established lost` +
      `${result.vipFailoverMs === null ? '' : `, VIP moved in ${result.vipFailoverMs} ms`}` +
      `${result.passed === null ? '' : result.passed ? ', target met' : ', TARGET MISSED'}`,
  );
  return result;
}
