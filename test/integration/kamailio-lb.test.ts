import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createOptionsPinger } from '../../src/net/options-pinger.ts';
import { decodeHep } from '../../src/proto/hep.ts';
import { checkKamailioConfig, renderKamailioConfig } from '../../src/up/kamailio-config.ts';
import { sippBindArgs } from '../../src/up/sipp-process.ts';
import {
  assertLoopback,
  type Daemon,
  registerTempDir,
  removeTempDir,
  requireBinaries,
  spawnDaemon,
  stopDaemon,
  tailFile,
} from '../harness/daemon.ts';
import { type KamailioInstance, startKamailio } from '../harness/kamailio.ts';
import { loopbackHost } from '../harness/ports.ts';
import { runSippUac, type SippUas, startSippUas } from '../harness/sipp.ts';
import { sleep, waitFor } from '../harness/wait.ts';

/**
 * The production load-balancer config (deploy/kamailio/kamailio.cfg, rendered by
 * src/up/kamailio-config.ts) on real Kamailio 5.6 with real SIPp backends and callers:
 * weights, failover on 503 and on silence, REGISTER answered by the LB, in-dialog requests
 * through the Record-Route (on the VIP listen address), call-load with maxload, and HEP
 * mirroring without keep-alives. `kamailio -c` accepts every variant of the rendered file.
 */

requireBinaries('kamailio', 'sipp');

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/sipp/${name}`, import.meta.url));

interface ScenarioUas {
  ip: string;
  port: number;
  uri: string;
  stop(): Promise<void>;
}

/** A SIPp UAS running one of the extra scenarios; ready once it answers OPTIONS. */
async function startScenarioUas(scenario: string): Promise<ScenarioUas> {
  const ip = loopbackHost();
  assertLoopback(ip);
  const port = 5060;
  const workDir = await mkdtemp(join(tmpdir(), 'sy-sipp-lb-'));
  registerTempDir(workDir);
  const logFile = join(workDir, 'sipp.log');
  const args = ['-sf', fixture(scenario), ...sippBindArgs(ip, port)];
  const daemon: Daemon = await spawnDaemon('sipp', [...args, '-nostdin', '-trace_err'], {
    cwd: workDir,
    logFile,
  });
  const stop = async (): Promise<void> => {
    await stopDaemon(daemon, { killAfterMs: 3000 });
    removeTempDir(workDir);
  };
  const pinger = await createOptionsPinger({ bindAddress: '127.0.0.1' });
  try {
    await waitFor(async () => (await pinger.probe(`sip:${ip}:${port}`, { timeoutMs: 300 })).up || undefined, {
      what: `${scenario} answering OPTIONS`,
      timeoutMs: 5000,
    });
  } catch (err) {
    const log = tailFile(logFile, 10);
    await stop();
    throw new Error(`${(err as Error).message}\n--- sipp log ---\n${log}`);
  } finally {
    await pinger.close();
  }
  return { ip, port, uri: `sip:${ip}:${port}`, stop };
}

interface TracedMessage {
  src: string;
  dst: string;
  captureId: number;
  firstLine: string;
  /** Method of a request, or the CSeq method of a reply. */
  method: string;
}

/** A HEP v3 listener on 127.0.0.1 keeping every decoded SIP message. */
async function listenHep(): Promise<{ port: number; messages: TracedMessage[]; close(): Promise<void> }> {
  const socket: Socket = createSocket('udp4');
  const messages: TracedMessage[] = [];
  socket.on('message', (buf) => {
    const r = decodeHep(buf);
    if (!r.ok) return;
    const text = Buffer.from(r.value.payload).toString('utf8');
    const firstLine = text.slice(0, text.indexOf('\r\n'));
    const cseq = /^CSeq:\s*\d+\s+(\S+)/im.exec(text);
    messages.push({
      src: `${r.value.srcIp}:${r.value.srcPort}`,
      dst: `${r.value.dstIp}:${r.value.dstPort}`,
      captureId: r.value.captureId,
      firstLine,
      method: cseq?.[1] ?? '',
    });
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return {
    port: socket.address().port,
    messages,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** Sends one SIP request over UDP from a loopback address of its own; resolves with the reply text. */
async function sendSip(
  target: { ip: string; port: number },
  build: (local: string) => string,
): Promise<string> {
  const ip = loopbackHost();
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, ip, () => resolve()));
  const local = `${ip}:${socket.address().port}`;
  try {
    const reply = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no SIP reply within 2 s')), 2000);
      socket.on('message', (buf) => {
        const text = buf.toString('utf8');
        if (/^SIP\/2\.0 1\d\d/.test(text)) return;
        clearTimeout(timer);
        resolve(text);
      });
    });
    socket.send(build(local).replace(/\n/g, '\r\n'), target.port, target.ip);
    return await reply;
  } finally {
    socket.close();
  }
}

function registerRequest(lb: string, local: string): string {
  const tag = Math.random().toString(36).slice(2);
  return `REGISTER sip:${lb} SIP/2.0
