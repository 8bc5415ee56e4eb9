import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { SwitchyardError } from '../../src/core/errors.ts';
import { createKamailioRpc } from '../../src/net/kamailio-rpc.ts';
import { requireBinaries } from '../harness/daemon.ts';
import { type KamailioInstance, startKamailio } from '../harness/kamailio.ts';
import { loopbackHost } from '../harness/ports.ts';
import { type SippUas, startSippUas } from '../harness/sipp.ts';
import { sleep, waitFor } from '../harness/wait.ts';

/**
 * The Kamailio JSON-RPC client against a real Kamailio 5.6 (the production template, reload_delta 2 s, ping
 * every 1 s) with a real SIPp UAS as a live backend. Tests run in order and share the daemon.
 */

requireBinaries('kamailio', 'sipp');

describe('kamailio rpc (real)', () => {
  let kam: KamailioInstance;
  let backend: SippUas;
  const dead = loopbackHost();

  const isCode = (code: string, retryable?: boolean) => (err: unknown) =>
    SwitchyardError.is(err) && err.code === code && (retryable === undefined || err.retryable === retryable);

  before(async () => {
    backend = await startSippUas({ ip: loopbackHost(), port: 5060 });
    // reload_delta 2 s: Kamailio compares whole seconds (time(NULL)), so with 1 s two reloads a
    // few ms apart can straddle a second boundary and both be accepted.
    kam = await startKamailio({ reloadDeltaS: 2, pingIntervalS: 1 });
  });

  after(async () => {
    await kam?.dispose();
    await backend?.stop();
  });

  test('kamailio rpc (real) - an empty dispatcher lists as []', async () => {
    assert.deepEqual(await kam.rpc.listDispatchers(), []);
  });

  test('kamailio rpc (real) - a written list file shows after reload, with duid and attrs', async () => {
    await writeFile(
      kam.listFile,
      `1 ${backend.uri} 0 0 duid=as1;weight=60;rweight=60\n1 sip:${dead}:5060 0 0 duid=as2;weight=40;rweight=40;maxload=9\n2 sip:${dead}:5070\n`,
    );
    await kam.rpc.reload();
    const list = await kam.rpc.listDispatchers();
    const as1 = list.find((d) => d.attrs.duid === 'as1');
    assert.deepEqual(as1, {
      setId: 1,
      uri: backend.uri,
      flags: as1?.flags,
      priority: 0,
      attrs: { body: 'duid=as1;weight=60;rweight=60', duid: 'as1', weight: 60, rweight: 60, maxload: 0 },
    });
    assert.match(as1!.flags, /^A[XP]$/);
    assert.equal(list.find((d) => d.attrs.duid === 'as2')?.attrs.maxload, 9);
    assert.deepEqual(list.find((d) => d.setId === 2)?.attrs, { body: '' });
    assert.equal(list.length, 3);
  });

  test('kamailio rpc (real) - a second reload within reload_delta is RELOAD_BUSY, later it works', async () => {
    await assert.rejects(kam.rpc.reload(), isCode('SY_ERR_KAMAILIO_RELOAD_BUSY', true));
    await sleep(2100);
    await kam.rpc.reload();
  });

  test('kamailio rpc (real) - set_duid_state d disables a live destination and it stays disabled', async () => {
    await waitFor(
      async () => (await kam.rpc.listDispatchers()).find((d) => d.attrs.duid === 'as1')?.flags === 'AP',
      {
        timeoutMs: 5000,
        what: 'as1 probed up',
      },
    );
    const t0 = performance.now();
    await kam.rpc.setDuidState('d', 1, 'as1');
    const ms = performance.now() - t0;
    const flags = async () => (await kam.rpc.listDispatchers()).find((d) => d.attrs.duid === 'as1')?.flags;
    assert.match((await flags()) ?? '', /^D/);
    // Three ping rounds later the backend still answers OPTIONS, and the state is still D.
    await sleep(3000);
    assert.match((await flags()) ?? '', /^D/);
    assert.ok(ms < 500, `set_duid_state took ${ms} ms`);
    await kam.rpc.setDuidState('ap', 1, 'as1');
    assert.equal(await flags(), 'AP');
  });

  test('kamailio rpc (real) - an unknown duid is SY_ERR_KAMAILIO_RPC', async () => {
    await assert.rejects(kam.rpc.setDuidState('d', 1, 'nobody'), (err: unknown) => {
      assert.ok(isCode('SY_ERR_KAMAILIO_RPC', false)(err));
      assert.equal(
        (err as SwitchyardError & { details: { message: string } }).details.message,
        'State Update Failed',
      );
      return true;
    });
  });

  test('kamailio rpc (real) - unknown methods and bad arguments are refused', async () => {
    await assert.rejects(kam.rpc.call('no.such_method'), isCode('SY_ERR_KAMAILIO_RPC'));
    await assert.rejects(kam.rpc.setDuidState('d', 1, 'as1\n'), isCode('SY_ERR_INVALID_ARGUMENT'));
    assert.match(String(await kam.rpc.call('core.version')), /^kamailio 5\./);
  });

  test('kamailio rpc (real) - JSON-RPC from another source address than 127.0.0.1 is refused', async () => {
    const from = loopbackHost();
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(kam.rpcUrl, { method: 'POST', localAddress: from, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end('{"jsonrpc":"2.0","method":"core.version","id":1}');
    });
    assert.equal(status, 403);
  });

  test('kamailio rpc (real) - a frozen Kamailio times out as a retryable UNREACHABLE', async () => {
    const rpc = createKamailioRpc({ url: kam.rpcUrl, timeoutMs: 300 });
    // SIGSTOP the daemon's own process group (all its processes), SIGCONT right after.
    process.kill(-kam.pid, 'SIGSTOP');
    try {
      const t0 = performance.now();
      await assert.rejects(rpc.call('core.version'), isCode('SY_ERR_KAMAILIO_UNREACHABLE', true));
      const ms = performance.now() - t0;
      assert.ok(ms >= 290 && ms < 1000, `${ms} ms`);
    } finally {
      process.kill(-kam.pid, 'SIGCONT');
      await rpc.close();
    }
    assert.match(String(await kam.rpc.call('core.version')), /^kamailio/);
  });

  test('kamailio rpc (real) - a stopped Kamailio is UNREACHABLE at once; restart() brings it back', async () => {
    await kam.stop();
    const t0 = performance.now();
    await assert.rejects(kam.rpc.listDispatchers(), isCode('SY_ERR_KAMAILIO_UNREACHABLE', true));
    await assert.rejects(kam.rpc.reload(), isCode('SY_ERR_KAMAILIO_UNREACHABLE', true));
    const ms = performance.now() - t0;
    assert.ok(ms < 200, `${ms} ms`);
    await kam.restart();
    // Same ports and list file: the list is loaded from the file at start.
    assert.equal((await kam.rpc.listDispatchers()).length, 3);
  });
});
