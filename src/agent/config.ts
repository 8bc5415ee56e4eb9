import { hostname } from 'node:os';
import { z } from 'zod';
import { ACCOUNT_NAME } from '../core/executables.ts';
import { dispatcherConfigSchema } from '../dispatcher/config.ts';
import { NODE_ID_PATTERN, SIP_URI_PATTERN, weightSchema } from '../registry/index.ts';
import { parseAmiUrl } from './ami-url.ts';
import { PHASES } from './phases.ts';
import { BUILTIN_TEMPLATE_VARS, TEMPLATE_VAR_NAME } from './template-vars.ts';

/** C0 controls and DEL: in a value that ends up in a file or a log line they could forge lines. */
const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f]*$/;
/** The same, tab allowed (values rendered into config files may legitimately hold one). */
const NO_CONTROL_CHARS_BUT_TAB = /^[^\u0000-\u0008\u000a-\u001f\u007f]*$/;

/**
 * A command as an argv array, run without a shell: nothing in it is ever interpreted (no globs,
 * no `$VAR`, no `;`). Wrap in `["sh", "-c", "..."]` explicitly if a shell is really wanted.
 */
const argvSchema = z
  .array(
    z
      .string()
      .max(4096)
      .refine((arg) => !arg.includes('\u0000'), 'NUL is not allowed in an argument'),
  )
  .min(1)
  .max(256)
  .refine((argv) => argv[0] !== '', 'the program (first element) must not be empty');

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** A host name, IPv4 or IPv6 address (no brackets, no port). */
const HOST_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:.]{2,45})$/;

const hookSchema = z
  .object({
    /** Argv of the hook (no shell); its environment carries SWITCHYARD_PHASE and friends. */
    command: argvSchema,
    /** The hook's process group is killed after this long. */
    timeoutMs: z.number().int().min(100).max(3_600_000).default(10_000),
  })
  .strict();

/**
 * Configuration of one node agent (one per Asterisk). Loaded by core/config from file, then
 * SWITCHYARD_* environment, then flags; docs/reference/config.md lists every key.
 */
