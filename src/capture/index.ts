import { type RoleRunOptions, type RunningRole, startRoleAdminServer } from '../core/admin-server.ts';
import { describeError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { createMetricsRegistry } from '../core/metrics.ts';
import { createRegistry, openStore, type Registry } from '../registry/index.ts';
import type { RegistryView } from '../registry/view.ts';
import { type CaptureConfig, parseForward, parseListen } from './config.ts';
import { controlEvents } from './control-events.ts';
import type { CaptureStore } from './model.ts';
import { openCaptureStore } from './open-store.ts';
import { retentionPolicyOf, startRetentionLoop } from './retention.ts';
import { type CaptureServer, startCaptureServer } from './server.ts';
import { keptSummary } from './status.ts';

export { type CaptureConfig, captureConfigSchema } from './config.ts';
export {
  type CaptureCallSource,
  type CaptureCallSourceOptions,
  createCaptureCallSource,
  createLiveCallsPoller,
  DEFAULT_LIVE_CALLS_POLL_INTERVAL_MS,
  DEFAULT_LIVE_CALLS_WINDOW_MS,
  type LiveCallsPoller,
  type LiveCallsPollerOptions,
  normalizeLiveEndpoint,
} from './live-calls.ts';
export type { CaptureStore, LiveCallCount, LiveCallsQuery } from './model.ts';

export interface RunningCapture extends RunningRole {
  readonly server: CaptureServer;
  readonly store: CaptureStore;
  stop(): Promise<void>;
}

/**
 * Wires the capture role: store, HEP server, retention timer, optional registry watch for
 * control-plane events, and the admin server (/metrics, /healthz, /readyz).
 */
export async function runCapture(config: CaptureConfig, opts: RoleRunOptions = {}): Promise<RunningCapture> {
  const logger = opts.logger ?? createLogger({ level: config.log.level, base: { role: 'capture' } });
  const metrics = opts.metrics ?? createMetricsRegistry();
  const server = await startCaptureServer({
    listen: parseListen(config.listen),
    storeSpec: config.store,
    correlationHeader: config.correlationHeader,
    keepKeepalives: config.keepKeepalives,
    batchMaxMessages: config.batch.maxMessages,
    batchMaxDelayMs: config.batch.maxDelayMs,
    maxQueuedMessages: config.batch.maxQueued,
    tcpStallTimeoutMs: config.tcpStallTimeoutMs,
    ...(config.authKey === undefined ? {} : { authKey: config.authKey }),
    ...(config.forward === undefined ? {} : { forwardTo: parseForward(config.forward) }),
    metrics,
    logger,
  });

  // The ingest worker writes (messages, events, retention) through its own connection, and
  // created the schema; this one only reads (readiness, and callers such as the console's API).
  let store: CaptureStore;
  try {
    store = await openCaptureStore(config.store, { logger, readOnly: true });
  } catch (err) {
    await server.close();
    throw err;
  }

  const retention = startRetentionLoop({
    policy: retentionPolicyOf(config.retention),
    intervalMs: config.retention.intervalMs,
    apply: (policy) => server.applyRetention(policy),
    metrics,
    logger,
  });

  let stopped = false;
  let registry: Registry | undefined;
  let stopWatch: (() => Promise<void>) | undefined;
  let registryStore: Awaited<ReturnType<typeof openStore>> | undefined;
  if (config.registry !== undefined) {
    registryStore = await openStore(config.registry, { logger });
    registry = createRegistry(registryStore, { prefix: config.registryPrefix, logger });
    let previous: RegistryView | undefined;
    const onView = (view: RegistryView) => {
      const before = previous;
      previous = view;
      if (!before) return;
      for (const event of controlEvents(before, view, Date.now() * 1000)) server.recordEvent(event);
    };
    // Retried in the background: capture must run while the registry is away.
    const watchLoop = async () => {
      for (let delay = 500; !stopped; delay = Math.min(delay * 2, 10_000)) {
        try {
          const w = await registry?.watchView(onView);
          if (!w) return;
          previous = w.current();
          stopWatch = () => w.close();
          return;
        } catch (err) {
          logger.warn(
            { err: describeError(err) },
            'registry not reachable; control events will start when it is',
          );
          await new Promise((r) => setTimeout(r, delay).unref());
        }
      }
    };
    void watchLoop();
  }

  // The socket thread alone is not a capture server: without its worker nothing is stored.
  const health = () => ({
    ok: server.healthy(),
    checks: { ingestWorker: server.healthy() ? 'running' : 'exited' },
  });
  // Readiness doubles as "what is kept": the span, size and retention of the store, so an
  // operator (or a probe's log) sees at a glance how far back capture reaches.
  const ready = async () => {
    try {
      const kept = keptSummary(store.kind, await store.stats(), {
        policy: retention.policy,
        lastError: retention.lastError(),
      });
      return { ok: true, checks: { ...kept, queued: server.queued() } };
    } catch (err) {
      return { ok: false, checks: { store: describeError(err) } };
    }
  };
  const admin = await startRoleAdminServer(opts, config.admin, {
    metrics,
    health: health,
    ready: ready,
    logger,
  });
  logger.info({ admin: admin?.url, store: store.kind, listen: server.addresses }, 'capture started');

  return {
    adminUrl: admin?.url,
    server,
    store,
    health,
    ready,
    async stop() {
      stopped = true;
      retention.stop();
      await stopWatch?.();
      await registry?.close();
      await registryStore?.close();
      await server.close();
      await admin?.close();
      await store.close();
      logger.info('capture stopped');
    },
  };
}
