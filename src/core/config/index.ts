export {
  childEnvironment,
  coerceText,
  DEFAULT_ENV_PREFIX,
  envNameFor,
  PASSED_DOWN_ENV_NAMES,
} from './env.ts';
export {
  type ConfigProblem,
  type ConfigResult,
  type ConfigSource,
  formatConfigProblems,
  type LoadConfigOptions,
  loadConfig,
} from './load.ts';
export { REDACTED, redactConfig, redactUrlPasswords } from './redact.ts';
export {
  type ConfigLeaf,
  type ConfigObjectNode,
  type LeafKind,
  leafKindOf,
  listLeaves,
  objectNodeOf,
  unwrapSchema,
} from './schema-walk.ts';
