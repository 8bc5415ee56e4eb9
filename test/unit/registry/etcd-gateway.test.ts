import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { createGateway, EtcdGatewayError } from '../../../src/registry/etcd-gateway.ts';
import { freeTcpPort } from '../../harness/ports.ts';

/** A stand-in member: answers `{"ok":N}` with the count of requests, or resets the connection. */
async function member(
  t: TestContext,
  host: string,
  mode: 'answer' | 'reset',
): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => {
      if (mode === 'reset') req.socket.destroy();
      else res.end(JSON.stringify({ ok: hits }));
    });
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const { port } = server.address() as AddressInfo;
  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, hits: () => hits };
}

const logger = createSilentLogger();

test('etcd gateway - an IPv6 endpoint in brackets connects', async (t) => {
  const m = await member(t, '::1', 'answer');
  const gw = createGateway({ endpoints: [m.url], callTimeoutMs: 1000, logger });
  t.after(() => gw.close());
  assert.deepEqual(await gw.call('/v3/kv/range', {}), { ok: 1 });
});

test('etcd gateway - a reset after sending: idempotent calls fail over, others do not repeat themselves', async (t) => {
  const bad = await member(t, '127.0.0.1', 'reset');
  const good = await member(t, '127.0.0.1', 'answer');
  const gw = createGateway({ endpoints: [bad.url, good.url], callTimeoutMs: 1000, logger });
  t.after(() => gw.close());
  await assert.rejects(gw.call('/v3/kv/txn', {}, { idempotent: false }), EtcdGatewayError);
  assert.equal(good.hits(), 0, 'a txn that may have been applied is not sent again');
  // The failure moved the preferred member on; the next idempotent call goes there or fails over.
  assert.deepEqual(await gw.call('/v3/kv/range', {}), { ok: 1 });
});

test('etcd gateway - a refused connection is retried on the next member even when not idempotent', async (t) => {
  const closedPort = await freeTcpPort('127.0.0.1');
  const good = await member(t, '127.0.0.1', 'answer');
  const gw = createGateway({
    endpoints: [`http://127.0.0.1:${closedPort}`, good.url],
    callTimeoutMs: 1000,
    logger,
  });
  t.after(() => gw.close());
  assert.deepEqual(await gw.call('/v3/lease/grant', {}, { idempotent: false }), { ok: 1 });
});

test('etcd gateway - after close every call fails at once', async () => {
  const gw = createGateway({ endpoints: ['http://127.0.0.1:1'], callTimeoutMs: 1000, logger });
  gw.close();
  await assert.rejects(gw.call('/v3/kv/range', {}), /closed/);
});
