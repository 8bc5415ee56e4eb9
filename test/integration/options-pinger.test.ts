import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createOptionsPinger, type OptionsPinger } from '../../src/net/options-pinger.ts';
import { requireBinaries } from '../harness/daemon.ts';
import { type KamailioInstance, startKamailio } from '../harness/kamailio.ts';
import { loopbackHost } from '../harness/ports.ts';
import { type SippUas, startSippUas } from '../harness/sipp.ts';

/** The OPTIONS pinger against real peers: a SIPp UAS (uas_lb.xml) and the test Kamailio. */

requireBinaries('kamailio', 'sipp');

describe('options pinger (real)', () => {
  let pinger: OptionsPinger;
  let uas: SippUas;
  let kam: KamailioInstance;

  before(async () => {
    pinger = await createOptionsPinger();
    uas = await startSippUas({ ip: loopbackHost(), port: 5060 });
    kam = await startKamailio();
  });

  after(async () => {
    await pinger?.close();
    await uas?.stop();
    await kam?.dispose();
  });

  test('options pinger (real) - a SIPp UAS answers 200 and is up', async () => {
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await pinger.probe(uas.uri, { timeoutMs: 1000 }));
    for (const r of results) {
      assert.equal(r.up, true, JSON.stringify(r));
      assert.equal(r.status, 200);
      assert.ok(r.rttMs! < 200, `rtt ${r.rttMs}`);
    }
  });

  test('options pinger (real) - Kamailio answers 200 Keepalive for itself, 503 when no backend', async () => {
    const self = await pinger.probe(`sip:${kam.sipIp}:${kam.sipPort}`, { timeoutMs: 1000 });
    assert.deepEqual([self.up, self.status, self.reason], [true, 200, 'Keepalive']);
    // With a user part the cfg load-balances it; the dispatcher list is empty, so 503.
    const routed = await pinger.probe(`sip:someone@${kam.sipIp}:${kam.sipPort}`, { timeoutMs: 1000 });
    assert.deepEqual([routed.up, routed.status, routed.reason], [false, 503, 'No destination']);
  });

  test('options pinger (real) - a killed UAS is down after the timeout', async () => {
    const victim = await startSippUas({ ip: loopbackHost(), port: 5060 });
    try {
      assert.equal((await pinger.probe(victim.uri, { timeoutMs: 1000 })).up, true);
      await victim.kill('SIGKILL');
      const t0 = performance.now();
      const r = await pinger.probe(victim.uri, { timeoutMs: 800 });
      assert.deepEqual(r, { up: false, reason: 'timeout' });
      assert.ok(performance.now() - t0 >= 790);
    } finally {
      await victim.stop();
    }
    assert.equal(pinger.stats().garbage, 0);
  });
});
