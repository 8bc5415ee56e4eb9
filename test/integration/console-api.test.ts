import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { CallSummary, CapturedMessage, CaptureStore } from '../../src/capture/model.ts';
import { openCaptureStore } from '../../src/capture/open-store.ts';
import type { KeptSummary } from '../../src/capture/status.ts';
import { buildConsoleApp, type ConsoleAppDeps } from '../../src/console/app.ts';
import {
  type ConsoleAuth,
  type ConsoleToken,
  createConsoleAuth,
  SESSION_COOKIE,
} from '../../src/console/auth.ts';
import { createEventLog, type EventLog } from '../../src/console/event-log.ts';
import type { CallDetail, ClusterModel, ClusterNode, LogEvent } from '../../src/console/model.ts';
import { API_ROUTES } from '../../src/console/routes.ts';
import { type ConsoleService, createConsoleService } from '../../src/console/service.ts';
import { createSilentLogger } from '../../src/core/logger.ts';
import { Registry as MetricsRegistry } from '../../src/core/metrics.ts';
import { type Announcement, createRegistry, openStore, type Registry } from '../../src/registry/index.ts';
import type { KvStore } from '../../src/registry/store.ts';
import { waitFor } from '../harness/wait.ts';

/**
 * The console over HTTP against real parts: an embedded registry and a SQLite capture store in a
 * temp dir, the console service following the registry, and the fastify app driven with
 * app.inject() (one test listens on 127.0.0.1 for the SSE stream). Every route of API_ROUTES is
 * exercised, with its auth, roles, CSRF and validation rules.
 */

const ADMIN: ConsoleToken = { name: 'ops', role: 'admin', token: 'admin-token-0123456789abcdefghij' };
const READER: ConsoleToken = { name: 'grafana', role: 'read', token: 'read-token-0123456789abcdefghijk' };

// Addresses: the load balancer and the nodes (documentation only: nothing is sent anywhere).
const LB = { ip: '127.0.0.1', port: 5060 };
const AST1 = { id: 'ast-1', ip: '127.0.0.2', port: 5080 };
const AST2 = { id: 'ast-2', ip: '127.0.0.4', port: 5080 };
const PBX = { id: 'pbx-1', ip: '127.0.0.3', port: 5060 };

const S = 1_000_000;
const enc = new TextEncoder();

interface Leg {
  callId: string;
  from: string;
  to: string;
  node: { ip: string; port: number };
}

/** One message between the LB and a node: requests LB -> node, responses node -> LB. */
function message(
  leg: Leg,
  tsUs: number,
  what: { method?: string; status?: number; cseq?: string },
): CapturedMessage {
  const request = what.method !== undefined;
  const cseq = what.cseq ?? `1 ${what.method ?? 'INVITE'}`;
  const line = request
    ? `${what.method} sip:${leg.to}@${leg.node.ip}:${leg.node.port} SIP/2.0`
    : `SIP/2.0 ${what.status} ${what.status === 200 ? 'OK' : 'Reason'}`;
  const m: CapturedMessage = {
    tsUs,
    srcIp: request ? LB.ip : leg.node.ip,
    srcPort: request ? LB.port : leg.node.port,
    dstIp: request ? leg.node.ip : LB.ip,
    dstPort: request ? leg.node.port : LB.port,
    transport: 'udp',
    captureId: 1,
    callId: leg.callId,
    cseq,
    fromUser: leg.from,
    toUser: leg.to,
    fromTag: 'ft1',
    raw: enc.encode(
      `${line}\r\nVia: SIP/2.0/UDP ${LB.ip}:${LB.port};branch=z9hG4bK1\r\n` +
        `From: <sip:${leg.from}@${LB.ip}>;tag=ft1\r\nTo: <sip:${leg.to}@${leg.node.ip}>\r\n` +
        `Call-ID: ${leg.callId}\r\nCSeq: ${cseq}\r\nContent-Length: 0\r\n\r\n`,
    ),
  };
  if (what.method !== undefined) m.method = what.method;
  if (what.status !== undefined) m.status = what.status;
  if (what.method !== 'INVITE') m.toTag = 'tt1';
  return m;
}

/** INVITE/100/180/200/ACK/BYE/200, or INVITE/100/503. */
function call(leg: Leg, atUs: number, outcome: 'answered' | 'failed'): CapturedMessage[] {
  const out = [message(leg, atUs, { method: 'INVITE' }), message(leg, atUs + 1000, { status: 100 })];
  if (outcome === 'failed') return [...out, message(leg, atUs + S / 2, { status: 503 })];
  return [
    ...out,
    message(leg, atUs + 50_000, { status: 180 }),
    message(leg, atUs + 2 * S, { status: 200 }),
    message(leg, atUs + 2 * S + 10_000, { method: 'ACK' }),
    message(leg, atUs + 10 * S, { method: 'BYE', cseq: '2 BYE' }),
    message(leg, atUs + 10 * S + 5000, { status: 200, cseq: '2 BYE' }),
  ];
}

const OK_CALL = 'call-ok-1@switchyard.test';
const FAILED_CALL = 'call-failed-1@switchyard.test';
const OLD_CALL = 'call-old-1@switchyard.test';

interface Ask {
  token?: string;
  cookie?: string;
  csrf?: string;
  headers?: Record<string, string>;
  body?: unknown;
  form?: Record<string, string>;
}

