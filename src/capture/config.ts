import { z } from 'zod';

/** `udp://host:port` or `tcp://host:port`; IPv6 hosts in brackets. */
const LISTEN_PATTERN = /^(udp|tcp):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/**
 * Configuration of the capture server (`switchyard capture`). Loaded by core/config from file,
 * then SWITCHYARD_* environment, then flags; docs/reference/config.md lists every key.
 */
export const captureConfigSchema = z
  .object({
    /** Comma-separated listeners, e.g. `udp://127.0.0.1:9060,tcp://127.0.0.1:9060`. */
    listen: z
      .string()
      .refine(
        (s) =>
          s
            .split(',')
            .every(
              (p) => LISTEN_PATTERN.test(p.trim()) && Number(LISTEN_PATTERN.exec(p.trim())?.[3]) <= 65535,
            ),
        'comma-separated udp://host:port or tcp://host:port',
      )
      .default('udp://127.0.0.1:9060,tcp://127.0.0.1:9060'),
    /** `sqlite:PATH` (one host) or `postgres://user@host/db` (several hosts send). */
    store: z.string().min(1).default('sqlite:var/capture.db'),
    /** HEP auth key (chunk 14) every sender must present; none when absent. A secret. */
    authKey: z.string().min(1).max(256).optional(),
    /** Header that links B-legs to their A-leg (its value is a correlation key), e.g. X-CID. */
    correlationHeader: z
      .string()
      .regex(/^[A-Za-z0-9-]{1,64}$/)
      .default('X-CID'),
    /** Store OPTIONS keep-alives too (dropped and counted by default). */
    keepKeepalives: z.boolean().default(false),
    /**
     * A TCP sender that holds half a HEP frame this long is disconnected (counted `tcp-stalled`).
     * One silent between whole frames stays connected (TCP keep-alive removes a dead one).
     */
    tcpStallTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /** Forward every authenticated HEP packet to this upstream collector (an existing Homer). */
    forward: z
      .string()
      .regex(/^udp:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'udp://host:port')
      .optional(),
    batch: z
      .object({
        /** Largest batch written in one transaction. */
        maxMessages: z.number().int().min(1).max(100_000).default(500),
        /** Longest a message waits before its batch is written (and becomes searchable). */
        maxDelayMs: z.number().int().min(1).max(10_000).default(100),
        /** Messages waiting beyond this are dropped and counted as `overload`. */
        maxQueued: z.number().int().min(1000).max(10_000_000).default(200_000),
      })
      .strict()
      .prefault({}),
    retention: z
      .object({
        /** Delete messages older than this many hours, fractions allowed (0: keep by age forever). */
        maxAgeHours: z.number().min(0).max(87_600).default(168),
        /** Keep stored SIP under this many MiB (1 MiB = 1,048,576 bytes), oldest calls first (0: no size limit). */
        maxSizeMb: z.number().int().min(0).max(10_000_000).default(10_240),
        /** How often retention runs. */
        intervalMs: z.number().int().min(1000).max(86_400_000).default(60_000),
      })
      .strict()
      .prefault({}),
    /** Record control-plane events from this registry (optional): `etcd://...` or `embedded:PATH`. */
    registry: z.string().min(1).optional(),
    registryPrefix: z
      .string()
      .regex(/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/, 'absolute key prefix without trailing slash')
      .default('/switchyard'),
    admin: z
      .object({
        /** /metrics, /healthz, /readyz. No authentication: keep it on loopback. */
        host: z.string().default('127.0.0.1'),
        /** 0 picks a free port (printed at start). */
        port: z.number().int().min(0).max(65535).default(9403),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type CaptureConfig = z.infer<typeof captureConfigSchema>;

/** Secrets in this config (redacted by --print-config and in logs). */
export const CAPTURE_SECRET_PATHS: readonly string[] = ['authKey'];

/** Parses the `listen` string (already validated by the schema). */
export function parseListen(listen: string): Array<{ transport: 'udp' | 'tcp'; host: string; port: number }> {
  return listen.split(',').map((part) => {
    const m = LISTEN_PATTERN.exec(part.trim());
    if (!m) throw new Error(`invalid listen address ${part}`);
    const host = (m[2] as string).replace(/^\[|\]$/g, '');
    return { transport: m[1] as 'udp' | 'tcp', host, port: Number(m[3]) };
  });
}

export function parseForward(forward: string): { host: string; port: number } {
  const m = /^udp:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(forward);
  if (!m) throw new Error(`invalid forward address ${forward}`);
  return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}
