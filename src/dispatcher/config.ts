import { hostname } from 'node:os';
import { z } from 'zod';

/**
 * Configuration of one dispatcher (one per Kamailio). Loaded by core/config from file, then
 * SWITCHYARD_* environment, then flags; docs/reference/config.md lists every key.
 */
export const dispatcherConfigSchema = z
  .object({
    /** `etcd://host:port[,host:port...]` or `embedded:PATH` (or a bare path) for the single-host store. */
    registry: z.string().min(1).default('embedded:var/registry.db'),
    /** Key prefix of everything switchyard stores; several clusters can share one etcd with different prefixes. */
    registryPrefix: z
      .string()
      .regex(/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/, 'absolute key prefix without trailing slash')
      .default('/switchyard'),
    /** Deadline of every registry call. */
    registryCallTimeoutMs: z.number().int().min(50).max(60_000).default(1000),
    /** Kamailio jsonrpcs endpoint over HTTP (xhttp). Loopback unless you know why not. */
    kamailioRpc: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:5071/RPC'),
    /** Deadline of each JSON-RPC call to Kamailio. */
    rpcTimeoutMs: z.number().int().min(50).max(60_000).default(2000),
    /** The file Kamailio's dispatcher module loads (modparam list_file). */
    listFile: z.string().min(1).default('var/dispatcher.list'),
    /** Only manage these set ids; all sets in the registry when empty. */
    sets: z.array(z.number().int().min(1).max(65535)).default([]),
    /** Published in the registry so the console can tell dispatchers apart. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/)
      .default(
        hostname()
          .replace(/[^A-Za-z0-9._-]/g, '-')
          .slice(0, 63) || 'dispatcher',
      ),
    /** Must equal Kamailio's modparam("dispatcher", "reload_delta") in ms: reloads are spaced by it. */
    reloadDeltaMs: z.number().int().min(0).max(600_000).default(5000),
    /** How often Kamailio's view is read back to detect and repair drift. */
    verifyIntervalMs: z.number().int().min(100).max(600_000).default(2000),
    /** TTL of this dispatcher's status record in the registry. */
    statusTtlMs: z.number().int().min(1000).max(600_000).default(10_000),
    massRemoval: z
      .object({
        /**
         * A single change that would remove more than this fraction of a set's active nodes is
         * held (not applied) unless the removed nodes also fail SIP OPTIONS. 1 disables the guard.
         */
        maxFraction: z.number().min(0).max(1).default(0.5),
        /** Removing at most this many nodes at once is never held, whatever the fraction. */
        alwaysAllow: z.number().int().min(0).max(10_000).default(1),
        /** Removals this close together count as one change (records vanish one event at a time). */
        windowMs: z.number().int().min(0).max(600_000).default(10_000),
        /** OPTIONS timeout used to confirm that held nodes are really gone. */
        probeTimeoutMs: z.number().int().min(50).max(30_000).default(1500),
        /** How often held removals are re-checked. */
        recheckIntervalMs: z.number().int().min(100).max(600_000).default(5000),
      })
      .strict()
      .prefault({}),
    admin: z
      .object({
        /**
         * Address of the admin HTTP server (/metrics, /healthz, /readyz). It has no
         * authentication: keep it on loopback unless a firewall guards it.
         */
        host: z.string().default('127.0.0.1'),
        /** 0 picks a free port (printed at start). */
        port: z.number().int().min(0).max(65535).default(9401),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        /** Log level: fatal, error, warn, info, debug or trace. Logs are JSON lines (pino). */
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type DispatcherConfig = z.infer<typeof dispatcherConfigSchema>;
