import { z } from 'zod';
import { parseAmiUrl } from '../agent/ami-url.ts';
import { agentConfigSchema } from '../agent/config.ts';
import { captureConfigSchema } from '../capture/config.ts';
import { NODE_ID_PATTERN, SIP_URI_PATTERN, weightSchema } from '../registry/records.ts';

/**
 * Configuration of `switchyard up`: the whole stack on one host (docs/guides/up.md, and
 * deploy/up/switchyard.example.yaml for a real host). Every address defaults to loopback.
 */

const host = z
  .string()
  .regex(/^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:]+)$/, 'an IPv4 or IPv6 address literal');
const port = z.number().int().min(1).max(65535);
const argv = z
  .array(
    z
      .string()
      .min(1)
      .max(4096)
      .regex(/^[^\u0000]*$/, 'no NUL'),
  )
  .min(1)
  .max(256);

export const upNodeSchema = z
  .object({
    /** Node id (Kamailio duid): unique in the cluster. */
    id: z.string().regex(NODE_ID_PATTERN, 'node id must be 1-63 chars of [A-Za-z0-9._-]'),
    /** Where Kamailio sends this node's calls and where OPTIONS probes go. */
    sipUri: z.string().refine((u) => SIP_URI_PATTERN.test(u), 'not a plain SIP URI (sip:host[:port])'),
    /** `ami://USER:PASSWORD@127.0.0.1:5038` (a secret: redacted in output). Unset: calls from captured SIP. */
    ami: z
      .string()
      .superRefine((text, ctx) => {
        const res = parseAmiUrl(text);
        if (!res.ok) ctx.addIssue({ code: 'custom', message: res.reason });
      })
      .optional(),
    weight: weightSchema.optional(),
    /** Most concurrent calls (used by the call-load algorithm). */
    maxCalls: z.number().int().min(1).max(1_000_000).optional(),
    /** Argv of the process to supervise (e.g. asterisk -f); unset: something else runs it. */
    command: argv.optional(),
    /** Run `command` as this user and group (the agent's `runAs`; `up` must run as root). */
    runAs: agentConfigSchema.shape.runAs,
    /** The agent's config file for everything else (hooks, templates, drain deadline...). */
    agentConfig: z.string().min(1).optional(),
  })
  .strict();

export const upConfigSchema = z
  .object({
    /** Where the registry, capture store, Kamailio's files and tokens live. */
    dataDir: z.string().min(1).default('var'),
    registryPrefix: z
      .string()
      .regex(/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/, 'absolute key prefix without trailing slash')
      .default('/switchyard'),
    kamailio: z
      .object({
        /** false: Kamailio runs elsewhere (its JSON-RPC must answer at rpcPort on 127.0.0.1). */
        managed: z.boolean().default(true),
        /** The kamailio binary; looked up in PATH and /usr/sbin. */
        bin: z.string().min(1).default('kamailio'),
        /** Your own kamailio.cfg instead of the generated one (docs/reference/kamailio-config.md says what it needs). */
        configFile: z.string().min(1).optional(),
        /** Kamailio's SIP (UDP) address: where callers and trunks send calls. */
        sipIp: host.default('127.0.0.1'),
        /** Kamailio's SIP (UDP) port. */
        sipPort: port.default(5060),
        /** JSON-RPC over HTTP on 127.0.0.1. */
        rpcPort: port.default(5071),
        /** weight (alg 9), relative-weight (alg 11) or call-load (alg 10 with maxCalls). */
        algorithm: z.enum(['weight', 'relative-weight', 'call-load']).default('weight'),
        /** Seconds between Kamailio's own OPTIONS probes of each backend. */
        pingIntervalS: z.number().int().min(1).max(3600).default(2),
        /** Seconds between two dispatcher.reload (Kamailio's reload_delta). */
        reloadDeltaS: z.number().int().min(1).max(3600).default(1),
        /** How long an INVITE waits for a first reply before Kamailio tries the next node. */
        frTimerMs: z.number().int().min(100).max(60_000).default(2000),
      })
      .strict()
      .prefault({}),
    capture: z
      .object({
        /** false: no capture (no calls page). */
        enabled: z.boolean().default(true),
        /** HEP listener(s); Kamailio's siptrace sends to the first UDP one. */
        listen: captureConfigSchema.shape.listen.default('udp://127.0.0.1:9060'),
        /** Default: sqlite:<dataDir>/capture.db. */
        store: z.string().min(1).optional(),
        retention: captureConfigSchema.shape.retention,
      })
      .strict()
      .prefault({}),
    console: z
      .object({
        /** Loopback by default: the console changes the cluster. */
        host: host.default('127.0.0.1'),
        /** The console's HTTP port (API, pages, /metrics, /healthz, /readyz). */
        port: z.number().int().min(0).max(65535).default(7080),
        /**
         * API tokens. Unset: an admin token is generated once into <dataDir>/console/admin.token
         * (mode 0600). Give at least 24 characters; tokens are secrets (redacted in output).
         */
        tokens: z
          .array(
            z
              .object({
                name: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, '1-64 chars of [A-Za-z0-9._@-]'),
                role: z.enum(['read', 'admin']),
                token: z.string().min(24, 'at least 24 characters').max(512),
              })
              .strict(),
          )
          .default([]),
      })
      .strict()
      .prefault({}),
    /** The nodes behind Kamailio, one agent each. */
    nodes: z.array(upNodeSchema).max(1000).default([]),
    /** Demo mode: stand-in SIP backends (sipp) and a gentle call generator. */
    demo: z
      .object({
        /** On by default when `up` runs without --config. */
        enabled: z.boolean().default(false),
        /** How many demo SIP backends (sipp, one agent each). */
        backends: z.number().int().min(1).max(20).default(3),
        /** The address the demo backends listen on. */
        backendIp: host.default('127.0.0.1'),
        /** The backends listen on firstPort, firstPort+1, ... */
        firstPort: port.default(5081),
        /** New calls per second (fractions allowed); 0: no generator. */
        callsPerSecond: z.number().min(0).max(50).default(1),
        /** How long each demo call lasts before the caller hangs up. */
        callDurationMs: z.number().int().min(500).max(600_000).default(8000),
        /** At most this many demo calls at once. */
        maxConcurrent: z.number().int().min(1).max(1000).default(30),
        /** The demo caller's own address. */
        callerIp: host.default('127.0.0.1'),
        /** The demo caller's SIP port (not 5060: that is Kamailio's by default). */
        callerPort: port.default(5090),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const ids = new Set<string>();
    c.nodes.forEach((n, i) => {
      if (ids.has(n.id))
        ctx.addIssue({ code: 'custom', path: ['nodes', i, 'id'], message: `duplicate node id ${n.id}` });
      ids.add(n.id);
    });
    if (!c.demo.enabled && c.nodes.length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['nodes'],
        message: 'list at least one node, or enable demo mode',
      });
  });

export type UpConfig = z.infer<typeof upConfigSchema>;
export type UpNode = z.infer<typeof upNodeSchema>;

/** Secrets `--print-config` and logs never show. */
export const UP_SECRET_PATHS: readonly string[] = ['nodes.*.ami', 'console.tokens.*.token'];
