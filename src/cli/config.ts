import { z } from 'zod';
import { agentConfigSchema } from '../agent/config.ts';
import { captureConfigSchema } from '../capture/config.ts';
import { dispatcherConfigSchema } from '../dispatcher/config.ts';
import { upConfigSchema } from '../up/config.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/**
 * Configuration of the operator commands (nodes, node add/remove, drain, weight...). The keys
 * are the dispatcher's own (`registry`, `registryPrefix`, ...) so that one SWITCHYARD_REGISTRY
 * serves both: an operator on a dispatcher host just runs `switchyard nodes`.
 */
export const cliConfigSchema = z
  .object({
    /** `etcd://host:port[,host:port...]` or `embedded:PATH` (or a bare path). */
    registry: dispatcherConfigSchema.shape.registry,
    registryPrefix: dispatcherConfigSchema.shape.registryPrefix,
    /** Deadline of every registry call; an operator can wait a little longer than a dispatcher. */
    registryCallTimeoutMs: z.number().int().min(50).max(60_000).default(3000),
    /** The console API, for `status`, `drain --wait` and the commands given --api. */
    api: z
      .object({
        /** Where `switchyard up` (or the console) answers. */
        url: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:7080'),
        /** An API token (a secret); prefer tokenFile. */
        token: z.string().min(1).max(512).optional(),
        /** A file holding the API token. */
        tokenFile: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        /** Log level of operator commands. Logs go to stderr, so stdout is only the answer. */
        level: z.enum(LOG_LEVELS).default('warn'),
      })
      .prefault({}),
  })
  .strict();

export type CliConfig = z.infer<typeof cliConfigSchema>;

/**
 * Every schema that reads SWITCHYARD_* variables. One host often has one environment for all
 * its roles, so a variable meant for another role is not a typo for this one.
 */
export const ROLE_CONFIG_SCHEMAS: readonly z.ZodType[] = [
  dispatcherConfigSchema,
  cliConfigSchema,
  agentConfigSchema,
  captureConfigSchema,
  upConfigSchema,
];

/**
 * Dotted paths of secrets in the dispatcher config. None today: the only secrets it can hold are
 * URL passwords (etcd://user:pass@..., http://user:pass@... for the RPC), which redaction hides
 * wherever they appear.
 */
export const DISPATCHER_SECRET_PATHS: readonly string[] = [];
