import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { parentPort } from 'node:worker_threads';
import { describeError } from '../core/errors.ts';
import { type IngestDropReason, type IngestOptions, ingestHep } from './ingest.ts';
import type { CapturedMessage, CaptureStore, ControlEvent, RetentionPolicy } from './model.ts';
import { openCaptureStore } from './open-store.ts';

/**
 * The capture server's second thread: decodes HEP and SIP (ingest.ts), forwards to the upstream
 * collector, and writes batches to the store. The main thread only reads sockets, so a long
 * SQLite transaction or a burst of parsing never keeps it from draining the UDP receive buffer,
 * and the two halves run on two cores (docs/benchmarks.md, capture).
 *
 * Protocol (the types below): `init` once, answered by `ready` or `init-failed`; then `batch`
 * (packets packed in one transferred buffer), answered by `done` with what was stored and
 * dropped; `close`, answered by `closed` once the store is closed.
 */

export interface InitMessage {
  type: 'init';
  storeSpec: string;
  ingest: IngestOptions;
  forwardTo?: { host: string; port: number };
}

export interface BatchMessage {
  type: 'batch';
  id: number;
  /** Every packet, back to back. */
  bytes: Uint8Array;
  /** Length of each packet in `bytes`. */
  lengths: Uint32Array;
  /** Receive time of each packet, µs since the epoch (used when HEP carries no timestamp). */
  receivedUs: Float64Array;
}

export type ToWorker =
  | InitMessage
  | BatchMessage
  | { type: 'event'; event: ControlEvent }
  | { type: 'retention'; id: number; policy: RetentionPolicy; nowUs: number }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'init-failed'; error: string }
  | {
      type: 'done';
      id: number;
      stored: number;
      dropped: Partial<Record<IngestDropReason | 'store-failed', number>>;
      forwarded: number;
      error?: string;
    }
  | { type: 'retention-done'; id: number; removed: number; error?: string }
  | { type: 'event-failed'; kind: string; error: string }
  | { type: 'closed' };

if (parentPort) {
  const port = parentPort;
  let store: CaptureStore | undefined;
  let ingest: IngestOptions = {};
  let forwarder: UdpSocket | undefined;
  let forwarding = false;
  const send = (m: FromWorker) => port.postMessage(m);

  port.on('message', (m: ToWorker) => {
    if (m.type === 'init') {
      ingest = m.ingest;
      const forwardTo = m.forwardTo;
      if (forwardTo) {
        forwarder = createSocket(forwardTo.host.includes(':') ? 'udp6' : 'udp4');
        forwarder.on('error', () => undefined); // counted as forwarded; UDP promises nothing more
        // Connected once: send() with a host name would resolve it for every packet.
        forwarder.connect(forwardTo.port, forwardTo.host, () => {
          forwarding = true;
        });
      }
      openCaptureStore(m.storeSpec).then(
        (s) => {
          store = s;
          send({ type: 'ready' });
        },
        (err: unknown) => send({ type: 'init-failed', error: describeError(err) }),
      );
      return;
    }
    if (m.type === 'close') {
      forwarder?.close();
      void (store?.close() ?? Promise.resolve()).finally(() => send({ type: 'closed' }));
      return;
    }
    if (m.type === 'event') {
      // Writes go through this thread only: the socket thread must never wait on the store.
      store
        ?.recordEvent(m.event)
        .catch((err: unknown) =>
          send({ type: 'event-failed', kind: m.event.kind, error: describeError(err) }),
        );
      return;
    }
    if (m.type === 'retention') {
      const run = store
        ? store.applyRetention(m.policy, m.nowUs)
        : Promise.reject(new Error('store not open'));
      run.then(
        (removed) => send({ type: 'retention-done', id: m.id, removed }),
        (err: unknown) => send({ type: 'retention-done', id: m.id, removed: 0, error: describeError(err) }),
      );
      return;
    }
    handleBatch(m).catch((err: unknown) => {
      // Never reached by bad input (ingestHep returns failures); a bug must not kill the thread.
      send({
        type: 'done',
        id: m.id,
        stored: 0,
        dropped: { 'store-failed': m.lengths.length },
        forwarded: 0,
        error: describeError(err),
      });
    });
  });

  async function handleBatch(m: BatchMessage): Promise<void> {
    const messages: CapturedMessage[] = [];
    const dropped: Partial<Record<IngestDropReason | 'store-failed', number>> = {};
    let forwarded = 0;
    let at = 0;
    for (let i = 0; i < m.lengths.length; i++) {
      const packet = m.bytes.subarray(at, at + (m.lengths[i] as number));
      at += m.lengths[i] as number;
      let res: ReturnType<typeof ingestHep>;
      try {
        res = ingestHep(packet, ingest, m.receivedUs[i] as number);
      } catch (err) {
        // ingestHep returns failures rather than throwing (and is fuzzed for it); should a bug
        // slip through, it costs this packet, not the thread.
        res = { ok: false, reason: 'sip-parse', detail: describeError(err) };
      }
      const passedEnvelope = res.ok || (res.reason !== 'auth' && FORWARDABLE.has(res.reason));
      if (forwarder && forwarding && passedEnvelope) {
        forwarder.send(packet);
        forwarded++;
      }
      if (res.ok) messages.push(res.message);
      else dropped[res.reason] = (dropped[res.reason] ?? 0) + 1;
    }
    let stored = 0;
    let error: string | undefined;
    if (messages.length > 0) {
      try {
        if (!store) throw new Error('store not open');
        await store.insertBatch(messages);
        stored = messages.length;
      } catch (err) {
        error = describeError(err);
        dropped['store-failed'] = (dropped['store-failed'] ?? 0) + messages.length;
      }
    }
    send({ type: 'done', id: m.id, stored, dropped, forwarded, ...(error === undefined ? {} : { error }) });
  }
}

/** Drops after the HEP envelope was read: the upstream collector may still want these. */
const FORWARDABLE: ReadonlySet<string> = new Set(['not-sip', 'sip-parse', 'sip-fields', 'keepalive']);
