import { startAdminServer } from '../core/admin-server.ts';
import { describeError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { createMetricsRegistry, Gauge, METRIC_PREFIX } from '../core/metrics.ts';
import { createRegistry, openStore, type Registry } from '../registry/index.ts';
import type { RegistryView } from '../registry/view.ts';
import { type CaptureConfig, parseForward, parseListen } from './config.ts';
import { controlEvents } from './control-events.ts';
import type { CaptureStore, RetentionPolicy } from './model.ts';
import { openCaptureStore } from './open-store.ts';
import { type CaptureServer, startCaptureServer } from './server.ts';

export { type CaptureConfig, captureConfigSchema } from './config.ts';

export interface RunningCapture {
  readonly adminUrl: string;
  readonly server: CaptureServer;
  readonly store: CaptureStore;
  stop(): Promise<void>;
}

/**
 * Wires the capture role: store, HEP server, retention timer, optional registry watch for
 * control-plane events, and the admin server (/metrics, /healthz, /readyz).
 */
export async function runCapture(
  config: CaptureConfig,
  opts: { logger?: Logger } = {},
): Promise<RunningCapture> {
  const logger = opts.logger ?? createLogger({ level: config.log.level, base: { role: 'capture' } });
  const metrics = createMetricsRegistry();
  // The ingest worker writes through its own connection; this one serves queries and retention.
  const store = await openCaptureStore(config.store, { logger });
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

  const policy: RetentionPolicy = {
    ...(config.retention.maxAgeHours > 0 ? { maxAgeMs: config.retention.maxAgeHours * 3_600_000 } : {}),
    ...(config.retention.maxSizeMb > 0 ? { maxBytes: config.retention.maxSizeMb * 1024 * 1024 } : {}),
  };
  const retentionRemoved = new Gauge({
    name: `${METRIC_PREFIX}capture_retention_last_removed_messages`,
    help: 'Messages removed by the last retention run',
    registers: [metrics],
  });
  let lastRetentionError: string | undefined;
  const retention = setInterval(() => {
    store.applyRetention(policy, Date.now() * 1000).then(
      (removed) => {
        lastRetentionError = undefined;
        retentionRemoved.set(removed);
        if (removed > 0) logger.info({ removed, policy }, 'retention removed old messages');
      },
      (err: unknown) => {
        lastRetentionError = describeError(err);
        logger.warn({ err: lastRetentionError }, 'retention failed');
      },
    );
  }, config.retention.intervalMs);
  retention.unref();

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
      for (const event of controlEvents(before, view, Date.now() * 1000)) {
        store.recordEvent(event).catch((err: unknown) => {
          logger.warn({ err: describeError(err), kind: event.kind }, 'control event not recorded');
        });
      }
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

  const admin = await startAdminServer({
    host: config.admin.host,
    port: config.admin.port,
    metrics,
    processMetrics: true,
    health: () => ({ ok: true }),
    ready: async () => {
      try {
        const stats = await store.stats();
        return {
          ok: true,
          checks: {
            store: store.kind,
            messages: stats.messages,
            queued: server.queued(),
            ...(lastRetentionError === undefined ? {} : { retention: lastRetentionError }),
          },
        };
      } catch (err) {
        return { ok: false, checks: { store: describeError(err) } };
      }
    },
    logger,
  });
  logger.info({ admin: admin.url, store: store.kind, listen: server.addresses }, 'capture started');

  return {
    adminUrl: admin.url,
    server,
    store,
    async stop() {
      stopped = true;
      clearInterval(retention);
      await stopWatch?.();
      await registry?.close();
      await registryStore?.close();
      await server.close();
      await admin.close();
      await store.close();
      logger.info('capture stopped');
    },
  };
}
