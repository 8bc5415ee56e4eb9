import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError } from './errors.ts';
import type { Logger } from './logger.ts';
import { collectDefaultMetrics, type Registry } from './metrics.ts';
import { http } from './node-http.ts';

/**
 * What a role says about itself for /healthz (liveness: restart me if not ok) and /readyz
 * (readiness: my dependencies answer). `checks` is free-form, shown as is.
 */
export interface HealthReport {
  ok: boolean;
  checks?: Record<string, unknown>;
}

export interface AdminServerOptions {
  /** Loopback by default: the admin surface has no authentication. */
  host?: string;
  /** 0 picks a free port; read it back from the handle. */
  port: number;
  metrics: Registry;
  health: () => HealthReport | Promise<HealthReport>;
  ready: () => HealthReport | Promise<HealthReport>;
  logger: Logger;
  /** Add prom-client's process and Node.js metrics (CPU, memory, event loop lag) to `metrics`. */
  processMetrics?: boolean;
  /** A health or readiness check slower than this counts as failed. */
  checkTimeoutMs?: number;
}

export interface AdminServer {
  /** `http://host:port`, with the port actually bound. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export const DEFAULT_ADMIN_HOST = '127.0.0.1';
const DEFAULT_CHECK_TIMEOUT_MS = 5000;
// A scrape or probe is a tiny GET; anything slower than this is a stuck or hostile client.
const REQUEST_TIMEOUT_MS = 10_000;

/** The metric every process-metrics set includes; used to avoid registering the set twice. */
const PROCESS_METRIC_PROBE = 'process_cpu_user_seconds_total';

type CheckOutcome = { ok: boolean; body: { status: 'ok' | 'fail'; checks: Record<string, unknown> } };

async function runCheck(
  check: () => HealthReport | Promise<HealthReport>,
  timeoutMs: number,
): Promise<CheckOutcome> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`check did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const report = await Promise.race([Promise.resolve().then(check), timeout]);
    const ok = report.ok === true;
    return { ok, body: { status: ok ? 'ok' : 'fail', checks: report.checks ?? {} } };
  } catch (err) {
    return { ok: false, body: { status: 'fail', checks: { error: describeError(err) } } };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  extra: Record<string, string> = {},
) {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extra,
  });
  // Node drops the body of a response to HEAD by itself.
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown) {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`);
}

/**
 * The admin HTTP surface of a role: GET /metrics (Prometheus text format), /healthz and
 * /readyz (200 when ok, 503 otherwise, JSON `{ status, checks }`). 404 for other paths, 405
 * for methods other than GET and HEAD. Bad requests are answered, never thrown.
 *
 * @example
 * const admin = await startAdminServer({ port: 9401, metrics, health, ready, logger });
 * logger.info({ url: admin.url }, 'admin listening');
 */
export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const host = opts.host ?? DEFAULT_ADMIN_HOST;
  const log = opts.logger.child({ component: 'admin-server' });
  const checkTimeoutMs = opts.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  if (opts.processMetrics === true && opts.metrics.getSingleMetric(PROCESS_METRIC_PROBE) === undefined) {
    collectDefaultMetrics({ register: opts.metrics });
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    switch (path) {
      case '/metrics': {
        const text = await opts.metrics.metrics();
        send(res, 200, opts.metrics.contentType, text);
        return;
      }
      case '/healthz':
      case '/readyz': {
        const outcome = await runCheck(path === '/healthz' ? opts.health : opts.ready, checkTimeoutMs);
        if (!outcome.ok) log.debug({ path, checks: outcome.body.checks }, 'check failed');
        sendJson(res, outcome.ok ? 200 : 503, outcome.body);
        return;
      }
      default:
        send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /readyz\n');
    }
  };

  const server = http.createServer(
    { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        log.warn({ err: describeError(err), url: req.url }, 'admin request failed');
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else res.destroy();
      });
    },
  );
  // Malformed HTTP: answer as Node would without a handler (431 for oversized headers, 408 for
  // a request too slow, else 400) and drop the connection; log at debug instead of crashing.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    log.debug({ err: describeError(err), code: err.code }, 'bad admin request');
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const status =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? '408 Request Timeout'
          : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      reject(new Error(`admin server cannot listen on ${host}:${opts.port}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(opts.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: describeError(err) }, 'admin server error'));

  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections (Prometheus keeps one) would hold close() open until they idle out.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/**
 * How a role is run: alone (its own metrics registry and admin server) or inside `switchyard
 * up`, which passes a shared registry and serves /metrics, /healthz and /readyz itself.
 */
export interface RoleRunOptions {
  logger?: Logger;
  /** Metrics go here instead of a registry of the role's own. */
  metrics?: Registry;
  /** false: no admin server of its own (the caller exposes health and metrics). */
  admin?: boolean;
}

/** A running role: what `up` and the CLI need from any of them. */
export interface RunningRole {
  /** The admin server's URL; undefined when run with `admin: false`. */
  readonly adminUrl: string | undefined;
  health(): HealthReport | Promise<HealthReport>;
  ready(): HealthReport | Promise<HealthReport>;
  stop(): Promise<void>;
}

/**
 * A role's own admin server (with process metrics), or none when it runs with `admin: false`
 * inside a process that serves health and metrics for all its roles (`switchyard up`).
 */
export async function startRoleAdminServer(
  run: RoleRunOptions,
  address: { host: string; port: number },
  role: Pick<AdminServerOptions, 'metrics' | 'health' | 'ready' | 'logger'>,
): Promise<AdminServer | undefined> {
  if (run.admin === false) return undefined;
  return startAdminServer({ ...address, ...role, processMetrics: true });
}