Via: SIP/2.0/UDP ${local};branch=z9hG4bK${tag};rport
Max-Forwards: 70
From: <sip:phone1@${lb}>;tag=${tag}
To: <sip:phone1@${lb}>
Call-ID: reg-${tag}
CSeq: 1 REGISTER
Contact: <sip:phone1@${local}>
Expires: 60
Content-Length: 0

`;
}

/** Kamailio's raw dispatcher.list answer, flattened: duid -> { flags, dlgload }. */
async function dispatcherState(
  kam: KamailioInstance,
): Promise<Map<string, { flags: string; dlgload: number | undefined }>> {
  const result = (await kam.rpc.call('dispatcher.list')) as {
    RECORDS?: Array<{
      SET: {
        TARGETS: Array<{
          DEST: { FLAGS: string; ATTRS?: { DUID?: string }; RUNTIME?: { DLGLOAD?: number } };
        }>;
      };
    }>;
  };
  const out = new Map<string, { flags: string; dlgload: number | undefined }>();
  for (const rec of result.RECORDS ?? []) {
    for (const t of rec.SET.TARGETS) {
      out.set(t.DEST.ATTRS?.DUID ?? '?', { flags: t.DEST.FLAGS, dlgload: t.DEST.RUNTIME?.DLGLOAD });
    }
  }
  return out;
}

describe('kamailio load balancer config', () => {
  test('kamailio lb - the rendered config passes kamailio -c for both algorithms, with and without HEP and VIP', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sy-kamcfg-'));
    registerTempDir(dir);
    try {
      const listFile = join(dir, 'dispatcher.list');
      await writeFile(listFile, '');
      const variants = [
        { algorithm: 'weight' },
        { algorithm: 'relative-weight', listenVip: '127.0.0.99' },
        { algorithm: 'call-load', hep: { ip: '127.0.0.1', port: 9061, captureId: 7 } },
        { algorithm: 'call-load', listenVip: '127.0.0.99', hep: { ip: '127.0.0.1', traceKeepalives: true } },
        { sipIp: '::1', listenVip: '::2', hep: { ip: '::1' } },
      ] as const;
      for (const [i, v] of variants.entries()) {
        const cfgPath = join(dir, `v${i}.cfg`);
        await writeFile(cfgPath, renderKamailioConfig({ ...v, listFile, runDir: dir, sipPort: 5999 }));
        const r = await checkKamailioConfig({ cfgPath });
        assert.deepEqual(r, { ok: true, value: undefined }, `variant ${JSON.stringify(v)}`);
      }
      // A broken file is reported with Kamailio's own error.
      const bad = join(dir, 'bad.cfg');
      await writeFile(
        bad,
        `${renderKamailioConfig({ listFile, runDir: dir })}\nroute[X] { no_such_function(); }\n`,
      );
      const r = await checkKamailioConfig({ cfgPath: bad });
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.reason, /no_such_function|ERROR/);
    } finally {
      removeTempDir(dir);
    }
  });

  describe('weights, REGISTER, Record-Route on the VIP, HEP without keep-alives', () => {
    let kam: KamailioInstance;
    let hep: Awaited<ReturnType<typeof listenHep>>;
    const backends: SippUas[] = [];
    const vip = loopbackHost();

    before(async () => {
      hep = await listenHep();
      for (let i = 0; i < 2; i++) backends.push(await startSippUas({ ip: loopbackHost(), port: 5060 }));
      const [a, b] = backends as [SippUas, SippUas];
      kam = await startKamailio({
        algorithm: 'weight',
        listenVip: vip,
        hep: { port: hep.port, captureId: 4242, traceKeepalives: false },
        initialList: `1 ${a.uri} 0 0 duid=a;weight=75\n1 ${b.uri} 0 0 duid=b;weight=25\n`,
      });
      await waitFor(async () => [...(await dispatcherState(kam)).values()].every((d) => d.flags === 'AP'), {
        what: 'both backends probed up',
        timeoutMs: 5000,
      });
    });

    after(async () => {
      await kam?.dispose();
      for (const b of backends) await b.stop();
      await hep?.close();
    });

    test('kamailio lb - 100 calls to the VIP split 75/25 by weight, BYE goes through the LB on the VIP', async () => {
      const [a, b] = backends as [SippUas, SippUas];
      const result = await runSippUac({
        target: `${vip}:${kam.sipPort}`,
        ip: loopbackHost(),
        port: 5060,
        calls: 100,
        rate: 100,
        holdMs: 100,
      });
      assert.equal(result.failed, 0, result.errorTail);
      assert.equal(result.successful, 100);
      const na = result.perBackend[a.ip] ?? 0;
      const nb = result.perBackend[b.ip] ?? 0;
      assert.equal(na + nb, 100, JSON.stringify(result.perBackend));
      // Alg 9 walks a shuffled 100-slot table: exact over 100 calls, give or take a slot that
      // two workers may read at the same moment.
      assert.ok(Math.abs(na - 75) <= 3, `75/25 expected, got ${na}/${nb}`);

      // Every BYE came in on the VIP and left from the VIP to a backend (one Record-Route, the VIP).
      const byes = hep.messages.filter((m) => m.firstLine.startsWith('BYE '));
      const lbVip = `${vip}:${kam.sipPort}`;
      const backendAddrs = new Set(backends.map((x) => `${x.ip}:${x.port}`));
      assert.equal(byes.filter((m) => m.dst === lbVip).length, 100, 'BYEs received on the VIP');
      assert.equal(
        byes.filter((m) => m.src === lbVip && backendAddrs.has(m.dst)).length,
        100,
        'BYEs relayed from the VIP to the backends',
      );
      assert.ok(hep.messages.every((m) => m.captureId === 4242));
    });

    test('kamailio lb - REGISTER is answered 405 by the LB and never reaches a backend', async () => {
      const lb = `${kam.sipIp}:${kam.sipPort}`;
      const reply = await sendSip({ ip: kam.sipIp, port: kam.sipPort }, (local) =>
        registerRequest(lb, local),
      );
      assert.match(reply, /^SIP\/2\.0 405 Registrations Not Accepted Here\r\n/);
      assert.match(reply, /\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS/);
      // Also on the VIP.
      const viaVip = await sendSip({ ip: vip, port: kam.sipPort }, (local) => registerRequest(lb, local));
      assert.match(viaVip, /^SIP\/2\.0 405 /);
      await sleep(200);
      const registers = hep.messages.filter((m) => m.method === 'REGISTER');
      assert.ok(registers.length >= 4, `REGISTER and its 405, twice: ${registers.length}`);
      const backendIps = new Set(backends.map((x) => x.ip));
      assert.deepEqual(
        registers.filter((m) => backendIps.has(m.dst.split(':')[0]!)),
        [],
        'no REGISTER towards a backend',
      );
    });

    test('kamailio lb - OPTIONS keep-alives (probes and to the LB) are not mirrored as HEP, calls are', async () => {
      const pinger = await createOptionsPinger({ bindAddress: '127.0.0.1' });
      try {
        const self = await pinger.probe(`sip:${kam.sipIp}:${kam.sipPort}`, { timeoutMs: 1000 });
        assert.equal(self.status, 200);
        const onVip = await pinger.probe(`sip:${vip}:${kam.sipPort}`, { timeoutMs: 1000 });
        assert.equal(onVip.status, 200);
      } finally {
        await pinger.close();
      }
      // At 1 s ping interval, several probe rounds have run since start.
      await sleep(1200);
      assert.ok(hep.messages.some((m) => m.firstLine.startsWith('INVITE ')));
      assert.ok(hep.messages.some((m) => m.method === 'INVITE' && m.firstLine.startsWith('SIP/2.0 200')));
      assert.deepEqual(
        hep.messages.filter((m) => m.method === 'OPTIONS').map((m) => `${m.src} ${m.firstLine}`),
        [],
      );
    });
  });

  describe('failover', () => {
    let kam: KamailioInstance;
    let good: SippUas;
    let refusing: ScenarioUas;
    let silent: ScenarioUas;

    before(async () => {
      good = await startSippUas({ ip: loopbackHost(), port: 5060 });
      refusing = await startScenarioUas('uas_503.xml');
      silent = await startScenarioUas('uas_silent.xml');
      // Probes every 60 s: a backend marked inactive by a call stays so for the whole test.
      kam = await startKamailio({ algorithm: 'weight', pingIntervalS: 60, frTimerMs: 500, reloadDeltaS: 0 });
    });

    after(async () => {
      await kam?.dispose();
      await good?.stop();
      await refusing?.stop();
      await silent?.stop();
    });

    /** The failing backend gets 99 of 100 slots, so the first call surely tries it first. */
    async function loadList(failing: { uri: string }): Promise<void> {
      await writeFile(
        kam.listFile,
        `1 ${failing.uri} 0 0 duid=bad;weight=99\n1 ${good.uri} 0 0 duid=good;weight=1\n`,
      );
      await kam.rpc.reload();
    }

    test('kamailio lb - a backend answering 503 is marked inactive and the call completes on another', async () => {
      await loadList(refusing);
      const result = await runSippUac({
        target: `${kam.sipIp}:${kam.sipPort}`,
        ip: loopbackHost(),
        port: 5060,
        calls: 3,
        rate: 10,
        holdMs: 50,
      });
      assert.equal(result.failed, 0, result.errorTail);
      assert.deepEqual(result.perBackend, { [good.ip]: 3 });
      const state = await dispatcherState(kam);
      assert.match(state.get('bad')?.flags ?? '', /^I/, JSON.stringify([...state]));
      assert.match(state.get('good')?.flags ?? '', /^A/);
      assert.match(kam.logTail(200), /LB: failover/);
    });

    test('kamailio lb - a backend that never answers is failed over after the first-reply timer', async () => {
      await loadList(silent);
      const started = performance.now();
      const result = await runSippUac({
        target: `${kam.sipIp}:${kam.sipPort}`,
        ip: loopbackHost(),
        port: 5060,
        calls: 1,
        rate: 1,
        holdMs: 50,
      });
      const elapsed = performance.now() - started;
      assert.equal(result.failed, 0, result.errorTail);
      assert.deepEqual(result.perBackend, { [good.ip]: 1 });
      // frTimerMs 500: failover after half a second, not after the 30 s ring time.
      assert.ok(elapsed >= 500 && elapsed < 5000, `call took ${Math.round(elapsed)} ms`);
      const state = await dispatcherState(kam);
      assert.match(state.get('bad')?.flags ?? '', /^I/, JSON.stringify([...state]));
    });
  });

  describe('call load', () => {
    let kam: KamailioInstance;
    const backends: SippUas[] = [];

    before(async () => {
      for (let i = 0; i < 2; i++) backends.push(await startSippUas({ ip: loopbackHost(), port: 5060 }));
      const [a, b] = backends as [SippUas, SippUas];
      kam = await startKamailio({
        algorithm: 'call-load',
        initialList: `1 ${a.uri} 0 0 duid=a;maxload=1\n1 ${b.uri} 0 0 duid=b;maxload=1\n`,
      });
    });

    after(async () => {
      await kam?.dispose();
      for (const b of backends) await b.stop();
    });

    test('kamailio lb - with maxload=1 on two backends a third concurrent call gets 503, a later one goes through', async () => {
      const [a, b] = backends as [SippUas, SippUas];
      const running = runSippUac({
        target: `${kam.sipIp}:${kam.sipPort}`,
        ip: loopbackHost(),
        port: 5060,
        calls: 3,
        rate: 20,
        holdMs: 2500,
      });
      // While the two calls are up, each backend carries exactly one.
      const during = await waitFor(
        async () => {
          const s = await dispatcherState(kam);
          return s.get('a')?.dlgload === 1 && s.get('b')?.dlgload === 1 ? s : undefined;
        },
        { what: 'one call on each backend', timeoutMs: 2000 },
      );
      assert.equal(during.size, 2);
      const result = await running;
      assert.equal(result.successful, 2, result.errorTail);
      assert.equal(result.failed, 1);
      assert.deepEqual(result.perBackend, { [a.ip]: 1, [b.ip]: 1 });
      assert.match(kam.logTail(200), /LB: no destination for INVITE/);

      // BYE released the load: both back to 0, and a new call is accepted.
      const after = await dispatcherState(kam);
      assert.deepEqual([after.get('a')?.dlgload, after.get('b')?.dlgload], [0, 0]);
      const next = await runSippUac({
        target: `${kam.sipIp}:${kam.sipPort}`,
        ip: loopbackHost(),
        port: 5060,
        calls: 1,
        rate: 1,
        holdMs: 50,
      });
      assert.equal(next.successful, 1, next.errorTail);
    });
  });
});
