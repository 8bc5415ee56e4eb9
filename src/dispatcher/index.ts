import { type RoleRunOptions, type RunningRole, startRoleAdminServer } from '../core/admin-server.ts';
import { createLogger } from '../core/logger.ts';
import { createMetricsRegistry } from '../core/metrics.ts';
import { createKamailioRpc } from '../net/kamailio-rpc.ts';
import { createOptionsPinger } from '../net/options-pinger.ts';
import { createRegistry, openStore } from '../registry/index.ts';
import type { DispatcherConfig } from './config.ts';
import { createDispatcher } from './dispatcher.ts';

export { compareWithKamailio } from './compare.ts';
export { type DispatcherConfig, dispatcherConfigSchema } from './config.ts';
export {
  computeDesired,
  DEFAULT_WEIGHT,
  type DesiredDestination,
  type EffectiveState,
  effectiveState,
} from './desired.ts';
export {
  createDispatcher,
  type DispatcherDeps,
  type DispatcherHandle,
  type DispatcherRegistry,
} from './dispatcher.ts';

/**
 * Wires a dispatcher from its config: registry store, Kamailio JSON-RPC client, OPTIONS pinger,
 * metrics and the admin HTTP server (/metrics, /healthz, /readyz on loopback by default).
 */
export async function runDispatcher(
  config: DispatcherConfig,
  opts: RoleRunOptions = {},
): Promise<RunningRole> {
  const logger =
    opts.logger ?? createLogger({ level: config.log.level, base: { role: 'dispatcher', name: config.name } });
  const metrics = opts.metrics ?? createMetricsRegistry();
  const store = await openStore(config.registry, { callTimeoutMs: config.registryCallTimeoutMs, logger });
  const registry = createRegistry(store, { prefix: config.registryPrefix, logger, metrics });
  const rpc = createKamailioRpc({ url: config.kamailioRpc, timeoutMs: config.rpcTimeoutMs, logger });
  const pinger = await createOptionsPinger({ logger });
  const dispatcher = createDispatcher({
    config,
    registry,
    rpc,
    probe: async (uri, timeoutMs) => (await pinger.probe(uri, { timeoutMs })).up,
    logger,
    metrics,
  });
  const admin = await startRoleAdminServer(opts, config.admin, {
    metrics,
    health: () => dispatcher.health(),
    ready: () => dispatcher.ready(),
    logger,
  });
  logger.info(
    { admin: admin?.url, registry: store.kind, kamailioRpc: config.kamailioRpc, listFile: config.listFile },
    'dispatcher starting',
  );
  await dispatcher.start();
  return {
    adminUrl: admin?.url,
    health: () => dispatcher.health(),
    ready: () => dispatcher.ready(),
    async stop() {
      await dispatcher.close();
      await admin?.close();
      await pinger.close();
      await rpc.close();
      await registry.close();
      await store.close();
      logger.info('dispatcher stopped');
    },
  };
}
