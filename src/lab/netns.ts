import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { ErrorCode, SwitchyardError } from '../core/errors.ts';

/**
 * Linux network namespaces for the lab: one namespace per host, plus a "switch" namespace that
 * holds the bridge, so the root namespace gets no new link or address (research/real-components
 * §4.1). Every name starts with the lab's prefix; teardown deletes exactly the namespaces this
 * lab created (deleting a namespace removes its veth ends and bridge with it).
 *
 * All commands are argv arrays run without a shell; names and addresses are checked first.
 */

const run = promisify(execFile);
const NAME = /^[a-z][a-z0-9-]{0,14}$/;
const IPV4 = /^(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

export interface LabHost {
  /** Short name (lb1, etcd2, as3, caller): the namespace is `<prefix>-<name>`. */
  name: string;
  /** Its address on the lab bridge. */
  ip: string;
}

export interface LabNetwork {
  readonly prefix: string;
  readonly prefixLength: number;
  /** Namespace name of a host. */
  ns(host: string): string;
  /** argv prefix that runs a command inside a host's namespace. */
  exec(host: string): string[];
  /** Runs a command inside a host's namespace and returns its stdout (throws on failure). */
  run(host: string, argv: readonly string[], opts?: { timeoutMs?: number }): Promise<string>;
  /** Takes a host's link down or up (a cable pulled). */
  setLink(host: string, up: boolean): Promise<void>;
  /** Removes every namespace this lab made. Idempotent; never throws. */
  destroy(): Promise<void>;
}

function check(what: string, ok: boolean, value: string): void {
  if (!ok)
    throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `lab: invalid ${what} ${JSON.stringify(value)}`);
}

async function ip(args: readonly string[], timeoutMs = 10_000): Promise<string> {
  const { stdout } = await run('ip', [...args], { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 });
  return stdout;
}

/** Why this machine cannot run the lab (not root, no `ip netns`), or undefined when it can. */
export async function labUnavailableReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'the HA lab needs root (it creates network namespaces and a bridge)';
  if (!existsSync('/proc/self/ns/net')) return 'this kernel has no network namespaces';
  try {
    await ip(['netns', 'list'], 5000);
  } catch (err) {
    return `\`ip netns\` does not work here (${(err as Error).message.split('\n')[0]}); install iproute2`;
  }
  return undefined;
}

/**
 * Creates the switch namespace with a bridge and one namespace per host, each with `eth0` on the
 * bridge at its address. On failure, whatever was made is removed before the error is thrown.
 */
export async function createLabNetwork(opts: {
  prefix: string;
  hosts: readonly LabHost[];
  prefixLength: number;
  /** Per-host sysctls (`net.ipv4.ip_nonlocal_bind=1` for the load balancers, so Kamailio can listen on the VIP). */
  sysctls?: Record<string, readonly string[]>;
}): Promise<LabNetwork> {
  check('prefix', NAME.test(opts.prefix) && opts.prefix.length <= 8, opts.prefix);
  check(
    'prefix length',
    Number.isInteger(opts.prefixLength) && opts.prefixLength >= 8 && opts.prefixLength <= 30,
    String(opts.prefixLength),
  );
  for (const h of opts.hosts) {
    check('host name', NAME.test(h.name) && h.name.length <= 6, h.name);
    check('address', IPV4.test(h.ip), h.ip);
  }
  for (const list of Object.values(opts.sysctls ?? {}))
    for (const s of list) check('sysctl', /^[a-z0-9_.]+=[0-9]+$/.test(s), s);
  const ns = (host: string) => `${opts.prefix}-${host}`;
  const sw = ns('sw');
  const made: string[] = [];
  const destroy = async () => {
    for (const n of made.reverse()) await ip(['netns', 'del', n]).catch(() => {});
    made.length = 0;
  };
  try {
    await ip(['netns', 'add', sw]);
    made.push(sw);
    await ip(['-n', sw, 'link', 'set', 'lo', 'up']);
    await ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', sw, 'link', 'set', 'br0', 'up']);
    for (const h of opts.hosts) {
      const n = ns(h.name);
      await ip(['netns', 'add', n]);
      made.push(n);
      await ip(['-n', n, 'link', 'set', 'lo', 'up']);
      // The peer end lands directly in the switch namespace: nothing appears in the root one.
      await ip(['-n', n, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `v-${h.name}`, 'netns', sw]);
      await ip(['-n', sw, 'link', 'set', `v-${h.name}`, 'master', 'br0', 'up']);
      await ip(['-n', n, 'addr', 'add', `${h.ip}/${opts.prefixLength}`, 'dev', 'eth0']);
      await ip(['-n', n, 'link', 'set', 'eth0', 'up']);
      for (const s of opts.sysctls?.[h.name] ?? []) await ip(['netns', 'exec', n, 'sysctl', '-q', '-w', s]);
    }
  } catch (err) {
    await destroy();
    throw err;
  }
  const known = new Set(opts.hosts.map((h) => h.name));
  const hostNs = (host: string) => {
    check('host', known.has(host), host);
    return ns(host);
  };
  return {
    prefix: opts.prefix,
    prefixLength: opts.prefixLength,
    ns: hostNs,
    exec: (host) => ['ip', 'netns', 'exec', hostNs(host)],
    async run(host, argv, o = {}) {
      const { stdout } = await run('ip', ['netns', 'exec', hostNs(host), ...argv], {
        timeout: o.timeoutMs ?? 10_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      return stdout;
    },
    async setLink(host, up) {
      await ip(['-n', hostNs(host), 'link', 'set', 'eth0', up ? 'up' : 'down']);
    },
    destroy,
  };
}

/** Deletes one namespace (its veth ends and bridge go with it); never throws. */
export async function deleteNamespace(name: string): Promise<void> {
  check('namespace', /^[a-z][a-z0-9-]{0,30}$/.test(name), name);
  await ip(['netns', 'del', name]).catch(() => {});
}

/** Namespaces left by a lab that could not clean up (a SIGKILLed run): `switchyard lab clean`. */
export async function listLabNamespaces(prefix: string): Promise<string[]> {
  check('prefix', NAME.test(prefix), prefix);
  const out = await ip(['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`));
}
