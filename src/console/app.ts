import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { callText, ladderSvg } from '../capture/ladder.ts';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { Counter, Gauge, type Registry as MetricsRegistry } from '../core/metrics.ts';
import { pcapFile } from '../proto/pcap.ts';
import {
  type ConsoleAuth,
  readCookie,
  SESSION_COOKIE,
  type Session,
  sameSecret,
  sessionCookie,
} from './auth.ts';
import type { EventLog } from './event-log.ts';
import type { Principal } from './model.ts';
import {
  type PageContext,
  readAsset,
  renderCallPage,
  renderCallsPage,
  renderClusterFragment,
  renderClusterPage,
  renderErrorPage,
  renderEventsPage,
  renderLoginPage,
} from './pages/index.ts';
import {
  API_ROUTES,
  type ApiRoute,
  actionBody,
  ageMs,
  callParams,
  callsQuery,
  eventsQuery,
  nodeParams,
  openApiDocument,
  weightBody,
} from './routes.ts';
import type { ConsoleService, NodeAction } from './service.ts';
import { createEventStream } from './stream.ts';

/**
 * The console over HTTP: REST API (src/console/routes.ts), server-sent events, server-rendered
 * pages (src/console/pages/, decision 0007), /metrics, /healthz, /readyz. Authentication and
 * CSRF rules are in src/console/auth.ts.
 */

export interface ConsoleAppDeps {
  service: ConsoleService;
  events: EventLog;
  auth: ConsoleAuth;
  /** Shown in the page title, e.g. "switchyard up (demo)". */
  title: string;
  version: string;
  /**
   * Host names accepted in the Host header, port aside (`127.0.0.1`, `localhost`, `[::1]`);
   * others get 421. Guards a loopback console against DNS rebinding. Absent: any Host.
   */
  allowedHosts?: readonly string[];
  metrics: MetricsRegistry;
  /** The /metrics body; defaults to `metrics`. */
  metricsText?: () => Promise<string>;
  health: () => { ok: boolean; checks?: Record<string, unknown> };
  ready: () =>
    | { ok: boolean; checks?: Record<string, unknown> }
    | Promise<{ ok: boolean; checks?: Record<string, unknown> }>;
  logger: Logger;
  sessionTtlMs?: number;
}

interface Caller {
  principal: Principal;
  session?: Session;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller | undefined;
  }
}

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};
/** Cluster change events are sent at most this often. */
const CLUSTER_EVENT_MIN_INTERVAL_MS = 250;
/** Failed sign-ins allowed per client address and minute before answering 429. */
const MAX_LOGIN_FAILURES_PER_MINUTE = 20;

class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const res = schema.safeParse(value ?? {});
  if (res.success) return res.data;
  const problems = res.error.issues.map((i) => `${[what, ...i.path.map(String)].join('.')}: ${i.message}`);
  throw new HttpError(400, ErrorCode.INVALID_ARGUMENT, problems.join('; '));
}

/** Only local paths (no scheme, no `//host`) may be redirected to after signing in. */
function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[\x21-\x7e]{0,500}$/.test(next) ? next : '/';
}

