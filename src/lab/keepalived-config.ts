import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { ErrorCode, SwitchyardError } from '../core/errors.ts';

/**
 * keepalived.conf for the HA lab's two load balancers (docs/reference/keepalived-config.md
 * explains every line). One VRRP instance floats the SIP VIP between them, with unicast
 * adverts (research/real-components.md §4.3: packets go only to the peer, which lives in a
 * namespace we created) and a health check that drops the node's priority when its Kamailio or
 * dispatcher stops being ready.
 *
 * keepalived 2.2.7's config language has no escaping worth trusting: a quote or a brace in a
 * value would change the structure. So every value passes the schema below (patterns that admit
 * no whitespace, quote, brace, `#` or `!`), and every rendered line passes a last allow-list
 * check before it is written.
 */

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** One argv element of a script: no whitespace, quotes, braces, `#`, `!`, `$`, `\`, `;`. */
export const SAFE_ARG = /^[A-Za-z0-9_./:=@,+-]{1,256}$/;

const ipv4 = z.string().regex(IPV4, 'an IPv4 address');

const argvSchema = z
  .array(z.string().regex(SAFE_ARG, 'only [A-Za-z0-9_./:=@,+-], 1 to 256 characters'))
  .min(1)
  .max(32)
  .refine((argv) => argv[0] !== undefined && isAbsolute(argv[0]) && !argv[0].includes('..'), {
    message: 'the program must be an absolute path (enable_script_security resolves nothing)',
  });

/** Whole seconds: keepalived 2.2.7 refuses fractions here ("invalid number '0.5'", checked). */
const wholeSeconds = z.number().int().min(1).max(3600);

export const checkScriptSchema = z
  .object({
    argv: argvSchema,
    intervalS: wholeSeconds,
    timeoutS: wholeSeconds,
    /** Consecutive failures before the check counts as failed. */
    fall: z.number().int().min(1).max(255),
    /** Consecutive successes before it counts as good again. */
    rise: z.number().int().min(1).max(255),
    /** Added to the priority while failed: negative (e.g. -100), or 0 for FAULT state. */
    weight: z.number().int().min(-253).max(0),
  })
  .strict();

export const keepalivedOptionsSchema = z
  .object({
    routerId: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/),
    interface: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/),
    virtualRouterId: z.number().int().min(1).max(255),
    priority: z.number().int().min(1).max(254),
    advertIntervalS: z.number().min(0.1).max(10),
    unicastSrcIp: ipv4,
    unicastPeers: z.array(ipv4).min(1).max(8),
    vip: ipv4,
    prefixLength: z.number().int().min(8).max(32),
    checkScript: checkScriptSchema.optional(),
    notifyScript: z.object({ argv: argvSchema }).strict().optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.unicastPeers.includes(o.unicastSrcIp))
      ctx.addIssue({ code: 'custom', path: ['unicastPeers'], message: 'must not contain unicastSrcIp' });
    if (o.vip === o.unicastSrcIp || o.unicastPeers.includes(o.vip))
      ctx.addIssue({ code: 'custom', path: ['vip'], message: 'must differ from every node address' });
    if (new Set(o.unicastPeers).size !== o.unicastPeers.length)
      ctx.addIssue({ code: 'custom', path: ['unicastPeers'], message: 'duplicate peer' });
    if (Math.abs(o.advertIntervalS * 100 - Math.round(o.advertIntervalS * 100)) > 1e-6)
      ctx.addIssue({ code: 'custom', path: ['advertIntervalS'], message: 'VRRPv3 counts in centiseconds' });
  });

export type KeepalivedOptions = z.input<typeof keepalivedOptionsSchema>;

export const VRRP_INSTANCE_NAME = 'VI_SIP';
export const VRRP_SCRIPT_NAME = 'chk_lb';

/** Every line we write matches this: indentation, then words from the safe alphabet, braces, quotes. */
const SAFE_LINE = /^( {4})*[A-Za-z0-9_./:=@,+ "{}#-]*$/;

function invalid(message: string): SwitchyardError {
  return new SwitchyardError(ErrorCode.CONFIG_INVALID, `keepalived config: ${message}`);
}

/** Validates the options; throws SY_ERR_CONFIG_INVALID naming every problem with its path. */
export function parseKeepalivedOptions(input: unknown): z.output<typeof keepalivedOptionsSchema> {
  const parsed = keepalivedOptionsSchema.safeParse(input);
  if (!parsed.success)
    throw invalid(parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
  return parsed.data;
}

/** keepalived splits a script string on spaces; our args hold none, so joining is exact. */
function scriptString(argv: string[]): string {
  return `"${argv.join(' ')}"`;
}

/** `0.2`, `1`: VRRPv3 takes centiseconds, so two decimals at most. */
function seconds(value: number): string {
  return String(Math.round(value * 100) / 100);
}

/**
 * Renders keepalived.conf for one load balancer. Both nodes start as BACKUP and the higher
 * priority wins the election; preemption stays on (keepalived's default), so the preferred node
 * takes the VIP back when it recovers (measured hitless: a 0.03 s ping gap, §4.3).
 */
export function renderKeepalivedConfig(input: KeepalivedOptions): string {
  const o = parseKeepalivedOptions(input);
  const lines = [
    '# Rendered by switchyard src/lab/keepalived-config.ts - see docs/reference/keepalived-config.md',
    'global_defs {',
    `    router_id ${o.routerId}`,
    '    enable_script_security',
    '    script_user root',
    '    vrrp_garp_master_delay 0',
    '    vrrp_garp_master_repeat 3',
    '}',
  ];
  if (o.checkScript !== undefined) {
    const c = o.checkScript;
    lines.push(
      `vrrp_script ${VRRP_SCRIPT_NAME} {`,
      `    script ${scriptString(c.argv)}`,
      `    interval ${c.intervalS}`,
      `    timeout ${c.timeoutS}`,
      `    fall ${c.fall}`,
      `    rise ${c.rise}`,
      `    weight ${c.weight}`,
      '}',
    );
  }
  lines.push(
    `vrrp_instance ${VRRP_INSTANCE_NAME} {`,
    '    state BACKUP',
    `    interface ${o.interface}`,
    '    version 3',
    `    virtual_router_id ${o.virtualRouterId}`,
    `    priority ${o.priority}`,
    `    advert_int ${seconds(o.advertIntervalS)}`,
    `    unicast_src_ip ${o.unicastSrcIp}`,
    '    unicast_peer {',
    ...o.unicastPeers.map((peer) => `        ${peer}`),
    '    }',
    '    virtual_ipaddress {',
    `        ${o.vip}/${o.prefixLength} dev ${o.interface}`,
    '    }',
  );
  if (o.checkScript !== undefined) lines.push('    track_script {', `        ${VRRP_SCRIPT_NAME}`, '    }');
  if (o.notifyScript !== undefined) lines.push(`    notify ${scriptString(o.notifyScript.argv)}`);
  lines.push('}');
  for (const line of lines) {
    // A programmer error if it ever fires: the schema should have stopped the value.
    if (!SAFE_LINE.test(line)) throw invalid(`refusing to write an unsafe line: ${JSON.stringify(line)}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface KeepalivedCommandOptions {
  bin: string;
  cfgPath: string;
  /** Holds the private pid files, so two keepalived can run on one host (one per namespace). */
  workDir: string;
}

const SAFE_PATH = /^\/[A-Za-z0-9_./@+-]{0,1023}$/;

/**
 * The argv to run keepalived in the foreground (research §4.3): -n no fork (our pid is the parent
 * and SIGTERM reaches it), -l log to the console (stderr, into our log), -D detailed, -G no
 * syslog (none here), -P VRRP only, -f the config, and private pid files for parent, VRRP and
 * checker processes: the default /run/keepalived.pid would make the second instance on the
 * host refuse to start.
 */
export function keepalivedCommand(opts: KeepalivedCommandOptions): string[] {
  for (const [what, path] of [
    ['bin', opts.bin],
    ['cfgPath', opts.cfgPath],
    ['workDir', opts.workDir],
  ] as const) {
    if (!SAFE_PATH.test(path) || path.split('/').includes('..'))
      throw invalid(`${what} must be a plain absolute path`);
  }
  const dir = opts.workDir.replace(/\/+$/, '');
  return [
    opts.bin,
    '-n',
    '-l',
    '-D',
    '-P',
    '-G',
    '-f',
    opts.cfgPath,
    '-p',
    `${dir}/keepalived.pid`,
    '-r',
    `${dir}/vrrp.pid`,
    '-c',
    `${dir}/checkers.pid`,
  ];
}
