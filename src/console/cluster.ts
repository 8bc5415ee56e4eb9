import type { RegistryView } from '../registry/view.ts';
import type { ClusterModel, ClusterNode, DrainProgress, GeneratorStatus, ServiceStatus } from './model.ts';
import { describeNodes } from './nodes-report.ts';

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** Where a node's call count comes from, as its agent reports it in the record's stats. */
function callsSourceOf(stats: Record<string, unknown> | undefined): ClusterNode['callsSource'] {
  const s = stats?.['callsSource'];
  if (s === 'ami' || s === 'capture') return s;
  if (stats?.['ami'] !== undefined) return 'ami';
  return stats === undefined ? null : 'agent';
}

/** The cluster page's model: the registry view as the dispatchers see it, plus what `up` runs. */
export function buildClusterModel(
  view: RegistryView,
  extra: {
    drains: ReadonlyMap<string, DrainProgress>;
    services: ServiceStatus[];
    generator: GeneratorStatus | null;
    nowMs: number;
  },
): ClusterModel {
  const report = describeNodes(view);
  const nodes: ClusterNode[] = report.nodes.map((row) => {
    const record = view.nodes.get(row.id);
    const stats = record?.stats;
    const source = callsSourceOf(stats);
    const agentKnowsCalls = source === 'ami' || source === 'capture';
    return {
      id: row.id,
      setId: row.setId,
      uri: row.uri,
      source: row.source,
      state: row.state,
      effective: row.effective,
      ...(row.excluded === undefined ? {} : { excluded: row.excluded }),
      phase: str(stats?.['phase']),
      healthy: record === undefined ? null : record.state !== 'down',
      // An agent without AMI or another call source publishes 0: show "unknown", not a false 0.
      calls: agentKnowsCalls ? row.calls : null,
      callsSource: agentKnowsCalls ? source : null,
      maxCalls: row.maxCalls,
      weight: row.weight,
      weightOverridden: row.weightOverridden,
      restarts: num(stats?.['restarts']),
      probeMs: num(stats?.['probeMs']),
      reason: str(stats?.['reason']),
      version: row.version,
      since: row.since,
      lastChange: latest(row.updatedAt, row.intent?.updatedAt ?? null),
      intent: row.intent,
      drain: extra.drains.get(row.id) ?? null,
    };
  });
  return {
    generatedAt: new Date(extra.nowMs).toISOString(),
    revision: view.revision,
    nodes,
    dispatchers: report.dispatchers,
    orphanIntents: report.orphanIntents,
    rejected: report.rejected,
    services: extra.services,
    generator: extra.generator,
  };
}

function latest(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return Date.parse(a) >= Date.parse(b) ? a : b;
}

/**
 * Operator drains in progress: started by the API, followed through registry views until the
 * node's calls reach zero (done) or the drain is lifted first (cancelled). Finished drains are
 * kept for `keepFinishedMs` so the page can show how they ended.
 */
export interface DrainTracker {
  begin(nodeId: string, by: string, calls: number | null, nowMs: number): DrainProgress;
  /** Follows a new view; returns the drains whose state changed (for the event log). */
  update(view: RegistryView, nowMs: number): DrainProgress[];
  all(): ReadonlyMap<string, DrainProgress>;
}

export function createDrainTracker(opts: { keepFinishedMs?: number } = {}): DrainTracker {
  const keepFinishedMs = opts.keepFinishedMs ?? 10 * 60_000;
  const drains = new Map<string, DrainProgress>();
  return {
    begin(nodeId, by, calls, nowMs) {
      const d: DrainProgress = {
        nodeId,
        startedAt: new Date(nowMs).toISOString(),
        by,
        startCalls: calls,
        calls,
        state: 'waiting',
        finishedAt: null,
      };
      drains.set(nodeId, d);
      return d;
    },
    update(view, nowMs) {
      const changed: DrainProgress[] = [];
      for (const [id, d] of drains) {
        if (d.state !== 'waiting') {
          if (d.finishedAt !== null && nowMs - Date.parse(d.finishedAt) > keepFinishedMs) drains.delete(id);
          continue;
        }
        const node = view.nodes.get(id);
        const intent = view.intents.get(id);
        const source = node === undefined ? null : callsSourceOf(node.stats);
        const calls = node === undefined ? 0 : source === 'ami' || source === 'capture' ? node.calls : null;
        const current = { ...d, calls };
        // Done when the node's calls reach zero; when nothing counts its calls, when its agent
        // says it is drained; at once for a node that is gone or static (nothing to wait for).
        const drained = calls === null ? node?.state === 'drained' : calls === 0;
        const state = !intent?.drain ? 'cancelled' : drained ? 'done' : null;
        if (state === null) {
          drains.set(id, current);
          continue;
        }
        const next: DrainProgress = { ...current, state, finishedAt: new Date(nowMs).toISOString() };
        drains.set(id, next);
        changed.push(next);
      }
      return changed;
    },
    all: () => drains,
  };
}
