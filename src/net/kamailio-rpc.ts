import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import { createSilentLogger, type Logger } from '../core/logger.ts';
import { decodeResponse, encodeRequest } from '../proto/jsonrpc.ts';
import { parseDispatcherList } from '../proto/kamailio-dispatcher-list.ts';
import type { DispatcherRuntimeState, KamailioDestination, KamailioRpc } from './kamailio-rpc-types.ts';

export const DEFAULT_RPC_TIMEOUT_MS = 2000;

export interface KamailioRpcOptions {
  /** jsonrpcs over xhttp, e.g. `http://127.0.0.1:5071/RPC` (the event_route must match the path). */
  url: string;
  /** Deadline of one call, connect to last byte of the reply. */
  timeoutMs?: number;
  logger?: Logger;
}

/** Runtime states Kamailio's ds_rpc_set_state accepts (letters, `p` adds probing). */
const RUNTIME_STATES: ReadonlySet<string> = new Set<DispatcherRuntimeState>([
  'a',
  'i',
  't',
  'd',
  'ap',
  'ip',
  'tp',
]);
/** Same pattern as node ids in the registry: they become duids. */
export const DUID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Kamailio keeps set ids in a C int. */
const MAX_SET_ID = 2_147_483_647;

/** Kamailio's fault texts (dispatcher.c, 5.6) that the client turns into something else. */
const FAULT_ONGOING_RELOAD = 'Ongoing reload';
const FAULT_NO_SETS = 'No Destination Sets';

function causeCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A Kamailio JSON-RPC client over HTTP (jsonrpcs + xhttp), on Node's global fetch, which keeps
 * connections alive between calls. Error mapping:
 * - connection refused / reset / no reply within timeoutMs → SY_ERR_KAMAILIO_UNREACHABLE (retryable)
 * - fault 500 "Ongoing reload" (reload_delta not elapsed) → SY_ERR_KAMAILIO_RELOAD_BUSY (retryable)
 * - any other fault or an undecodable reply → SY_ERR_KAMAILIO_RPC, `details` = { method, code, message, ... }
 * - calls after close() → SY_ERR_CLOSED
 *
 * Every string sent to the dispatcher RPCs is checked first (state letters, integer set id, duid
 * pattern): invalid arguments throw SY_ERR_INVALID_ARGUMENT and nothing is sent.
 *
 * @example
 *   const rpc = createKamailioRpc({ url: 'http://127.0.0.1:5071/RPC' });
 *   await rpc.setDuidState('d', 1, 'as1'); // drain node as1 in set 1
 */
