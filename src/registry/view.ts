import type { DispatcherStatus, Intent, NodeRecord, StaticNode } from './records.ts';

/**
 * Everything a dispatcher or the console needs from the registry, decoded and validated.
 * Keys whose values did not decode are listed in `rejected` (key -> reason) and nowhere else.
 */
export interface RegistryView {
  /** Store revision this view reflects. */
  revision: number;
  nodes: ReadonlyMap<string, NodeRecord>;
  statics: ReadonlyMap<string, StaticNode>;
  intents: ReadonlyMap<string, Intent>;
  dispatchers: ReadonlyMap<string, DispatcherStatus>;
  rejected: ReadonlyMap<string, string>;
}

export function emptyView(): RegistryView {
  return {
    revision: 0,
    nodes: new Map(),
    statics: new Map(),
    intents: new Map(),
    dispatchers: new Map(),
    rejected: new Map(),
  };
}
