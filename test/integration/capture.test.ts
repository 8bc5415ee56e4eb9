import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { captureConfigSchema } from '../../src/capture/config.ts';
import { type RunningCapture, runCapture } from '../../src/capture/index.ts';
import { ladderSvg } from '../../src/capture/ladder.ts';
import { createSilentLogger } from '../../src/core/logger.ts';
import { encodeHep } from '../../src/proto/hep.ts';
import { pcapFile } from '../../src/proto/pcap.ts';
import { createRegistry, openStore } from '../../src/registry/index.ts';
import { requireBinaries } from '../harness/daemon.ts';
import { type KamailioInstance, startKamailio } from '../harness/kamailio.ts';
import { freeTcpPort, freeUdpPort, loopbackHost } from '../harness/ports.ts';
import { runSippUac, type SippUas, startSippUas } from '../harness/sipp.ts';
import { sleep, waitFor } from '../harness/wait.ts';

/**
 * The capture server on real traffic: Kamailio's siptrace mirrors every SIP message as HEP3 to
 * it while sipp places calls through Kamailio to sipp backends. Then what an operator does with
 * it: search the calls, draw one, export it to pcap and read that back with tshark.
 */

const pexec = promisify(execFile);
const CLI = resolve(import.meta.dirname, '../../src/cli/main.ts');
const logger = createSilentLogger();

let dir: string;
let capture: RunningCapture;
let kamailio: KamailioInstance;
const backends: SippUas[] = [];
let hepPort: number;
let tcpPort: number;
let adminUrl: string;

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${name}${labels} `) || l.startsWith(`${name}${labels}{`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

before(async () => {
  requireBinaries('kamailio', 'sipp', 'tshark');
  dir = mkdtempSync(join(tmpdir(), 'sy-capture-'));
  hepPort = await freeUdpPort('127.0.0.1');
  tcpPort = await freeTcpPort('127.0.0.1');
  capture = await runCapture(
    captureConfigSchema.parse({
      listen: `udp://127.0.0.1:${hepPort},tcp://127.0.0.1:${tcpPort}`,
      store: `sqlite:${join(dir, 'capture.db')}`,
      registry: `embedded:${join(dir, 'registry.db')}`,
      admin: { port: 0 },
      batch: { maxDelayMs: 20 },
      tcpStallTimeoutMs: 300,
    }),
    { logger },
  );
  adminUrl = capture.adminUrl ?? assert.fail('capture runs its own admin server');
  for (let i = 0; i < 2; i++) backends.push(await startSippUas({ ip: loopbackHost(), port: 5060 }));
  kamailio = await startKamailio({
    hep: { port: hepPort, captureId: 77 },
    initialList: backends.map((b, i) => `1 ${b.uri} 0 0 duid=as${i};weight=50\n`).join(''),
  });
});