describe('console api', () => {
  let dir: string;
  let kv: KvStore;
  let registry: Registry;
  let capture: CaptureStore;
  let events: EventLog;
  let service: ConsoleService;
  let auth: ConsoleAuth;
  let app: FastifyInstance;
  let appDeps: ConsoleAppDeps;
  let ast1: Announcement;
  let ast2: Announcement;
  const startedMs = Date.now();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'switchyard-console-'));
    const logger = createSilentLogger();
    kv = await openStore(`embedded:${join(dir, 'registry.db')}`, { logger });
    registry = createRegistry(kv, { logger });
    capture = await openCaptureStore(`sqlite:${join(dir, 'capture.db')}`, { logger });

    const startedAt = new Date(startedMs - 3_600_000).toISOString();
    ast1 = await registry.announce(
      {
        id: AST1.id,
        uri: `sip:${AST1.ip}:${AST1.port}`,
        state: 'ready',
        calls: 2,
        weight: 10,
        version: 'Asterisk 20.5.0',
        startedAt,
        stats: { phase: 'up', callsSource: 'capture' },
      },
      { ttlMs: 10_000 },
    );
    ast2 = await registry.announce(
      {
        id: AST2.id,
        uri: `sip:${AST2.ip}:${AST2.port}`,
        state: 'ready',
        calls: 0,
        version: 'Asterisk 20.5.0',
        startedAt,
        stats: { phase: 'up', callsSource: 'capture' },
      },
      { ttlMs: 10_000 },
    );
    await registry.putStatic({ id: PBX.id, uri: `sip:${PBX.ip}:${PBX.port}`, weight: 5 });

    const t0 = (startedMs - 60_000) * 1000;
    await capture.insertBatch([
      ...call({ callId: OK_CALL, from: '5551000', to: '2000', node: AST1 }, t0, 'answered'),
      ...call({ callId: FAILED_CALL, from: '5552000', to: '3000', node: AST2 }, t0 + 20 * S, 'failed'),
      ...call(
        { callId: OLD_CALL, from: '5553000', to: '2000', node: AST1 },
        (startedMs - 2 * 3_600_000) * 1000,
        'answered',
      ),
    ]);
    await capture.recordEvent({
      tsUs: t0 + 5 * S,
      kind: 'node.phase',
      subject: AST1.id,
      detail: { from: 'warm-up', to: 'up' },
    });

    events = createEventLog();
    service = createConsoleService({ registry, calls: capture, events, logger });
    await service.start();
    auth = createConsoleAuth({ tokens: [ADMIN, READER] });
    appDeps = {
      service,
      events,
      auth,
      title: 'switchyard test',
      version: '0.0.0-test',
      allowedHosts: ['127.0.0.1', 'localhost'],
      metrics: new MetricsRegistry(),
      health: () => ({ ok: true, checks: { registry: service.registryConnected() } }),
      ready: () => ({ ok: service.registryConnected() }),
      logger,
    };
    app = await buildConsoleApp(appDeps);
    await waitFor(() => service.cluster().nodes.length === 3, { what: 'the service to see 3 nodes' });
  });

  after(async () => {
    // fetch (undici) may keep a spare socket that never sent a request; server.close() waits for
    // the client to drop it (about 4 s), so the sockets this test opened are closed here.
    if (app?.server.listening) app.server.closeAllConnections();
    await app?.close();
    await service?.close();
    await ast1?.withdraw();
    await ast2?.withdraw();
    await registry?.close();
    await kv?.close();
    await capture?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ask = (method: 'GET' | 'POST', url: string, opts: Ask = {}, on: FastifyInstance = app) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
    if (opts.cookie !== undefined) headers['cookie'] = `${SESSION_COOKIE}=${opts.cookie}`;
    if (opts.csrf !== undefined) headers['x-csrf-token'] = opts.csrf;
    if (opts.form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const payload =
      opts.form !== undefined
        ? new URLSearchParams(opts.form).toString()
        : opts.body === undefined
          ? undefined
          : JSON.stringify(opts.body);
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    return on.inject({ method, url, headers, ...(payload === undefined ? {} : { payload }) });
  };
  const admin = (method: 'GET' | 'POST', url: string, opts: Ask = {}) =>
    ask(method, url, { token: ADMIN.token, ...opts });
  const json = <T>(res: { json(): unknown }) => res.json() as T;
  /** A concrete URL for a route template. */
  const urlOf = (template: string) =>
    template.replace(':id', AST2.id).replace(':callId', encodeURIComponent(OK_CALL));
  const sessionOf = async (token = ADMIN) => {
    const res = await ask('POST', '/login', { form: { token: token.token, next: '/' } });
    assert.equal(res.statusCode, 303);
    const id = /sy_session=([^;]*)/.exec(String(res.headers['set-cookie']))?.[1];
    assert.ok(id);
    const session = auth.getSession(id);
    assert.ok(session);
    return { id, csrf: session.csrfToken };
  };

  // ---- auth and roles -------------------------------------------------------------------------

  test('console api - every API route needs credentials: 401 JSON without them', async () => {
    for (const route of API_ROUTES) {
      const res = await ask(route.method, urlOf(route.url));
      assert.equal(res.statusCode, 401, `${route.method} ${route.url}`);
      assert.match(String(res.headers['content-type']), /application\/json/);
      assert.equal(json<{ error: { code: string } }>(res).error.code, 'SY_ERR_UNAUTHENTICATED');
    }
  });

  test('console api - pages without a session redirect to /login', async () => {
    for (const url of [
      '/',
      '/fragments/cluster',
      '/calls',
      '/events',
      `/calls/${encodeURIComponent(OK_CALL)}`,
    ]) {
      const res = await ask('GET', url);
      assert.equal(res.statusCode, 303, url);
      assert.equal(res.headers['location'], `/login?next=${encodeURIComponent(url)}`);
    }
  });

  test('console api - a wrong bearer token gets 401', async () => {
    for (const token of ['wrong-token-0123456789abcdefghij', `${ADMIN.token}x`, '']) {
      const res = await ask('GET', '/api/v1/whoami', { token });
      assert.equal(res.statusCode, 401, JSON.stringify(token));
    }
    const res = await ask('POST', `/api/v1/nodes/${AST2.id}/drain`, { token: 'nope' });
    assert.equal(res.statusCode, 401);
    assert.equal((await registry.getIntent(AST2.id))?.drain ?? false, false);
  });

  test('console api - a read token gets 403 on every POST route and changes nothing', async () => {
    const posts = API_ROUTES.filter((r) => r.method === 'POST');
    assert.equal(posts.length, 5);
    for (const route of posts) {
      const body = route.url.endsWith('/weight') ? { weight: 50 } : {};
      const res = await ask('POST', urlOf(route.url), { token: READER.token, body });
      assert.equal(res.statusCode, 403, route.url);
      assert.equal(json<{ error: { code: string } }>(res).error.code, 'SY_ERR_FORBIDDEN');
    }
    assert.equal(await registry.getIntent(AST2.id), undefined);
  });

  test('console api - whoami names the token and its role', async () => {
    assert.deepEqual(json(await admin('GET', '/api/v1/whoami')), { name: 'ops', role: 'admin' });
    assert.deepEqual(json(await ask('GET', '/api/v1/whoami', { token: READER.token })), {
      name: 'grafana',
      role: 'read',
    });
  });

  // ---- reads ----------------------------------------------------------------------------------

  test('console api - GET cluster shows agents and the static node', async () => {
    const res = await ask('GET', '/api/v1/cluster', { token: READER.token });
    assert.equal(res.statusCode, 200);
    const model = json<ClusterModel>(res);
    assert.ok(model.revision > 0);
    const byId = new Map(model.nodes.map((n) => [n.id, n]));
    assert.deepEqual([...byId.keys()].sort(), [AST1.id, AST2.id, PBX.id]);
    const a1 = byId.get(AST1.id);
    assert.equal(a1?.source, 'agent');
    assert.equal(a1?.effective, 'in-rotation');
    assert.equal(a1?.calls, 2);
    assert.equal(a1?.callsSource, 'capture');
    assert.equal(a1?.phase, 'up');
    assert.equal(a1?.healthy, true);
    const pbx = byId.get(PBX.id);
    assert.equal(pbx?.source, 'static');
    assert.equal(pbx?.calls, null);
    assert.equal(pbx?.weight, 5);
  });

  test('console api - GET nodes/:id: one node, 404 unknown, 400 bad id', async () => {
    const res = await admin('GET', `/api/v1/nodes/${AST1.id}`);
    assert.equal(res.statusCode, 200);
    assert.equal(json<ClusterNode>(res).uri, `sip:${AST1.ip}:${AST1.port}`);

    const missing = await admin('GET', '/api/v1/nodes/ast-99');
    assert.equal(missing.statusCode, 404);
    assert.equal(json<{ error: { code: string } }>(missing).error.code, 'SY_ERR_NODE_NOT_FOUND');

    for (const bad of ['-starts-with-dash', 'has%20space', 'semi%3Bcolon', 'x'.repeat(64)]) {
      const r = await admin('GET', `/api/v1/nodes/${bad}`);
      assert.equal(r.statusCode, 400, bad);
      const { error } = json<{ error: { code: string; message: string } }>(r);
      assert.equal(error.code, 'SY_ERR_INVALID_ARGUMENT');
      assert.match(error.message, /^path\.id: /);
    }
  });

  test('console api - GET events: newest first, limit, afterUs, validated query', async () => {
    const res = await admin('GET', '/api/v1/events');
    assert.equal(res.statusCode, 200);
    const list = json<{ events: LogEvent[] }>(res).events;
    const ups = list.filter((e) => e.kind === 'node.up').map((e) => e.subject);
    assert.ok(ups.includes(AST1.id) && ups.includes(AST2.id), JSON.stringify(list));
    for (let i = 1; i < list.length; i++)
      assert.ok((list[i - 1] as LogEvent).tsUs >= (list[i] as LogEvent).tsUs);

    assert.equal(json<{ events: LogEvent[] }>(await admin('GET', '/api/v1/events?limit=1')).events.length, 1);
    const future = (Date.now() + 3_600_000) * 1000;
    assert.deepEqual(
      json<{ events: LogEvent[] }>(await admin('GET', `/api/v1/events?afterUs=${future}`)).events,
      [],
    );
    for (const q of ['limit=0', 'limit=abc', 'afterUs=-1', 'color=red']) {
      const r = await admin('GET', `/api/v1/events?${q}`);
      assert.equal(r.statusCode, 400, q);
      assert.match(json<{ error: { message: string } }>(r).error.message, /^query[.:]/);
    }
  });

  test('console api - GET calls: all, since, number, status and node filters', async () => {
    const ids = async (q: string) => {
      const res = await admin('GET', `/api/v1/calls${q}`);
      assert.equal(res.statusCode, 200, q);
      return json<{ calls: CallSummary[] }>(res)
        .calls.map((c) => c.callId)
        .sort();
    };
    assert.deepEqual(await ids(''), [FAILED_CALL, OK_CALL, OLD_CALL].sort());
    assert.deepEqual(await ids('?since=1h'), [FAILED_CALL, OK_CALL].sort());
    assert.deepEqual(await ids('?number=2000'), [OK_CALL, OLD_CALL].sort());
    assert.deepEqual(await ids('?number=5552000'), [FAILED_CALL]);
    assert.deepEqual(await ids('?status=failed'), [FAILED_CALL]);
    assert.deepEqual(await ids('?status=answered&since=1h'), [OK_CALL]);
    // A node id is resolved to its SIP address.
    assert.deepEqual(await ids(`?node=${AST1.id}`), [OK_CALL, OLD_CALL].sort());
    assert.deepEqual(await ids(`?node=${AST2.id}`), [FAILED_CALL]);
    assert.deepEqual(await ids(`?node=${AST2.ip}:${AST2.port}`), [FAILED_CALL]);
    assert.deepEqual(await ids(`?node=${PBX.id}`), []);
    assert.deepEqual(await ids('?limit=1&since=1h'), [FAILED_CALL], 'newest first');

    const list = json<{ calls: CallSummary[] }>(await admin('GET', '/api/v1/calls?since=1h')).calls;
    const failed = list.find((c) => c.callId === FAILED_CALL);
    assert.equal(failed?.status, 'failed');
    assert.equal(failed?.finalStatus, 503);
  });

  test('console api - GET capture says what the store keeps; 404 where capture does not run', async () => {
    // A retention run that removes nothing but records its policy, as the capture role's loop does.
    await capture.applyRetention(
      { maxAgeMs: 7 * 24 * 3_600_000, maxBytes: 1024 * 1_048_576 },
      Date.now() * 1000,
    );
    const kept = json<KeptSummary>(await ask('GET', '/api/v1/capture', { token: READER.token }));
    const stats = await capture.stats();
    assert.equal(kept.store, 'sqlite');
    assert.equal(kept.calls, 3);
    assert.equal(kept.messages, stats.messages);
    assert.ok(kept.messages > 3 && kept.bytes > 0);
    assert.equal(
      kept.oldest,
      new Date(startedMs - 2 * 3_600_000).toISOString(),
      'the old call is the oldest',
    );
    assert.deepEqual(
      {
        maxAgeMs: kept.retention.maxAgeMs,
        maxBytes: kept.retention.maxBytes,
        removed: kept.retention.lastRemovedMessages,
      },
      { maxAgeMs: 604_800_000, maxBytes: 1_073_741_824, removed: 0 },
    );
    assert.ok(kept.retention.lastRun !== undefined);
    const page = await ask('GET', '/calls', { token: READER.token });
    assert.match(page.body, /data-testid="capture-kept">Capture holds 3 calls/);

    const bare = createConsoleService({ registry, events, logger: createSilentLogger() });
    const noCapture = await buildConsoleApp({ ...appDeps, service: bare, metrics: new MetricsRegistry() });
    try {
      const res = await ask('GET', '/api/v1/capture', { token: READER.token }, noCapture);
      assert.equal(res.statusCode, 404);
    } finally {
      await noCapture.close();
      await bare.close();
    }
  });

  test('console api - GET calls: bad filters get 400', async () => {
    for (const q of [
      'since=yesterday',
      'since=15',
      'since=-1h',
      'status=lost',
      'limit=0',
      'foo=bar',
      'number=a%0Db',
    ]) {
      const res = await admin('GET', `/api/v1/calls?${q}`);
      assert.equal(res.statusCode, 400, q);
      assert.match(json<{ error: { message: string } }>(res).error.message, /^query[.:]/, q);
    }
  });

  test('console api - GET calls/:callId: summary, messages, nodes and control events', async () => {
    const res = await admin('GET', `/api/v1/calls/${encodeURIComponent(OK_CALL)}`);
    assert.equal(res.statusCode, 200);
    const detail = json<CallDetail & { trace?: unknown }>(res);
    assert.equal(detail.trace, undefined, 'the raw trace stays on the server');
    assert.equal(detail.call.callId, OK_CALL);
    assert.equal(detail.call.status, 'answered');
    assert.deepEqual(
      detail.messages.map((m) => m.label.split(' ')[0]),
      ['INVITE', '100', '180', '200', 'ACK', 'BYE', '200'],
    );
    assert.equal(detail.messages[0]?.src, `${LB.ip}:${LB.port}`);
    assert.equal(detail.messages[0]?.dst, `${AST1.ip}:${AST1.port}`);
    assert.deepEqual(detail.nodes, [AST1.id]);
    assert.ok(
      detail.events.some((e) => e.kind === 'node.phase' && e.subject === AST1.id),
      JSON.stringify(detail.events),
    );
  });

  test('console api - GET calls/:callId: 404 unknown, 400 control characters', async () => {
    const missing = await admin('GET', '/api/v1/calls/no-such-call');
    assert.equal(missing.statusCode, 404);
    for (const sub of ['', '/ladder.svg', '/pcap', '/text']) {
      assert.equal((await admin('GET', `/api/v1/calls/no-such-call${sub}`)).statusCode, 404, sub);
      const bad = await admin('GET', `/api/v1/calls/a%01b${sub}`);
      assert.equal(bad.statusCode, 400, sub);
      assert.match(json<{ error: { message: string } }>(bad).error.message, /^path\.callId: /);
    }
  });

  test('console api - GET ladder.svg, pcap and text of a call', async () => {
    const base = `/api/v1/calls/${encodeURIComponent(OK_CALL)}`;
    const svg = await admin('GET', `${base}/ladder.svg`);
    assert.equal(svg.statusCode, 200);
    assert.match(String(svg.headers['content-type']), /^image\/svg\+xml/);
    assert.match(svg.body, /<svg[\s>]/);
    assert.match(svg.body, /INVITE/);

    const pcap = await admin('GET', `${base}/pcap`);
    assert.equal(pcap.statusCode, 200);
    assert.match(String(pcap.headers['content-type']), /^application\/vnd\.tcpdump\.pcap/);
    assert.match(
      String(pcap.headers['content-disposition']),
      /^attachment; filename="call-call-ok-1_switchyard\.test\.pcap"$/,
    );
    const bytes = pcap.rawPayload;
    assert.deepEqual([...bytes.subarray(0, 4)], [0xd4, 0xc3, 0xb2, 0xa1], 'pcap magic, little-endian');
    assert.ok(bytes.length > 24 + 7 * 16, 'global header and 7 records');

    const text = await admin('GET', `${base}/text`);
    assert.equal(text.statusCode, 200);
    assert.match(String(text.headers['content-type']), /^text\/plain/);
    assert.match(text.body, /INVITE sip:2000@127\.0\.0\.2:5080/);
    assert.match(text.body, /BYE/);
  });

  test('console api - GET openapi.json is OpenAPI 3.1 with every route', async () => {
    const res = await ask('GET', '/api/v1/openapi.json', { token: READER.token });
    assert.equal(res.statusCode, 200);
    const doc = json<{
      openapi: string;
      info: { title: string; version: string };
      paths: Record<string, Record<string, { summary: string; responses: Record<string, unknown> }>>;
    }>(res);
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(doc.info.version, '0.0.0-test');
    for (const route of API_ROUTES) {
      const path = route.url.replace(/:(\w+)/g, '{$1}');
      const op = doc.paths[path]?.[route.method.toLowerCase()];
      assert.ok(op, `${route.method} ${path} documented`);
      assert.equal(op.summary, route.summary);
      assert.ok(op.responses['200'] && op.responses['401']);
      if (route.role === 'admin') assert.ok(op.responses['403'], `${path} documents 403`);
    }
    assert.equal(Object.keys(doc.paths).length, new Set(API_ROUTES.map((r) => r.url)).size);
  });

  // ---- changes --------------------------------------------------------------------------------

  test('console api - POST drain: intent set, audited, progress waits for calls to reach 0', async () => {
    const res = await admin('POST', `/api/v1/nodes/${AST1.id}/drain`, { body: { reason: 'kernel update' } });
    assert.equal(res.statusCode, 200);
    const node = json<ClusterNode>(res);
    assert.equal(node.effective, 'drained');
    assert.equal(node.intent?.drain, true);
    assert.equal(node.drain?.state, 'waiting');
    assert.equal(node.drain?.startCalls, 2);
    assert.equal(node.drain?.by, 'ops');

    const intent = await registry.getIntent(AST1.id);
    assert.equal(intent?.drain, true);
    assert.equal(intent?.by, 'ops');
    assert.equal(intent?.reason, 'kernel update');
    const audit = events.list().find((e) => e.kind === 'operator.drain' && e.subject === AST1.id);
    assert.equal(audit?.actor, 'ops');
    assert.deepEqual(audit?.detail, { reason: 'kernel update' });

    await ast1.update({ calls: 1 });
    await waitFor(
      async () => json<ClusterNode>(await admin('GET', `/api/v1/nodes/${AST1.id}`)).drain?.calls === 1,
      {
        what: 'drain progress to follow the calls',
      },
    );
    assert.equal(service.node(AST1.id)?.drain?.state, 'waiting');

    await ast1.update({ calls: 0 });
    const done = await waitFor(
      async () => {
        const n = json<ClusterNode>(await admin('GET', `/api/v1/nodes/${AST1.id}`));
        return n.drain?.state === 'done' ? n : undefined;
      },
      { what: 'the drain to be done' },
    );
    assert.equal(done.drain?.calls, 0);
    assert.ok(done.drain?.finishedAt);
    assert.ok(
      events.list().some((e) => e.kind === 'drain.done' && e.subject === AST1.id && e.actor === 'ops'),
    );
  });

  test('console api - POST undrain lifts the drain', async () => {
    const res = await admin('POST', `/api/v1/nodes/${AST1.id}/undrain`);
    assert.equal(res.statusCode, 200);
    assert.equal(json<ClusterNode>(res).effective, 'in-rotation');
    assert.equal((await registry.getIntent(AST1.id))?.drain, false);
    assert.equal(events.list().find((e) => e.kind === 'operator.undrain')?.actor, 'ops');
  });

  test('console api - POST drain then undrain before the calls end cancels the drain', async () => {
    await ast1.update({ calls: 3 });
    await waitFor(() => service.node(AST1.id)?.calls === 3, { what: 'calls 3' });
    const drained = json<ClusterNode>(await admin('POST', `/api/v1/nodes/${AST1.id}/drain`));
    assert.equal(drained.drain?.state, 'waiting');
    const res = json<ClusterNode>(await admin('POST', `/api/v1/nodes/${AST1.id}/undrain`));
    assert.equal(res.drain?.state, 'cancelled');
    assert.ok(events.list().some((e) => e.kind === 'drain.cancelled' && e.subject === AST1.id));
  });

  test('console api - POST disable and enable', async () => {
    const off = await admin('POST', `/api/v1/nodes/${AST2.id}/disable`, { body: {} });
    assert.equal(off.statusCode, 200);
    assert.equal(json<ClusterNode>(off).effective, 'disabled');
    assert.equal((await registry.getIntent(AST2.id))?.disable, true);
    assert.equal(events.list().find((e) => e.kind === 'operator.disable')?.subject, AST2.id);

    const on = await admin('POST', `/api/v1/nodes/${AST2.id}/enable`);
    assert.equal(on.statusCode, 200);
    assert.equal(json<ClusterNode>(on).effective, 'in-rotation');
    assert.equal((await registry.getIntent(AST2.id))?.disable, false);
    assert.equal(events.list().find((e) => e.kind === 'operator.enable')?.actor, 'ops');
  });

  test('console api - POST weight sets and clears the override', async () => {
    const set = await admin('POST', `/api/v1/nodes/${PBX.id}/weight`, { body: { weight: 40 } });
    assert.equal(set.statusCode, 200);
    assert.equal(json<ClusterNode>(set).weight, 40);
    assert.equal(json<ClusterNode>(set).weightOverridden, true);
    assert.equal((await registry.getIntent(PBX.id))?.weight, 40);
    const audit = events.list().find((e) => e.kind === 'operator.weight');
    assert.deepEqual([audit?.actor, audit?.subject, audit?.detail], ['ops', PBX.id, { weight: 40 }]);

    const cleared = await admin('POST', `/api/v1/nodes/${PBX.id}/weight`, { body: { weight: null } });
    assert.equal(cleared.statusCode, 200);
    assert.equal(json<ClusterNode>(cleared).weight, 5, "back to the node's own weight");
    assert.equal(json<ClusterNode>(cleared).weightOverridden, false);
    assert.equal((await registry.getIntent(PBX.id))?.weight, undefined);
  });

  test('console api - POST validation: weight range and type, unknown keys, unknown node', async () => {
    for (const body of [
      { weight: 0 },
      { weight: 101 },
      { weight: '50' },
      { weight: 1.5 },
      {},
      { weight: 5, extra: 1 },
    ]) {
      const res = await admin('POST', `/api/v1/nodes/${AST2.id}/weight`, { body });
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.match(json<{ error: { message: string } }>(res).error.message, /^body/);
    }
    const unknownKey = await admin('POST', `/api/v1/nodes/${AST2.id}/drain`, {
      body: { reason: 'x', force: true },
    });
    assert.equal(unknownKey.statusCode, 400);
    const badReason = await admin('POST', `/api/v1/nodes/${AST2.id}/drain`, { body: { reason: 'a\nb' } });
    assert.equal(badReason.statusCode, 400);
    assert.match(json<{ error: { message: string } }>(badReason).error.message, /body\.reason/);
    const badId = await admin('POST', '/api/v1/nodes/bad%20id/drain');
    assert.equal(badId.statusCode, 400);
    assert.match(json<{ error: { message: string } }>(badId).error.message, /^path\.id: /);

    for (const action of ['drain', 'undrain', 'disable', 'enable']) {
      const res = await admin('POST', `/api/v1/nodes/ast-99/${action}`);
      assert.equal(res.statusCode, 404, action);
    }
    assert.equal(
      (await admin('POST', '/api/v1/nodes/ast-99/weight', { body: { weight: 5 } })).statusCode,
      404,
    );
    assert.equal(await registry.getIntent('ast-99'), undefined, 'no intent written for an unknown node');
    assert.equal((await registry.getIntent(AST2.id))?.drain ?? false, false);
  });

  // ---- sessions ---------------------------------------------------------------------------------

  test('console api - GET /login?code signs in once with a strict cookie', async () => {
    const code = auth.createLoginCode({ name: ADMIN.name, role: 'admin' });
    const res = await ask('GET', `/login?code=${code}&next=${encodeURIComponent('/events')}`);
    assert.equal(res.statusCode, 303);
    assert.equal(res.headers['location'], '/events');
    const cookie = String(res.headers['set-cookie']);
    const attrs = cookie.split(';').map((p) => p.trim());
    assert.match(attrs[0] ?? '', /^sy_session=[A-Za-z0-9_-]{40,}$/);
    assert.ok(attrs.includes('HttpOnly'));
    assert.ok(attrs.includes('SameSite=Strict'));
    assert.ok(attrs.includes('Path=/'));
    assert.ok(attrs.some((a) => /^Max-Age=\d+$/.test(a)));
    const id = (attrs[0] ?? '').slice('sy_session='.length);
    assert.deepEqual(json(await ask('GET', '/api/v1/whoami', { cookie: id })), {
      name: 'ops',
      role: 'admin',
    });

    const again = await ask('GET', `/login?code=${code}`);
    assert.equal(again.statusCode, 401);
    assert.equal(again.headers['set-cookie'], undefined);
    assert.match(again.body, /used already or has expired/);

    // Off-site `next` is never followed.
    const code2 = auth.createLoginCode({ name: ADMIN.name, role: 'admin' });
    const offsite = await ask('GET', `/login?code=${code2}&next=${encodeURIComponent('//evil.example/')}`);
    assert.equal(offsite.headers['location'], '/');
  });

  test('console api - POST /login with a token signs in; a bad token gets 401', async () => {
    const page = await ask('GET', '/login');
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /name="token"/);

    const { id } = await sessionOf(READER);
    assert.deepEqual(json(await ask('GET', '/api/v1/whoami', { cookie: id })), {
      name: 'grafana',
      role: 'read',
    });
    assert.ok(events.list().some((e) => e.kind === 'operator.signin' && e.actor === 'grafana'));

    const bad = await ask('POST', '/login', { form: { token: 'wrong-token-0123456789abcdefghij' } });
    assert.equal(bad.statusCode, 401);
    assert.equal(bad.headers['set-cookie'], undefined);
    assert.match(String(bad.headers['content-type']), /text\/html/);
  });

  test('console api - POST /login refuses with 429 after 20 failures a minute', async () => {
    // An app of its own: the failure counter is per app and blocks every sign-in once tripped.
    const other = await buildConsoleApp({ ...appDeps, metrics: new MetricsRegistry() });
    try {
      let statuses: number[] = [];
      // Retried once if the minute turned during the burst (the counter is per clock minute).
      for (let attempt = 0; attempt < 2; attempt++) {
        const minute = Math.floor(Date.now() / 60_000);
        statuses = [];
        for (let i = 0; i < 21; i++) {
          const res = await ask(
            'POST',
            '/login',
            { form: { token: `wrong-${i}-0123456789abcdefghij` } },
            other,
          );
          statuses.push(res.statusCode);
        }
        if (Math.floor(Date.now() / 60_000) === minute) break;
      }
      assert.deepEqual(statuses, [...Array(20).fill(401), 429]);
      const good = await ask('POST', '/login', { form: { token: ADMIN.token } }, other);
      assert.equal(good.statusCode, 429, 'even a good token waits');
      assert.equal(good.headers['set-cookie'], undefined);
    } finally {
      await other.close();
    }
  });

  test('console api - a session POST needs the CSRF token and a same-origin Origin', async () => {
    const { id, csrf } = await sessionOf();
    const url = `/api/v1/nodes/${PBX.id}/enable`;
    const none = await ask('POST', url, { cookie: id });
    assert.equal(none.statusCode, 403);
    assert.equal(json<{ error: { code: string } }>(none).error.code, 'SY_ERR_CSRF');
    const wrong = await ask('POST', url, { cookie: id, csrf: `${csrf}x` });
    assert.equal(wrong.statusCode, 403);
    const foreign = await ask('POST', url, { cookie: id, csrf, headers: { origin: 'http://evil.example' } });
    assert.equal(foreign.statusCode, 403);
    assert.match(json<{ error: { message: string } }>(foreign).error.message, /cross-origin/);

    const ok = await ask('POST', url, { cookie: id, csrf });
    assert.equal(ok.statusCode, 200);
    const sameOrigin = await ask('POST', url, {
      cookie: id,
      csrf,
      headers: { origin: 'http://localhost:80' },
    });
    assert.equal(sameOrigin.statusCode, 200);
    const audit = events.list().find((e) => e.kind === 'operator.enable' && e.subject === PBX.id);
    assert.equal(audit?.actor, 'ops');

    // The page carries the CSRF token for its forms and scripts.
    const page = await ask('GET', '/', { cookie: id });
    assert.ok(page.body.includes(csrf));

    // A read-only session passes CSRF and still gets 403 for the role.
    const reader = await sessionOf(READER);
    const denied = await ask('POST', url, { cookie: reader.id, csrf: reader.csrf });
    assert.equal(denied.statusCode, 403);
    assert.equal(json<{ error: { code: string } }>(denied).error.code, 'SY_ERR_FORBIDDEN');
  });

  test('console api - POST /logout ends the session', async () => {
    const { id, csrf } = await sessionOf();
    const noCsrf = await ask('POST', '/logout', { cookie: id });
    assert.equal(noCsrf.statusCode, 403);
    const res = await ask('POST', '/logout', { cookie: id, form: { csrf } });
    assert.equal(res.statusCode, 303);
    assert.equal(res.headers['location'], '/login');
    assert.match(String(res.headers['set-cookie']), /^sy_session=; .*Max-Age=0/);
    assert.equal(auth.getSession(id), undefined);
    assert.equal((await ask('GET', '/api/v1/whoami', { cookie: id })).statusCode, 401);
    assert.equal((await ask('GET', '/', { cookie: id })).statusCode, 303);
  });

  // ---- pages, headers, host check -----------------------------------------------------------------

  test('console api - pages render for a session, with security headers', async () => {
    const { id } = await sessionOf();
    for (const url of [
      '/',
      '/fragments/cluster',
      '/calls',
      '/calls?since=1h&status=answered',
      `/calls/${encodeURIComponent(OK_CALL)}`,
      '/events',
    ]) {
      const res = await ask('GET', url, { cookie: id });
      assert.equal(res.statusCode, 200, url);
      assert.match(String(res.headers['content-type']), /^text\/html/, url);
      assert.match(String(res.headers['content-security-policy']), /default-src 'self'/, url);
      assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/, url);
      assert.equal(res.headers['x-frame-options'], 'DENY', url);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', url);
    }
    const cluster = await ask('GET', '/', { cookie: id });
    assert.ok(cluster.body.includes(AST1.id) && cluster.body.includes(PBX.id));
    const callPage = await ask('GET', `/calls/${encodeURIComponent(OK_CALL)}`, { cookie: id });
    assert.match(callPage.body, /<svg/);
    const missing = await ask('GET', '/calls/no-such-call', { cookie: id });
    assert.equal(missing.statusCode, 404);
    assert.match(String(missing.headers['content-type']), /^text\/html/);
    const badFilter = await ask('GET', '/calls?since=forever', { cookie: id });
    assert.equal(badFilter.statusCode, 400);
  });

  test('console api - an unexpected Host header gets 421', async () => {
    for (const url of ['/api/v1/whoami', '/', '/healthz']) {
      const res = await admin('GET', url, { headers: { host: 'evil.example' } });
      assert.equal(res.statusCode, 421, url);
    }
    const api = await admin('GET', '/api/v1/whoami', { headers: { host: 'evil.example:8080' } });
    assert.equal(json<{ error: { code: string } }>(api).error.code, 'SY_ERR_MISDIRECTED');
    assert.equal(
      (await admin('GET', '/api/v1/whoami', { headers: { host: '127.0.0.1:9999' } })).statusCode,
      200,
    );
    assert.equal((await admin('GET', '/api/v1/whoami', { headers: { host: 'LOCALHOST' } })).statusCode, 200);
  });

  // ---- operations surface -----------------------------------------------------------------------

  test('console api - /metrics, /healthz and /readyz answer without credentials', async () => {
    const metrics = await ask('GET', '/metrics');
    assert.equal(metrics.statusCode, 200);
    assert.match(metrics.body, /^# HELP switchyard_console_requests_total /m);
    assert.match(
      metrics.body,
      /switchyard_console_requests_total\{route="\/api\/v1\/whoami",status="200"\} \d+/,
    );
    assert.match(metrics.body, /switchyard_console_stream_clients 0/);

    const health = await ask('GET', '/healthz');
    assert.equal(health.statusCode, 200);
    assert.deepEqual(json(health), { status: 'ok', checks: { registry: true } });
    const ready = await ask('GET', '/readyz');
    assert.equal(ready.statusCode, 200);
    assert.equal(json<{ status: string }>(ready).status, 'ok');
  });

  // ---- live stream ------------------------------------------------------------------------------

  test('console api - GET stream sends a cluster event after a drain', async () => {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === 'object');
    const base = `http://127.0.0.1:${address.port}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error('no cluster event within 10 s')), 10_000);
    try {
      const res = await fetch(`${base}/api/v1/stream`, {
        headers: { authorization: `Bearer ${READER.token}` },
        signal: abort.signal,
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      assert.ok(res.body);
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (!text.includes('retry: 2000\n\n')) {
        const { value, done } = await reader.read();
        assert.equal(done, false);
        text += decoder.decode(value, { stream: true });
      }
      // The drain goes through inject: a second fetch would leave undici's spare socket open,
      // and app.close() waits for sockets that never sent a request.
      const drained = await admin('POST', `/api/v1/nodes/${PBX.id}/drain`, { body: { reason: 'sse test' } });
      assert.equal(drained.statusCode, 200);
      const node = json<ClusterNode>(drained);
      let clusterData: { revision: number } | undefined;
      let sawOperatorEvent = false;
      text = '';
      while (clusterData === undefined || !sawOperatorEvent) {
        const { value, done } = await reader.read();
        assert.equal(done, false, 'stream ended early');
        text += decoder.decode(value, { stream: true });
        for (;;) {
          const end = text.indexOf('\n\n');
          if (end < 0) break;
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event === 'cluster' && data) clusterData = JSON.parse(data) as { revision: number };
          if (event === 'event' && data && (JSON.parse(data) as LogEvent).kind === 'operator.drain')
            sawOperatorEvent = true;
        }
      }
      assert.ok(clusterData.revision > 0);
      assert.equal(node.intent?.drain, true);
      const clients = await ask('GET', '/metrics');
      assert.match(clients.body, /switchyard_console_stream_clients 1/);
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
    await waitFor(
      async () => /switchyard_console_stream_clients 0/.test((await ask('GET', '/metrics')).body),
      {
        what: 'the stream client to be gone',
      },
    );
  });
});
