import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import { createSilentLogger, type Logger } from '../core/logger.ts';
import {
  buildOptionsRequest,
  formatHost,
  getHeader,
  parseCSeq,
  parseSipMessage,
  topVia,
} from '../proto/sip-message.ts';

/**
 * SIP OPTIONS prober over UDP (RFC 3261 §11, non-INVITE client transaction §17.1.2): the control
 * plane's own view of a backend, independent of Kamailio's ds_ping. One socket for all probes;
 * responses are matched to probes by the Via branch and the CSeq method (§17.1.3).
 */

/** RFC 3261 §17.1.2.2: Timer E starts at T1 and doubles up to T2. */
export const T1_MS = 500;
export const T2_MS = 4000;
export const DEFAULT_PROBE_TIMEOUT_MS = 2000;
const DEFAULT_SIP_PORT = 5060;
const MAX_PROBE_TIMEOUT_MS = 64 * T1_MS;

export interface ProbeResult {
  /** A 2xx final response arrived before the timeout. */
  up: boolean;
  /** Final status code, when a final response arrived. */
  status?: number;
  /** From the first transmission to the final response. */
  rttMs?: number;
  /** Reason phrase of the final response, or why there is none ('timeout', 'dns: ...', ...). */
  reason?: string;
}

export interface ProbeOptions {
  /** Give up after this long (default 2000 ms, at most 32 s = Timer F). */
  timeoutMs?: number;
}

export interface OptionsPingerStats {
  /** Requests sent, first transmissions only. */
  probes: number;
  retransmissions: number;
  /** Final responses matched to a probe. */
  responses: number;
  /** Datagrams that are not SIP, or SIP requests: dropped. */
  garbage: number;
  /** Well-formed responses matching no pending probe (late, duplicate, foreign): dropped. */
  unmatched: number;
}

export interface OptionsPinger {
  /** The bound local address and port. */
  readonly address: { address: string; port: number };
  /**
   * Probes `sip:[user@]host[:port][;params]` over UDP. Whatever the peer or the network does, it
   * resolves (down with a reason); it rejects only on a bad timeoutMs or after close().
   */
  probe(uri: string, opts?: ProbeOptions): Promise<ProbeResult>;
  stats(): OptionsPingerStats;
  /** Pending probes resolve as down with reason 'closed'. */
  close(): Promise<void>;
}

export interface OptionsPingerOptions {
  /**
   * Local address to bind (default 127.0.0.1). Probing non-loopback targets needs a routable
   * address or '0.0.0.0' (the caller's choice); an IPv6 address makes an IPv6 socket.
   */
  bindAddress?: string;
  /** Default 0: any free port. */
  bindPort?: number;
  logger?: Logger;
}

interface Pending {
  resolve(result: ProbeResult): void;
  /** A provisional response arrived: retransmit at T2 from now on (§17.1.2.2). */
  provisional(): void;
  startedMs: number;
}

interface SipTarget {
  host: string;
  port: number;
}

/**
 * Parses the host and port out of `sip:[user@]host[:port][;params]`: IPv4, [IPv6] or a hostname.
 * `sips:` and transports other than UDP are refused: this prober speaks UDP only.
 */
