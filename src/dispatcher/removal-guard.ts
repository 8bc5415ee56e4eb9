import { destinationKey } from '../proto/dispatcher-list.ts';
import type { DesiredDestination } from './desired.ts';

export interface RemovalGuardOptions {
  /** Hold a change that takes out more than this fraction of a set's active nodes (1 = never hold). */
  maxFraction: number;
  /** Taking out this many nodes or fewer is never held. */
  alwaysAllow: number;
  /**
   * Removals this close together count as one change. Records vanish one watch event at a time
   * (leases expire, keys are deleted one by one): judging each event alone would let a wipe
   * through one node at a time.
   */
  windowMs: number;
}

export interface HeldRemoval {
  setId: number;
  nodes: string[];
  since: number;
}

interface HeldEntry {
  dest: DesiredDestination;
  since: number;
  /** Our own SIP OPTIONS found it dead: the removal is real and may go through. */
  confirmedGone: boolean;
}

/**
 * Guard against mass removal. A registry that loses most records at once (a wiped etcd, a
 * wrong prefix, a bug in a release of the agent) would otherwise empty Kamailio's set and fail
 * every call. Such a change is held: the lost nodes stay in the list as they were applied until
 * switchyard's own SIP OPTIONS show them dead (then they go) or the records come back.
 *
 * "Lost" means active in the last applied list and now absent, or disabled by the node's own
 * state. Operator intent (drain, disable) is never held: it is deliberate. Removals within
 * windowMs of each other are judged as one change.
 */
export function createRemovalGuard(opts: RemovalGuardOptions) {
  const held = new Map<string, HeldEntry>();
  /** Active nodes that left a set without being held, and when: they count within windowMs. */
  const recentlyRemoved = new Map<string, { setId: number; at: number }>();

  function apply(
    desired: readonly DesiredDestination[],
    lastApplied: readonly DesiredDestination[] | undefined,
    now: number,
  ): { destinations: DesiredDestination[]; held: HeldRemoval[]; toProbe: DesiredDestination[] } {
    if (!lastApplied) return { destinations: [...desired], held: [], toProbe: [] };
    const desiredByKey = new Map(desired.map((d) => [destinationKey(d.setId, d.duid), d]));
    for (const [key, r] of recentlyRemoved)
      if (now - r.at > opts.windowMs || desiredByKey.get(key)?.enabled) recentlyRemoved.delete(key);
    const sets = new Set(lastApplied.map((d) => d.setId));
    const keep = new Map<string, DesiredDestination>();
    const heldOut: HeldRemoval[] = [];
    const liveKeys = new Set<string>();
    for (const setId of sets) {
      const activeBefore = lastApplied.filter((d) => d.setId === setId && d.enabled);
      const lost = activeBefore.filter((d) => {
        const now = desiredByKey.get(destinationKey(d.setId, d.duid));
        return now === undefined || (!now.enabled && !now.byOperator);
      });
      const lostKeys = new Set(lost.map((d) => destinationKey(d.setId, d.duid)));
      const earlier = [...recentlyRemoved].filter(([k, r]) => r.setId === setId && !lostKeys.has(k)).length;
      // The change is judged together with the removals of the last windowMs, against the set
      // as it was before them.
      const removed = lost.length + earlier;
      const base = activeBefore.length + earlier;
      const fraction = base === 0 ? 0 : removed / base;
      if (removed <= opts.alwaysAllow || fraction <= opts.maxFraction) {
        for (const k of lostKeys) recentlyRemoved.set(k, { setId, at: now });
        continue;
      }
      const names: string[] = [];
      for (const d of lost) {
        const key = destinationKey(d.setId, d.duid);
        liveKeys.add(key);
        const entry = held.get(key) ?? { dest: d, since: now, confirmedGone: false };
        held.set(key, entry);
        if (entry.confirmedGone) continue;
        keep.set(key, entry.dest);
        names.push(d.duid);
      }
      if (names.length > 0) {
        const since = Math.min(...names.map((n) => held.get(destinationKey(setId, n))!.since));
        heldOut.push({ setId, nodes: names.sort(), since });
      }
    }
    for (const key of [...held.keys()]) if (!liveKeys.has(key)) held.delete(key);
    const destinations = desired.filter((d) => !keep.has(destinationKey(d.setId, d.duid)));
    destinations.push(...keep.values());
    return { destinations, held: heldOut, toProbe: [...keep.values()] };
  }

  /** Records a probe result for a held node; returns true when that changes what is held. */
  function reportProbe(setId: number, duid: string, up: boolean): boolean {
    const entry = held.get(destinationKey(setId, duid));
    if (!entry || entry.confirmedGone === !up) return false;
    entry.confirmedGone = !up;
    return true;
  }

  return { apply, reportProbe, heldCount: () => [...held.values()].filter((e) => !e.confirmedGone).length };
}

export type RemovalGuard = ReturnType<typeof createRemovalGuard>;