export const agentConfigSchema = z
  .object({
    /** `etcd://host:port[,host:port...]` or `embedded:PATH` (or a bare path) for the single-host store. */
    registry: dispatcherConfigSchema.shape.registry,
    /** Key prefix of everything switchyard stores; must equal the dispatchers'. */
    registryPrefix: dispatcherConfigSchema.shape.registryPrefix,
    /** Deadline of every registry call. */
    registryCallTimeoutMs: dispatcherConfigSchema.shape.registryCallTimeoutMs,
    /** This node's id in the registry and Kamailio's `duid`: unique in the cluster. */
    nodeId: z
      .string()
      .regex(NODE_ID_PATTERN, 'node id must be 1-63 chars of [A-Za-z0-9._-]')
      .default(
        hostname()
          .replace(/[^A-Za-z0-9._-]/g, '-')
          .replace(/^[^A-Za-z0-9]+/, '')
          .slice(0, 63) || 'asterisk',
      ),
    /** Where Kamailio sends calls to this Asterisk, and where OPTIONS probes go: `sip:host[:port][;transport=x]`. */
    sipUri: z
      .string()
      .max(255)
      // refine, not regex: the pattern (records.ts) is too long to be useful in the reference.
      .refine((uri) => SIP_URI_PATTERN.test(uri), 'not a plain SIP URI (sip:host[:port][;transport=x])'),
    /** Dispatcher set this node joins (Kamailio `ds_select_dst` set id). */
    setId: z.number().int().min(1).max(65535).default(1),
    /** Relative weight 1-100 in the set; unset lets the dispatcher share the rest evenly. */
    weight: weightSchema.optional(),
    /** Most concurrent calls this node should take; published for the load balancer. */
    maxCalls: z.number().int().min(1).max(1_000_000).optional(),
    /** Dispatcher priority of this node in its set (Kamailio orders destinations by it). */
    priority: z.number().int().min(0).max(1000).default(0),
    /**
     * TTL of the node's lease: how long the node stays listed after the agent dies. etcd rounds
     * TTLs below 2 s up to 2 s, hence the minimum.
     */
    leaseTtlMs: z.number().int().min(2000).max(600_000).default(3000),
    /**
     * Asterisk Manager Interface, `ami://USER:PASSWORD@127.0.0.1:5038` (percent-encode reserved
     * characters). The password is redacted in every output. Unset: no AMI (no call counts, no
     * `core stop now`; readiness from SIP OPTIONS alone).
     */
    ami: z
      .string()
      .superRefine((text, ctx) => {
        const res = parseAmiUrl(text);
        if (!res.ok) ctx.addIssue({ code: 'custom', message: res.reason });
      })
      .optional(),
    /**
     * Argv of the Asterisk process to supervise, e.g. `["asterisk", "-f"]` (with `runAs`). It
     * must stay in the foreground (`-f`): a daemonising command looks like a crash. Unset: the
     * agent supervises nothing and only probes and announces an Asterisk started elsewhere.
     */
    command: argvSchema.optional(),
    /**
     * Run `command` as this user and group (names or numbers), through util-linux's setpriv, with
     * the user's supplementary groups; the agent must be root (or hold CAP_SETUID/CAP_SETGID).
     * Prefer it to Asterisk's own `-U`/`-G`: a process that changes its uid itself loses the
     * parent-death signal (`stop.onAgentDeath`), one started as its user keeps it. `group`
     * defaults to the user's name. Unset: the service runs as the agent's user.
     */
    runAs: z
      .object({
        /** The service's user, e.g. `asterisk`. */
        user: z.string().regex(ACCOUNT_NAME, 'a user name or uid'),
        /** Its group; default: a group named like the user. */
        group: z.string().regex(ACCOUNT_NAME, 'a group name or gid').optional(),
      })
      .strict()
      .optional(),
    /** Address Asterisk advertises for media (template variable `announceAddress`); defaults to the host of `sipUri`. */
    announceAddress: z
      .string()
      .refine((host) => HOST_PATTERN.test(host), 'a host name or IP address without port')
      .optional(),
    rtp: z
      .object({
        /** First RTP port of Asterisk (template variable `rtpStart`, for rtp.conf `rtpstart`). */
        start: z.number().int().min(1024).max(65535).default(10_000),
        /** Last RTP port of Asterisk (template variable `rtpEnd`, for rtp.conf `rtpend`). */
        end: z.number().int().min(1024).max(65535).default(20_000),
      })
      .strict()
      .refine((rtp) => rtp.start < rtp.end, { message: 'rtp.start must be below rtp.end', path: ['end'] })
      .prefault({}),
    health: z
      .object({
        /** How often the agent sends SIP OPTIONS to `sipUri`. */
        optionsIntervalMs: z.number().int().min(100).max(600_000).default(1000),
        /** An OPTIONS without a final response within this long counts as a failure. */
        optionsTimeoutMs: z.number().int().min(50).max(32_000).default(500),
        /** Consecutive failed probes before the node counts as unhealthy (one lost datagram is not an outage). */
        failuresToDown: z.number().int().min(1).max(100).default(3),
        /** Consecutive good probes before an unhealthy node counts as healthy again (no flapping). */
        successesToUp: z.number().int().min(1).max(100).default(2),
        /**
         * How long AMI may stay lost (disconnected, or back without FullyBooted) before an up node
         * counts as unhealthy. A manager reload or a TCP reset must not flap the node (the client
         * reconnects by itself); a dead Asterisk is caught at once by the process exit and by
         * OPTIONS. Warm-up still needs AMI connected and FullyBooted before announcing.
         */
        amiDownGraceMs: z.number().int().min(0).max(600_000).default(3000),
      })
      .strict()
      .refine((h) => h.optionsTimeoutMs <= h.optionsIntervalMs, {
        message: 'optionsTimeoutMs must not exceed optionsIntervalMs (probes would overlap)',
        path: ['optionsTimeoutMs'],
      })
      .prefault({}),
    readiness: z
      .object({
        /** Warm-up deadline: a (re)started Asterisk that is not ready within this long is restarted. */
        timeoutMs: z.number().int().min(1000).max(3_600_000).default(120_000),
      })
      .strict()
      .prefault({}),
    restart: z
      .object({
        /** Delay before the first restart; doubles on each consecutive one. */
        initialBackoffMs: z.number().int().min(0).max(600_000).default(500),
        /** Ceiling of the restart delay. */
        maxBackoffMs: z.number().int().min(0).max(3_600_000).default(30_000),
        /** This many restarts within `crashLoopWindowMs` and the agent gives up: phase `failed`. */
        crashLoopRestarts: z.number().int().min(1).max(1000).default(5),
        /** Sliding window of the crash-loop count. */
        crashLoopWindowMs: z.number().int().min(1000).max(86_400_000).default(300_000),
        /** How long Asterisk may stay unhealthy (failed probes) before the agent restarts it. */
        unhealthyRestartAfterMs: z.number().int().min(1000).max(3_600_000).default(30_000),
      })
      .strict()
      .refine((r) => r.initialBackoffMs <= r.maxBackoffMs, {
        message: 'initialBackoffMs must not exceed maxBackoffMs',
        path: ['initialBackoffMs'],
      })
      .prefault({}),
    drain: z
      .object({
        /**
         * Longest wait for calls to end before stopping anyway. With `stop.graceMs` it must fit in
         * the orchestrator's stop grace: Kubernetes' default is 30 s, Docker's only 10 s (raise
         * `stop_grace_period` / `--stop-timeout`).
         */
        deadlineMs: z.number().int().min(0).max(86_400_000).default(25_000),
        /** How often drain progress (calls left) is logged and published. */
        progressIntervalMs: z.number().int().min(100).max(600_000).default(1000),
      })
      .strict()
      .prefault({}),
    stop: z
      .object({
        /**
         * How long Asterisk gets to exit after being asked to stop (SIGTERM to its process group,
         * which Asterisk handles exactly like `core stop now`) before the group is SIGKILLed.
         */
        graceMs: z.number().int().min(0).max(600_000).default(5000),
        /**
         * What the kernel sends Asterisk if the agent itself dies (SIGKILL, OOM killer), through
         * util-linux's setpriv. SIGTERM: Asterisk stops at once (its lease expires and every
         * dispatcher drops the node within seconds anyway). `none`: Asterisk keeps running
         * unsupervised, and an agent started again runs a second one that finds its ports taken:
         * only for a service manager that already kills the whole group (systemd's default
         * KillMode=control-group, a container's PID 1).
         */
        onAgentDeath: z.enum(['SIGTERM', 'SIGKILL', 'none']).default('SIGTERM'),
      })
      .strict()
      .prefault({}),
    /**
     * Commands run on entering a phase, by phase name (`up`, `draining`...): `{ command: [argv],
     * timeoutMs }`. They run one at a time in transition order and never hold up the life-cycle.
     */
    hooks: z.partialRecord(z.enum(PHASES), hookSchema).default({}),
    /**
     * Config files rendered once at boot, before first boot, upgrade and the first start of the
     * service: `[{ source, target, mode? }]`. `{{name}}` is the only syntax; `mode` is an octal
     * string such as `"0640"`. A target is rewritten (atomically) only when its content changes.
     */
    templates: z
      .array(
        z
          .object({
            /** The template file. */
            source: z.string().min(1),
            /** The file written. */
            target: z.string().min(1),
            /** Permissions of the written file as an octal string; unset keeps the target's (0644 for a new one). */
            mode: z
              .string()
              .regex(/^0?[0-7]{3}$/, 'an octal mode string such as "0640"')
              .optional(),
          })
          .strict(),
      )
      .max(256)
      .refine(
        (ts) => new Set(ts.map((t) => t.target)).size === ts.length,
        'two templates write the same target',
      )
      .default([]),
    /**
     * Extra template variables, name to value (`{ trunkHost: "10.0.0.5" }`). Values are secrets
     * (redacted in output) and may not contain newlines or other control characters.
     */
    templateVars: z
      .record(
        z.string().regex(TEMPLATE_VAR_NAME, 'a variable name is a letter then letters, digits or _'),
        z.string().max(4096).regex(NO_CONTROL_CHARS_BUT_TAB, 'no newline, NUL or other control character'),
      )
      .superRefine((vars, ctx) => {
        for (const name of Object.keys(vars)) {
          if ((BUILTIN_TEMPLATE_VARS as readonly string[]).includes(name))
            ctx.addIssue({ code: 'custom', message: `${name} is a built-in variable`, path: [name] });
        }
      })
      .default({}),
    paths: z
      .object({
        /** Asterisk's configuration (state layer: config). */
        config: z.string().min(1).default('/etc/asterisk'),
        /** Asterisk's persistent data, AstDB included; holds the first-boot marker. */
        data: z.string().min(1).default('/var/lib/asterisk'),
        /** Asterisk's logs. */
        logs: z.string().min(1).default('/var/log/asterisk'),
        /** Call recordings. */
        recordings: z.string().min(1).default('/var/spool/asterisk/monitor'),
      })
      .strict()
      .prefault({}),
    firstBoot: z
      .object({
        /** Argv run once, on the first start with an empty data directory; the marker is written only if it exits 0. */
        command: argvSchema.optional(),
        /** The first-boot command is killed after this long (and counts as failed). */
        timeoutMs: z.number().int().min(1000).max(86_400_000).default(600_000),
      })
      .strict()
      .prefault({}),
    upgrade: z
      .object({
        /** Argv run when `version` differs from the one recorded in the first-boot marker. */
        command: argvSchema.optional(),
        /** The upgrade command is killed after this long (and counts as failed). */
        timeoutMs: z.number().int().min(1000).max(86_400_000).default(600_000),
      })
      .strict()
      .prefault({}),
    /** Version of what this node runs, shown in the registry; a change triggers the upgrade command. */
    version: z.string().max(200).regex(NO_CONTROL_CHARS, 'no control characters').optional(),
    admin: z
      .object({
        /**
         * Address of the admin HTTP server (/metrics, /healthz, /readyz). It has no
         * authentication: keep it on loopback unless a firewall guards it.
         */
        host: z.string().default('127.0.0.1'),
        /** 0 picks a free port (printed at start). */
        port: z.number().int().min(0).max(65535).default(9402),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        /** Log level: fatal, error, warn, info, debug or trace. Logs are JSON lines (pino). */
        level: z.enum(LOG_LEVELS).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((c) => c.runAs === undefined || c.command !== undefined, {
    message: 'runAs applies to the supervised command: give a command too',
    path: ['runAs'],
  });

export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;
export type HookConfig = z.infer<typeof hookSchema>;
export type TemplateConfig = AgentConfig['templates'][number];

/**
 * Dotted paths of secrets in the agent config, for loadConfig and redactConfig. The AMI password
 * needs no entry: it lives in a URL, and redactUrlPasswords hides URL passwords in every string
 * (parseAmiUrl refuses the raw whitespace that would stop it). Template variables do: they are
 * how per-node secrets (trunk passwords, manager.conf secrets) reach the rendered files.
 */
export const AGENT_SECRET_PATHS: readonly string[] = ['templateVars.*'];

/** How long `core stop now` may take to be sent and answered; the process signal follows anyway. */
export const CORE_STOP_NOW_TIMEOUT_MS = 2000;
/** After SIGKILL, how long the supervisor waits for a process stuck in the kernel. */
export const ABANDON_AFTER_KILL_MS = 5000;
/** Closing AMI and the admin server, beyond the registry calls counted on their own. */
const CLOSE_MARGIN_MS = 5000;

/**
 * The longest a SIGTERMed agent may legitimately take to finish: the drain deadline, `core stop
 * now`, the stop grace, the wait after SIGKILL, the `draining` and `stopped` hooks it waits for
 * (each up to its timeout), withdrawing the record and closing the registry, and the rest. The
 * CLI waits this long before it gives up on a stop; any less and a long drain would end in exit
 * 1 with the service left running.
 */
export function agentStopBudgetMs(
  config: Pick<AgentConfig, 'drain' | 'stop' | 'hooks' | 'registryCallTimeoutMs'>,
): number {
  const hooksMs = (config.hooks.draining?.timeoutMs ?? 0) + (config.hooks.stopped?.timeoutMs ?? 0);
  return (
    config.drain.deadlineMs +
    CORE_STOP_NOW_TIMEOUT_MS +
    config.stop.graceMs +
    ABANDON_AFTER_KILL_MS +
    hooksMs +
    2 * config.registryCallTimeoutMs +
    CLOSE_MARGIN_MS
  );
}
