/**
 * Key layout (docs/reference/registry.md). Everything lives under one prefix so that several
 * clusters can share an etcd and a single prefix watch sees the whole picture.
 *
 *   <prefix>/nodes/<id>         NodeRecord, written by the node's agent under its lease
 *   <prefix>/static/<id>        StaticNode, written by the operator, no lease
 *   <prefix>/intents/<id>       Intent (drain, disable, weight override), operator, no lease
 *   <prefix>/dispatchers/<name> DispatcherStatus, written by each dispatcher under its lease
 */
export const DEFAULT_PREFIX = '/switchyard';

export const KeyKind = {
  node: 'nodes',
  static: 'static',
  intent: 'intents',
  dispatcher: 'dispatchers',
} as const;
export type KeyKind = (typeof KeyKind)[keyof typeof KeyKind];

export function keyFor(prefix: string, kind: KeyKind, id: string): string {
  return `${prefix}/${kind}/${id}`;
}

export function prefixFor(prefix: string, kind?: KeyKind): string {
  return kind === undefined ? `${prefix}/` : `${prefix}/${kind}/`;
}

/** Splits a key under `prefix` into its kind and id, or undefined for keys we do not own. */
export function parseKey(prefix: string, key: string): { kind: KeyKind; id: string } | undefined {
  if (!key.startsWith(`${prefix}/`)) return undefined;
  const rest = key.slice(prefix.length + 1);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const kind = rest.slice(0, slash);
  const id = rest.slice(slash + 1);
  if (id.length === 0 || id.includes('/')) return undefined;
  for (const k of Object.values(KeyKind)) if (k === kind) return { kind: k, id };
  return undefined;
}
