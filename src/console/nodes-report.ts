import { computeDesired, DEFAULT_WEIGHT, type EffectiveState } from '../dispatcher/desired.ts';
import type { Intent, NodeRecord, StaticNode } from '../registry/records.ts';
import type { RegistryView } from '../registry/view.ts';

/** One line of `switchyard nodes`: what the node says, what the operator asked, what happens. */
export interface NodeRow {
  id: string;
  setId: number;
  uri: string;
  source: 'agent' | 'static';
  /** The node's own state (agents only). */
  state: NodeRecord['state'] | null;
  /** What the dispatcher does with it, or 'excluded' when it cannot be listed (see `excluded`). */
  effective: EffectiveState | 'excluded';
  excluded?: string;
  /** The weight the dispatcher applies. */
  weight: number;
  weightOverridden: boolean;
  calls: number | null;
  maxCalls: number | null;
  priority: number;
  version: string | null;
  /** startedAt (agent) or addedAt (static). */
  since: string;
  updatedAt: string | null;
  intent: Intent | null;
}

export interface NodesReport {
  revision: number;
  nodes: NodeRow[];
  /** Intents stored for ids no node has (yet): they apply when the node appears. */
  orphanIntents: (Intent & { id: string })[];
  rejected: { key: string; reason: string }[];
  dispatchers: RegistryView['dispatchers'] extends ReadonlyMap<string, infer D> ? D[] : never;
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Everything `switchyard nodes` shows, computed the way the dispatcher computes it. */
export function describeNodes(view: RegistryView): NodesReport {
  const { destinations, conflicts } = computeDesired(view);
  const desired = new Map(destinations.map((d) => [d.duid, d]));
  const row = (node: NodeRecord | StaticNode, source: 'agent' | 'static'): NodeRow => {
    const agent = source === 'agent' ? (node as NodeRecord) : undefined;
    const intent = view.intents.get(node.id);
    const d = desired.get(node.id);
    const conflict = conflicts.get(node.id);
    return {
      id: node.id,
      setId: node.setId,
      uri: node.uri,
      source,
      state: agent?.state ?? null,
      effective: d?.effective ?? 'excluded',
      ...(d === undefined ? { excluded: conflict ?? 'not in the desired list' } : {}),
      weight: d?.weight ?? intent?.weight ?? node.weight ?? DEFAULT_WEIGHT,
      weightOverridden: intent?.weight !== undefined,
      calls: agent?.calls ?? null,
      maxCalls: node.maxCalls ?? null,
      priority: node.priority,
      version: agent?.version ?? null,
      since: agent?.startedAt ?? (node as StaticNode).addedAt,
      updatedAt: agent?.updatedAt ?? null,
      intent: intent ?? null,
    };
  };
  const nodes: NodeRow[] = [...view.nodes.values()].map((n) => row(n, 'agent'));
  for (const s of view.statics.values()) if (!view.nodes.has(s.id)) nodes.push(row(s, 'static'));
  nodes.sort((a, b) => a.setId - b.setId || byId(a, b));
  const orphanIntents = [...view.intents.entries()]
    .filter(([id]) => !view.nodes.has(id) && !view.statics.has(id))
    .map(([id, intent]) => ({ id, ...intent }))
    .sort(byId);
  return {
    revision: view.revision,
    nodes,
    orphanIntents,
    rejected: [...view.rejected.entries()]
      .map(([key, reason]) => ({ key, reason }))
      .sort((a, b) => (a.key < b.key ? -1 : 1)),
    dispatchers: [...view.dispatchers.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
}
