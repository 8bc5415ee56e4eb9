import { KeyKind, parseKey, prefixFor } from './keys.ts';
import {
  type DispatcherStatus,
  decodeDispatcherStatus,
  decodeIntent,
  decodeNodeRecord,
  decodeStaticNode,
  type Intent,
  NODE_ID_PATTERN,
  type NodeRecord,
  type StaticNode,
} from './records.ts';

/**
 * Decoding of one registry key-value pair into a typed record. Wire data, so never an exception:
 * the result is either a record or a rejection with a reason the operator can act on.
 */
export type DecodedEntry =
  | { ok: true; kind: 'nodes'; id: string; value: NodeRecord }
  | { ok: true; kind: 'static'; id: string; value: StaticNode }
  | { ok: true; kind: 'intents'; id: string; value: Intent }
  | { ok: true; kind: 'dispatchers'; id: string; value: DispatcherStatus }
  | { ok: false; kind: KeyKind; id: string; reason: string };

/**
 * Decodes `value` stored at `key`. Returns undefined for keys that are not ours (outside
 * `prefix`, or under a kind this version does not know: a newer switchyard may add some).
 * A key under a known kind with a malformed id is rejected, as is a record whose own id (name for
 * dispatchers) differs from the id in its key: the key decides where a record lives, and a
 * mismatch means someone wrote it by hand or a bug did.
 */
export function decodeEntry(prefix: string, key: string, value: string): DecodedEntry | undefined {
  const parsed = parseKey(prefix, key);
  if (parsed === undefined) {
    for (const kind of Object.values(KeyKind)) {
      if (key.startsWith(prefixFor(prefix, kind))) {
        return { ok: false, kind, id: key.slice(prefixFor(prefix, kind).length), reason: 'malformed key' };
      }
    }
    return undefined;
  }
  const { kind, id } = parsed;
  if (!NODE_ID_PATTERN.test(id)) {
    return { ok: false, kind, id, reason: `invalid id in key (must match ${NODE_ID_PATTERN.source})` };
  }
  switch (kind) {
    case KeyKind.node: {
      const r = decodeNodeRecord(value);
      if (!r.ok) return { ok: false, kind, id, reason: r.reason };
      if (r.value.id !== id)
        return { ok: false, kind, id, reason: `record id ${r.value.id} differs from key id` };
      return { ok: true, kind, id, value: r.value };
    }
    case KeyKind.static: {
      const r = decodeStaticNode(value);
      if (!r.ok) return { ok: false, kind, id, reason: r.reason };
      if (r.value.id !== id)
        return { ok: false, kind, id, reason: `record id ${r.value.id} differs from key id` };
      return { ok: true, kind, id, value: r.value };
    }
    case KeyKind.intent: {
      const r = decodeIntent(value);
      if (!r.ok) return { ok: false, kind, id, reason: r.reason };
      return { ok: true, kind, id, value: r.value };
    }
    case KeyKind.dispatcher: {
      const r = decodeDispatcherStatus(value);
      if (!r.ok) return { ok: false, kind, id, reason: r.reason };
      if (r.value.name !== id) {
        return { ok: false, kind, id, reason: `dispatcher name ${r.value.name} differs from key id` };
      }
      return { ok: true, kind, id, value: r.value };
    }
  }
}

/** The reason a static node loses to an agent record with the same id (documented rule). */
export function shadowedStaticReason(id: string): string {
  return `static node ${id} is shadowed by an agent record with the same id (the agent record wins)`;
}
