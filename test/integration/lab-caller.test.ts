import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdir, mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findExecutable } from '../../src/core/executables.ts';
import { createSilentLogger } from '../../src/core/logger.ts';
import { type CallerCounts, startLabCaller } from '../../src/lab/caller.ts';
import { demoBackendCommand } from '../../src/up/demo.ts';
import {
  type Daemon,
  registerTempDir,
  removeTempDir,
  requireBinaries,
  spawnDaemon,
  stopDaemon,
  tailFile,
} from '../harness/daemon.ts';
import { freeUdpPort, loopbackHost } from '../harness/ports.ts';
import { sleep, waitFor } from '../harness/wait.ts';

/**
 * The lab caller against demo backends on loopback, without Kamailio (prefix []): a clean run
 * must account for every call as completed, and a backend SIGKILLed mid-run must show up as
 * established calls lost (their BYE times out) and new calls failed (their INVITE times out).
 */

requireBinaries('sipp');

interface Backend {
  ip: string;
  port: number;
  daemon: Daemon;
}

const logger = createSilentLogger();
const backends: Backend[] = [];
let workRoot: string;

async function startBackend(name: string): Promise<Backend> {
  const ip = loopbackHost();
  const port = await freeUdpPort(ip);
  const argv = demoBackendCommand({ sippBin: 'sipp', name, ip, port });
  const dir = join(workRoot, name);
  await mkdir(dir, { recursive: true });
  const daemon = await spawnDaemon(argv[0]!, argv.slice(1), { cwd: dir, logFile: join(dir, 'sipp.log') });
  const backend = { ip, port, daemon };
  backends.push(backend);
  // Ready when it answers OPTIONS (the demo backend scenario's first branch).
  await waitFor(async () => (await probe(ip, port)) === true, {
    timeoutMs: 5000,
    what: `${name} answers OPTIONS`,
  });
  return backend;
}

/** One SIP OPTIONS over UDP: true when the backend answers 200 within 300 ms. */
function probe(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      resolve(false);
    }, 300);
    sock.on('message', (msg) => {
      clearTimeout(timer);
      sock.close();
      resolve(msg.toString('latin1').startsWith('SIP/2.0 200'));
    });
    sock.bind(0, '127.0.0.1', () => {
      const local = sock.address();
      const callId = `probe-${Math.random().toString(36).slice(2)}`;
      const text = [
        `OPTIONS sip:${ip}:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${local.port};branch=z9hG4bK${callId}`,
        'Max-Forwards: 70',
        `From: <sip:probe@127.0.0.1>;tag=${callId}`,
        `To: <sip:${ip}:${port}>`,
        `Call-ID: ${callId}`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      sock.send(text, port, ip);
    });
  });
}

function assertBalanced(c: CallerCounts): void {
  assert.equal(c.inProgress, 0, `nothing left in progress: ${JSON.stringify(c)}`);
  assert.equal(c.attempted, c.failedNew + c.completed + c.lostEstablished, JSON.stringify(c));
  assert.equal(c.answered, c.completed + c.lostEstablished, JSON.stringify(c));
}

describe('lab caller on loopback', { timeout: 85_000 }, () => {
  before(async () => {
    workRoot = await mkdtemp(join(tmpdir(), 'sy-lab-caller-'));
    registerTempDir(workRoot);
  });

  after(async () => {
    for (const b of backends) await stopDaemon(b.daemon, { killAfterMs: 3000 });
    removeTempDir(workRoot);
  });

  test('lab caller - a clean run counts every call as answered and completed', async (t) => {
    const backend = await startBackend('clean');
    const setpriv = findExecutable('setpriv');
    const ip = loopbackHost();
    const workDir = join(workRoot, 'caller-clean');
    const caller = await startLabCaller({
      sippBin: 'sipp',
      prefix: [],
      target: `${backend.ip}:${backend.port}`,
      localIp: ip,
      localPort: await freeUdpPort(ip),
      ratePerSecond: 3,
      callDurationMs: 1000,
      maxConcurrent: 50,
      workDir,
      logger,
      ...(setpriv === undefined ? {} : { setprivBin: setpriv }),
    });
    await sleep(2500);
    const live = caller.counts();
    assert.ok(live.attempted > 0, `live counts move: ${JSON.stringify(live)}`);
    await sleep(1500);
    const final = await caller.stop();
    t.diagnostic(JSON.stringify(final));
    assert.ok(final.attempted >= 9, JSON.stringify(final));
    assert.equal(final.failedNew, 0);
    assert.equal(final.lostEstablished, 0);
    assert.equal(final.answered, final.attempted);
    assert.equal(final.completed, final.attempted);
    assertBalanced(final);
    assert.equal(caller.running(), false);
    assert.ok(
      (await readdir(workDir)).some((n) => /^demo-caller_[0-9]+_counts\.csv$/.test(n)),
      'the counts file is in workDir',
    );
  });

  test('lab caller - a backend killed mid-run shows lost established calls and failed new calls', async (t) => {
    const backend = await startBackend('doomed');
    const ip = loopbackHost();
    const caller = await startLabCaller({
      sippBin: 'sipp',
      prefix: [],
      target: `${backend.ip}:${backend.port}`,
      localIp: ip,
      localPort: await freeUdpPort(ip),
      ratePerSecond: 3,
      callDurationMs: 3000,
      maxConcurrent: 50,
      workDir: join(workRoot, 'caller-kill'),
      logger,
    });
    await sleep(4000);
    const before = caller.counts();
    backend.daemon.child.kill('SIGKILL');
    await backend.daemon.exited;
    await sleep(2000);
    // An INVITE or a BYE to the dead backend times out about 31 s after it was sent (SIPp's
    // default retransmissions, measured): the grace covers the last of them.
    const stopAt = Date.now();
    const final = await caller.stop({ graceMs: 40_000 });
    t.diagnostic(
      `before the kill ${JSON.stringify(before)}; final ${JSON.stringify(final)}; stop took ${Date.now() - stopAt} ms`,
    );
    assert.ok(before.answered > 0, `calls were up before the kill: ${JSON.stringify(before)}`);
    assert.ok(final.lostEstablished > 0, `BYEs lost: ${JSON.stringify(final)}`);
    assert.ok(final.failedNew > 0, `INVITEs failed: ${JSON.stringify(final)}`);
    // Calls that ended before the kill completed; those up at the kill were lost.
    assert.ok(final.completed >= 1, JSON.stringify(final));
    assert.ok(final.completed <= before.answered, JSON.stringify(final));
    assertBalanced(final);
    assert.equal(backend.daemon.running(), false, tailFile(backend.daemon.logFile));
  });
});
