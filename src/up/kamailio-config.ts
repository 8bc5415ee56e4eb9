import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { fail, ok, type Result } from '../core/result.ts';

/**
 * The load balancer's kamailio.cfg, rendered from the one template deploy/kamailio/kamailio.cfg
 * (docs/reference/kamailio-config.md). The template guards every parameter with
 * `#!ifndef NAME` + a default `#!substdef`; rendering puts validated `#!substdef` and `#!define`
 * lines in front of it, so Kamailio's preprocessor skips the defaults. The template itself is
 * never edited, which keeps it runnable by hand with `--substdef` on the command line.
 *
 * Every value that reaches the file passes the schema below and then an allow-list check on
 * the exact line written: nothing in a rendered config comes from an unchecked string.
 */

/** deploy/kamailio/kamailio.cfg; the same relative path works from src/up and dist/up. */
export const KAMAILIO_TEMPLATE_PATH = fileURLToPath(
  new URL('../../deploy/kamailio/kamailio.cfg', import.meta.url),
);

/** Every substdef/define name the template knows; rendering writes no other name. */
const PARAMETER_NAMES = [
  'SIP_IP',
  'SIP_PORT',
  'HTTP_PORT',
  'RUNDIR',
  'LIST_FILE',
  'RELOAD_DELTA',
  'PING_INTERVAL',
  'FR_TIMER_MS',
  'FR_INV_TIMER_MS',
  'SET_ID',
  'ALG',
  'LISTEN_VIP',
  'HEP_ADDR',
  'HEP_PORT',
  'HEP_CAPTURE_ID',
  'WITH_CALL_LOAD',
  'WITH_TRACE_KEEPALIVES',
] as const;
type ParameterName = (typeof PARAMETER_NAMES)[number];

/**
 * An IP address literal. Host names are refused: Kamailio would resolve them at start-up
 * (and `myself` would depend on DNS); IPv6 zone ids (`%eth0`) are refused because they are
 * not valid inside a SIP URI.
 */
const ipLiteral = z.string().refine((s) => /^[0-9A-Fa-f:.]{2,45}$/.test(s) && isIP(s) !== 0, {
  message: 'must be an IPv4 or IPv6 address literal (no host names, no brackets, no zone id)',
});

const port = z.number().int().min(1).max(65535);

/**
 * An absolute path that can sit inside a quoted `#!substdef "!NAME!value!g"` and a quoted
 * modparam string: no quotes (they end the string), no `!` (the substdef delimiter), no
 * backslash (an escape in substdef replacements), no `#` (a comment), no whitespace or
 * control characters; beyond those, an allow-list of the characters real paths use. Parameter
 * names are refused too, or a later substdef would rewrite the path itself.
 */
const absolutePath = z
  .string()
  .max(1024)
  .refine((s) => s.startsWith('/'), { message: 'must be an absolute path' })
  .refine((s) => !/[\s"'!\\#`$\u0000-\u001f\u007f]/.test(s), {
    message: 'must not contain quotes, !, \\, #, $, backticks, whitespace or control characters',
  })
  .refine((s) => /^[A-Za-z0-9._/+,@=%~:-]*$/.test(s), {
    message: 'may only contain letters, digits and . _ / + , @ = % ~ : -',
  })
  .refine((s) => !PARAMETER_NAMES.some((name) => s.includes(name)), {
    message: 'must not contain a template parameter name (e.g. SIP_IP, LIST_FILE)',
  });

