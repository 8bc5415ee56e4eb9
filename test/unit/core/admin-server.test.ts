import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { type AdminServer, type HealthReport, startAdminServer } from '../../../src/core/admin-server.ts';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { Counter, createMetricsRegistry } from '../../../src/core/metrics.ts';

interface Checks {
  health: () => HealthReport | Promise<HealthReport>;
  ready: () => HealthReport | Promise<HealthReport>;
}

async function start(
  t: { after(fn: () => Promise<void>): void },
  checks: Partial<Checks> = {},
  extra: { processMetrics?: boolean; checkTimeoutMs?: number } = {},
): Promise<{ admin: AdminServer; metrics: ReturnType<typeof createMetricsRegistry> }> {
  const metrics = createMetricsRegistry();
  const admin = await startAdminServer({
    port: 0,
    metrics,
    health: checks.health ?? (() => ({ ok: true, checks: { loop: 'ok' } })),
    ready: checks.ready ?? (() => ({ ok: true })),
    logger: createSilentLogger(),
    ...extra,
  });
  t.after(() => admin.close());
  return { admin, metrics };
}

/** Sends raw bytes and returns everything the server answers before closing. */
function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
    });
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer')));
    socket.write(bytes);
  });
}

test('admin-server - binds loopback on a free port by default', async (t) => {
  const { admin } = await start(t);
  assert.ok(admin.port > 0);
  assert.equal(admin.url, `http://127.0.0.1:${admin.port}`);
});

test('admin-server - serves the registry in Prometheus text format', async (t) => {
  const { admin, metrics } = await start(t);
  const counter = new Counter({ name: 'switchyard_test_things_total', help: 'things', registers: [metrics] });
  counter.inc(3);
  const res = await fetch(`${admin.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const body = await res.text();
  assert.match(body, /^# TYPE switchyard_test_things_total counter$/m);
  assert.match(body, /^switchyard_test_things_total 3$/m);
  assert.doesNotMatch(body, /process_cpu_user_seconds_total/, 'process metrics only when asked');
});

test('admin-server - adds process metrics when asked, once per registry', async (t) => {
  const { admin, metrics } = await start(t, {}, { processMetrics: true });
  const again = await startAdminServer({
    port: 0,
    metrics,
    processMetrics: true,
    health: () => ({ ok: true }),
    ready: () => ({ ok: true }),
    logger: createSilentLogger(),
  });
  t.after(() => again.close());
  const body = await (await fetch(`${admin.url}/metrics`)).text();
  assert.match(body, /^process_cpu_user_seconds_total /m);
  assert.match(body, /^nodejs_eventloop_lag_seconds /m);
});

test('admin-server - healthz and readyz answer 200 with the checks when ok', async (t) => {
  const { admin } = await start(t, {
    health: () => ({ ok: true, checks: { lastPassMsAgo: 12 } }),
    ready: async () => ({ ok: true, checks: { kamailioReachable: true } }),
  });
  const health = await fetch(`${admin.url}/healthz`);
  assert.equal(health.status, 200);
  assert.match(health.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(await health.json(), { status: 'ok', checks: { lastPassMsAgo: 12 } });
  const ready = await fetch(`${admin.url}/readyz?verbose=1`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { status: 'ok', checks: { kamailioReachable: true } });
});

test('admin-server - healthz and readyz answer 503 when a check fails, throws or hangs', async (t) => {
  const { admin } = await start(
    t,
    {
      health: () => {
        throw new Error('loop stuck');
      },
      ready: () => ({ ok: false, checks: { kamailioReachable: false } }),
    },
    {},
  );
  const health = await fetch(`${admin.url}/healthz`);
  assert.equal(health.status, 503);
  assert.deepEqual(await health.json(), { status: 'fail', checks: { error: 'loop stuck' } });
  const ready = await fetch(`${admin.url}/readyz`);
  assert.equal(ready.status, 503);
  assert.deepEqual(await ready.json(), { status: 'fail', checks: { kamailioReachable: false } });

  const { admin: slow } = await start(
    t,
    { ready: () => new Promise<HealthReport>(() => {}) },
    { checkTimeoutMs: 50 },
  );
  const hung = await fetch(`${slow.url}/readyz`);
  assert.equal(hung.status, 503);
  assert.match(JSON.stringify(await hung.json()), /did not answer within 50 ms/);
});

test('admin-server - unknown paths get 404 and other methods 405', async (t) => {
  const { admin } = await start(t);
  const missing = await fetch(`${admin.url}/admin`);
  assert.equal(missing.status, 404);
  await missing.text();
  const post = await fetch(`${admin.url}/metrics`, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  await post.text();
  const head = await fetch(`${admin.url}/healthz`, { method: 'HEAD' });
  assert.equal(head.status, 200);
});

test('admin-server - garbage on the socket gets 400 and the server keeps serving', async (t) => {
  const { admin } = await start(t);
  const answer = await rawRequest(admin.port, 'NOT HTTP AT ALL\r\n\u0000\u0001\r\n\r\n');
  assert.match(answer, /^HTTP\/1\.1 400 /);
  const oversized = await rawRequest(admin.port, `GET /metrics HTTP/1.1\r\nx: ${'a'.repeat(20_000)}\r\n\r\n`);
  assert.match(oversized, /^HTTP\/1\.1 431 /);
  const ok = await fetch(`${admin.url}/healthz`);
  assert.equal(ok.status, 200);
  await ok.text();
});

test('admin-server - close() ends kept-alive connections and can be called twice', async (t) => {
  const { admin } = await start(t);
  const res = await fetch(`${admin.url}/metrics`, { headers: { connection: 'keep-alive' } });
  await res.text();
  await Promise.all([admin.close(), admin.close()]);
  await assert.rejects(fetch(`${admin.url}/metrics`));
});

test('admin-server - a port in use is a clear error', async (t) => {
  const { admin } = await start(t);
  await assert.rejects(
    startAdminServer({
      port: admin.port,
      metrics: createMetricsRegistry(),
      health: () => ({ ok: true }),
      ready: () => ({ ok: true }),
      logger: createSilentLogger(),
    }),
    /admin server cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
  );
});
