import { loadConfig } from '../core/config/index.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import type { Registry } from '../registry/index.ts';
import { type CliConfig, cliConfigSchema, ROLE_CONFIG_SCHEMAS } from './config.ts';
import { configError } from './output.ts';

export type OperatorRegistry = Registry;

/** The options every operator command takes (addRegistryOptions in program.ts). */
export interface RegistryFlags {
  registry?: string | undefined;
  prefix?: string | undefined;
  callTimeoutMs?: string | undefined;
  logLevel?: string | undefined;
}

export interface RegistrySession {
  registry: OperatorRegistry;
  config: Readonly<CliConfig>;
  logger: Logger;
}

/** Loads the operator config (defaults < env < flags); throws a config error (exit 2) on problems. */
export function loadCliConfig(flags: RegistryFlags): Readonly<CliConfig> {
  const res = loadConfig({
    schema: cliConfigSchema,
    sharedEnvSchemas: ROLE_CONFIG_SCHEMAS,
    flags: {
      registry: flags.registry,
      registryPrefix: flags.prefix,
      registryCallTimeoutMs: flags.callTimeoutMs,
      log: { level: flags.logLevel },
    },
  });
  if (!res.ok) throw configError(res.problems);
  return res.config;
}

/**
 * Opens the registry named by the flags (or SWITCHYARD_REGISTRY, or the embedded default), runs
 * `fn` and closes everything, whatever `fn` does.
 */
export async function withRegistry<T>(
  flags: RegistryFlags,
  fn: (session: RegistrySession) => Promise<T>,
): Promise<T> {
  const config = loadCliConfig(flags);
  const logger = createLogger({
    level: config.log.level,
    base: { role: 'cli' },
    destination: process.stderr,
  });
  // Loaded here rather than at the top so that `--help`, `--print-config` and usage errors do
  // not pay for (or depend on) the registry backends.
  const { createRegistry, openStore } = await import('../registry/index.ts');
  const store = await openStore(config.registry, { callTimeoutMs: config.registryCallTimeoutMs, logger });
  try {
    const registry = createRegistry(store, { prefix: config.registryPrefix, logger });
    try {
      return await fn({ registry, config, logger });
    } finally {
      await registry.close();
    }
  } finally {
    await store.close();
  }
}
