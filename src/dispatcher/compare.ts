import type { DispatcherRuntimeState, KamailioDestination } from '../net/kamailio-rpc-types.ts';
import { destinationKey, type ListDestination, type RenderedList } from '../proto/dispatcher-list.ts';

export interface StateChange {
  setId: number;
  duid: string;
  state: DispatcherRuntimeState;
}

export interface Comparison {
  /** Membership or attributes differ: only a reload of the file can fix it. */
  reloadReasons: string[];
  /** Admin state differs: fixed at once with set_duid_state, no reload needed. */
  stateChanges: StateChange[];
}

/** Kamailio's first flag letter: D means admin-disabled; A/I/T are its own health view. */
const isDisabled = (flags: string): boolean => flags.toUpperCase().startsWith('D');

/**
 * Compares what should be loaded with what Kamailio reports. Destinations are keyed by set and
 * duid (never by URI spelling: `sip:10.0.0.1` and `sip:10.0.0.1:5060` are different strings to
 * Kamailio). Destinations that Kamailio still has but the list no longer wants are disabled at
 * once, so a lost node stops taking calls before the (rate-limited) reload removes it.
 */
export function compareWithKamailio(
  desired: readonly ListDestination[],
  rendered: RenderedList,
  actual: readonly KamailioDestination[],
): Comparison {
  const reloadReasons: string[] = [];
  const stateChanges: StateChange[] = [];
  const actualByKey = new Map<string, KamailioDestination>();
  for (const a of actual) {
    const duid = a.attrs.duid;
    if (duid === undefined || duid === '') {
      reloadReasons.push(`foreign destination ${a.uri} in set ${a.setId} (no duid)`);
      continue;
    }
    const key = destinationKey(a.setId, duid);
    if (actualByKey.has(key)) reloadReasons.push(`duplicate duid ${duid} in set ${a.setId}`);
    actualByKey.set(key, a);
  }
  const wanted = new Set<string>();
  for (const d of desired) {
    const key = destinationKey(d.setId, d.duid);
    const body = rendered.attrs.get(key);
    if (body === undefined) continue; // refused by the renderer: not in the file
    wanted.add(key);
    const a = actualByKey.get(key);
    if (!a) {
      reloadReasons.push(`missing ${d.duid} in set ${d.setId}`);
      continue;
    }
    if (a.uri !== d.uri) reloadReasons.push(`${d.duid}: uri ${a.uri} != ${d.uri}`);
    if (a.priority !== d.priority) reloadReasons.push(`${d.duid}: priority ${a.priority} != ${d.priority}`);
    if (a.attrs.body !== body) reloadReasons.push(`${d.duid}: attrs "${a.attrs.body}" != "${body}"`);
    if (d.enabled && isDisabled(a.flags)) stateChanges.push({ setId: d.setId, duid: d.duid, state: 'a' });
    if (!d.enabled && !isDisabled(a.flags)) stateChanges.push({ setId: d.setId, duid: d.duid, state: 'd' });
  }
  for (const [key, a] of actualByKey) {
    if (wanted.has(key)) continue;
    reloadReasons.push(`extra ${a.attrs.duid} in set ${a.setId}`);
    if (!isDisabled(a.flags) && a.attrs.duid)
      stateChanges.push({ setId: a.setId, duid: a.attrs.duid, state: 'd' });
  }
  return { reloadReasons, stateChanges };
}