after(async () => {
  await kamailio?.stop();
  for (const b of backends) await b.stop();
  await capture?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('capture with Kamailio siptrace', () => {
  it('calls through Kamailio appear with both legs, status, timings and a ladder', async () => {
    const result = await runSippUac({
      target: `${kamailio.sipIp}:${kamailio.sipPort}`,
      ip: loopbackHost(),
      port: 5060,
      calls: 10,
      rate: 10,
      holdMs: 300,
    });
    assert.equal(result.failed, 0, result.errorTail);
    await capture.server.flush();
    const calls = await waitFor(
      async () => {
        await capture.server.flush();
        const found = await capture.store.searchCalls({
          sinceUs: (Date.now() - 60_000) * 1000,
          status: 'answered',
        });
        return found.length >= 10 ? found : undefined;
      },
      { what: 'ten answered calls in the store', timeoutMs: 5000 },
    );
    const call = calls[0];
    assert.ok(call);
    assert.equal(call.status, 'answered');
    assert.equal(call.finalStatus, 200);
    assert.equal(call.method, 'INVITE');
    assert.ok(call.setupDelayUs !== undefined && call.setupDelayUs >= 0);
    assert.ok(call.durationUs !== undefined && call.durationUs >= 250_000, `duration ${call.durationUs}`);
    assert.deepEqual(call.captureIds, [77]);
    // The caller's leg (UAC -> Kamailio) and Kamailio's leg to one backend share the Call-ID.
    const lb = `${kamailio.sipIp}:${kamailio.sipPort}`;
    assert.ok(call.endpoints.includes(lb), call.endpoints.join(' '));
    assert.ok(
      call.endpoints.some((e) => backends.some((b) => e === `${b.ip}:${b.port}`)),
      `a backend among ${call.endpoints.join(' ')}`,
    );
    const messages = await capture.store.messagesOf([call.callId]);
    const labels = messages.map((m) => m.method ?? String(m.status));
    // Each of INVITE, 200, ACK, BYE, 200 is seen going in and coming out of Kamailio.
    for (const l of ['INVITE', '200', 'ACK', 'BYE']) {
      assert.ok(labels.filter((x) => x === l).length >= 2, `${l} twice in ${labels.join(' ')}`);
    }
    assert.ok(!labels.includes('OPTIONS'), 'keep-alives are not stored');
    const svg = ladderSvg(messages);
    assert.match(svg, /^<svg /);
    assert.ok(svg.includes(lb));
    assert.equal((svg.match(/class="message"/g) ?? []).length, messages.length);
    assert.ok(
      (await metric('switchyard_capture_dropped_total', '{reason="keepalive"}')) > 0,
      'Kamailio pings counted',
    );
  });

  it('a call with no backend is stored as failed with the 503', async () => {
    const emptyList = await startKamailio({ hep: { port: hepPort, captureId: 78 } });
    try {
      const result = await runSippUac({
        target: `${emptyList.sipIp}:${emptyList.sipPort}`,
        ip: loopbackHost(),
        port: 5060,
        calls: 1,
        rate: 1,
        holdMs: 100,
        timeoutS: 10,
      });
      assert.equal(result.failed, 1);
    } finally {
      await emptyList.stop();
    }
    // Generous: on a loaded 2-core machine this once took longer than 5 s. Says what it saw if not.
    let seen = '';
    const failed = await waitFor(
      async () => {
        await capture.server.flush();
        const found = await capture.store.searchCalls({ limit: 1000 });
        const mine = found.filter((c) => c.captureIds.includes(78));
        seen = JSON.stringify(
          mine.map((c) => ({ status: c.status, final: c.finalStatus, n: c.messageCount })),
        );
        return mine.find((c) => c.status === 'failed');
      },
      { what: 'the failed call', timeoutMs: 15_000 },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}; calls from Kamailio 78: ${seen}`);
    });
    assert.equal(failed.finalStatus, 503);
  });

  it('switchyard calls and trace: search, pcap that tshark reads back as SIP, text', async () => {
    const store = `sqlite:${join(dir, 'capture.db')}`;
    const env = { ...process.env, SWITCHYARD_STORE: store };
    const list = await pexec(
      process.execPath,
      [CLI, 'calls', '--since', '5m', '--status', 'answered', '--json'],
      { env },
    );
    const calls = JSON.parse(list.stdout) as Array<{ callId: string; messageCount: number }>;
    assert.ok(calls.length >= 10);
    const callId = calls[0]?.callId ?? '';
    const pcap = join(dir, 'call.pcap');
    await pexec(process.execPath, [CLI, 'trace', callId, '--pcap', pcap], { env });
    const tshark = await pexec('tshark', ['-r', pcap, '-Y', 'sip', '-T', 'fields', '-e', 'sip.Call-ID']);
    const ids = tshark.stdout.trim().split('\n');
    assert.equal(ids.length, calls[0]?.messageCount, tshark.stdout);
    assert.ok(ids.every((id) => id === callId));
    const text = await pexec(process.execPath, [CLI, 'trace', callId, '--text'], { env });
    assert.match(text.stdout, /INVITE sip:/);
    assert.match(text.stdout, /SIP\/2\.0 200 OK/);
    const table = await pexec(process.execPath, [CLI, 'calls', '--since', '5m'], { env });
    assert.match(table.stdout, /answered/);
    const missing = await pexec(process.execPath, [CLI, 'trace', 'no-such-call'], { env }).catch((e) => e);
    assert.equal(missing.code, 2);
    assert.match(String(missing.stderr), /no call with Call-ID/);
  });

  it('bad input is counted by reason and dropped; the server keeps going', async () => {
    const udp = createSocket('udp4');
    const send = (b: Uint8Array) =>
      new Promise<void>((r, j) => udp.send(b, hepPort, '127.0.0.1', (e) => (e ? j(e) : r())));
    const good = encodeHep({
      protocol: 17,
      srcIp: '127.0.0.9',
      dstIp: '127.0.0.10',
      srcPort: 5060,
      dstPort: 5060,
      tsSec: Math.floor(Date.now() / 1000),
      tsUsec: 0,
      protoType: 1,
      captureId: 9,
      payload: Buffer.from(
        'MESSAGE sip:bob@x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9;branch=z9hG4bK1\r\nFrom: <sip:alice@x>;tag=1\r\nTo: <sip:bob@x>\r\nCall-ID: bad-input-survivor\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n',
      ),
    });
    const before = {
      magic: await metric('switchyard_capture_dropped_total', '{reason="bad-magic"}'),
      truncated: await metric('switchyard_capture_dropped_total', '{reason="truncated"}'),
      sip: await metric('switchyard_capture_dropped_total', '{reason="sip-parse"}'),
      stalled: await metric('switchyard_capture_dropped_total', '{reason="tcp-stalled"}'),
      framing: await metric('switchyard_capture_dropped_total', '{reason="tcp-framing"}'),
    };
    await send(Buffer.from('GET / HTTP/1.1\r\n\r\n')); // not HEP at all
    await send(good.subarray(0, 20)); // truncated
    const garbage = Buffer.from(good);
    garbage.write('\u0000\u0001\u0002 garbage', garbage.length - 60, 'latin1'); // binary in the SIP payload
    // The bytes land in the Call-ID header: a NUL in the header section is a SIP parse failure
    // (docs/reference/sip-parser.md), so the whole message is dropped as sip-parse.
    assert.match(Buffer.from(garbage).toString('latin1'), /Call-ID\u0000\u0001\u0002 garbage-survivor\r\n/);
    await send(garbage);
    // Binary in the body is the body's business (Content-Length frames it): stored byte-exact.
    const binaryBody = Buffer.concat([
      Buffer.from(
        'MESSAGE sip:bob@x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9;branch=z9hG4bK3\r\nFrom: <sip:alice@x>;tag=3\r\nTo: <sip:bob@x>\r\nCall-ID: binary-body\r\nCSeq: 1 MESSAGE\r\nContent-Type: application/octet-stream\r\nContent-Length: 6\r\n\r\n',
      ),
      Buffer.from([0x00, 0x01, 0x02, 0xff, 0x0d, 0x0a]),
    ]);
    await send(
      encodeHep({
        protocol: 17,
        srcIp: '127.0.0.9',
        dstIp: '127.0.0.10',
        srcPort: 5060,
        dstPort: 5060,
        tsSec: Math.floor(Date.now() / 1000),
        tsUsec: 0,
        protoType: 1,
        captureId: 9,
        payload: binaryBody,
      }),
    );
    const binaryPayload = encodeHep({
      protocol: 17,
      srcIp: '127.0.0.9',
      dstIp: '127.0.0.10',
      srcPort: 5060,
      dstPort: 5060,
      tsSec: 0,
      tsUsec: 0,
      protoType: 1,
      captureId: 9,
      payload: Buffer.from([0xff, 0x00, 0x13, 0x37, 0x0d, 0x0a]),
    });
    await send(binaryPayload);
    // TCP: garbage closes the connection; half a frame and silence is cut by the stall timer; a
    // peer silent between frames (here: before any) stays. The connection gauge follows them all.
    assert.equal(await metric('switchyard_capture_tcp_connections'), 0);
    const idle = connect(tcpPort, '127.0.0.1');
    let idleClosed = false;
    idle.on('close', () => {
      idleClosed = true;
    });
    await new Promise((r) => idle.once('connect', r));
    await waitFor(async () => (await metric('switchyard_capture_tcp_connections')) === 1, {
      what: 'the idle peer counted',
    });
    const junk = connect(tcpPort, '127.0.0.1');
    await new Promise((r) => junk.once('connect', r));
    junk.write('this is not HEP');
    await new Promise((r) => junk.once('close', r));
    const staller = connect(tcpPort, '127.0.0.1');
    await new Promise((r) => staller.once('connect', r));
    staller.write(good.subarray(0, 30)); // a valid start, then nothing
    const stalledAt = Date.now();
    await new Promise((r) => staller.once('close', r));
    const stallMs = Date.now() - stalledAt;
    assert.ok(stallMs >= 250 && stallMs < 3000, `closed after ${stallMs} ms`);
    await waitFor(async () => (await metric('switchyard_capture_tcp_connections')) === 1, {
      what: 'the junk and stalled peers gone from the gauge',
    });
    assert.equal(idleClosed, false, 'idle for longer than the stall timeout, still connected');
    idle.end();
    await waitFor(async () => (await metric('switchyard_capture_tcp_connections')) === 0, {
      what: 'no TCP connection left',
    });
    await send(good);
    udp.close();
    await waitFor(
      async () =>
        (await metric('switchyard_capture_dropped_total', '{reason="bad-magic"}')) > before.magic &&
        (await metric('switchyard_capture_dropped_total', '{reason="truncated"}')) > before.truncated &&
        (await metric('switchyard_capture_dropped_total', '{reason="sip-parse"}')) >= before.sip + 2 &&
        (await metric('switchyard_capture_dropped_total', '{reason="tcp-framing"}')) > before.framing &&
        (await metric('switchyard_capture_dropped_total', '{reason="tcp-stalled"}')) > before.stalled,
      { what: 'drops counted', timeoutMs: 3000 },
    );
    await waitFor(
      async () => {
        await capture.server.flush();
        return (await capture.store.getCall('bad-input-survivor')) !== undefined;
      },
      { what: 'the good packet after the bad ones is stored' },
    );
    // Exactly the binary payload and the NUL in the header: nothing else was a parse failure.
    assert.equal(await metric('switchyard_capture_dropped_total', '{reason="sip-parse"}'), before.sip + 2);
    assert.equal((await capture.store.getCall('bad-input-survivor'))?.messageCount, 1);
    const [stored] = await capture.store.messagesOf(['binary-body']);
    assert.deepEqual(Buffer.from(stored?.raw ?? []), binaryBody);
  });

  it('control-plane events from the registry are recorded with their time', async () => {
    const store = await openStore(`embedded:${join(dir, 'registry.db')}`, { logger });
    const registry = createRegistry(store, { logger });
    try {
      const t0 = Date.now() * 1000;
      await registry.setIntent('pbx9', { drain: true, by: 'test', reason: 'maintenance' });
      const events = await waitFor(
        async () => {
          const evs = await capture.store.eventsBetween(t0 - 1_000_000, Date.now() * 1000 + 1_000_000);
          return evs.some((e) => e.kind === 'intent.set' && e.subject === 'pbx9') ? evs : undefined;
        },
        { what: 'intent event', timeoutMs: 5000 },
      );
      const ev = events.find((e) => e.kind === 'intent.set');
      assert.equal(ev?.detail['drain'], true);
      assert.equal(ev?.detail['by'], 'test');
    } finally {
      await registry.close();
      await store.close();
    }
  });
});

describe('pcap of stored messages', () => {
  it('is what tshark expects even for IPv6 and TCP-transported messages', async () => {
    const file = join(dir ?? tmpdir(), 'v6.pcap');
    const raw = Buffer.from(
      'OPTIONS sip:[::1]:5060 SIP/2.0\r\nVia: SIP/2.0/TCP [::1]:5070;branch=z9hG4bK2\r\nFrom: <sip:a@[::1]>;tag=2\r\nTo: <sip:b@[::1]>\r\nCall-ID: v6-call\r\nCSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n',
    );
    const { writeFileSync } = await import('node:fs');
    writeFileSync(
      file,
      pcapFile([
        {
          tsUs: Date.now() * 1000,
          srcIp: '::1',
          srcPort: 5070,
          dstIp: '::1',
          dstPort: 5060,
          transport: 'tcp',
          raw,
        },
      ]),
    );
    const out = await pexec('tshark', [
      '-r',
      file,
      '-Y',
      'sip',
      '-T',
      'fields',
      '-e',
      'sip.Call-ID',
      '-e',
      'ipv6.src',
    ]);
    assert.equal(out.stdout.trim(), 'v6-call\t::1');
    assert.ok(readFileSync(file).length > 0);
    await sleep(0);
  });
});
