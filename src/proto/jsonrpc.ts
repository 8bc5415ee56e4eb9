import { fail, ok, type Result } from '../core/result.ts';

/**
 * JSON-RPC 2.0 codec (https://www.jsonrpc.org/specification), client side only: encode a
 * request, decode the one response to it. Pure, no I/O. Kamailio's jsonrpcs module speaks it
 * with positional params only (names are ignored, research/anchors.md §1.6).
 */

export type JsonRpcId = number | string;

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export type JsonRpcResponse = { result: unknown } | { error: JsonRpcErrorObject };

/** Method names we are willing to put on the wire: Kamailio's are `module.command`. */
const METHOD_PATTERN = /^[A-Za-z_][A-Za-z0-9_.]{0,127}$/;

/**
 * The request as JSON text. Throws (programmer error) on a method name that is not a plain
 * `module.command`, on a non-integer numeric id, or on params that JSON cannot represent.
 */
export function encodeRequest(method: string, params: readonly unknown[] | undefined, id: JsonRpcId): string {
  if (!METHOD_PATTERN.test(method))
    throw new TypeError(`jsonrpc: invalid method name ${JSON.stringify(method)}`);
  if (typeof id === 'number' && !Number.isSafeInteger(id))
    throw new TypeError(`jsonrpc: id must be an integer`);
  const request: Record<string, unknown> = { jsonrpc: '2.0', method };
  if (params !== undefined) {
    if (!Array.isArray(params)) throw new TypeError('jsonrpc: params must be an array (positional)');
    request['params'] = params;
  }
  request['id'] = id;
  // JSON.stringify throws on BigInt and cycles: both are programmer errors here.
  return JSON.stringify(request);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Decodes the response to the request with `expectedId`. A JSON-RPC error reply is a successful
 * decode (`{ error }`); `fail` is kept for text that is not a JSON-RPC 2.0 response to that id.
 * An error reply with `id: null` is accepted: the spec uses it when the server could not read
 * the request's id.
 */
export function decodeResponse(text: string, expectedId: JsonRpcId): Result<JsonRpcResponse> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return fail(`not JSON: ${(err as Error).message}`);
  }
  if (!isRecord(parsed)) return fail('response is not a JSON object');
  if (parsed['jsonrpc'] !== '2.0') return fail('missing or wrong "jsonrpc" member (want "2.0")');
  const hasResult = Object.hasOwn(parsed, 'result');
  const hasError = Object.hasOwn(parsed, 'error');
  if (hasResult === hasError) return fail('response must have exactly one of "result" and "error"');
  const id = parsed['id'];
  if (hasError) {
    if (id !== expectedId && id !== null)
      return fail(`response id ${JSON.stringify(id)} does not match request`);
    const error = parsed['error'];
    if (!isRecord(error)) return fail('"error" is not an object');
    const code = error['code'];
    const message = error['message'];
    if (typeof code !== 'number' || !Number.isInteger(code)) return fail('"error.code" is not an integer');
    if (typeof message !== 'string') return fail('"error.message" is not a string');
    const decoded: JsonRpcErrorObject = { code, message };
    if (Object.hasOwn(error, 'data')) decoded.data = error['data'];
    return ok({ error: decoded });
  }
  if (id !== expectedId) return fail(`response id ${JSON.stringify(id)} does not match request`);
  return ok({ result: parsed['result'] });
}
