import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { requireBinaries } from '../harness/daemon.ts';
import { type KamailioInstance, startKamailio } from '../harness/kamailio.ts';
import { loopbackHost } from '../harness/ports.ts';
import { runSippUac, type SippUas, startSippUas } from '../harness/sipp.ts';
import { waitFor } from '../harness/wait.ts';

/** Two real SIPp UAS behind the real test Kamailio; a SIPp UAC places calls through it. */

requireBinaries('kamailio', 'sipp');

describe('sipp harness', () => {
  let kamailio: KamailioInstance;
  const backends: SippUas[] = [];

  before(async () => {
    for (let i = 0; i < 2; i++) backends.push(await startSippUas({ ip: loopbackHost(), port: 5060 }));
    const [a, b] = backends as [SippUas, SippUas];
    kamailio = await startKamailio({
      initialList: `1 ${a.uri} 0 0 duid=as1;weight=50\n1 ${b.uri} 0 0 duid=as2;weight=50\n`,
    });
  });

  after(async () => {
    await kamailio?.dispose();
    for (const b of backends) await b.stop();
  });

  test('sipp harness - 20 calls through Kamailio all succeed and reach both backends', async () => {
    const [a, b] = backends as [SippUas, SippUas];
    await waitFor(async () => (await kamailio.rpc.listDispatchers()).every((d) => d.flags === 'AP'), {
      timeoutMs: 5000,
      what: 'both backends probed up by Kamailio',
    });
    const result = await runSippUac({
      target: `${kamailio.sipIp}:${kamailio.sipPort}`,
      ip: loopbackHost(),
      port: 5060,
      calls: 20,
      rate: 20,
      holdMs: 100,
    });
    assert.equal(result.exitCode, 0, result.errorTail);
    assert.equal(result.successful, 20);
    assert.equal(result.failed, 0);
    assert.equal(
      (result.perBackend[a.ip] ?? 0) + (result.perBackend[b.ip] ?? 0),
      20,
      JSON.stringify(result.perBackend),
    );
    assert.ok(
      (result.perBackend[a.ip] ?? 0) > 0 && (result.perBackend[b.ip] ?? 0) > 0,
      JSON.stringify(result.perBackend),
    );
  });

  test('sipp harness - a killed backend stops answering and the UAS reports it is gone', async () => {
    const extra = await startSippUas({ ip: loopbackHost(), port: 5060 });
    try {
      assert.ok(extra.running());
      await extra.kill('SIGKILL');
      assert.equal(extra.running(), false);
    } finally {
      await extra.stop();
    }
  });
});
