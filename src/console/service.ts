import { controlEvents } from '../capture/control-events.ts';
import { messageLabel, safeMessageText } from '../capture/ladder.ts';
import type { CallSummary, CaptureStore } from '../capture/model.ts';
import { type KeptSummary, keptSummary } from '../capture/status.ts';
import { type CallTrace, loadCallTrace } from '../capture/trace.ts';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { parseSipUri } from '../proto/sip-uri.ts';
import type { IntentPatch, Registry, ViewWatch } from '../registry/registry.ts';
import { emptyView, type RegistryView } from '../registry/view.ts';
import { buildClusterModel, createDrainTracker } from './cluster.ts';
import type { EventLog } from './event-log.ts';
import type {
  CallDetail,
  CallListQuery,
  ClusterModel,
  ClusterNode,
  GeneratorStatus,
  LogEvent,
  Principal,
  ServiceStatus,
} from './model.ts';

/**
 * What the console does, apart from HTTP: follows the registry, keeps the event log and the
 * drains, answers the queries, and turns operator actions into intents. The API and the pages
 * (src/console/app.ts) are a thin layer over it; tests drive it directly too.
 */

export type NodeAction = 'drain' | 'undrain' | 'disable' | 'enable';

export interface ConsoleServiceDeps {
  registry: Registry;
  /** The capture store (read-only) for calls; absent when capture does not run here. */
  calls?: Pick<
    CaptureStore,
    'kind' | 'searchCalls' | 'getCall' | 'relatedCallIds' | 'messagesOf' | 'eventsBetween' | 'stats'
  >;
  events: EventLog;
  services?: () => ServiceStatus[];
  generator?: () => GeneratorStatus | null;
  logger: Logger;
  now?: () => number;
}

export interface ConsoleService {
  start(): Promise<void>;
  /** True once the registry view is followed and not currently cut off. */
  registryConnected(): boolean;
  cluster(): ClusterModel;
  node(id: string): ClusterNode | undefined;
  act(id: string, action: NodeAction, who: Principal, reason?: string): Promise<ClusterNode | undefined>;
  setWeight(id: string, weight: number | null, who: Principal): Promise<ClusterNode | undefined>;
  searchCalls(q: CallListQuery): Promise<CallSummary[]>;
  /** What the capture store keeps (span, size, retention); undefined when capture does not run here. */
  captureKept(): Promise<KeptSummary | undefined>;
  call(callId: string): Promise<(CallDetail & { trace: CallTrace }) | undefined>;
  /** Called after every change of the cluster model (new view, drain progress, service state). */
  onChange(fn: (revision: number) => void): () => void;
  /** Services or the generator changed: tell the pages. */
  touch(): void;
  close(): Promise<void>;
}

function notFound(id: string): SwitchyardError {
  return new SwitchyardError(ErrorCode.NODE_NOT_FOUND, `no node ${id} in the registry`);
}

/** `ip:port` of a node's SIP URI as the capture store spells endpoints; undefined for names. */
export function endpointOfUri(uri: string): string | undefined {
  const parsed = parseSipUri(uri);
  if (!parsed.ok) return undefined;
  const u = parsed.value;
  if (u.hostType === 'hostname') return undefined;
  const port = u.port ?? (u.scheme === 'sips' ? 5061 : 5060);
  return u.hostType === 'ipv6' ? `[${u.host}]:${port}` : `${u.host}:${port}`;
}

