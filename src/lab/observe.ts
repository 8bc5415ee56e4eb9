import { parseDispatcherList } from '../proto/kamailio-dispatcher-list.ts';
import type { LabNetwork } from './netns.ts';

/**
 * What the lab watches from outside, through `ip netns exec`: which load balancer holds the
 * virtual IP, and which backends each Kamailio would route to. The controller runs in the root
 * namespace, which has no link to the lab bridge, so every look is a short command inside one
 * of the lab's namespaces (curl to Kamailio's loopback JSON-RPC, `ip addr`).
 */

/** The hosts that have `vip` on eth0 right now (more than one: a duplicate VIP). */
export async function vipHolders(net: LabNetwork, lbs: readonly string[], vip: string): Promise<string[]> {
  const out: string[] = [];
  for (const lb of lbs) {
    const text = await net.run(lb, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']).catch(() => '');
    if (text.includes(` ${vip}/`)) out.push(lb);
  }
  return out;
}

/**
 * Kamailio's destinations on one load balancer, duid -> flags (`AP` active, `IP` inactive,
 * `DX` disabled...), or undefined when its JSON-RPC does not answer.
 */
export async function kamailioDestinations(
  net: LabNetwork,
  lb: string,
  rpcPort: number,
): Promise<Map<string, string> | undefined> {
  let text: string;
  try {
    text = await net.run(
      lb,
      [
        'curl',
        '-sS',
        '-m',
        '1',
        '-H',
        'content-type: application/json',
        '-d',
        '{"jsonrpc":"2.0","method":"dispatcher.list","id":1}',
        `http://127.0.0.1:${rpcPort}/RPC`,
      ],
      { timeoutMs: 3000 },
    );
  } catch {
    return undefined;
  }
  let body: { result?: unknown; error?: { message?: string } };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    return undefined;
  }
  // An empty dispatcher answers with an error ("No destination sets"): no destinations.
  if (body.result === undefined) return new Map();
  const parsed = parseDispatcherList(body.result);
  if (!parsed.ok) return undefined;
  return new Map(parsed.value.map((d) => [d.attrs.duid ?? d.uri, d.flags]));
}

/** Whether a duid is routable (active, or trying while probing) in a destinations map. */
export function routable(dests: ReadonlyMap<string, string> | undefined, duid: string): boolean {
  const f = dests?.get(duid);
  return f !== undefined && (f.startsWith('A') || f.startsWith('T'));
}

/**
 * Polls `probe` every `intervalMs` until it returns true or `timeoutMs` passes; resolves with
 * the ms elapsed since `sinceMs` when it became true, or null on timeout.
 */
export async function timeUntil(
  probe: () => Promise<boolean>,
  opts: { sinceMs: number; timeoutMs: number; intervalMs?: number },
): Promise<number | null> {
  const deadline = opts.sinceMs + opts.timeoutMs;
  for (;;) {
    if (await probe()) return Date.now() - opts.sinceMs;
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}