export function parseProbeUri(uri: string): SipTarget | string {
  // Nothing that could end a URI or a header line on the wire (it becomes the Request-URI and To).
  if (typeof uri !== 'string' || uri.length > 1024 || /[\s<>"\x00-\x1f\x7f]/.test(uri)) {
    return `not a usable sip: URI: ${JSON.stringify(String(uri).slice(0, 80))}`;
  }
  const m = /^sip:(?:[^@\s]+@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?((?:;[^;\s?]*)*)$/i.exec(
    uri,
  );
  if (!m) return `not a sip: URI with host[:port]: ${JSON.stringify(uri.slice(0, 80))}`;
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  if (m[1]!.startsWith('[') && isIP(host) !== 6) return `bad IPv6 address ${m[1]}`;
  const port = m[2] === undefined ? DEFAULT_SIP_PORT : Number(m[2]);
  if (port < 1 || port > 65535) return `bad port ${m[2]}`;
  const transport = /;transport=([^;]*)/i.exec(m[3] ?? '')?.[1];
  if (transport !== undefined && transport.toLowerCase() !== 'udp')
    return `transport ${transport} is not udp`;
  return { host, port };
}

const randomToken = (bytes: number): string => randomBytes(bytes).toString('hex');

/**
 * Opens the UDP socket and returns a prober.
 *
 * @example
 *   const pinger = await createOptionsPinger({ logger });
 *   const { up, status, rttMs } = await pinger.probe('sip:127.0.0.2:5060', { timeoutMs: 1500 });
 *   await pinger.close();
 */
export async function createOptionsPinger(opts: OptionsPingerOptions = {}): Promise<OptionsPinger> {
  const bindAddress = opts.bindAddress ?? '127.0.0.1';
  const family = isIP(bindAddress);
  if (family === 0) {
    throw new SwitchyardError(
      ErrorCode.INVALID_ARGUMENT,
      `options pinger: bindAddress must be an IP: ${bindAddress}`,
    );
  }
  const logger = (opts.logger ?? createSilentLogger()).child({ component: 'options-pinger' });
  const socket: Socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', ipv6Only: family === 6 });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(opts.bindPort ?? 0, bindAddress, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const local = socket.address();
  const wildcard = bindAddress === '0.0.0.0' || bindAddress === '::';
  const pending = new Map<string, Pending>();
  const counters: OptionsPingerStats = {
    probes: 0,
    retransmissions: 0,
    responses: 0,
    garbage: 0,
    unmatched: 0,
  };
  let closed = false;
  let cseq = 1;

  // A socket error (e.g. ICMP-induced on some platforms) must never take the process down.
  socket.on('error', (err) => logger.warn({ err: err.message }, 'options pinger socket error'));

  socket.on('message', (buf, rinfo) => {
    const parsed = parseSipMessage(buf);
    if (!parsed.ok || parsed.value.kind !== 'response') {
      counters.garbage++;
      logger.debug(
        {
          from: `${rinfo.address}:${rinfo.port}`,
          reason: parsed.ok ? 'request' : parsed.reason,
          sample: buf.toString('latin1', 0, 60),
        },
        'dropped datagram',
      );
      return;
    }
    const msg = parsed.value;
    const branch = topVia(msg)?.params.get('branch');
    const cseqValue = parseCSeq(getHeader(msg, 'CSeq'));
    const probe = branch === undefined ? undefined : pending.get(branch);
    if (!probe || cseqValue?.method !== 'OPTIONS') {
      counters.unmatched++;
      logger.debug(
        { from: `${rinfo.address}:${rinfo.port}`, status: msg.status, branch },
        'unmatched response',
      );
      return;
    }
    const status = msg.status!;
    // Provisional responses do not end a non-INVITE transaction (§17.1.2.2): keep waiting.
    if (status < 200) {
      probe.provisional();
      return;
    }
    counters.responses++;
    probe.resolve({
      up: status < 300,
      status,
      rttMs: Math.round((performance.now() - probe.startedMs) * 100) / 100,
      reason: msg.reason ?? '',
    });
  });

  /** Local address to announce in Via/Contact: the bound one, or the one the kernel would pick. */
  async function localAddressFor(targetIp: string): Promise<string> {
    if (!wildcard) return local.address;
    const probeSocket = createSocket(family === 6 ? 'udp6' : 'udp4');
    try {
      await new Promise<void>((resolve, reject) => {
        probeSocket.once('error', reject);
        probeSocket.connect(DEFAULT_SIP_PORT, targetIp, () => resolve());
      });
      return probeSocket.address().address;
    } finally {
      probeSocket.close();
    }
  }

  async function probe(uri: string, probeOpts: ProbeOptions = {}): Promise<ProbeResult> {
    if (closed) throw new SwitchyardError(ErrorCode.CLOSED, 'options pinger is closed');
    const timeoutMs = probeOpts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_PROBE_TIMEOUT_MS) {
      throw new SwitchyardError(
        ErrorCode.INVALID_ARGUMENT,
        `probe: timeoutMs must be in (0, ${MAX_PROBE_TIMEOUT_MS}]`,
      );
    }
    const target = parseProbeUri(uri);
    if (typeof target === 'string') return { up: false, reason: target };
    const deadline = performance.now() + timeoutMs;

    let ip = target.host;
    if (isIP(ip) === 0) {
      try {
        ip = (await lookup(target.host, { family: family === 6 ? 6 : 4 })).address;
      } catch (err) {
        return { up: false, reason: `dns: ${(err as { code?: string }).code ?? (err as Error).message}` };
      }
    } else if (isIP(ip) !== family) {
      return { up: false, reason: `IPv${isIP(ip)} target on an IPv${family} socket` };
    }
    let localAddress: string;
    try {
      localAddress = await localAddressFor(ip);
    } catch (err) {
      return { up: false, reason: `no route: ${(err as Error).message}` };
    }
    if (closed) return { up: false, reason: 'closed' };

    let branch = `z9hG4bK${randomToken(10)}`;
    while (pending.has(branch)) branch = `z9hG4bK${randomToken(10)}`;
    let request: string;
    try {
      request = buildOptionsRequest({
        targetUri: uri,
        localAddress,
        localPort: local.port,
        branch,
        callId: `${randomToken(12)}@${formatHost(localAddress)}`,
        fromTag: randomToken(6),
        cseq,
        userAgent: 'switchyard',
      });
    } catch (err) {
      // parseProbeUri already refused what the builder would; this is the belt to those braces.
      return { up: false, reason: describeError(err) };
    }
    cseq = cseq >= 2 ** 31 - 1 ? 1 : cseq + 1;
    const bytes = Buffer.from(request, 'utf8');

    return new Promise<ProbeResult>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let lastSendError: string | undefined;
      let intervalMs = T1_MS;
      const finish = (result: ProbeResult): void => {
        if (!pending.has(branch)) return;
        pending.delete(branch);
        clearTimeout(timer);
        clearTimeout(deadlineTimer);
        resolve(result);
      };
      const send = (): void => {
        try {
          socket.send(bytes, target.port, ip, (err) => {
            if (err) lastSendError = err.message;
          });
        } catch (err) {
          // Synchronous throws (e.g. a socket closed under us) end up as the reason, not a crash.
          lastSendError = (err as Error).message;
        }
      };
      // Timer E: retransmit at T1, 2·T1, 4·T1 ... capped at T2, until the probe's own deadline
      // (a health check gives up long before Timer F's 64·T1).
      const retransmit = (): void => {
        if (!pending.has(branch) || closed) return;
        counters.retransmissions++;
        send();
        intervalMs = Math.min(intervalMs * 2, T2_MS);
        schedule();
      };
      const schedule = (): void => {
        // No retransmission that could not be answered before the deadline anyway.
        if (performance.now() + intervalMs < deadline) timer = setTimeout(retransmit, intervalMs);
      };
      const deadlineTimer = setTimeout(
        () => finish({ up: false, reason: lastSendError ? `send: ${lastSendError}` : 'timeout' }),
        Math.max(0, deadline - performance.now()),
      );
      const provisional = (): void => {
        if (intervalMs === T2_MS) return;
        intervalMs = T2_MS;
        clearTimeout(timer);
        schedule();
      };
      pending.set(branch, { resolve: finish, provisional, startedMs: performance.now() });
      counters.probes++;
      send();
      schedule();
    });
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    for (const p of [...pending.values()]) p.resolve({ up: false, reason: 'closed' });
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  return {
    address: { address: local.address, port: local.port },
    probe,
    stats: () => ({ ...counters }),
    close,
  };
}