export const kamailioLbOptionsSchema = z
  .object({
    /** SIP (UDP) listen address. */
    sipIp: ipLiteral.default('127.0.0.1'),
    sipPort: port.default(5060),
    /** JSON-RPC over HTTP, always on 127.0.0.1: http://127.0.0.1:<httpPort>/RPC. */
    httpPort: port.default(5071),
    /** Kamailio's runtime directory (rundir); must exist. */
    runDir: absolutePath.default('/run/kamailio'),
    /** The dispatcher list file (modparam list_file); must exist before start, empty is fine. */
    listFile: absolutePath,
    /** modparam dispatcher reload_delta; the dispatcher role's reloadDeltaMs must be this * 1000. */
    reloadDeltaS: z.number().int().min(0).max(3600).default(5),
    /** modparam dispatcher ds_ping_interval: seconds between OPTIONS probes of each backend. */
    pingIntervalS: z.number().int().min(1).max(3600).default(2),
    /** tm fr_timer: probe timeout, and how long an INVITE waits for its first reply before failover. */
    frTimerMs: z.number().int().min(100).max(60_000).default(2000),
    /** tm fr_inv_timer: how long an INVITE may ring after a provisional reply. */
    frInvTimerMs: z.number().int().min(1000).max(600_000).default(30_000),
    /** Dispatcher set the calls are balanced over. */
    setId: z.number().int().min(1).max(65535).default(1),
    /**
     * weight: alg 9, the `weight` percentages (exact over every 100 calls).
     * relative-weight: alg 11, `rweight`; an inactive backend's share is spread over the rest.
     * call-load: alg 10, fewest active calls first, never above a destination's `maxload`.
     */
    algorithm: z.enum(['weight', 'relative-weight', 'call-load']).default('weight'),
    /** Extra SIP listen address on the same port (keepalived's VIP); off when absent. */
    listenVip: ipLiteral.optional(),
    /** Mirror SIP as HEP v3 to a capture server; off when absent. */
    hep: z
      .object({
        ip: ipLiteral,
        port: port.default(9060),
        /** HEP v3 capture agent id (32 bits). */
        captureId: z
          .number()
          .int()
          .min(0)
          .max(2 ** 32 - 1)
          .default(1),
        /** Also mirror OPTIONS keep-alives (probes and LB health checks); for debugging only. */
        traceKeepalives: z.boolean().default(false),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.frInvTimerMs < o.frTimerMs) {
      ctx.addIssue({ code: 'custom', path: ['frInvTimerMs'], message: 'must be at least frTimerMs' });
    }
    if (o.listenVip !== undefined && o.listenVip === o.sipIp) {
      ctx.addIssue({ code: 'custom', path: ['listenVip'], message: 'must differ from sipIp' });
    }
    // siptrace sends HEP from one of Kamailio's SIP sockets: it needs one of the same family.
    if (o.hep !== undefined && isIP(o.hep.ip) !== isIP(o.sipIp)) {
      ctx.addIssue({
        code: 'custom',
        path: ['hep', 'ip'],
        message: `must be of the same address family as sipIp (IPv${isIP(o.sipIp)})`,
      });
    }
  });

export type KamailioLbOptionsInput = z.input<typeof kamailioLbOptionsSchema>;
export type KamailioLbOptions = z.output<typeof kamailioLbOptionsSchema>;

/** One line per problem, each with its path: `hep.port: Too big: expected number to be <=65535`. */
export function formatKamailioOptionsError(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length ? i.path.join('.') : '(options)'}: ${i.message}`)
    .join('\n');
}

/** Parses options; throws a readable Error (one line per problem) when they are invalid. */
export function parseKamailioLbOptions(input: KamailioLbOptionsInput): KamailioLbOptions {
  const parsed = kamailioLbOptionsSchema.safeParse(input);
  if (!parsed.success) {
    throw new Error(`invalid Kamailio options:\n${formatKamailioOptionsError(parsed.error)}`);
  }
  return parsed.data;
}

/** IPv6 goes in brackets wherever the template uses an address: listen=, sip: URIs. */
const sipHost = (ip: string): string => (isIP(ip) === 6 ? `[${ip}]` : ip);

const ALG: Record<KamailioLbOptions['algorithm'], number> = {
  weight: 9,
  'relative-weight': 11,
  'call-load': 10,
};

/**
 * The last gate before the file: a value may only hold characters of addresses, numbers and
 * the paths the schema allows. A failure here is a bug in this module, not bad input.
 */
function substdefLine(name: ParameterName, value: string | number): string {
  const text = String(value);
  if (!/^[A-Za-z0-9._/:[\]+,@=%~-]+$/.test(text)) {
    throw new Error(`kamailio-config: refusing to render ${name} with an unsafe value`);
  }
  return `#!substdef "!${name}!${text}!g"`;
}

/** The `#!substdef`/`#!define` lines for validated options, in template order. */
export function kamailioConfigDefines(opts: KamailioLbOptions): string[] {
  const lines = [
    substdefLine('SIP_IP', sipHost(opts.sipIp)),
    substdefLine('SIP_PORT', opts.sipPort),
    substdefLine('HTTP_PORT', opts.httpPort),
    substdefLine('RUNDIR', opts.runDir),
    substdefLine('LIST_FILE', opts.listFile),
    substdefLine('RELOAD_DELTA', opts.reloadDeltaS),
    substdefLine('PING_INTERVAL', opts.pingIntervalS),
    substdefLine('FR_TIMER_MS', opts.frTimerMs),
    substdefLine('FR_INV_TIMER_MS', opts.frInvTimerMs),
    substdefLine('SET_ID', opts.setId),
    // With call load the template picks 10 for INVITEs and 4 for the rest itself.
    substdefLine('ALG', opts.algorithm === 'call-load' ? 9 : ALG[opts.algorithm]),
  ];
  if (opts.listenVip !== undefined) lines.push(substdefLine('LISTEN_VIP', sipHost(opts.listenVip)));
  if (opts.hep !== undefined) {
    lines.push(
      substdefLine('HEP_ADDR', sipHost(opts.hep.ip)),
      substdefLine('HEP_PORT', opts.hep.port),
      substdefLine('HEP_CAPTURE_ID', opts.hep.captureId),
    );
    if (opts.hep.traceKeepalives) lines.push('#!define WITH_TRACE_KEEPALIVES');
  }
  if (opts.algorithm === 'call-load') lines.push('#!define WITH_CALL_LOAD');
  return lines;
}

