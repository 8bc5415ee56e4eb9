import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createSilentLogger } from '../../src/core/logger.ts';
import { startKamailioService } from '../../src/up/kamailio-service.ts';
import { requireBinaries } from '../harness/daemon.ts';
import { freeTcpPort, loopbackHost } from '../harness/ports.ts';
import { waitFor } from '../harness/wait.ts';

/**
 * The Kamailio that `switchyard up` runs: generated config checked with `kamailio -c`, started
 * under the agent's supervisor, restarted when it dies, stopped for good on stop().
 */
describe('kamailio service (switchyard up)', { timeout: 60_000 }, () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const workDir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'sy-kam-'));
    dirs.push(d);
    return d;
  };

  test('kamailio service - ready over JSON-RPC, restarted after a SIGKILL, gone after stop', async () => {
    requireBinaries('kamailio');
    const kam = await startKamailioService({
      bin: 'kamailio',
      workDir: await workDir(),
      lb: { sipIp: loopbackHost(), sipPort: 5060, httpPort: await freeTcpPort(), reloadDeltaS: 1 },
      logger: createSilentLogger(),
    });
    try {
      await kam.waitReady(10_000);
      assert.equal(kam.status().state, 'running');
      const first = kam.pid();
      assert.ok(first !== undefined);
      process.kill(first, 'SIGKILL');
      await waitFor(() => kam.status().state !== 'running', { timeoutMs: 5000, what: 'the crash noticed' });
      await waitFor(() => kam.status().state === 'running' && kam.pid() !== first, {
        timeoutMs: 15_000,
        what: 'kamailio restarted and answering',
      });
      assert.match(kam.status().detail ?? '', /restarts 1/);
    } finally {
      const pid = kam.pid();
      await kam.stop();
      if (pid !== undefined) assert.throws(() => process.kill(pid, 0), 'the process is gone after stop');
    }
  });

  test('kamailio service - a config Kamailio refuses is reported with its error, nothing started', async () => {
    requireBinaries('kamailio');
    const dir = await workDir();
    const cfg = join(dir, 'broken.cfg');
    await writeFile(cfg, '#!KAMAILIO\nloadmodule "no_such_module.so"\nrequest_route { exit; }\n');
    await assert.rejects(
      startKamailioService({
        bin: 'kamailio',
        workDir: dir,
        configFile: cfg,
        lb: {},
        logger: createSilentLogger(),
      }),
      (err: Error) => /kamailio -c refused/.test(err.message) && /no_such_module/.test(err.message),
    );
  });
});
