import { z } from 'zod';
import { NODE_ID_PATTERN, weightSchema } from '../registry/records.ts';
import type { Role } from './model.ts';

/**
 * The REST API, declared once: the server (src/console/app.ts) validates every request with
 * these schemas, and the OpenAPI document (GET /api/v1/openapi.json) is generated from them.
 */

const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f]*$/;

export const nodeParams = z.object({
  id: z.string().regex(NODE_ID_PATTERN, 'node id: 1-63 chars of [A-Za-z0-9._-]'),
});
export const callParams = z.object({
  callId: z.string().min(1).max(512).regex(NO_CONTROL_CHARS, 'no control characters'),
});
export const actionBody = z
  .object({
    /** Shown in the event log and `switchyard nodes`. */
    reason: z.string().max(200).regex(NO_CONTROL_CHARS, 'no control characters').optional(),
  })
  .strict();
export const weightBody = z
  .object({
    /** 1-100, or null to clear the operator's override. */
    weight: weightSchema.nullable(),
  })
  .strict();
export const CALL_STATUSES = ['ringing', 'answered', 'failed', 'cancelled', 'busy', 'unknown'] as const;
export const callsQuery = z
  .object({
    /** Only calls that began within this age: 30s, 15m, 2h, 7d. */
    since: z
      .string()
      .regex(/^\d{1,9}[smhd]$/, 'an age such as 30s, 15m, 2h or 7d')
      .optional(),
    /** From or to user, exactly. */
    number: z.string().min(1).max(128).regex(NO_CONTROL_CHARS, 'no control characters').optional(),
    status: z.enum(CALL_STATUSES).optional(),
    /** A node id, or an ip:port. */
    node: z.string().min(1).max(128).regex(NO_CONTROL_CHARS, 'no control characters').optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
  })
  .strict();
export const eventsQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(2000).optional(),
    /** Only events after this time, µs since the epoch. */
    afterUs: z.coerce.number().int().min(0).optional(),
  })
  .strict();

const AGE_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** `15m` in ms; the schema has already checked the form. */
export function ageMs(text: string): number {
  return Number(text.slice(0, -1)) * (AGE_MS[text.slice(-1)] ?? 0);
}

export interface ApiRoute {
  method: 'GET' | 'POST';
  /** fastify form (`:id`); OpenAPI gets `{id}`. */
  url: string;
  summary: string;
  role: Role;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodObject;
  /** Media type of a 200 answer; JSON when absent. */
  produces?: string;
  responses?: Record<number, string>;
}

const nodeAction = (action: string, summary: string): ApiRoute => ({
  method: 'POST',
  url: `/api/v1/nodes/:id/${action}`,
  summary,
  role: 'admin',
  params: nodeParams,
  body: actionBody,
  responses: { 200: 'The node after the change (ClusterNode)', 404: 'No such node' },
});

export const API_ROUTES: readonly ApiRoute[] = [
  { method: 'GET', url: '/api/v1/whoami', summary: 'The caller: token name and role', role: 'read' },
  {
    method: 'GET',
    url: '/api/v1/cluster',
    summary:
      "Every node (state, health, calls, weight, phase, drain progress), every dispatcher's view, services",
    role: 'read',
  },
  {
    method: 'GET',
    url: '/api/v1/nodes/:id',
    summary: 'One node as the cluster page shows it',
    role: 'read',
    params: nodeParams,
    responses: { 200: 'ClusterNode', 404: 'No such node' },
  },
  nodeAction('drain', 'Drain: no new calls; progress in `drain` until its calls reach zero'),
  nodeAction('undrain', 'Return a drained node to service'),
  nodeAction('disable', 'Take a node out of rotation at once (calls in progress continue)'),
  nodeAction('enable', 'Lift a disable'),
  {
    method: 'POST',
    url: '/api/v1/nodes/:id/weight',
    summary: "Override a node's weight (1-100), or clear the override with null",
    role: 'admin',
    params: nodeParams,
    body: weightBody,
    responses: { 200: 'The node after the change', 404: 'No such node' },
  },
  {
    method: 'GET',
    url: '/api/v1/events',
    summary: 'The event log, newest first: control-plane changes and operator actions, with who and when',
    role: 'read',
    query: eventsQuery,
  },
  {
    method: 'GET',
    url: '/api/v1/stream',
    summary: 'Server-sent events: `cluster` ({revision}) on every change, `event` (a LogEvent) per event',
    role: 'read',
    produces: 'text/event-stream',
  },
  {
    method: 'GET',
    url: '/api/v1/calls',
    summary: 'Captured calls, newest first, filtered',
    role: 'read',
    query: callsQuery,
  },
  {
    method: 'GET',
    url: '/api/v1/capture',
    summary:
      'What capture keeps: messages, calls, SIP bytes, oldest and newest message, retention policy and its last run',
    role: 'read',
    responses: { 200: 'KeptSummary', 404: 'Capture does not run here' },
  },
  {
    method: 'GET',
    url: '/api/v1/calls/:callId',
    summary: "One call: summary, other legs, messages, control-plane events on the call's timeline",
    role: 'read',
    params: callParams,
    responses: { 200: 'CallDetail', 404: 'No such call' },
  },
  {
    method: 'GET',
    url: '/api/v1/calls/:callId/ladder.svg',
    summary: "The call's ladder diagram",
    role: 'read',
    params: callParams,
    produces: 'image/svg+xml',
  },
  {
    method: 'GET',
    url: '/api/v1/calls/:callId/pcap',
    summary: "The call's messages as a pcap file (Wireshark, tshark)",
    role: 'read',
    params: callParams,
    produces: 'application/vnd.tcpdump.pcap',
  },
  {
    method: 'GET',
    url: '/api/v1/calls/:callId/text',
    summary: "The call's messages as text",
    role: 'read',
    params: callParams,
    produces: 'text/plain',
  },
  { method: 'GET', url: '/api/v1/openapi.json', summary: 'This document', role: 'read' },
];

/** The OpenAPI 3.1 document of API_ROUTES. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const schemaOf = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
  for (const r of API_ROUTES) {
    const path = r.url.replace(/:(\w+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const [where, schema] of [
      ['path', r.params],
      ['query', r.query],
    ] as const) {
      if (!schema) continue;
      const json = schemaOf(schema) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, s] of Object.entries(json.properties ?? {})) {
        parameters.push({
          name,
          in: where,
          required: where === 'path' || (json.required ?? []).includes(name),
          schema: s,
        });
      }
    }
    const responses: Record<string, unknown> = {
      200: {
        description: r.responses?.[200] ?? 'OK',
        content: { [r.produces ?? 'application/json']: {} },
      },
      401: { description: 'No or unknown token / session' },
      ...(r.role === 'admin' ? { 403: { description: 'Needs an admin token (or a CSRF token)' } } : {}),
      ...(r.params || r.query || r.body
        ? { 400: { description: 'Invalid request: error.message says what' } }
        : {}),
    };
    for (const [code, text] of Object.entries(r.responses ?? {}))
      if (code !== '200') responses[code] = { description: text };
    paths[path] ??= {};
    (paths[path] as Record<string, unknown>)[r.method.toLowerCase()] = {
      summary: r.summary,
      'x-switchyard-role': r.role,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(r.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(r.body) } } } }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'switchyard console API',
      version,
      description:
        'Read with a read-only or admin token; change with an admin token. Send `Authorization: Bearer <token>`. Errors are `{"error":{"code","message"}}`.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