export function createConsoleService(deps: ConsoleServiceDeps): ConsoleService {
  const { registry, events, logger } = deps;
  const now = deps.now ?? Date.now;
  const drains = createDrainTracker();
  const listeners = new Set<(revision: number) => void>();
  let watch: ViewWatch | undefined;
  let view: RegistryView = emptyView();
  let connected = false;
  let closed = false;
  let retryTimer: NodeJS.Timeout | undefined;

  const notify = () => {
    for (const fn of listeners) fn(view.revision);
  };

  const onView = (next: RegistryView) => {
    const before = view;
    view = next;
    const tsUs = now() * 1000;
    for (const e of controlEvents(before, next, tsUs)) {
      const by = e.kind === 'intent.set' ? e.detail['by'] : undefined;
      events.append({ ...e, actor: typeof by === 'string' ? by : 'registry' });
    }
    for (const d of drains.update(next, now())) {
      events.append({
        tsUs,
        kind: `drain.${d.state}`,
        subject: d.nodeId,
        actor: d.by,
        detail: { startCalls: d.startCalls, calls: d.calls, startedAt: d.startedAt },
      });
    }
    notify();
  };

  // Retried in the background: the console must answer while the registry is away.
  const follow = async (delayMs: number): Promise<void> => {
    if (closed) return;
    try {
      const w = await registry.watchView(onView, {
        onConnection: (ok) => {
          connected = ok;
          notify();
        },
      });
      if (closed) {
        await w.close();
        return;
      }
      watch = w;
      connected = true;
      onView(w.current());
    } catch (err) {
      logger.warn({ err: describeError(err), retryInMs: delayMs }, 'registry not reachable; retrying');
      retryTimer = setTimeout(() => void follow(Math.min(delayMs * 2, 10_000)), delayMs);
      retryTimer.unref();
    }
  };

  const model = () =>
    buildClusterModel(view, {
      drains: drains.all(),
      services: deps.services?.() ?? [],
      generator: deps.generator?.() ?? null,
      nowMs: now(),
    });
  const nodeOf = (id: string) => model().nodes.find((n) => n.id === id);
  const known = (id: string) => view.nodes.has(id) || view.statics.has(id);

  /** The latest view after our own write, so the answer shows what was just asked for. */
  const refresh = async () => {
    try {
      onView(await registry.snapshot());
    } catch (err) {
      logger.debug({ err: describeError(err) }, 'snapshot after a write failed; the watch will catch up');
    }
  };

  const audit = (who: Principal, kind: string, subject: string, detail: Record<string, unknown>) => {
    events.append({ tsUs: now() * 1000, kind: `operator.${kind}`, subject, actor: who.name, detail });
    logger.info({ actor: who.name, action: kind, node: subject, ...detail }, 'operator action');
  };

  return {
    async start() {
      await follow(500);
    },
    registryConnected: () => watch !== undefined && connected,
    cluster: model,
    node: nodeOf,
    async act(id, action, who, reason) {
      if (!known(id)) throw notFound(id);
      const patch: IntentPatch = { by: who.name, ...(reason === undefined ? {} : { reason }) };
      if (action === 'drain') patch.drain = true;
      if (action === 'undrain') patch.drain = false;
      if (action === 'disable') patch.disable = true;
      if (action === 'enable') patch.disable = false;
      await registry.setIntent(id, patch);
      if (action === 'drain') {
        const before = nodeOf(id);
        drains.begin(id, who.name, before?.calls ?? null, now());
      }
      audit(who, action, id, reason === undefined ? {} : { reason });
      await refresh();
      return nodeOf(id);
    },
    async setWeight(id, weight, who) {
      if (!known(id)) throw notFound(id);
      await registry.setIntent(id, { weight, by: who.name });
      audit(who, 'weight', id, { weight });
      await refresh();
      return nodeOf(id);
    },
    async captureKept() {
      if (!deps.calls) return undefined;
      return keptSummary(deps.calls.kind, await deps.calls.stats());
    },
    async searchCalls(q) {
      if (!deps.calls) return [];
      let endpoint: string | undefined;
      if (q.node !== undefined) {
        const node = view.nodes.get(q.node) ?? view.statics.get(q.node);
        endpoint = node === undefined ? q.node : endpointOfUri(node.uri);
      }
      return deps.calls.searchCalls({
        ...(q.sinceMs === undefined ? {} : { sinceUs: (now() - q.sinceMs) * 1000 }),
        ...(q.number === undefined ? {} : { number: q.number }),
        ...(q.status === undefined ? {} : { status: q.status }),
        ...(endpoint === undefined ? {} : { endpoint }),
        limit: q.limit ?? 100,
      });
    },
    async call(callId) {
      if (!deps.calls) return undefined;
      const trace = await loadCallTrace(deps.calls, callId);
      if (!trace) return undefined;
      const related = (await Promise.all(trace.legs.slice(1).map((leg) => deps.calls?.getCall(leg)))).filter(
        (c): c is CallSummary => c !== undefined,
      );
      const endpoints = new Set(trace.summary.endpoints);
      const nodes = [...view.nodes.values(), ...view.statics.values()]
        .filter((n) => {
          const e = endpointOfUri(n.uri);
          return e !== undefined && endpoints.has(e);
        })
        .map((n) => n.id);
      const ep = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
      return {
        trace,
        call: trace.summary,
        related,
        nodes: [...new Set(nodes)],
        events: trace.events,
        messages: trace.messages.map((m) => ({
          id: m.id,
          tsUs: m.tsUs,
          callId: m.callId,
          src: ep(m.srcIp, m.srcPort),
          dst: ep(m.dstIp, m.dstPort),
          label: messageLabel(m),
          cseq: m.cseq,
          transport: m.transport,
          text: safeMessageText(Buffer.from(m.raw).toString('utf8')),
        })),
      };
    },
    onChange(fn) {
      listeners.add(fn);
      return () => void listeners.delete(fn);
    },
    touch: notify,
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      listeners.clear();
      await watch?.close();
    },
  };
}

export type { LogEvent };