export async function buildConsoleApp(deps: ConsoleAppDeps): Promise<FastifyInstance> {
  const { service, auth, logger } = deps;
  const app = Fastify({
    bodyLimit: 64 * 1024,
    requestTimeout: 30_000,
    return503OnClosing: true,
    // Idle keep-alive sockets (a browser's spare connection) must not hold up a stop.
    forceCloseConnections: true,
  });
  const stream = createEventStream();
  const requests = new Counter({
    name: 'switchyard_console_requests_total',
    help: 'Console HTTP requests by route and status code',
    labelNames: ['route', 'status'],
    registers: [deps.metrics],
  });
  new Gauge({
    name: 'switchyard_console_stream_clients',
    help: 'Open server-sent event streams',
    registers: [deps.metrics],
    collect() {
      this.set(stream.clients());
    },
  });
  // Failed sign-ins per client address and minute; bounded (cleared each minute).
  let loginFailures = { minute: 0, byIp: new Map<string, number>() };

  // Coalesced: a busy fleet changes many times a second (call counts); each browser refetches
  // its fragment per event, so at most one event per CLUSTER_EVENT_MIN_INTERVAL_MS.
  let clusterTimer: NodeJS.Timeout | undefined;
  let lastRevision = 0;
  service.onChange((revision) => {
    lastRevision = revision;
    clusterTimer ??= setTimeout(() => {
      clusterTimer = undefined;
      stream.send('cluster', { revision: lastRevision });
    }, CLUSTER_EVENT_MIN_INTERVAL_MS);
  });
  const unsubscribe = deps.events.subscribe((event) => stream.send('event', event));
  // Before the server stops listening: open event streams would otherwise hold close() up.
  app.addHook('preClose', async () => {
    unsubscribe();
    clearTimeout(clusterTimer);
    stream.close();
  });

  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 8192 },
    (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );

  app.addHook('onRequest', async (req, reply) => {
    reply.headers(SECURITY_HEADERS);
    const hostName = String(req.headers.host ?? '')
      .toLowerCase()
      .replace(/:\d{1,5}$/, '');
    if (deps.allowedHosts && !deps.allowedHosts.includes(hostName)) {
      throw new HttpError(421, 'SY_ERR_MISDIRECTED', 'unexpected Host header');
    }
    req.caller = authenticate(req);
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ route, status: String(reply.statusCode) });
    logger.debug({ method: req.method, route, status: reply.statusCode, ms: reply.elapsedTime }, 'http');
  });

  app.setErrorHandler((err, req, reply) => {
    const known = err instanceof HttpError;
    const sy = err instanceof SwitchyardError ? err : undefined;
    const fastifyStatus = (err as { statusCode?: number }).statusCode;
    const status = known
      ? err.status
      : sy?.code === ErrorCode.NODE_NOT_FOUND
        ? 404
        : sy?.code === ErrorCode.INVALID_ARGUMENT
          ? 400
          : sy?.retryable
            ? 503
            : fastifyStatus !== undefined && fastifyStatus >= 400 && fastifyStatus < 500
              ? fastifyStatus
              : 500;
    const code = known ? err.code : (sy?.code ?? (status === 500 ? 'SY_ERR_INTERNAL' : 'SY_ERR_BAD_REQUEST'));
    const message = status === 500 ? 'internal error (logged)' : describeError(err);
    if (status === 500) logger.error({ err: describeError(err), url: req.url }, 'console request failed');
    if (req.url.startsWith('/api/')) return reply.status(status).send({ error: { code, message } });
    if (status === 401) return reply.redirect(`/login?next=${encodeURIComponent(safeNext(req.url))}`, 303);
    return reply.status(status).type('text/html; charset=utf-8').send(renderErrorPage(status, message));
  });
  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/api/'))
      return reply.status(404).send({ error: { code: 'SY_ERR_NOT_FOUND', message: 'no such route' } });
    return reply.status(404).type('text/html; charset=utf-8').send(renderErrorPage(404, 'Not found'));
  });

  function authenticate(req: FastifyRequest): Caller | undefined {
    const header = req.headers.authorization;
    if (typeof header === 'string' && /^Bearer /i.test(header)) {
      const principal = auth.checkToken(header.slice(7).trim());
      return principal ? { principal } : undefined;
    }
    const id = readCookie(req.headers.cookie, SESSION_COOKIE);
    const session = id === undefined ? undefined : auth.getSession(id);
    return session ? { principal: session.principal, session } : undefined;
  }

  /** Throws 401/403 unless the caller may do this; checks CSRF for state changes on a session. */
  function authorize(req: FastifyRequest, role: 'read' | 'admin', formCsrf?: unknown): Caller {
    const caller = req.caller;
    if (!caller)
      throw new HttpError(401, 'SY_ERR_UNAUTHENTICATED', 'sign in, or send Authorization: Bearer <token>');
    if (req.method !== 'GET' && req.method !== 'HEAD' && caller.session) {
      const origin = req.headers.origin;
      if (origin !== undefined && origin !== `http://${req.headers.host}`)
        throw new HttpError(403, 'SY_ERR_CSRF', 'cross-origin request refused');
      const token = req.headers['x-csrf-token'] ?? formCsrf;
      if (!sameSecret(typeof token === 'string' ? token : undefined, caller.session.csrfToken))
        throw new HttpError(403, 'SY_ERR_CSRF', 'missing or wrong CSRF token');
    }
    if (role === 'admin' && caller.principal.role !== 'admin')
      throw new HttpError(
        403,
        'SY_ERR_FORBIDDEN',
        `${caller.principal.name} is read-only; this needs an admin token`,
      );
    return caller;
  }

  const html = (reply: FastifyReply, body: string) => reply.type('text/html; charset=utf-8').send(body);
  const pageContext = (caller: Caller): PageContext => ({
    principal: caller.principal,
    csrfToken: caller.session?.csrfToken ?? '',
    title: deps.title,
  });
  const roleOf = (url: string, method: string): ApiRoute =>
    API_ROUTES.find((r) => r.url === url && r.method === method) as ApiRoute;

  // --- operations surface (no auth: loopback, no secrets) ---
  app.get('/healthz', async (_req, reply) => {
    const h = deps.health();
    return reply.status(h.ok ? 200 : 503).send({ status: h.ok ? 'ok' : 'fail', checks: h.checks ?? {} });
  });
  app.get('/readyz', async (_req, reply) => {
    const r = await deps.ready();
    return reply.status(r.ok ? 200 : 503).send({ status: r.ok ? 'ok' : 'fail', checks: r.checks ?? {} });
  });
  app.get('/metrics', async (_req, reply) => {
    const text = deps.metricsText ? await deps.metricsText() : await deps.metrics.metrics();
    return reply.type(deps.metrics.contentType).send(text);
  });
  app.get('/assets/:name', async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const asset = name === 'console.js' || name === 'console.css' ? readAsset(name) : undefined;
    if (!asset) return reply.status(404).send('not found');
    return reply.type(asset.contentType).header('cache-control', 'no-cache').send(asset.body);
  });

  // --- sign-in ---
  const startSession = (reply: FastifyReply, principal: Principal, next: string) => {
    const session = auth.createSession(principal);
    const maxAgeS = Math.floor((deps.sessionTtlMs ?? 12 * 3_600_000) / 1000);
    deps.events.append({
      tsUs: Date.now() * 1000,
      kind: 'operator.signin',
      subject: principal.name,
      actor: principal.name,
      detail: { role: principal.role },
    });
    return reply.header('set-cookie', sessionCookie(session.id, maxAgeS)).redirect(next, 303);
  };
  app.get('/login', async (req, reply) => {
    const q = req.query as { code?: unknown; next?: unknown };
    const next = safeNext(q.next);
    if (typeof q.code === 'string') {
      const principal = auth.redeemLoginCode(q.code);
      if (principal) return startSession(reply, principal, next);
      return html(
        reply.status(401),
        renderLoginPage({ error: 'That sign-in link was used already or has expired.', next }),
      );
    }
    return html(reply, renderLoginPage({ next }));
  });
  app.post('/login', async (req, reply) => {
    const body = (req.body ?? {}) as { token?: unknown; next?: unknown };
    const next = safeNext(body.next);
    const minute = Math.floor(Date.now() / 60_000);
    if (loginFailures.minute !== minute || loginFailures.byIp.size > 10_000)
      loginFailures = { minute, byIp: new Map() };
    if ((loginFailures.byIp.get(req.ip) ?? 0) >= MAX_LOGIN_FAILURES_PER_MINUTE)
      return html(
        reply.status(429),
        renderLoginPage({ error: 'Too many failed sign-ins; wait a minute.', next }),
      );
    const principal = typeof body.token === 'string' ? auth.checkToken(body.token.trim()) : undefined;
    if (!principal) {
      loginFailures.byIp.set(req.ip, (loginFailures.byIp.get(req.ip) ?? 0) + 1);
      logger.warn({ ip: req.ip }, 'console sign-in failed');
      return html(reply.status(401), renderLoginPage({ error: 'Unknown token.', next }));
    }
    return startSession(reply, principal, next);
  });
  app.post('/logout', async (req, reply) => {
    const caller = authorize(req, 'read', (req.body as { csrf?: unknown } | undefined)?.csrf);
    if (caller.session) auth.endSession(caller.session.id);
    return reply.header('set-cookie', sessionCookie('', 0)).redirect('/login', 303);
  });

  // --- pages ---
  app.get('/', async (req, reply) => {
    const caller = authorize(req, 'read');
    return html(reply, renderClusterPage(pageContext(caller), service.cluster()));
  });
  app.get('/fragments/cluster', async (req, reply) => {
    const caller = authorize(req, 'read');
    return html(reply, renderClusterFragment(service.cluster(), caller.principal.role === 'admin'));
  });
  app.get('/calls', async (req, reply) => {
    const caller = authorize(req, 'read');
    const raw = req.query as Record<string, unknown>;
    const text = (k: string) => (typeof raw[k] === 'string' ? (raw[k] as string) : '');
    const filters = {
      since: text('since') || '15m',
      number: text('number'),
      status: text('status'),
      node: text('node'),
    };
    const q = parse(
      callsQuery,
      Object.fromEntries(Object.entries(filters).filter(([, v]) => v !== '')),
      'query',
    );
    const calls = await service.searchCalls({
      ...(q.since === undefined ? {} : { sinceMs: ageMs(q.since) }),
      ...(q.number === undefined ? {} : { number: q.number }),
      ...(q.status === undefined ? {} : { status: q.status }),
      ...(q.node === undefined ? {} : { node: q.node }),
      limit: 200,
    });
    const nodes = service.cluster().nodes.map((n) => ({ id: n.id, uri: n.uri }));
    const kept = await service.captureKept();
    return html(reply, renderCallsPage(pageContext(caller), filters, calls, nodes, kept));
  });
  app.get('/calls/:callId', async (req, reply) => {
    const caller = authorize(req, 'read');
    const { callId } = parse(callParams, req.params, 'path');
    const detail = await service.call(callId);
    if (!detail) throw new HttpError(404, 'SY_ERR_NOT_FOUND', 'no such call in the capture store');
    return html(
      reply,
      renderCallPage(pageContext(caller), detail, ladderSvg(detail.trace.messages, detail.trace.events)),
    );
  });
  app.get('/events', async (req, reply) => {
    const caller = authorize(req, 'read');
    return html(reply, renderEventsPage(pageContext(caller), deps.events.list({ limit: 500 })));
  });

  // --- API ---
  const api = (
    method: 'GET' | 'POST',
    url: string,
    handler: (req: FastifyRequest, reply: FastifyReply, caller: Caller) => Promise<unknown>,
  ) => {
    const route = roleOf(url, method);
    app.route({
      method,
      url,
      handler: async (req, reply) => handler(req, reply, authorize(req, route.role)),
    });
  };
  const nodeOr404 = <T>(node: T | undefined, id: string): T => {
    if (node === undefined) throw new HttpError(404, ErrorCode.NODE_NOT_FOUND, `no node ${id}`);
    return node;
  };

  api('GET', '/api/v1/whoami', async (_req, _reply, caller) => caller.principal);
  api('GET', '/api/v1/cluster', async () => service.cluster());
  api('GET', '/api/v1/nodes/:id', async (req) => {
    const { id } = parse(nodeParams, req.params, 'path');
    return nodeOr404(service.node(id), id);
  });
  for (const action of ['drain', 'undrain', 'disable', 'enable'] as const satisfies readonly NodeAction[]) {
    api('POST', `/api/v1/nodes/:id/${action}`, async (req, _reply, caller) => {
      const { id } = parse(nodeParams, req.params, 'path');
      const body = parse(actionBody, req.body, 'body');
      return nodeOr404(await service.act(id, action, caller.principal, body.reason), id);
    });
  }
  api('POST', '/api/v1/nodes/:id/weight', async (req, _reply, caller) => {
    const { id } = parse(nodeParams, req.params, 'path');
    const body = parse(weightBody, req.body, 'body');
    return nodeOr404(await service.setWeight(id, body.weight, caller.principal), id);
  });
  api('GET', '/api/v1/events', async (req) => {
    const q = parse(eventsQuery, req.query, 'query');
    return {
      events: deps.events.list({
        limit: q.limit ?? 200,
        ...(q.afterUs === undefined ? {} : { afterUs: q.afterUs }),
      }),
    };
  });
  api('GET', '/api/v1/stream', async (_req, reply) => {
    reply.hijack();
    if (!stream.add(reply.raw)) {
      reply.raw.writeHead(503, { 'content-type': 'application/json' });
      reply.raw.end(JSON.stringify({ error: { code: 'SY_ERR_BUSY', message: 'too many open streams' } }));
    }
  });
  api('GET', '/api/v1/calls', async (req) => {
    const q = parse(callsQuery, req.query, 'query');
    const calls = await service.searchCalls({
      ...(q.since === undefined ? {} : { sinceMs: ageMs(q.since) }),
      ...(q.number === undefined ? {} : { number: q.number }),
      ...(q.status === undefined ? {} : { status: q.status }),
      ...(q.node === undefined ? {} : { node: q.node }),
      limit: q.limit ?? 100,
    });
    return { calls };
  });
  const callOr404 = async (req: FastifyRequest) => {
    const { callId } = parse(callParams, req.params, 'path');
    const detail = await service.call(callId);
    if (!detail) throw new HttpError(404, 'SY_ERR_NOT_FOUND', 'no such call in the capture store');
    return detail;
  };
  api('GET', '/api/v1/calls/:callId', async (req) => {
    const { trace: _trace, ...detail } = await callOr404(req);
    return detail;
  });
  api('GET', '/api/v1/calls/:callId/ladder.svg', async (req, reply) => {
    const d = await callOr404(req);
    return reply.type('image/svg+xml').send(ladderSvg(d.trace.messages, d.trace.events));
  });
  api('GET', '/api/v1/calls/:callId/pcap', async (req, reply) => {
    const d = await callOr404(req);
    const name = `call-${d.call.callId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)}.pcap`;
    return reply
      .type('application/vnd.tcpdump.pcap')
      .header('content-disposition', `attachment; filename="${name}"`)
      .send(Buffer.from(pcapFile(d.trace.messages)));
  });
  api('GET', '/api/v1/calls/:callId/text', async (req, reply) => {
    const d = await callOr404(req);
    return reply.type('text/plain; charset=utf-8').send(callText(d.trace.messages, d.trace.events));
  });
  api('GET', '/api/v1/capture', async () => {
    const kept = await service.captureKept();
    if (!kept) throw new HttpError(404, 'SY_ERR_NOT_FOUND', 'capture does not run here');
    return kept;
  });
  api('GET', '/api/v1/openapi.json', async () => openApiDocument(deps.version));

  await app.ready();
  return app;
}
