import type { DispatcherDeps } from '../../src/dispatcher/dispatcher.ts';
import type { KamailioInstance } from './kamailio.ts';

type DispatcherTestConfig = DispatcherDeps['config'];

/**
 * The dispatcher config tests and benchmarks use against a harness Kamailio: its RPC and list
 * file, all sets, reload_delta 1 s (the harness default), and the mass-removal guard off unless
 * a test turns it on. `over` replaces any key.
 */
export function testDispatcherConfig(
  kamailio: KamailioInstance,
  over: Partial<DispatcherTestConfig> & { name: string },
): DispatcherTestConfig {
  return {
    kamailioRpc: kamailio.rpcUrl,
    listFile: kamailio.listFile,
    sets: [],
    reloadDeltaMs: 1000,
    verifyIntervalMs: 500,
    statusTtlMs: 5000,
    massRemoval: { maxFraction: 1, alwaysAllow: 1, windowMs: 0, probeTimeoutMs: 500, recheckIntervalMs: 500 },
    ...over,
  };
}