export function createKamailioRpc(opts: KamailioRpcOptions): KamailioRpc {
  let url: URL;
  try {
    url = new URL(opts.url);
  } catch {
    throw new SwitchyardError(
      ErrorCode.INVALID_ARGUMENT,
      `kamailio rpc: invalid url ${JSON.stringify(opts.url)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `kamailio rpc: url must be http(s): ${opts.url}`);
  }
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new SwitchyardError(
      ErrorCode.INVALID_ARGUMENT,
      `kamailio rpc: timeoutMs must be a positive integer`,
    );
  }
  const logger = (opts.logger ?? createSilentLogger()).child({ component: 'kamailio-rpc' });
  const closing = new AbortController();
  let nextId = 1;

  async function call(method: string, params?: unknown[]): Promise<unknown> {
    if (closing.signal.aborted) throw new SwitchyardError(ErrorCode.CLOSED, 'kamailio rpc client is closed');
    const id = nextId;
    nextId = nextId >= Number.MAX_SAFE_INTEGER ? 1 : nextId + 1;
    let body: string;
    try {
      body = encodeRequest(method, params, id);
    } catch (err) {
      throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `kamailio rpc: cannot encode ${method}`, {
        cause: err,
      });
    }
    const started = performance.now();
    const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), closing.signal]);
    let status: number;
    let text: string;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body,
        signal,
      });
      status = res.status;
      text = await res.text();
    } catch (err) {
      if (closing.signal.aborted) {
        throw new SwitchyardError(ErrorCode.CLOSED, 'kamailio rpc client closed during the call', {
          cause: err,
        });
      }
      const timedOut = (err as { name?: unknown }).name === 'TimeoutError';
      const code = timedOut ? 'TIMEOUT' : causeCode(err);
      logger.debug({ method, url: url.href, code }, 'kamailio unreachable');
      // Everything fetch itself rejects with is transport-level (ECONNREFUSED, ECONNRESET,
      // UND_ERR_SOCKET, a timeout...): "Kamailio not reachable now", which a retry may fix.
      throw new SwitchyardError(
        ErrorCode.KAMAILIO_UNREACHABLE,
        timedOut
          ? `kamailio did not answer ${method} within ${timeoutMs} ms`
          : `kamailio unreachable at ${url.href}: ${code ?? (err as Error).message}`,
        { retryable: true, cause: err, details: { method, url: url.href, code } },
      );
    }
    const elapsedMs = Math.round((performance.now() - started) * 10) / 10;
    // jsonrpcs sets the HTTP status from the fault (500 "Ongoing reload"), so the body is
    // decoded whatever the status; only a body that is not JSON-RPC makes the status matter.
    const decoded = decodeResponse(text, id);
    if (!decoded.ok) {
      logger.warn({ method, status, reason: decoded.reason, elapsedMs }, 'undecodable kamailio reply');
      throw new SwitchyardError(
        ErrorCode.KAMAILIO_RPC,
        `kamailio ${method}: HTTP ${status}, undecodable reply (${decoded.reason})`,
        { details: { method, httpStatus: status, body: text.slice(0, 200), reason: decoded.reason } },
      );
    }
    if ('error' in decoded.value) {
      const { code, message, data } = decoded.value.error;
      logger.debug({ method, code, message, elapsedMs }, 'kamailio rpc fault');
      if (message === FAULT_ONGOING_RELOAD) {
        throw new SwitchyardError(
          ErrorCode.KAMAILIO_RELOAD_BUSY,
          `kamailio ${method}: ${message} (reload_delta)`,
          {
            retryable: true,
            details: { method, code, message },
          },
        );
      }
      throw new SwitchyardError(ErrorCode.KAMAILIO_RPC, `kamailio ${method}: ${code} ${message}`, {
        details: { method, code, message, ...(data === undefined ? {} : { data }) },
      });
    }
    logger.debug({ method, elapsedMs }, 'kamailio rpc ok');
    return decoded.value.result;
  }

  async function listDispatchers(): Promise<KamailioDestination[]> {
    let result: unknown;
    try {
      result = await call('dispatcher.list');
    } catch (err) {
      // An empty dispatcher is reported as a fault, not as an empty RECORDS array (dispatcher.c).
      if (SwitchyardError.is(err) && err.code === ErrorCode.KAMAILIO_RPC) {
        const details = err.details as { message?: unknown } | undefined;
        if (details?.message === FAULT_NO_SETS) return [];
      }
      throw err;
    }
    const parsed = parseDispatcherList(result);
    if (!parsed.ok) {
      throw new SwitchyardError(
        ErrorCode.KAMAILIO_RPC,
        `kamailio dispatcher.list: unexpected result (${parsed.reason})`,
        {
          details: { method: 'dispatcher.list', reason: parsed.reason },
        },
      );
    }
    // Assigning here is the compile-time check that proto's ListedDestination still matches
    // the KamailioDestination contract.
    const destinations: KamailioDestination[] = parsed.value;
    return destinations;
  }

  async function reload(): Promise<void> {
    await call('dispatcher.reload');
  }

  async function setDuidState(state: DispatcherRuntimeState, setId: number, duid: string): Promise<void> {
    if (typeof state !== 'string' || !RUNTIME_STATES.has(state)) {
      throw new SwitchyardError(
        ErrorCode.INVALID_ARGUMENT,
        `set_duid_state: invalid state ${JSON.stringify(state)}`,
      );
    }
    if (!Number.isSafeInteger(setId) || setId < 0 || setId > MAX_SET_ID) {
      throw new SwitchyardError(
        ErrorCode.INVALID_ARGUMENT,
        `set_duid_state: invalid set id ${String(setId)}`,
      );
    }
    if (typeof duid !== 'string' || !DUID_PATTERN.test(duid)) {
      throw new SwitchyardError(
        ErrorCode.INVALID_ARGUMENT,
        `set_duid_state: invalid duid ${JSON.stringify(duid)}`,
      );
    }
    await call('dispatcher.set_duid_state', [state, setId, duid]);
  }

  async function close(): Promise<void> {
    if (!closing.signal.aborted) closing.abort();
  }

  return { call, listDispatchers, reload, setDuidState, close };
}
