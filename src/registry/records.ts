import { z } from 'zod';
import { fail, ok, type Result } from '../core/result.ts';

/**
 * Records stored in the registry (docs/reference/registry.md). Everything read back is decoded
 * with these schemas; anything that does not decode is rejected (logged once, counted) and never
 * reaches dispatcher.list. The checks are strict on purpose: every field here ends up in a line
 * of a file Kamailio parses (whitespace separated, `;` separated attrs, 1024-byte lines).
 */

/** Largest encoded record we accept; a record is a few hundred bytes. */
export const MAX_RECORD_BYTES = 4096;

/** Node ids become the dispatcher `duid` attribute: no whitespace, `;`, `=` or control chars. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const HOSTNAME =
  '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*';
const IPV4 = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(?:\\.(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}';
const IPV6 = '\\[[0-9A-Fa-f:.]{2,45}\\]';
const PORT = '(?::(?:6553[0-5]|655[0-2]\\d|65[0-4]\\d\\d|6[0-4]\\d{3}|[1-5]\\d{4}|[1-9]\\d{0,3}))?';
/**
 * A SIP URI as Kamailio's dispatcher will load it: scheme, optional user, host (name, IPv4 or
 * bracketed IPv6), optional port, and only the `transport` parameter. Anything else (spaces,
 * newlines, extra `;` params, headers) is refused: it could inject attributes or break the line.
 */
export const SIP_URI_PATTERN = new RegExp(
  `^sips?:(?:[A-Za-z0-9._+-]{1,64}@)?(?:${IPV4}|${IPV6}|${HOSTNAME})${PORT}(?:;transport=(?:udp|tcp|tls|sctp))?$`,
);

export const NODE_STATES = ['starting', 'ready', 'draining', 'drained', 'down'] as const;
export type NodeState = (typeof NODE_STATES)[number];

const nodeId = z.string().regex(NODE_ID_PATTERN, 'node id must be 1-63 chars of [A-Za-z0-9._-]');
const sipUri = z
  .string()
  .max(255)
  .regex(SIP_URI_PATTERN, 'not a plain SIP URI (sip:host[:port][;transport=x])');
const setId = z.number().int().min(1).max(65535);
/** Relative weight (Kamailio rweight range); rendered as both weight (percent) and rweight. */
export const weightSchema = z.number().int().min(1).max(100);
const maxCalls = z.number().int().min(1).max(1_000_000);
const priority = z.number().int().min(0).max(1000);
/** C0 controls and DEL: they could end a line in a rendered file or forge log lines. */
const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f]*$/;
const isoTime = z.string().max(40).regex(NO_CONTROL_CHARS, 'no control characters');
const shortText = z.string().max(200).regex(NO_CONTROL_CHARS, 'no control characters');

export const nodeRecordSchema = z.object({
  id: nodeId,
  setId: setId.default(1),
  uri: sipUri,
  weight: weightSchema.optional(),
  maxCalls: maxCalls.optional(),
  priority: priority.default(0),
  state: z.enum(NODE_STATES),
  calls: z.number().int().min(0).max(10_000_000).default(0),
  version: shortText.default(''),
  startedAt: isoTime,
  updatedAt: isoTime,
  /** Free-form agent facts shown by the console (phase, restarts, probe latency...). */
  stats: z
    .record(
      z.string().max(64).regex(NO_CONTROL_CHARS, 'no control characters'),
      z.union([
        z.string().max(200).regex(NO_CONTROL_CHARS, 'no control characters'),
        z.number(),
        z.boolean(),
      ]),
    )
    .optional(),
});
export type NodeRecord = z.infer<typeof nodeRecordSchema>;
export type NodeRecordInput = z.input<typeof nodeRecordSchema>;

/** A backend without an agent (any SIP server), registered by the operator; no lease. */
export const staticNodeSchema = z.object({
  id: nodeId,
  setId: setId.default(1),
  uri: sipUri,
  weight: weightSchema.optional(),
  maxCalls: maxCalls.optional(),
  priority: priority.default(0),
  addedAt: isoTime,
  addedBy: shortText.default('operator'),
});
export type StaticNode = z.infer<typeof staticNodeSchema>;
export type StaticNodeInput = z.input<typeof staticNodeSchema>;

/**
 * Operator intent for one node, stored apart from the node's own record so an agent
 * re-announcing can never undo it. Survives restarts (no lease).
 */
export const intentSchema = z.object({
  drain: z.boolean().default(false),
  disable: z.boolean().default(false),
  weight: weightSchema.optional(),
  by: shortText.default('operator'),
  reason: shortText.optional(),
  updatedAt: isoTime,
});
export type Intent = z.infer<typeof intentSchema>;
export type IntentInput = z.input<typeof intentSchema>;

/** What each dispatcher publishes about itself (leased) so the console can show every view. */
export const dispatcherStatusSchema = z.object({
  name: shortText,
  kamailioRpc: shortText,
  listFile: z.string().max(1024),
  /** Count of successful applies (file + Kamailio verified equal to the desired set). */
  generation: z.number().int().min(0),
  /** Hash of the desired list last verified in Kamailio. */
  appliedHash: z.string().max(64),
  appliedAt: isoTime.optional(),
  inSync: z.boolean(),
  registryConnected: z.boolean(),
  kamailioReachable: z.boolean(),
  driftRepairs: z.number().int().min(0),
  lastDrift: shortText.optional(),
  lastError: shortText.optional(),
  heldRemoval: z
    .object({ setId: z.number().int(), nodes: z.array(z.string().max(64)).max(10_000), since: isoTime })
    .optional(),
  nodes: z.number().int().min(0),
  updatedAt: isoTime,
});
export type DispatcherStatus = z.infer<typeof dispatcherStatusSchema>;

function decodeJson<T>(schema: z.ZodType<T>, raw: string, what: string): Result<T> {
  if (Buffer.byteLength(raw, 'utf8') > MAX_RECORD_BYTES)
    return fail(`${what} larger than ${MAX_RECORD_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return fail(`${what} is not valid JSON`);
  }
  const res = schema.safeParse(parsed);
  if (!res.success) {
    const issues = res.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    return fail(`${what} invalid: ${issues.join('; ')}`);
  }
  return ok(res.data);
}

export const decodeNodeRecord = (raw: string): Result<NodeRecord> =>
  decodeJson(nodeRecordSchema, raw, 'node record');
export const decodeStaticNode = (raw: string): Result<StaticNode> =>
  decodeJson(staticNodeSchema, raw, 'static node');
export const decodeIntent = (raw: string): Result<Intent> => decodeJson(intentSchema, raw, 'intent');
export const decodeDispatcherStatus = (raw: string): Result<DispatcherStatus> =>
  decodeJson(dispatcherStatusSchema, raw, 'dispatcher status');
