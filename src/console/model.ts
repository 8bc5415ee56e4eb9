import type { CallSummary, ControlEvent } from '../capture/model.ts';
import type { DispatcherStatus, Intent, NodeRecord } from '../registry/records.ts';

/**
 * What the console's API returns and its pages render: plain JSON-able data, no behaviour.
 * The REST API (src/console/api.ts) serves these shapes as they are; the pages
 * (src/console/pages/) render them; the CLI (`switchyard status`, `drain --wait`) reads them.
 */

/** Who is calling the API: a token's name and what it may do. */
export type Role = 'read' | 'admin';
export interface Principal {
  name: string;
  role: Role;
}

/** One node as the cluster page shows it: what it says, what the operator asked, what happens. */
export interface ClusterNode {
  id: string;
  setId: number;
  uri: string;
  source: 'agent' | 'static';
  /** The node's own state (agents only). */
  state: NodeRecord['state'] | null;
  /** What the dispatchers do with it: in-rotation, drained, disabled, draining, starting, down... */
  effective: string;
  /** Why the node cannot be listed, when effective is 'excluded'. */
  excluded?: string;
  /** The agent's life-cycle phase (boot, warm-up, up, draining, restarting, failed...). */
  phase: string | null;
  /** Health as the agent last saw it (its probes); null for static nodes. */
  healthy: boolean | null;
  /** Live calls: from AMI, or from captured SIP for backends without AMI; null when unknown. */
  calls: number | null;
  /** Where `calls` comes from. */
  callsSource: 'ami' | 'capture' | 'agent' | null;
  maxCalls: number | null;
  /** The weight the dispatchers apply (operator override or the node's own). */
  weight: number;
  weightOverridden: boolean;
  restarts: number | null;
  /** Last SIP OPTIONS round trip seen by the agent, ms. */
  probeMs: number | null;
  /** Why the node is not healthy or failed, as the agent said. */
  reason: string | null;
  version: string | null;
  /** startedAt (agent) or addedAt (static). */
  since: string;
  /** Last change of the record (agents) or of the operator's intent. */
  lastChange: string | null;
  intent: Intent | null;
  /** An operator drain in progress or just finished (console-side tracking). */
  drain: DrainProgress | null;
}

export interface DrainProgress {
  nodeId: string;
  startedAt: string;
  by: string;
  /** Calls when the drain began (null when unknown). */
  startCalls: number | null;
  /** Calls now (null when unknown). */
  calls: number | null;
  /** waiting: calls still up; done: calls reached zero; cancelled: undrained first. */
  state: 'waiting' | 'done' | 'cancelled';
  finishedAt: string | null;
}

/** One supervised piece of `switchyard up` (Kamailio, capture, the demo call generator...). */
export interface ServiceStatus {
  name: string;
  /** e.g. running, starting, restarting, failed, stopped. */
  state: string;
  detail: string | null;
}

/** The demo call generator's counters (only in demo mode). */
export interface GeneratorStatus {
  target: string;
  ratePerSecond: number;
  attempted: number;
  succeeded: number;
  failed: number;
  active: number;
}

export interface ClusterModel {
  generatedAt: string;
  /** Registry revision the model reflects. */
  revision: number;
  nodes: ClusterNode[];
  dispatchers: DispatcherStatus[];
  /** Intents for ids no node has (yet). */
  orphanIntents: (Intent & { id: string })[];
  /** Registry keys that did not decode (never reach Kamailio). */
  rejected: { key: string; reason: string }[];
  services: ServiceStatus[];
  generator: GeneratorStatus | null;
}

/** One line of the event log: a control-plane change or an operator action. */
export interface LogEvent {
  /** Microseconds since the epoch (the capture store's clock). */
  tsUs: number;
  /** e.g. node.state, node.phase, node.gone, intent.set, dispatcher.apply, operator.drain. */
  kind: string;
  subject: string;
  /** Who did it: a token name for operator actions, the component otherwise. */
  actor: string;
  detail: Record<string, unknown>;
}

export interface CallListQuery {
  sinceMs?: number;
  number?: string;
  status?: CallSummary['status'];
  /** Node id (resolved to its SIP address) or an ip:port. */
  node?: string;
  limit?: number;
}

/** One message of a call, for the call page (the raw text is fetched on demand). */
export interface CallMessage {
  id: number;
  tsUs: number;
  callId: string;
  src: string;
  dst: string;
  /** Request method or status code with reason, e.g. `INVITE` or `200 OK`. */
  label: string;
  cseq: string;
  transport: string;
  /** The message text with control characters made safe. */
  text: string;
}

export interface CallDetail {
  call: CallSummary;
  /** Other legs (B-legs through the correlation header or HEP correlation id). */
  related: CallSummary[];
  messages: CallMessage[];
  /** Control-plane events during the call (padded by a few seconds each side). */
  events: ControlEvent[];
  /** Node ids whose SIP address the call touched. */
  nodes: string[];
}
