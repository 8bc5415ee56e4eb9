import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { Counter, Gauge, Histogram, METRIC_PREFIX, type Registry } from '../core/metrics.ts';
import { createHepStreamFramer } from '../proto/hep-stream.ts';
import { DROP_REASONS, type DropReason, type IngestOptions } from './ingest.ts';
import type { FromWorker, ToWorker } from './ingest-worker.ts';
import type { ControlEvent, RetentionPolicy } from './model.ts';

/**
 * The HEP collector's front: UDP and TCP listeners feeding an ingest worker thread
 * (ingest-worker.ts) that decodes, forwards upstream and writes to the store. This thread only
 * reads sockets and packs packets into batches, so it always drains the kernel's receive buffer
 * quickly, whatever the store is doing. Never throws on input: every packet is stored or counted
 * as dropped by reason.
 *
 * Back-pressure: packets wait in one queue; at most MAX_IN_FLIGHT batches are with the worker.
 * When the queue is full, new packets are dropped as `overload` rather than growing memory
 * without bound: losing capture is better than losing the host.
 */

export interface ListenAddress {
  transport: 'udp' | 'tcp';
  host: string;
  port: number;
}

export interface CaptureServerOptions extends IngestOptions {
  listen: ListenAddress[];
  /** The store the worker writes to (`sqlite:PATH`, `postgres://...`). */
  storeSpec: string;
  /** Most packets handed to the worker at once (one store transaction). */
  batchMaxMessages?: number;
  /** Longest a packet waits for its batch. */
  batchMaxDelayMs?: number;
  /** Packets waiting beyond this are dropped as `overload`. */
  maxQueuedMessages?: number;
  /** ...and so are packets beyond this many bytes waiting (64 KiB datagrams add up fast). */
  maxQueuedBytes?: number;
  /**
   * A TCP peer holding half a frame for this long is disconnected (`tcp-stalled`). A peer silent
   * between whole frames stays connected (TCP keep-alive removes a dead one).
   */
  tcpStallTimeoutMs?: number;
  maxTcpConnections?: number;
  /** Forward every authenticated HEP packet, unchanged, to this UDP collector. */
  forwardTo?: { host: string; port: number };
  metrics: Registry;
  logger: Logger;
}

export interface CaptureServer {
  /** Actual addresses (port 0 resolved). */
  readonly addresses: ListenAddress[];
  /** Resolves when every packet received so far is stored or counted as dropped. */
  flush(): Promise<void>;
  /** Packets waiting or with the worker. */
  queued(): number;
  /** False once the ingest worker has died: nothing is stored any more (restart the role). */
  healthy(): boolean;
  /** Stores a control-plane event (through the worker: this thread never writes). */
  recordEvent(event: ControlEvent): void;
  /** Applies retention in the worker; resolves with the messages removed. */
  applyRetention(policy: RetentionPolicy): Promise<number>;
  close(): Promise<void>;
}

const DEFAULTS = {
  batchMaxMessages: 500,
  batchMaxDelayMs: 100,
  maxQueuedMessages: 200_000,
  maxQueuedBytes: 256 * 1024 * 1024,
  tcpStallTimeoutMs: 10_000,
  maxTcpConnections: 256,
};
/** How long close() waits for queued packets to be stored; what is left is counted as lost. */
const CLOSE_FLUSH_MS = 5000;
/** Two batches with the worker: it starts the next one the moment it finishes one. */
const MAX_IN_FLIGHT = 2;
/**
 * An idle HEP TCP peer is probed after this much silence; libuv then probes every second and
 * gives up after 10 unanswered probes, so a vanished host's connection goes within ~70 s.
 */
const TCP_KEEPALIVE_IDLE_MS = 60_000;
/** Ask the kernel for a large UDP receive buffer: bursts arrive faster than they are read. */
const UDP_RECV_BUFFER_BYTES = 8 * 1024 * 1024;
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './ingest-worker.ts' : './ingest-worker.js',
  import.meta.url,
);

