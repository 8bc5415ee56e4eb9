import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { CaptureStore } from '../../../src/capture/model.ts';
import { openCaptureStore } from '../../../src/capture/open-store.ts';
import { type CaptureServerOptions, startCaptureServer } from '../../../src/capture/server.ts';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { createMetricsRegistry } from '../../../src/core/metrics.ts';
import { encodeHep } from '../../../src/proto/hep.ts';

const logger = createSilentLogger();

function sipMessage(callId: string, cseq = 1, extraHeaders: string[] = []): string {
  return [
    'MESSAGE sip:bob@example.com SIP/2.0',
    `Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK${cseq}`,
    'From: <sip:alice@example.com>;tag=x',
    'To: <sip:bob@example.com>',
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} MESSAGE`,
    ...extraHeaders,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

const packet = (callId: string, cseq = 1, authKey?: string, extraHeaders: string[] = []) =>
  encodeHep({
    srcIp: '127.0.0.1',
    dstIp: '127.0.0.2',
    srcPort: 5060,
    dstPort: 5060,
    tsSec: Math.floor(Date.now() / 1000),
    tsUsec: cseq,
    captureId: 3,
    payload: sipMessage(callId, cseq, extraHeaders),
    ...(authKey === undefined ? {} : { authKey }),
  });

async function udpSend(port: number, packets: Uint8Array[]): Promise<void> {
  const s = createSocket('udp4');
  for (const p of packets)
    await new Promise<void>((r, j) => s.send(p, port, '127.0.0.1', (e) => (e ? j(e) : r())));
  s.close();
}

/** A server on a fresh SQLite file, and a second handle to read what it stored. */
async function setup(t: TestContext, over: Partial<CaptureServerOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sy-capture-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const storeSpec = `sqlite:${join(dir, 'capture.db')}`;
  const metrics = createMetricsRegistry();
  const server = await startCaptureServer({
    listen: [
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
    ],
    storeSpec,
    batchMaxDelayMs: 10,
    metrics,
    logger,
    ...over,
  });
  t.after(() => server.close());
  const reader: CaptureStore = await openCaptureStore(storeSpec, { readOnly: true });
  t.after(() => reader.close());
  const udpPort = server.addresses.find((a) => a.transport === 'udp')?.port ?? 0;
  const tcpPort = server.addresses.find((a) => a.transport === 'tcp')?.port ?? 0;
  const counter = async (name: string, label = '') => {
    const text = await metrics.metrics();
    const line = text.split('\n').find((l) => l.startsWith(`${name}${label} `));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  return { server, reader, udpPort, tcpPort, counter };
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 250; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('capture server - UDP and TCP (several frames per segment, frames split across segments) reach the store', async (t) => {
  const { server, reader, udpPort, tcpPort } = await setup(t);
  await udpSend(udpPort, [packet('udp-1'), packet('udp-2')]);
  const stream = Buffer.concat([packet('tcp-1'), packet('tcp-2'), packet('tcp-3')]);
  const sock = connect(tcpPort, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  // Cut mid-header and mid-payload.
  for (const [a, b] of [
    [0, 3],
    [3, 200],
    [200, stream.length],
  ] as const) {
    sock.write(stream.subarray(a, b));
    await new Promise((r) => setTimeout(r, 5));
  }
  sock.end();
  await until(async () => {
    await server.flush();
    return (await reader.stats()).messages === 5;
  }, 'five messages');
  const calls = await reader.searchCalls({});
  assert.deepEqual(calls.map((c) => c.callId).sort(), ['tcp-1', 'tcp-2', 'tcp-3', 'udp-1', 'udp-2']);
});

test('capture server - forwards every authenticated packet unchanged to an upstream collector', async (t) => {
  const upstream = createSocket('udp4');
  const forwarded: Buffer[] = [];
  upstream.on('message', (m) => forwarded.push(m));
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
  t.after(() => upstream.close());
  const { server, udpPort, counter } = await setup(t, {
    authKey: 'k',
    forwardTo: { host: '127.0.0.1', port: upstream.address().port },
  });
  const withKey = packet('fwd-1', 1, 'k');
  await udpSend(udpPort, [withKey, packet('fwd-2')]);
  await server.flush();
  await until(async () => forwarded.length >= 1, 'the forwarded packet');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(forwarded.length, 1, 'only the authenticated packet');
  assert.deepEqual(new Uint8Array(forwarded[0] ?? []), withKey);
  assert.equal(await counter('switchyard_capture_dropped_total', '{reason="auth"}'), 1);
  assert.equal(await counter('switchyard_capture_forwarded_total'), 1);
});

test('capture server - a full queue drops packets as overload and accounts for every one', async (t) => {
  const { server, udpPort, counter } = await setup(t, {
    batchMaxMessages: 1,
    batchMaxDelayMs: 1,
    maxQueuedMessages: 5,
  });
  const burst = Array.from({ length: 2000 }, (_, i) => packet(`q-${i}`, i + 1));
  const s = createSocket({ type: 'udp4', sendBufferSize: 4 * 1024 * 1024 });
  for (const p of burst) s.send(p, udpPort, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 100));
  s.close();
  await until(
    async () => (await counter('switchyard_capture_packets_received_total', '{transport="udp"}')) === 2000,
    'all received',
  );
  await server.flush();
  const stored = await counter('switchyard_capture_messages_stored_total');
  const overload = await counter('switchyard_capture_dropped_total', '{reason="overload"}');
  assert.ok(overload > 0, 'a burst of 2000 single-message batches overflows a queue of 5');
  assert.equal(stored + overload, 2000);
});

test('capture server - a store that cannot be opened fails the start with a clear error', async () => {
  await assert.rejects(
    startCaptureServer({
      listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
      storeSpec: 'sqlite:/etc/hostname/capture.db', // a file where a directory must be
      metrics: createMetricsRegistry(),
      logger,
    }),
    /SY_ERR_CAPTURE_STORE_UNAVAILABLE|capture store/,
  );
});

test('capture server - retention and control events are written by the worker; the socket thread stays a reader', async (t) => {
  const { server, reader, udpPort } = await setup(t);
  const old = encodeHep({
    srcIp: '127.0.0.1',
    dstIp: '127.0.0.2',
    srcPort: 5060,
    dstPort: 5060,
    tsSec: Math.floor(Date.now() / 1000) - 3600, // an hour ago
    tsUsec: 0,
    payload: sipMessage('old-call'),
  });
  await udpSend(udpPort, [old, packet('new-call')]);
  await until(async () => {
    await server.flush();
    return (await reader.stats()).messages === 2;
  }, 'two messages');
  server.recordEvent({
    tsUs: Date.now() * 1000,
    kind: 'node.state',
    subject: 'pbx1',
    detail: { to: 'draining' },
  });
  await until(async () => (await reader.eventsBetween(0, Date.now() * 1000 + 1e6)).length === 1, 'the event');
  const removed = await server.applyRetention({ maxAgeMs: 60_000 });
  assert.equal(removed, 1);
  assert.equal(await reader.getCall('old-call'), undefined);
  assert.ok(await reader.getCall('new-call'));
  assert.equal(server.healthy(), true);
});

test('capture server - an idle TCP sender stays connected; one stalled mid-frame is cut and counted', async (t) => {
  const stallMs = 150;
  const { server, reader, tcpPort, counter } = await setup(t, { tcpStallTimeoutMs: stallMs });
  const stored = async (callId: string) => {
    await until(async () => {
      await server.flush();
      return (await reader.getCall(callId)) !== undefined;
    }, callId);
  };
  // A quiet captagent: one whole frame, then silence for several stall timeouts.
  const quiet = connect(tcpPort, '127.0.0.1');
  t.after(() => quiet.destroy());
  let quietClosedAt: number | undefined;
  quiet.on('close', () => {
    quietClosedAt = Date.now();
  });
  await new Promise((r) => quiet.once('connect', r));
  quiet.write(packet('idle-1'));
  await stored('idle-1');
  await new Promise((r) => setTimeout(r, stallMs * 4));
  assert.equal(quietClosedAt, undefined, 'an idle peer with no partial frame is not disconnected');
  assert.equal(await counter('switchyard_capture_tcp_connections'), 1);
  quiet.write(packet('idle-2', 2));
  await stored('idle-2');

  // Half a frame, then silence: cut after the stall timeout and counted.
  const staller = connect(tcpPort, '127.0.0.1');
  await new Promise((r) => staller.once('connect', r));
  const startedAt = Date.now();
  staller.write(packet('never').subarray(0, 30));
  await new Promise((r) => staller.once('close', r));
  assert.ok(Date.now() - startedAt >= stallMs - 20, 'not before the stall timeout');
  assert.equal(await counter('switchyard_capture_dropped_total', '{reason="tcp-stalled"}'), 1);
  await until(async () => (await counter('switchyard_capture_tcp_connections')) === 1, 'the staller gone');
  assert.equal(quietClosedAt, undefined, 'the quiet peer is still there');
  quiet.end();
  await until(async () => (await counter('switchyard_capture_tcp_connections')) === 0, 'no connection left');
});

test('capture server - a configured correlation header links a B-leg to its A-leg, and X-CID then does not', async (t) => {
  const { server, reader, udpPort } = await setup(t, { correlationHeader: 'X-Leg-Ref' });
  await udpSend(udpPort, [
    packet('a-leg'),
    packet('b-leg', 1, undefined, ['X-Leg-Ref: a-leg']),
    // The default header's name, under a server configured for another one: not a correlation.
    packet('c-leg', 1, undefined, ['X-CID: a-leg']),
  ]);
  await until(async () => {
    await server.flush();
    return (await reader.stats()).messages === 3;
  }, 'three messages');
  assert.deepEqual(await reader.relatedCallIds('a-leg'), ['b-leg']);
  assert.deepEqual(await reader.relatedCallIds('b-leg'), ['a-leg']);
  assert.deepEqual(await reader.relatedCallIds('c-leg'), []);
  assert.deepEqual((await reader.getCall('b-leg'))?.correlation, ['a-leg']);
  assert.deepEqual((await reader.getCall('c-leg'))?.correlation, []);
  const [bLeg] = await reader.messagesOf(['b-leg']);
  assert.equal(bLeg?.xCorrelation, 'a-leg');
  const [cLeg] = await reader.messagesOf(['c-leg']);
  assert.equal(cLeg?.xCorrelation, undefined);
});
