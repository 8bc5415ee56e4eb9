import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

/**
 * prom-client, loaded class by class. Its index also loads the Pushgateway and the cluster
 * aggregator, which pull https, http2, tls, zlib and cluster into every process: about 12 MB of
 * resident memory that no role uses (the agent's target is under 80 MB, docs/benchmarks.md).
 * These are the same classes the index exports; only this module touches prom-client's files.
 */
const load = createRequire(import.meta.url);
export const Counter: typeof Prom.Counter = load('prom-client/lib/counter.js');
export const Gauge: typeof Prom.Gauge = load('prom-client/lib/gauge.js');
export const Histogram: typeof Prom.Histogram = load('prom-client/lib/histogram.js');
export const Registry: typeof Prom.Registry = load('prom-client/lib/registry.js');
export const collectDefaultMetrics: typeof Prom.collectDefaultMetrics = load(
  'prom-client/lib/defaultMetrics.js',
);
export type Counter<T extends string = string> = Prom.Counter<T>;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export type Histogram<T extends string = string> = Prom.Histogram<T>;
export type Registry = Prom.Registry;

/** Every metric name starts with this prefix. */
export const METRIC_PREFIX = 'switchyard_';

/**
 * One registry per role instance, never prom-client's global one: two roles in one process
 * (`up`, tests) must not collide.
 */
export function createMetricsRegistry(defaultLabels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(defaultLabels);
  return registry;
}

/**
 * Several registries as one exposition (`switchyard up` runs many agents, each with its own
 * registry told apart by a default `node` label). Metrics of the same name are merged into one
 * family; prom-client's cluster aggregator, loaded only when this is called.
 */
export async function aggregateMetricsText(registries: readonly Registry[]): Promise<string> {
  const { AggregatorRegistry } = load('prom-client/lib/cluster.js') as typeof Prom;
  const all = await Promise.all(registries.map((r) => r.getMetricsAsJSON()));
  return AggregatorRegistry.aggregate(all).metrics();
}
