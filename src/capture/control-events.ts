import type { RegistryView } from '../registry/view.ts';
import type { ControlEvent } from './model.ts';

/**
 * What changed in the control plane between two registry views, as events the capture store
 * keeps beside the SIP messages (so a call's ladder can show "pbx2 draining" at the moment it
 * happened). Pure: the capture role feeds it successive views from `Registry.watchView`.
 *
 * Kinds: `node.up` (appeared), `node.state` (starting/ready/draining/drained/down), `node.phase`
 * (the agent's life-cycle phase), `node.gone` (record expired or withdrawn), `intent.set` /
 * `intent.cleared` (operator drain, disable, weight), `dispatcher.apply` (a new generation
 * applied to Kamailio), `dispatcher.error` (a new last error), `dispatcher.gone`.
 */
export function controlEvents(before: RegistryView, after: RegistryView, tsUs: number): ControlEvent[] {
  const out: ControlEvent[] = [];
  const ev = (kind: string, subject: string, detail: Record<string, unknown>) =>
    out.push({ tsUs, kind, subject, detail });

  for (const [id, node] of after.nodes) {
    const was = before.nodes.get(id);
    const phase = node.stats?.['phase'];
    if (!was) {
      ev('node.up', id, { state: node.state, uri: node.uri, ...(phase === undefined ? {} : { phase }) });
      continue;
    }
    if (was.state !== node.state)
      ev('node.state', id, { from: was.state, to: node.state, calls: node.calls });
    const wasPhase = was.stats?.['phase'];
    if (phase !== undefined && wasPhase !== phase)
      ev('node.phase', id, { from: wasPhase ?? null, to: phase });
  }
  for (const [id, was] of before.nodes) {
    if (!after.nodes.has(id)) ev('node.gone', id, { lastState: was.state });
  }

  for (const [id, intent] of after.intents) {
    const was = before.intents.get(id);
    if (
      was &&
      was.drain === intent.drain &&
      was.disable === intent.disable &&
      was.weight === intent.weight &&
      was.updatedAt === intent.updatedAt
    )
      continue;
    ev('intent.set', id, {
      drain: intent.drain,
      disable: intent.disable,
      ...(intent.weight === undefined ? {} : { weight: intent.weight }),
      by: intent.by,
      ...(intent.reason === undefined ? {} : { reason: intent.reason }),
    });
  }
  for (const id of before.intents.keys()) {
    if (!after.intents.has(id)) ev('intent.cleared', id, {});
  }

  for (const [name, d] of after.dispatchers) {
    const was = before.dispatchers.get(name);
    if (!was || was.generation !== d.generation) {
      if (d.generation > 0)
        ev('dispatcher.apply', name, { generation: d.generation, nodes: d.nodes, inSync: d.inSync });
    }
    if (d.lastError !== undefined && d.lastError !== was?.lastError)
      ev('dispatcher.error', name, { error: d.lastError });
  }
  for (const name of before.dispatchers.keys()) {
    if (!after.dispatchers.has(name)) ev('dispatcher.gone', name, {});
  }
  return out;
}
