export { type AdminServer, type AdminServerOptions, startAdminServer } from './admin-server.ts';
export * from './config/index.ts';
export { describeError, ErrorCode, SwitchyardError } from './errors.ts';
export {
  createLogger,
  createSilentLogger,
  type Logger,
  type LoggerOptions,
  REDACTED_PATHS,
} from './logger.ts';
export { Counter, createMetricsRegistry, Gauge, Histogram, METRIC_PREFIX, Registry } from './metrics.ts';
export { fail, ok, type Result } from './result.ts';
