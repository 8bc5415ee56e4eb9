import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Logger } from '../core/logger.ts';
import { http } from '../core/node-http.ts';

/**
 * HTTP transport to etcd v3's JSON gateway (`POST /v3/...`, served on the client port by every
 * etcd since 3.4). It replaced the `etcd3` gRPC client (docs/decisions/0005): the gateway speaks
 * plain HTTP/1.1 and JSON, which node:http already carries, so the agent's resident memory drops
 * by the ~35 MB that gRPC and protobuf cost.
 *
 * This module knows members, deadlines and retries; etcd-store.ts knows what the calls mean.
 *
 * - Every unary call has a deadline. A call that fails fast (refused, reset, "no leader") is tried
 *   on the next member while less than half its budget is spent; one that ran into its deadline
 *   is not retried, so a call returns within `callTimeoutMs` (1.5 x at worst).
 * - A member that fails 3 calls in a row is skipped for 1 s, then probed again.
 * - Streams (watch) are long-lived responses of newline-delimited JSON. Go's HTTP/1.1 server does
 *   not read a request body while it writes the response, so a stream cannot carry later
 *   requests (no progress_request): its owner checks liveness with unary pings instead.
 */

export interface GatewayOptions {
  /** Client URLs, e.g. ['http://127.0.0.1:2379']. */
  endpoints: string[];
  callTimeoutMs: number;
  logger: Logger;
}

/** A failed gateway call: transport failure, deadline, or etcd's gRPC status. */
export class EtcdGatewayError extends Error {
  /** gRPC status code from etcd (5 NOT_FOUND, 11 OUT_OF_RANGE, 14 UNAVAILABLE, ...). */
  readonly grpcCode: number | undefined;
  /** The deadline fired. */
  readonly timedOut: boolean;
  /** A failure that passes with time or on another member. */
  readonly transient: boolean;
  /** The request cannot have reached etcd (the connection was refused). */
  readonly neverSent: boolean;
  constructor(
    message: string,
    opts: { grpcCode?: number; timedOut?: boolean; transient: boolean; neverSent?: boolean; cause?: unknown },
  ) {
    super(message, { cause: opts.cause });
    this.name = 'EtcdGatewayError';
    this.grpcCode = opts.grpcCode;
    this.timedOut = opts.timedOut ?? false;
    this.transient = opts.transient;
    this.neverSent = opts.neverSent ?? false;
  }
}

export const GRPC_INVALID_ARGUMENT = 3;
export const GRPC_DEADLINE_EXCEEDED = 4;
export const GRPC_NOT_FOUND = 5;
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_OUT_OF_RANGE = 11;
export const GRPC_UNAUTHENTICATED = 16;

/** A response larger than this is refused (a watch catching up sends up to 1000 revisions). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const BREAKER_FAILURES = 3;
const BREAKER_OPEN_MS = 1000;

/** URL hostnames keep IPv6 brackets (`[fd00::1]`); sockets want the bare address. */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

interface Member {
  readonly url: URL;
  failures: number;
  openUntil: number;
}

export interface StreamHandlers {
  /** One decoded JSON message of the stream. */
  onMessage(message: unknown): void;
  /** The stream ended or failed; not called after `cancel()`. */
  onEnd(err: EtcdGatewayError): void;
}

export interface GatewayStream {
  /** The member this stream is connected to (for liveness pings). */
  readonly endpoint: string;
  cancel(): void;
}

export interface Gateway {
  /**
   * A unary call under the deadline, with failover to other members. `idempotent: false` (txn,
   * lease grant) retries only when the request cannot have reached etcd (connection refused):
   * after a reset it may have been applied, and applying it twice is wrong.
   */
  call<T>(
    path: string,
    body: unknown,
    opts?: { timeoutMs?: number; endpoint?: string; idempotent?: boolean },
  ): Promise<T>;
  /** Opens a stream on the next healthy member. */
  stream(path: string, body: unknown, handlers: StreamHandlers): GatewayStream;
  close(): void;
}