/**
 * Renders a complete kamailio.cfg: the template's `#!KAMAILIO` line, the values, then the
 * template. `template` is the template text (default: read KAMAILIO_TEMPLATE_PATH).
 * Throws on invalid options (see parseKamailioLbOptions).
 */
export function renderKamailioConfig(input: KamailioLbOptionsInput, template?: string): string {
  const opts = parseKamailioLbOptions(input);
  const text = template ?? readFileSync(KAMAILIO_TEMPLATE_PATH, 'utf8');
  const firstLine = text.match(/^#!(KAMAILIO|SER|OPENSER|ALL|MAXCOMPAT)[^\n]*\n/);
  const head = firstLine ? firstLine[0] : '#!KAMAILIO\n';
  const body = firstLine ? text.slice(head.length) : text;
  return [
    head.trimEnd(),
    '#',
    '# Rendered by switchyard (src/up/kamailio-config.ts) from deploy/kamailio/kamailio.cfg.',
    '# The values below come first, so the template defaults guarded by #!ifndef are skipped.',
    ...kamailioConfigDefines(opts),
    '#',
    body,
  ].join('\n');
}

export interface KamailioCommandOptions {
  /** The kamailio binary (default `kamailio`, looked up in PATH). */
  bin?: string;
  cfgPath: string;
  /** Shared memory, MB (-m; default 64: enough for dispatcher, tm and call-load tables). */
  sharedMemoryMb?: number;
  /** Private memory per process, MB (-M; default 8). */
  privateMemoryMb?: number;
}

/**
 * argv for Kamailio in the foreground: `-DD` keeps the main process attached (its pid is the
 * one to signal; SIGTERM stops the children too), `-E` logs to stderr. No shell is involved:
 * spawn `command` with `args` as they are (research/real-components.md §2.2).
 */
export function kamailioCommand(opts: KamailioCommandOptions): { command: string; args: string[] } {
  const bin = opts.bin ?? 'kamailio';
  const shm = opts.sharedMemoryMb ?? 64;
  const pkg = opts.privateMemoryMb ?? 8;
  if (bin === '' || bin.includes('\0')) throw new Error('kamailioCommand: bad binary');
  if (opts.cfgPath === '' || opts.cfgPath.includes('\0')) throw new Error('kamailioCommand: bad cfgPath');
  if (!Number.isInteger(shm) || shm < 8 || shm > 65536)
    throw new Error('kamailioCommand: sharedMemoryMb must be an integer in [8, 65536]');
  if (!Number.isInteger(pkg) || pkg < 1 || pkg > 4096)
    throw new Error('kamailioCommand: privateMemoryMb must be an integer in [1, 4096]');
  return { command: bin, args: ['-DD', '-E', '-f', opts.cfgPath, '-m', String(shm), '-M', String(pkg)] };
}

export interface CheckKamailioConfigOptions {
  bin?: string;
  cfgPath: string;
  /** Kill `kamailio -c` after this long (default 10 000 ms). */
  timeoutMs?: number;
}

/**
 * `kamailio -c -f cfgPath`: parses the config, loads the modules and runs their fixups
 * without starting. ok, or the reason: the ERROR/CRITICAL lines of its output (all of it when
 * there are none), or why it could not run.
 */
export function checkKamailioConfig(opts: CheckKamailioConfigOptions): Promise<Result<void>> {
  const bin = opts.bin ?? 'kamailio';
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    let output = '';
    let settled = false;
    const done = (r: Result<void>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const child = spawn(bin, ['-c', '-f', opts.cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    const collect = (chunk: Buffer): void => {
      // Bounded: a config check prints a few KB; keep the first 64 KB.
      if (output.length < 65_536) output += chunk.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done(fail(`kamailio -c did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (err) => done(fail(`cannot run ${bin}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) return done(ok(undefined));
      const errors = output
        .split('\n')
        .filter((l) => /\b(ERROR|CRITICAL|ALERT|BUG)\b|error in config/i.test(l))
        .join('\n')
        .trim();
      done(fail(errors || output.trim() || `kamailio -c exited with code ${code} signal ${signal}`));
    });
  });
}
