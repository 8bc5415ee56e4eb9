import type { ListDestination } from '../proto/dispatcher-list.ts';
import type { Intent, NodeRecord, NodeState, StaticNode } from '../registry/records.ts';
import type { RegistryView } from '../registry/view.ts';

/** Weight of a node that did not say: every node equal unless told otherwise. */
export const DEFAULT_WEIGHT = 10;

/**
 * What an operator sees in `switchyard nodes` and what the dispatcher does with the node.
 * Operator intent always wins over what the node says about itself.
 */
export type EffectiveState = 'in-rotation' | 'disabled' | 'drained' | Exclude<NodeState, 'ready'>;

export interface DesiredDestination extends ListDestination {
  source: 'agent' | 'static';
  effective: EffectiveState;
  /** Disabled by the operator (intent), as opposed to by the node's own state. */
  byOperator: boolean;
}

export function effectiveState(node: { state?: NodeState }, intent: Intent | undefined): EffectiveState {
  if (intent?.disable) return 'disabled';
  if (intent?.drain) return 'drained';
  const state = node.state ?? 'ready';
  return state === 'ready' ? 'in-rotation' : state;
}

function toDestination(
  node: NodeRecord | StaticNode,
  source: 'agent' | 'static',
  intent: Intent | undefined,
): DesiredDestination {
  const effective = effectiveState(source === 'agent' ? (node as NodeRecord) : {}, intent);
  return {
    setId: node.setId,
    uri: node.uri,
    duid: node.id,
    // Nodes that are not ready stay in the file, flagged disabled: when they become ready only a
    // set_duid_state is needed, which is immediate, instead of a rate-limited reload.
    enabled: effective === 'in-rotation',
    priority: node.priority,
    weight: intent?.weight ?? node.weight ?? DEFAULT_WEIGHT,
    maxCalls: node.maxCalls,
    source,
    effective,
    byOperator: intent?.disable === true || intent?.drain === true,
  };
}

/**
 * The destinations the registry asks for, in the sets this dispatcher manages (all when `sets`
 * is empty). Agent records win over a static node with the same id (the registry view already
 * dropped such duplicates into `rejected`); two nodes claiming the same URI in one set keep the
 * first by id and report the other.
 */
export function computeDesired(
  view: RegistryView,
  sets: readonly number[] = [],
): { destinations: DesiredDestination[]; conflicts: Map<string, string> } {
  const wanted = (setId: number) => sets.length === 0 || sets.includes(setId);
  const all: DesiredDestination[] = [];
  for (const node of view.nodes.values()) all.push(toDestination(node, 'agent', view.intents.get(node.id)));
  for (const node of view.statics.values()) {
    if (view.nodes.has(node.id)) continue;
    all.push(toDestination(node, 'static', view.intents.get(node.id)));
  }
  all.sort((a, b) => a.setId - b.setId || (a.duid < b.duid ? -1 : a.duid > b.duid ? 1 : 0));
  const conflicts = new Map<string, string>();
  const seenUri = new Map<string, string>();
  const destinations: DesiredDestination[] = [];
  for (const d of all) {
    if (!wanted(d.setId)) continue;
    const uriKey = `${d.setId} ${d.uri.toLowerCase()}`;
    const owner = seenUri.get(uriKey);
    if (owner !== undefined) {
      conflicts.set(d.duid, `same URI ${d.uri} as node ${owner} in set ${d.setId}`);
      continue;
    }
    seenUri.set(uriKey, d.duid);
    destinations.push(d);
  }
  return { destinations, conflicts };
}