export function createGateway(opts: GatewayOptions): Gateway {
  const members: Member[] = opts.endpoints.map((e) => ({
    url: new URL(e.includes('://') ? e : `http://${e}`),
    failures: 0,
    openUntil: 0,
  }));
  // TCP keep-alive probes every second after 5 s idle (libuv), so dead peers surface.
  const agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 5000, maxSockets: 64, maxFreeSockets: 8 });
  let preferred = 0;
  let closed = false;
  const closedError = () => new EtcdGatewayError('etcd client closed', { transient: false });

  /** The preferred member unless its breaker is open; a member being probed counts as open. */
  function pick(exclude?: Member): Member {
    const now = Date.now();
    for (let i = 0; i < members.length; i++) {
      const m = members[(preferred + i) % members.length] as Member;
      if (m === exclude && members.length > 1) continue;
      if (m.failures < BREAKER_FAILURES || now >= m.openUntil) return m;
    }
    return members[preferred % members.length] as Member;
  }

  function succeeded(m: Member): void {
    m.failures = 0;
  }

  function failed(m: Member): void {
    m.failures++;
    if (m.failures >= BREAKER_FAILURES) m.openUntil = Date.now() + BREAKER_OPEN_MS;
    const i = members.indexOf(m);
    if (i === preferred % members.length) preferred = (i + 1) % members.length;
  }

  function post(m: Member, path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const payload = JSON.stringify(body);
      let settled = false;
      const settle = (err: EtcdGatewayError | undefined, value?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value);
      };
      const req: ClientRequest = http.request(
        {
          agent,
          host: hostOf(m.url),
          port: m.url.port || 2379,
          path,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          readAll(res, (err, text) => {
            if (err) return settle(err);
            settle(...decodeUnary(res.statusCode ?? 0, text ?? ''));
          });
        },
      );
      const timer = setTimeout(() => {
        settle(
          new EtcdGatewayError(`deadline of ${timeoutMs} ms exceeded (${m.url.host})`, {
            timedOut: true,
            transient: true,
          }),
        );
        req.destroy();
      }, timeoutMs);
      req.on('error', (err) => settle(transportError(err, m)));
      req.end(payload);
    });
  }

  return {
    async call<T>(
      path: string,
      body: unknown,
      callOpts?: { timeoutMs?: number; endpoint?: string; idempotent?: boolean },
    ) {
      if (closed) throw closedError();
      const budget = callOpts?.timeoutMs ?? opts.callTimeoutMs;
      const start = Date.now();
      const maxAttempts = callOpts?.endpoint ? 1 : Math.max(2, members.length);
      let last: Member | undefined;
      for (let attempt = 1; ; attempt++) {
        const m = callOpts?.endpoint
          ? (members.find((x) => x.url.href === callOpts.endpoint) ?? pick())
          : pick(last);
        last = m;
        try {
          const value = await post(m, path, body, Math.max(1, budget - (Date.now() - start)));
          succeeded(m);
          return value as T;
        } catch (err) {
          const e = err as EtcdGatewayError;
          if (e.transient) failed(m);
          if (closed) throw closedError();
          if (callOpts?.idempotent === false && !e.neverSent) throw e;
          if (!e.transient || e.timedOut || attempt >= maxAttempts || Date.now() - start >= budget / 2)
            throw e;
        }
      }
    },

    stream(path: string, body: unknown, handlers: StreamHandlers): GatewayStream {
      const m = pick();
      let done = false;
      let res: IncomingMessage | undefined;
      const end = (err: EtcdGatewayError) => {
        if (done) return;
        done = true;
        req.destroy();
        handlers.onEnd(err);
      };
      const req = http.request(
        {
          agent,
          host: hostOf(m.url),
          port: m.url.port || 2379,
          path,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        },
        (r) => {
          res = r;
          if (r.statusCode !== 200) {
            readAll(r, (err, text) => {
              const [decoded] = decodeUnary(r.statusCode ?? 0, text ?? '');
              end(err ?? decoded ?? new EtcdGatewayError('stream refused', { transient: true }));
            });
            return;
          }
          succeeded(m);
          let pending = '';
          r.setEncoding('utf8');
          r.on('data', (chunk: string) => {
            if (done) return;
            pending += chunk;
            if (pending.length > MAX_RESPONSE_BYTES) {
              end(new EtcdGatewayError('stream message too large', { transient: true }));
              return;
            }
            let nl = pending.indexOf('\n');
            while (nl >= 0 && !done) {
              const line = pending.slice(0, nl).trim();
              pending = pending.slice(nl + 1);
              if (line.length > 0) {
                let message: unknown;
                try {
                  message = JSON.parse(line);
                } catch {
                  end(new EtcdGatewayError('stream sent invalid JSON', { transient: true }));
                  return;
                }
                handlers.onMessage(message);
              }
              nl = pending.indexOf('\n');
            }
          });
          r.on('end', () => end(new EtcdGatewayError('stream ended by the server', { transient: true })));
          r.on('error', (err) => end(transportError(err, m)));
        },
      );
      req.on('error', (err) => {
        failed(m);
        end(transportError(err, m));
      });
      // A stream socket is never idle in the pool, where http.Agent would set keep-alive: without
      // it, a peer that vanished behind a NAT or firewall goes unnoticed for Linux's 2 hours.
      req.on('socket', (socket) => socket.setKeepAlive(true, 5000));
      if (closed) queueMicrotask(() => end(closedError()));
      req.end(JSON.stringify(body));
      return {
        endpoint: m.url.href,
        cancel() {
          done = true;
          res?.destroy();
          req.destroy();
        },
      };
    },

    close() {
      closed = true;
      agent.destroy();
    },
  };
}