export async function startCaptureServer(opts: CaptureServerOptions): Promise<CaptureServer> {
  const cfg = { ...DEFAULTS, ...definedOnly(opts) };
  const logger = opts.logger.child({ component: 'capture' });
  const m = captureMetrics(opts.metrics);
  const worker = await startWorker(opts, logger);

  const queue = new PacketQueue(cfg.batchMaxMessages);
  let nextRetentionId = 1;
  const retentionWaiters = new Map<number, { resolve: (n: number) => void; reject: (e: Error) => void }>();
  let nextBatchId = 1;
  const inFlight = new Map<number, number>(); // batch id -> packets
  const batchStarted = new Map<number, number>(); // batch id -> performance.now()
  let timer: NodeJS.Timeout | undefined;
  const idleWaiters: (() => void)[] = [];
  let workerGone = false;
  let closing = false;

  const inFlightPackets = () => [...inFlight.values()].reduce((a, b) => a + b, 0);
  const drop = (reason: DropReason | 'store-failed', n: number, detail: string) => {
    m.dropped.inc({ reason }, n);
    logger.debug({ reason, n, detail }, 'HEP packets dropped');
  };

  worker.on('message', (msg: FromWorker) => {
    if (msg.type === 'retention-done') {
      const w = retentionWaiters.get(msg.id);
      retentionWaiters.delete(msg.id);
      if (msg.error === undefined) w?.resolve(msg.removed);
      else w?.reject(new Error(msg.error));
      return;
    }
    if (msg.type === 'event-failed') {
      logger.warn({ kind: msg.kind, err: msg.error }, 'control event not recorded');
      return;
    }
    if (msg.type !== 'done') return;
    const n = inFlight.get(msg.id) ?? 0;
    inFlight.delete(msg.id);
    m.batchSeconds.observe((performance.now() - (batchStarted.get(msg.id) ?? performance.now())) / 1000);
    batchStarted.delete(msg.id);
    if (msg.stored > 0) m.stored.inc(msg.stored);
    if (msg.forwarded > 0) m.forwarded.inc(msg.forwarded);
    for (const [reason, count] of Object.entries(msg.dropped)) if (count) m.dropped.inc({ reason }, count);
    if (msg.error !== undefined) logger.error({ err: msg.error, packets: n }, 'capture batch write failed');
    m.queue.set(queue.size + inFlightPackets());
    pump();
  });
  worker.on('exit', (code) => {
    if (closing) return;
    workerGone = true;
    const lost = inFlightPackets() + queue.size;
    inFlight.clear();
    queue.clear();
    for (const w of retentionWaiters.values()) w.reject(new Error('ingest worker exited'));
    retentionWaiters.clear();
    drop('store-failed', lost, `ingest worker exited with code ${code}`);
    logger.fatal({ code }, 'capture ingest worker exited: capture stops storing; restart the role');
    pump();
  });

  function receive(packet: Uint8Array, transport: 'udp' | 'tcp'): void {
    m.received.inc({ transport });
    if (workerGone) {
      drop('store-failed', 1, 'ingest worker gone');
      return;
    }
    if (queue.size >= cfg.maxQueuedMessages || queue.bytes + packet.byteLength > cfg.maxQueuedBytes) {
      drop('overload', 1, `queue holds ${queue.size} packets, ${queue.bytes} bytes`);
      return;
    }
    queue.push(packet, Date.now() * 1000);
    if (queue.size >= cfg.batchMaxMessages) pump();
    else if (!timer) timer = setTimeout(pump, cfg.batchMaxDelayMs);
  }

  /** Hands full (or overdue) batches to the worker while it has room. */
  function pump(): void {
    clearTimeout(timer);
    timer = undefined;
    while (!workerGone && queue.size > 0 && inFlight.size < MAX_IN_FLIGHT) {
      const { packets: batch, times } = queue.take();
      const n = batch.length;
      let size = 0;
      for (const p of batch) size += p.byteLength;
      const bytes = new Uint8Array(size);
      const lengths = new Uint32Array(n);
      let at = 0;
      batch.forEach((p, i) => {
        bytes.set(p, at);
        at += p.byteLength;
        lengths[i] = p.byteLength;
      });
      const id = nextBatchId++;
      inFlight.set(id, n);
      batchStarted.set(id, performance.now());
      const times32 = Float64Array.from(times);
      const message: ToWorker = { type: 'batch', id, bytes, lengths, receivedUs: times32 };
      worker.postMessage(message, [
        bytes.buffer as ArrayBuffer,
        lengths.buffer as ArrayBuffer,
        times32.buffer as ArrayBuffer,
      ]);
    }
    if (queue.size > 0 && !timer && inFlight.size < MAX_IN_FLIGHT)
      timer = setTimeout(pump, cfg.batchMaxDelayMs);
    m.queue.set(queue.size + inFlightPackets());
    if (queue.size === 0 && inFlight.size === 0) {
      for (const w of idleWaiters.splice(0)) w();
    }
  }

  async function flush(): Promise<void> {
    if (queue.size === 0 && inFlight.size === 0) return;
    const idle = new Promise<void>((r) => idleWaiters.push(r));
    pump();
    await idle;
  }

  // ---- listeners ----
  const udpSockets: UdpSocket[] = [];
  const tcpServers: Server[] = [];
  const tcpPeers = new Set<Socket>();
  const addresses: ListenAddress[] = [];

  try {
    for (const addr of opts.listen) {
      if (addr.transport === 'udp') addresses.push(await listenUdp(addr));
      else addresses.push(await listenTcp(addr));
    }
  } catch (err) {
    for (const s of udpSockets) s.close();
    for (const s of tcpServers) s.close();
    closing = true;
    await worker.terminate();
    throw err;
  }

  async function listenUdp(addr: ListenAddress): Promise<ListenAddress> {
    const sock = createSocket({
      type: addr.host.includes(':') ? 'udp6' : 'udp4',
      recvBufferSize: UDP_RECV_BUFFER_BYTES,
    });
    sock.on('message', (msg) => receive(msg, 'udp'));
    sock.on('error', (err) => logger.error({ err: describeError(err) }, 'HEP UDP socket error'));
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(addr.port, addr.host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    udpSockets.push(sock);
    const granted = sock.getRecvBufferSize();
    // Linux caps the request at net.core.rmem_max (and reports twice what it keeps).
    if (granted < UDP_RECV_BUFFER_BYTES) {
      logger.warn(
        { requested: UDP_RECV_BUFFER_BYTES, granted, sysctl: 'net.core.rmem_max' },
        'UDP receive buffer smaller than requested: bursts may be dropped by the kernel; raise net.core.rmem_max',
      );
    }
    return { transport: 'udp', host: addr.host, port: sock.address().port };
  }

  async function listenTcp(addr: ListenAddress): Promise<ListenAddress> {
    const server = createServer((socket) => acceptTcp(socket));
    server.maxConnections = cfg.maxTcpConnections;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(addr.port, addr.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    tcpServers.push(server);
    const a = server.address();
    return { transport: 'tcp', host: addr.host, port: typeof a === 'object' && a ? a.port : addr.port };
  }

  function acceptTcp(socket: Socket): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    tcpPeers.add(socket);
    m.tcpConnections.set(tcpPeers.size);
    const framer = createHepStreamFramer();
    // Half a frame and then silence: the peer is stuck or hostile; do not hold its buffer forever.
    // Silence between whole frames is normal (a quiet captagent or heplify keeps its session
    // open for hours), so such a peer stays; keep-alive probes remove it if its host is gone.
    // The timer fires once per quiet spell: each chunk received re-arms it.
    socket.setKeepAlive(true, TCP_KEEPALIVE_IDLE_MS);
    socket.setTimeout(cfg.tcpStallTimeoutMs, () => {
      const pending = framer.pendingBytes();
      if (pending === 0) return;
      drop('tcp-stalled', 1, `${peer}: ${pending} bytes pending`);
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      const { frames, error } = framer.feed(chunk);
      for (const f of frames) receive(f, 'tcp');
      if (error) {
        drop('tcp-framing', 1, `${peer}: ${error.reason}: ${error.detail}`);
        socket.destroy();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      tcpPeers.delete(socket);
      m.tcpConnections.set(tcpPeers.size);
    });
  }

  logger.info({ listen: addresses, forward: opts.forwardTo }, 'HEP capture listening');

  return {
    addresses,
    flush,
    queued: () => queue.size + inFlightPackets(),
    healthy: () => !workerGone,
    recordEvent(event) {
      if (!workerGone) worker.postMessage({ type: 'event', event } satisfies ToWorker);
    },
    applyRetention(policy) {
      if (workerGone) return Promise.reject(new Error('ingest worker exited'));
      const id = nextRetentionId++;
      return new Promise<number>((resolve, reject) => {
        retentionWaiters.set(id, { resolve, reject });
        worker.postMessage({ type: 'retention', id, policy, nowUs: Date.now() * 1000 } satisfies ToWorker);
      });
    },
    async close() {
      for (const s of udpSockets) s.close();
      for (const p of tcpPeers) p.destroy();
      await Promise.all(tcpServers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      if (!workerGone) {
        let timer: NodeJS.Timeout | undefined;
        const drained = await Promise.race([
          flush().then(() => true),
          new Promise<boolean>((r) => {
            timer = setTimeout(() => r(false), CLOSE_FLUSH_MS);
          }),
        ]);
        clearTimeout(timer);
        if (!drained) {
          const left = queue.size + inFlightPackets();
          drop('store-failed', left, `store did not take them within ${CLOSE_FLUSH_MS} ms of stopping`);
          logger.error({ packets: left }, 'stopped with packets not stored');
        }
      }
      closing = true;
      clearTimeout(timer);
      if (!workerGone) {
        const closed = new Promise<void>((r) =>
          worker.on('message', (msg: FromWorker) => msg.type === 'closed' && r()),
        );
        worker.postMessage({ type: 'close' } satisfies ToWorker);
        await Promise.race([closed, new Promise((r) => setTimeout(r, 5000).unref())]);
      }
      await worker.terminate();
    },
  };
}

/** Starts the ingest worker and waits until it has opened the store. */
async function startWorker(opts: CaptureServerOptions, logger: Logger): Promise<Worker> {
  const worker = new Worker(WORKER_URL);
  worker.on('error', (err) => logger.error({ err: describeError(err) }, 'capture ingest worker failed'));
  const init: ToWorker = {
    type: 'init',
    storeSpec: opts.storeSpec,
    ingest: {
      ...(opts.authKey === undefined ? {} : { authKey: opts.authKey }),
      ...(opts.correlationHeader === undefined ? {} : { correlationHeader: opts.correlationHeader }),
      ...(opts.keepKeepalives === undefined ? {} : { keepKeepalives: opts.keepKeepalives }),
    },
    ...(opts.forwardTo === undefined ? {} : { forwardTo: opts.forwardTo }),
  };
  worker.postMessage(init);
  const outcome = await new Promise<FromWorker | Error>((resolve) => {
    worker.once('message', (msg: FromWorker) => resolve(msg));
    worker.once('exit', (code) =>
      resolve(new Error(`ingest worker exited with code ${code} while starting`)),
    );
  });
  if (outcome instanceof Error || outcome.type !== 'ready') {
    await worker.terminate();
    const why =
      outcome instanceof Error
        ? outcome.message
        : outcome.type === 'init-failed'
          ? outcome.error
          : outcome.type;
    throw new SwitchyardError(ErrorCode.CAPTURE_STORE_UNAVAILABLE, `capture store: ${why}`, {
      retryable: true,
    });
  }
  return worker;
}

/**
 * Packets waiting for the worker, kept as ready-made batches: taking one is O(1) however long
 * the queue has grown. (Slicing one long array per batch made every batch cost as much as the
 * whole queue: a brief store stall then slowed the socket thread until the kernel dropped.)
 */
class PacketQueue {
  #chunks: Array<{ packets: Uint8Array[]; times: number[] }> = [];
  #size = 0;
  #bytes = 0;
  readonly #batch: number;

  constructor(batch: number) {
    this.#batch = batch;
  }

  get size(): number {
    return this.#size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  push(packet: Uint8Array, receivedUs: number): void {
    let last = this.#chunks.at(-1);
    if (!last || last.packets.length >= this.#batch) {
      last = { packets: [], times: [] };
      this.#chunks.push(last);
    }
    last.packets.push(packet);
    last.times.push(receivedUs);
    this.#size++;
    this.#bytes += packet.byteLength;
  }

  /** The oldest batch (full, or whatever has arrived); the queue must not be empty. */
  take(): { packets: Uint8Array[]; times: number[] } {
    const chunk = this.#chunks.shift() ?? { packets: [], times: [] };
    this.#size -= chunk.packets.length;
    for (const p of chunk.packets) this.#bytes -= p.byteLength;
    return chunk;
  }

  clear(): void {
    this.#chunks = [];
    this.#size = 0;
    this.#bytes = 0;
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function captureMetrics(registry: Registry) {
  const p = `${METRIC_PREFIX}capture_`;
  const dropped = new Counter({
    name: `${p}dropped_total`,
    help: 'HEP packets or SIP messages not stored, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of [...DROP_REASONS, 'store-failed']) dropped.inc({ reason }, 0);
  return {
    received: new Counter({
      name: `${p}packets_received_total`,
      help: 'HEP packets received (UDP datagrams, TCP frames)',
      labelNames: ['transport'] as const,
      registers: [registry],
    }),
    dropped,
    stored: new Counter({
      name: `${p}messages_stored_total`,
      help: 'SIP messages written to the store',
      registers: [registry],
    }),
    forwarded: new Counter({
      name: `${p}forwarded_total`,
      help: 'HEP packets forwarded upstream',
      registers: [registry],
    }),
    queue: new Gauge({
      name: `${p}queue_messages`,
      help: 'Packets waiting or with the ingest worker',
      registers: [registry],
    }),
    tcpConnections: new Gauge({
      name: `${p}tcp_connections`,
      help: 'Open HEP TCP connections',
      registers: [registry],
    }),
    batchSeconds: new Histogram({
      name: `${p}batch_write_seconds`,
      help: 'Time from handing a batch to the ingest worker to its answer (decode and store)',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
  };
}
