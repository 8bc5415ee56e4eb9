import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { requireBinaries } from '../harness/daemon.ts';
import { startKamailio } from '../harness/kamailio.ts';
import { freeUdpPort, loopbackHost } from '../harness/ports.ts';

/** The Kamailio harness itself: life cycle, given ports and files, start-up failures. */

requireBinaries('kamailio');

describe('kamailio harness', () => {
  test('kamailio harness - stop keeps the files, restart reuses ports and files, dispose cleans up', async () => {
    const kam = await startKamailio({ initialList: '1 sip:127.0.0.1:5999 0 0 duid=x;weight=100\n' });
    try {
      const { sipPort, httpPort, listFile, workDir } = kam;
      const pid = kam.pid;
      assert.equal((await kam.rpc.listDispatchers())[0]?.attrs.duid, 'x');
      await kam.stop();
      assert.equal(kam.running(), false);
      assert.ok(existsSync(listFile));
      await writeFile(listFile, '1 sip:127.0.0.1:5998 0 0 duid=y;weight=100\n');
      await kam.restart();
      assert.notEqual(kam.pid, pid);
      assert.deepEqual([kam.sipPort, kam.httpPort, kam.listFile], [sipPort, httpPort, listFile]);
      assert.equal((await kam.rpc.listDispatchers())[0]?.attrs.duid, 'y');
      assert.match(kam.logTail(200), /INFO/);
      await kam.dispose();
      assert.equal(existsSync(workDir), false);
      assert.equal(kam.running(), false);
    } finally {
      await kam.dispose();
    }
  });

  test('kamailio harness - uses the SIP address, port and list file it is given', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sy-test-'));
    const sipIp = loopbackHost();
    const sipPort = await freeUdpPort(sipIp);
    const listFile = join(dir, 'my.list');
    const kam = await startKamailio({ sipIp, sipPort, listFile });
    try {
      assert.deepEqual([kam.sipIp, kam.sipPort, kam.listFile], [sipIp, sipPort, listFile]);
      assert.match(await readFile(listFile, 'utf8'), /^#/, 'a missing list file is created');
      assert.deepEqual(await kam.rpc.listDispatchers(), []);
    } finally {
      await kam.dispose();
      assert.ok(existsSync(listFile), 'a list file outside the work dir is left alone');
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('kamailio harness - a SIP port already taken fails with the log tail', async () => {
    const sipIp = loopbackHost();
    const squatter = createSocket('udp4');
    await new Promise<void>((resolve) => squatter.bind(0, sipIp, () => resolve()));
    try {
      await assert.rejects(
        startKamailio({ sipIp, sipPort: squatter.address().port }),
        /exited during start-up[\s\S]*kamailio\.log \(tail\)[\s\S]*Address already in use/,
      );
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
  });

  test('kamailio harness - refuses non-loopback addresses and unsupported settings', async () => {
    await assert.rejects(startKamailio({ sipIp: '10.0.0.1' }), /loopback/);
    await assert.rejects(startKamailio({ alg: 10 }), /alg 10/);
    await assert.rejects(startKamailio({ reloadDeltaS: 0.5 }), /reloadDeltaS/);
  });
});
