import type { Logger } from '../core/logger.ts';
import { createRegistry, openStore } from '../registry/index.ts';

/**
 * The baseline's stand-in for the original announcer (research/seed-systems.md §1): it puts
 * the node in the registry once and keeps its heartbeat (here a lease of `ttlMs`, the original's
 * 20 s dispatcher timeout) alive, whatever the backend's health. Stopped, it does not
 * deregister: the node leaves only when the heartbeat runs out, as in the original.
 */
export async function runAnnouncer(opts: {
  registry: string;
  nodeId: string;
  sipUri: string;
  ttlMs: number;
  logger: Logger;
}): Promise<{ stop(): Promise<void> }> {
  const store = await openStore(opts.registry, { logger: opts.logger });
  const registry = createRegistry(store, { logger: opts.logger });
  const now = new Date().toISOString();
  const announcement = await registry.announce(
    { id: opts.nodeId, uri: opts.sipUri, state: 'ready', startedAt: now },
    { ttlMs: opts.ttlMs },
  );
  return {
    async stop() {
      announcement.release();
      await registry.close();
      await store.close();
    },
  };
}