function transportError(err: Error, m: Member): EtcdGatewayError {
  const code = (err as NodeJS.ErrnoException).code;
  return new EtcdGatewayError(`${m.url.host}: ${code ?? err.message}`, {
    transient: true,
    neverSent: code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH',
    cause: err,
  });
}

function readAll(res: IncomingMessage, done: (err: EtcdGatewayError | undefined, text?: string) => void) {
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (c: Buffer) => {
    size += c.length;
    if (size > MAX_RESPONSE_BYTES) {
      res.destroy();
      done(new EtcdGatewayError('response too large', { transient: false }));
      return;
    }
    chunks.push(c);
  });
  res.on('end', () => done(undefined, Buffer.concat(chunks).toString('utf8')));
  res.on('error', (err) => done(new EtcdGatewayError(err.message, { transient: true, cause: err })));
}

/** A 200 with a JSON body is the answer; anything else carries etcd's gRPC status. */
function decodeUnary(status: number, text: string): [EtcdGatewayError | undefined, unknown?] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [new EtcdGatewayError(`HTTP ${status}: not JSON`, { transient: status >= 500 })];
  }
  if (status === 200) {
    // Streaming endpoints answered with one message wrap it in `result`, or report `error`.
    const obj = parsed as { result?: unknown; error?: { code?: number; message?: string } };
    if (obj && typeof obj === 'object' && 'error' in obj && obj.error && typeof obj.error === 'object') {
      return [statusError(obj.error.code, obj.error.message)];
    }
    return [undefined, obj && typeof obj === 'object' && 'result' in obj ? obj.result : parsed];
  }
  const e = parsed as { code?: number; message?: string; error?: string };
  return [statusError(e.code, e.message ?? e.error ?? `HTTP ${status}`)];
}

function statusError(code: number | undefined, message: string | undefined): EtcdGatewayError {
  const msg = message ?? `gRPC status ${code}`;
  // Invalid arguments, missing leases, compaction and auth failures do not pass with a retry.
  const permanent =
    code === GRPC_INVALID_ARGUMENT ||
    code === GRPC_NOT_FOUND ||
    code === GRPC_OUT_OF_RANGE ||
    code === GRPC_PERMISSION_DENIED ||
    code === GRPC_UNAUTHENTICATED;
  return new EtcdGatewayError(msg, {
    ...(code === undefined ? {} : { grpcCode: code }),
    timedOut: code === GRPC_DEADLINE_EXCEEDED,
    transient: !permanent,
  });
}
