import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findExecutable } from '../../src/core/executables.ts';
import { createSilentLogger } from '../../src/core/logger.ts';
import { createOptionsPinger, type OptionsPinger } from '../../src/net/options-pinger.ts';
import {
  type CallGeneratorStats,
  DEMO_SCENARIO_DIR,
  demoBackendCommand,
  startCallGenerator,
} from '../../src/up/demo.ts';
import { sippBindArgs } from '../../src/up/sipp-process.ts';
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
import { waitFor } from '../harness/wait.ts';

/**
 * The demo's SIPp pieces against each other on loopback, without Kamailio: two demo backends
 * (the argv the agent would run), the demo caller scenario, and the call generator.
 */

requireBinaries('sipp');

interface Backend {
  name: string;
  ip: string;
  port: number;
  uri: string;
  workDir: string;
  daemon: Daemon;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('demo', () => {
  const backends: Backend[] = [];
  let pinger: OptionsPinger;
  let logDir: string;
  const setprivBin = findExecutable('setpriv');

  before(async () => {
    pinger = await createOptionsPinger({ bindAddress: '127.0.0.1' });
    logDir = await mkdtemp(join(tmpdir(), 'sy-demo-logs-'));
    registerTempDir(logDir);
    for (const name of ['demo-1', 'demo-2']) {
      const ip = loopbackHost();
      const port = await freeUdpPort(ip);
      // Its own empty working dir, to show that a demo backend writes no files.
      const workDir = await mkdtemp(join(tmpdir(), 'sy-demo-backend-'));
      registerTempDir(workDir);
      const argv = demoBackendCommand({ sippBin: 'sipp', name, ip, port });
      const daemon = await spawnDaemon(argv[0]!, argv.slice(1), {
        cwd: workDir,
        logFile: join(logDir, `${name}.log`),
      });
      backends.push({ name, ip, port, uri: `sip:${ip}:${port}`, workDir, daemon });
    }
  });

  after(async () => {
    await pinger?.close();
    for (const b of backends) {
      await stopDaemon(b.daemon, { killAfterMs: 3000 });
      removeTempDir(b.workDir);
    }
    if (logDir !== undefined) removeTempDir(logDir);
  });

  test('demo backend - answers OPTIONS with 200, as the agent and Kamailio probe it', async () => {
    for (const b of backends) {
      const result = await waitFor(
        async () => {
          const r = await pinger.probe(b.uri, { timeoutMs: 300 });
          return r.up ? r : undefined;
        },
        { timeoutMs: 5000, what: `${b.name} answering OPTIONS (log: ${tailFile(b.daemon.logFile, 5)})` },
      );
      assert.equal(result.status, 200);
    }
  });

  test('demo backend - completes a call from the demo caller, tagged with its name', async () => {
    for (const b of backends) {
      const ip = loopbackHost();
      const workDir = await mkdtemp(join(tmpdir(), 'sy-demo-caller-'));
      registerTempDir(workDir);
      try {
        const caller = await spawnDaemon(
          'sipp',
          [
            '-sf',
            join(DEMO_SCENARIO_DIR, 'demo-caller.xml'),
            `${b.ip}:${b.port}`,
            ...sippBindArgs(ip),
            '-m',
            '1',
            '-d',
            '200',
            '-nostdin',
            '-trace_msg',
            '-timeout',
            '10s',
            '-timeout_error',
          ],
          { cwd: workDir, logFile: join(workDir, 'sipp.log') },
        );
        const { code } = await caller.exited;
        assert.equal(code, 0, tailFile(join(workDir, 'sipp.log'), 30));
        const files = await readdir(workDir);
        const messages = files.find((f) => f.endsWith('_messages.log'));
        assert.ok(messages, `no message trace in ${files.join(', ')}`);
        const trace = await readFile(join(workDir, messages), 'utf8');
        assert.match(trace, new RegExp(`SIP/2.0 200 OK[^]*X-Demo-Backend: ${b.name}`));
        assert.match(trace, /SIP\/2.0 100 Trying/);
        // No 180: a late provisional after the 200 would fail SIPp's UAC (demo-backend.xml).
        assert.doesNotMatch(trace, /SIP\/2.0 180 Ringing/);
      } finally {
        removeTempDir(workDir);
      }
    }
    // Nothing landed in the backends' working dirs.
    for (const b of backends) assert.deepEqual(await readdir(b.workDir), [], b.name);
  });

  test('call generator - 2 calls/s of 1 s against one backend: all succeed, stop ends SIPp', async () => {
    const b = backends[0]!;
    const tempRoot = await mkdtemp(join(tmpdir(), 'sy-demo-gen-'));
    registerTempDir(tempRoot);
    const seen: CallGeneratorStats[] = [];
    const generator = await startCallGenerator({
      sippBin: 'sipp',
      target: `${b.ip}:${b.port}`,
      ratePerSecond: 2,
      callDurationMs: 1000,
      maxConcurrent: 10,
      localIp: loopbackHost(),
      logger: createSilentLogger(),
      tempRoot,
      ...(setprivBin === undefined ? {} : { setprivBin }),
    });
    try {
      generator.onStats((s) => seen.push(s));
      assert.ok(generator.running());
      assert.equal((await readdir(tempRoot)).length, 1, 'one temp dir while running');
      const running = await waitFor(
        () => {
          const s = generator.stats();
          return s.succeeded >= 2 && s.active > 0 ? s : undefined;
        },
        { timeoutMs: 6000, intervalMs: 100, what: 'calls succeeding while others are up' },
      );
      assert.equal(running.failed, 0);
      assert.equal(running.target, `${b.ip}:${b.port}`);
      assert.equal(running.ratePerSecond, 2);
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      await generator.stop();
    }
    const final = generator.stats();
    assert.ok(final.attempted > 0, JSON.stringify(final));
    assert.ok(final.succeeded > 0, JSON.stringify(final));
    assert.equal(final.failed, 0, JSON.stringify(final));
    // The graceful stop let the calls in progress finish.
    assert.equal(final.active, 0, JSON.stringify(final));
    assert.equal(final.succeeded, final.attempted, JSON.stringify(final));
    assert.ok(seen.length >= 2, 'onStats called as counters changed');
    assert.equal(generator.running(), false);
    assert.equal(processExists(generator.pid), false, 'SIPp is gone');
    assert.deepEqual(await readdir(tempRoot), [], 'temp dir removed');
    removeTempDir(tempRoot);
    // stop() again is a no-op.
    await generator.stop();
  });
});
