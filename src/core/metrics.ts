import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

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
