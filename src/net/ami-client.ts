import { createConnection, type Socket } from 'node:net';
import { REDACTED } from '../core/config/index.ts';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import { createSilentLogger, type Logger } from '../core/logger.ts';
import {
  type AmiActionFields,
  type AmiMessage,
  type AmiParseItem,
  createAmiParser,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_LINES,
  escapeSample,
  getField,
  messageKind,
  serializeAction,
} from '../proto/ami.ts';

/**
 * A long-lived Asterisk Manager Interface client over TCP (docs/reference/ami.md): connects,
 * reads the banner, logs in with `Events: on`, correlates responses by ActionID, hands events to
 * listeners, and reconnects with exponential backoff whenever the session ends, because Asterisk
 * restarts, stops and refuses logins during a stop (research/asterisk-observed.md).
 *
 * Whatever the peer sends, nothing throws out of the socket handlers: bad frames are dropped by
 * the codec and counted here. The secret is written to the socket and nowhere else; text from
 * the peer is scrubbed of it before it reaches a log line.
 */

export type AmiState = 'connecting' | 'authenticating' | 'connected' | 'disconnected' | 'auth-failed';

export interface AmiStateDetail {
  /** Why the session ended or could not start (peer text scrubbed of the secret). */
  reason?: string;
  /** When the client will try again, for 'disconnected' and 'auth-failed'. */
  retryInMs?: number;
}

export interface AmiClientOptions {
  host: string;
  port: number;
  username: string;
  secret: string;
  logger?: Logger;
  /** TCP connect plus the banner. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** Default deadline of an action, Login included. Default 5000 ms. */
  actionTimeoutMs?: number;
  /** Backoff between attempts: initialMs doubling up to maxMs. Defaults 500 ms and 30 s. */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** Codec limits (docs/reference/ami.md). */
  maxFrameBytes?: number;
  maxLines?: number;
}

export interface AmiActionOptions {
  /** Overrides actionTimeoutMs for this action. */
  timeoutMs?: number;
}

export interface AmiListResult {
  /** The `Response: Success` that opened the list (`EventList: start`). */
  response: AmiMessage;
  /** The list items, in order, without the closing event. */
  events: AmiMessage[];
  /** The closing `EventList: Complete` event (`ListItems: N`); undefined when no list was started. */
  complete: AmiMessage | undefined;
}

export interface AmiClientStats {
  /** TCP connections opened (attempts that got past connect). */
  connections: number;
  /** Successful logins. */
  logins: number;
  authFailures: number;
  events: number;
  responses: number;
  /** Frames the codec threw away (malformed, oversized, too many lines). */
  droppedFrames: number;
  /** Responses whose ActionID matches nothing pending (late after a timeout, or foreign). */
  unmatched: number;
  actionTimeouts: number;
}

export interface AmiClient {
  readonly state: AmiState;
  /** True once `Event: FullyBooted` arrived in the current session (Asterisk sends it after every Login once booted). */
  readonly fullyBooted: boolean;
  /**
   * True once Asterisk said it is stopping: an action or the Login was refused with `Asterisk is
   * shutting down` (no event marks the start of a stop), or `Event: Shutdown` came. It stays
   * true while Asterisk is away; a successful action (`core abort shutdown`) or login clears it.
   */
  readonly shuttingDown: boolean;
  /** Counts successful logins: a new number means a new session (state and events start afresh). */
  readonly session: number;
  /** The banner's version (`9.0.0`) of the last connection. */
  readonly version: string | undefined;
  /** Every event that is not part of an actionList answer. Returns an unsubscribe function. */
  onEvent(listener: (event: AmiMessage) => void): () => void;
  onState(listener: (state: AmiState, detail: AmiStateDetail) => void): () => void;
  /**
   * Sends an action and resolves with its response. Rejects with SY_ERR_AMI_UNAVAILABLE (not
   * logged in, or the connection dropped first), SY_ERR_AMI_AUTH_FAILED, SY_ERR_AMI_TIMEOUT,
   * SY_ERR_AMI_SHUTTING_DOWN, SY_ERR_AMI_ACTION_FAILED (`Response: Error`; details.response
   * holds the message, with any `Output:` lines), SY_ERR_INVALID_ARGUMENT or SY_ERR_CLOSED.
   * `Command` with `core stop ...` never gets a response from Asterisk (the transcripts): expect
   * SY_ERR_AMI_UNAVAILABLE when Asterisk closes the session, or a timeout.
   */
  action(name: string, fields?: AmiActionFields, opts?: AmiActionOptions): Promise<AmiMessage>;
  /**
   * An action answered with an event list (`CoreShowChannels`, ...): resolves once the event
   * with `EventList: Complete` and this ActionID arrived. The deadline covers the whole list.
   */
  actionList(name: string, fields?: AmiActionFields, opts?: AmiActionOptions): Promise<AmiListResult>;
  stats(): AmiClientStats;
  /** Logs off (best effort), closes the socket, stops reconnecting; pending actions reject with SY_ERR_CLOSED. */
  close(): Promise<void>;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
export const DEFAULT_ACTION_TIMEOUT_MS = 5000;
export const DEFAULT_RECONNECT_INITIAL_MS = 500;
export const DEFAULT_RECONNECT_MAX_MS = 30_000;

/** Asterisk's Message texts the client acts on (main/manager.c, and the transcripts). */
const MSG_AUTH_FAILED = 'Authentication failed';
const MSG_SHUTTING_DOWN = 'Asterisk is shutting down';
/** Actions the client runs itself: a second Login or a Logoff would desynchronise its state. */
const RESERVED_ACTIONS = new Set(['login', 'logoff', 'challenge']);
/** A session that stayed up this long resets the backoff (a flapping peer keeps backing off). */
const STABLE_SESSION_MS = 10_000;
/** Dropped frames logged at warn per connection before falling back to one in a hundred. */
const DROP_WARNINGS = 10;
const CLOSE_WAIT_MS = 500;

interface Pending {
  name: string;
  /** A response (or a list event) with this ActionID arrived. */
  onMessage(msg: AmiMessage, kind: 'response' | 'event'): void;
  fail(err: SwitchyardError): void;
  /** The list consumes events with its ActionID; plain actions let them through to listeners. */
  list: boolean;
}

interface Connection {
  socket: Socket;
  ended: boolean;
  connectedAtMs: number | undefined;
  drops: number;
}

function checkPositiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `ami client: ${name} must be a positive integer`);
  }
  return value;
}

/**
 * Starts connecting at once and keeps a session up until close().
 *
 * @example
 *   const ami = createAmiClient({ host: '127.0.0.1', port: 5038, username: 'switchyard', secret, logger });
 *   ami.onEvent((ev) => { if (getField(ev, 'Event') === 'Hangup') ... });
 *   const status = await ami.action('CoreStatus'); // once ami.state === 'connected'
 */
export function createAmiClient(opts: AmiClientOptions): AmiClient {
  if (typeof opts.host !== 'string' || opts.host === '') {
    throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, 'ami client: host is required');
  }
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `ami client: bad port ${opts.port}`);
  }
  if (typeof opts.username !== 'string' || opts.username === '' || typeof opts.secret !== 'string') {
    throw new SwitchyardError(ErrorCode.INVALID_ARGUMENT, 'ami client: username and secret are required');
  }
  if (/[\r\n\0]/.test(opts.username) || /[\r\n\0]/.test(opts.secret)) {
    // Said without the values: one of them is the secret.
    throw new SwitchyardError(
      ErrorCode.INVALID_ARGUMENT,
      'ami client: username and secret must not contain CR, LF or NUL',
    );
  }
  const connectTimeoutMs = checkPositiveInt(
    'connectTimeoutMs',
    opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  );
  const actionTimeoutMs = checkPositiveInt(
    'actionTimeoutMs',
    opts.actionTimeoutMs ?? DEFAULT_ACTION_TIMEOUT_MS,
  );
  const initialMs = checkPositiveInt(
    'reconnect.initialMs',
    opts.reconnect?.initialMs ?? DEFAULT_RECONNECT_INITIAL_MS,
  );
  const maxMs = checkPositiveInt('reconnect.maxMs', opts.reconnect?.maxMs ?? DEFAULT_RECONNECT_MAX_MS);
  if (initialMs > maxMs) {
    throw new SwitchyardError(
      ErrorCode.INVALID_ARGUMENT,
      'ami client: reconnect.initialMs must not exceed maxMs',
    );
  }
  const maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const maxLines = opts.maxLines ?? DEFAULT_MAX_LINES;
  // Fail now, not on the first connection, if the limits are unusable.
  createAmiParser({ maxFrameBytes, maxLines });

  const secret = opts.secret;
  const target = `${opts.host}:${opts.port}`;
  const logger = (opts.logger ?? createSilentLogger()).child({ component: 'ami-client', ami: target });
  /**
   * Peer text can echo anything we sent: it never reaches a log line with the secret in it, as
   * it is or as escaped in a dropped frame's sample, nor its first characters where a sample was
   * cut short in the middle of it.
   */
  const secretForms = secret === '' ? [] : [...new Set([secret, escapeSample(Buffer.from(secret))])];
  const scrub = (text: string): string => {
    let out = text;
    for (const form of secretForms) {
      out = out.split(form).join(REDACTED);
      for (let k = Math.min(form.length - 1, out.length); k >= 3; k--) {
        if (out.endsWith(form.slice(0, k))) {
          out = out.slice(0, -k) + REDACTED;
          break;
        }
      }
    }
    return out;
  };

  const eventListeners = new Set<(event: AmiMessage) => void>();
  const stateListeners = new Set<(state: AmiState, detail: AmiStateDetail) => void>();
  const pending = new Map<string, Pending>();
  const counters: AmiClientStats = {
    connections: 0,
    logins: 0,
    authFailures: 0,
    events: 0,
    responses: 0,
    droppedFrames: 0,
    unmatched: 0,
    actionTimeouts: 0,
  };

  let state: AmiState = 'disconnected';
  let fullyBooted = false;
  let shuttingDown = false;
  let session = 0;
  let version: string | undefined;
  let closed = false;
  let current: Connection | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  /** Consecutive failed attempts, for the backoff. */
  let failures = 0;
  let nextActionId = 1;

  function setState(next: AmiState, detail: AmiStateDetail = {}): void {
    if (next === state) return;
    state = next;
    for (const listener of [...stateListeners]) {
      try {
        listener(next, detail);
      } catch (err) {
        logger.error({ err: describeError(err) }, 'ami state listener threw');
      }
    }
  }

  function emitEvent(event: AmiMessage): void {
    for (const listener of [...eventListeners]) {
      try {
        listener(event);
      } catch (err) {
        logger.error(
          { err: describeError(err), event: getField(event, 'Event') },
          'ami event listener threw',
        );
      }
    }
  }

  function newActionId(): string {
    const id = `sy-${nextActionId}`;
    nextActionId = nextActionId >= Number.MAX_SAFE_INTEGER ? 1 : nextActionId + 1;
    return id;
  }

  // --- connection life-cycle -------------------------------------------------------------------

  function connect(): void {
    reconnectTimer = undefined;
    if (closed) return;
    fullyBooted = false;
    setState('connecting');
    const parser = createAmiParser({ maxFrameBytes, maxLines });
    const socket = createConnection({ host: opts.host, port: opts.port });
    const conn: Connection = { socket, ended: false, connectedAtMs: undefined, drops: 0 };
    current = conn;
    let lastError: string | undefined;
    const connectTimer = setTimeout(
      () => endConnection(conn, 'disconnected', `no AMI banner within ${connectTimeoutMs} ms`),
      connectTimeoutMs,
    );

    socket.setNoDelay(true);
    // A peer that vanished without a FIN (host down, cable) is found by TCP keepalive, not by us.
    socket.setKeepAlive(true, 15_000);
    socket.on('connect', () => {
      counters.connections++;
      logger.debug('tcp connected');
    });
    socket.on('data', (chunk: Buffer) => {
      if (conn.ended) return;
      let items: AmiParseItem[];
      try {
        items = parser.feed(chunk);
      } catch (err) {
        // The codec is written never to throw on input; if it ever does, drop the session, not the process.
        endConnection(conn, 'disconnected', `ami codec failure: ${describeError(err)}`);
        return;
      }
      for (const item of items) {
        if (conn.ended) return;
        if (item.type === 'banner') {
          clearTimeout(connectTimer);
          onBanner(conn, item.banner.text, item.banner.version);
        } else if (item.type === 'message') onMessage(item.message);
        else {
          counters.droppedFrames++;
          conn.drops++;
          const fields = { reason: item.reason, bytes: item.bytes, sample: scrub(item.sample) };
          if (conn.drops <= DROP_WARNINGS || conn.drops % 100 === 0)
            logger.warn(fields, 'dropped an AMI frame');
          else logger.debug(fields, 'dropped an AMI frame');
        }
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      lastError = err.code ?? err.message;
    });
    socket.on('close', () => {
      clearTimeout(connectTimer);
      endConnection(
        conn,
        'disconnected',
        lastError ? `connection error ${lastError}` : 'connection closed by Asterisk',
      );
    });
  }

  function onBanner(conn: Connection, text: string, bannerVersion: string | undefined): void {
    if (bannerVersion === undefined) {
      endConnection(conn, 'disconnected', `not an AMI banner: ${JSON.stringify(scrub(text).slice(0, 80))}`);
      return;
    }
    version = bannerVersion;
    setState('authenticating');
    const id = newActionId();
    const timer = setTimeout(() => {
      pending.delete(id);
      endConnection(conn, 'disconnected', `no Login response within ${actionTimeoutMs} ms`);
    }, actionTimeoutMs);
    pending.set(id, {
      name: 'Login',
      list: false,
      fail: () => clearTimeout(timer),
      onMessage(msg, kind) {
        if (kind !== 'response') return;
        clearTimeout(timer);
        pending.delete(id);
        onLoginResponse(conn, msg);
      },
    });
    // Events: on, so that Newchannel/Hangup/FullyBooted/Shutdown reach us (the transcripts' login).
    write(conn, serializeAction('Login', id, { Username: opts.username, Secret: secret, Events: 'on' }));
  }

  function onLoginResponse(conn: Connection, msg: AmiMessage): void {
    const response = getField(msg, 'Response') ?? '';
    const message = scrub(getField(msg, 'Message') ?? '');
    if (response.toLowerCase() === 'success') {
      conn.connectedAtMs = performance.now();
      counters.logins++;
      session++;
      // A stop seen in an earlier session is over: this Asterisk accepts logins.
      shuttingDown = false;
      logger.info({ version, session, username: opts.username }, 'AMI logged in');
      setState('connected');
      return;
    }
    if (message === MSG_AUTH_FAILED) {
      counters.authFailures++;
      endConnection(conn, 'auth-failed', `login refused: ${MSG_AUTH_FAILED}`);
      return;
    }
    if (message === MSG_SHUTTING_DOWN) shuttingDown = true;
    // `Asterisk is shutting down` (a stop is under way) or anything else: try again later.
    endConnection(conn, 'disconnected', `login refused: ${message || response || 'no reason given'}`);
  }

  /** Ends one connection exactly once: fails its pending actions and plans the next attempt. */
  function endConnection(conn: Connection, next: 'disconnected' | 'auth-failed', reason: string): void {
    if (conn.ended) return;
    conn.ended = true;
    conn.socket.destroy();
    if (current === conn) current = undefined;
    const err = closed
      ? new SwitchyardError(ErrorCode.CLOSED, 'ami client closed')
      : new SwitchyardError(ErrorCode.AMI_UNAVAILABLE, `AMI session ended: ${reason}`, { retryable: true });
    for (const [id, p] of [...pending]) {
      pending.delete(id);
      p.fail(err);
    }
    fullyBooted = false;
    if (closed) {
      setState('disconnected', { reason });
      return;
    }
    if (
      conn.connectedAtMs !== undefined &&
      performance.now() - conn.connectedAtMs >= Math.min(STABLE_SESSION_MS, maxMs)
    ) {
      failures = 0;
    }
    // No jitter: each agent talks to its own Asterisk, so there is no herd to spread out, and a
    // deterministic schedule is easier to reason about in tests and logs.
    const retryInMs =
      next === 'auth-failed' ? maxMs : Math.min(maxMs, initialMs * 2 ** Math.min(failures, 30));
    failures++;
    if (next === 'auth-failed') {
      // Retrying a wrong secret quickly helps nobody and fills Asterisk's security log: retry slowly, say why loudly.
      logger.error(
        { username: opts.username, retryInMs },
        `AMI login refused (${MSG_AUTH_FAILED}): check the AMI username and secret (manager.conf)`,
      );
    } else if (conn.connectedAtMs !== undefined) {
      logger.warn({ reason, retryInMs }, 'AMI session lost');
    } else {
      logger.info({ reason, retryInMs }, 'AMI connection attempt failed');
    }
    setState(next, { reason, retryInMs });
    reconnectTimer = setTimeout(connect, retryInMs);
  }

  function write(conn: Connection, text: string): void {
    if (conn.ended) return;
    try {
      conn.socket.write(text);
    } catch (err) {
      endConnection(conn, 'disconnected', `write failed: ${describeError(err)}`);
    }
  }

  // --- incoming messages -----------------------------------------------------------------------

  function onMessage(msg: AmiMessage): void {
    const kind = messageKind(msg);
    const actionId = getField(msg, 'ActionID');
    if (kind === 'response') {
      counters.responses++;
      const p = actionId === undefined ? undefined : pending.get(actionId);
      if (!p) {
        counters.unmatched++;
        logger.debug({ actionId: actionId && scrub(actionId) }, 'AMI response matches no pending action');
        return;
      }
      p.onMessage(msg, 'response');
      return;
    }
    if (kind === 'event') {
      counters.events++;
      const p = actionId === undefined ? undefined : pending.get(actionId);
      if (p?.list) {
        p.onMessage(msg, 'event');
        return;
      }
      const name = getField(msg, 'Event');
      if (name === 'FullyBooted' && !fullyBooted) {
        fullyBooted = true;
        logger.info({ uptimeS: getField(msg, 'Uptime') }, 'Asterisk fully booted');
      } else if (name === 'Shutdown') {
        shuttingDown = true;
        logger.info(
          { shutdown: getField(msg, 'Shutdown'), restart: getField(msg, 'Restart') },
          'Asterisk is shutting down',
        );
      }
      emitEvent(msg);
      return;
    }
    counters.unmatched++;
    logger.debug(
      { firstKey: scrub(msg.fields[0]?.[0] ?? '') },
      'AMI message is neither a response nor an event',
    );
  }

  // --- actions ---------------------------------------------------------------------------------

  function unavailable(): SwitchyardError {
    if (closed) return new SwitchyardError(ErrorCode.CLOSED, 'ami client is closed');
    if (state === 'auth-failed') {
      return new SwitchyardError(ErrorCode.AMI_AUTH_FAILED, `AMI login refused (${MSG_AUTH_FAILED})`);
    }
    return new SwitchyardError(ErrorCode.AMI_UNAVAILABLE, `AMI not logged in (state ${state})`, {
      retryable: true,
    });
  }

  /** The error for a `Response: Error`, or undefined when the response is not one. */
  function responseError(name: string, msg: AmiMessage): SwitchyardError | undefined {
    if ((getField(msg, 'Response') ?? '').toLowerCase() !== 'error') {
      // Any answer that is not a refusal shows Asterisk is working again (`core abort shutdown`).
      shuttingDown = false;
      return undefined;
    }
    const message = scrub(getField(msg, 'Message') ?? '');
    if (message === MSG_SHUTTING_DOWN) {
      if (!shuttingDown) logger.info({ action: name }, 'Asterisk refuses actions: it is shutting down');
      shuttingDown = true;
      return new SwitchyardError(ErrorCode.AMI_SHUTTING_DOWN, `${name}: ${MSG_SHUTTING_DOWN}`, {
        details: { action: name, message, response: msg },
      });
    }
    return new SwitchyardError(ErrorCode.AMI_ACTION_FAILED, `${name}: ${message || 'Response: Error'}`, {
      details: { action: name, message, response: msg },
    });
  }

  function send<T>(
    name: string,
    fields: AmiActionFields | undefined,
    actionOpts: AmiActionOptions,
    list: boolean,
    handle: (
      msg: AmiMessage,
      kind: 'response' | 'event',
      resolve: (v: T) => void,
      reject: (e: Error) => void,
    ) => void,
  ): Promise<T> {
    if (closed || state !== 'connected' || current === undefined) return Promise.reject(unavailable());
    if (typeof name === 'string' && RESERVED_ACTIONS.has(name.toLowerCase())) {
      return Promise.reject(
        new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `ami client: ${name} is run by the client itself`),
      );
    }
    const timeoutMs = actionOpts.timeoutMs ?? actionTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      return Promise.reject(
        new SwitchyardError(ErrorCode.INVALID_ARGUMENT, 'ami client: timeoutMs must be a positive integer'),
      );
    }
    const id = newActionId();
    let text: string;
    try {
      text = serializeAction(name, id, fields);
    } catch (err) {
      return Promise.reject(err);
    }
    const conn = current;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        counters.actionTimeouts++;
        logger.debug({ action: name, actionId: id, timeoutMs }, 'AMI action timed out');
        reject(
          new SwitchyardError(ErrorCode.AMI_TIMEOUT, `${name}: no response within ${timeoutMs} ms`, {
            retryable: true,
            details: { action: name },
          }),
        );
      }, timeoutMs);
      const settle = (): void => {
        clearTimeout(timer);
        pending.delete(id);
      };
      pending.set(id, {
        name,
        list,
        fail(err) {
          settle();
          reject(err);
        },
        onMessage(msg, kind) {
          handle(
            msg,
            kind,
            (v) => {
              settle();
              resolve(v);
            },
            (e) => {
              settle();
              reject(e);
            },
          );
        },
      });
      write(conn, text);
    });
  }

  function action(
    name: string,
    fields?: AmiActionFields,
    actionOpts: AmiActionOptions = {},
  ): Promise<AmiMessage> {
    return send<AmiMessage>(name, fields, actionOpts, false, (msg, kind, resolve, reject) => {
      if (kind !== 'response') return;
      const err = responseError(name, msg);
      if (err) reject(err);
      else resolve(msg);
    });
  }

  function actionList(
    name: string,
    fields?: AmiActionFields,
    actionOpts: AmiActionOptions = {},
  ): Promise<AmiListResult> {
    let response: AmiMessage | undefined;
    const events: AmiMessage[] = [];
    return send<AmiListResult>(name, fields, actionOpts, true, (msg, kind, resolve, reject) => {
      if (kind === 'response') {
        const err = responseError(name, msg);
        if (err) {
          reject(err);
          return;
        }
        response = msg;
        // Without `EventList: start` no list follows (nothing to wait for).
        if ((getField(msg, 'EventList') ?? '').toLowerCase() !== 'start') {
          resolve({ response: msg, events, complete: undefined });
        }
        return;
      }
      if ((getField(msg, 'EventList') ?? '').toLowerCase() === 'complete') {
        const listed = Number(getField(msg, 'ListItems'));
        if (Number.isInteger(listed) && listed !== events.length) {
          logger.warn(
            { action: name, listItems: listed, received: events.length },
            'AMI list length mismatch',
          );
        }
        // A Complete before the response would be a peer bug; the response then is the Complete itself.
        resolve({ response: response ?? msg, events, complete: msg });
        return;
      }
      events.push(msg);
    });
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    clearTimeout(reconnectTimer);
    reconnectTimer = undefined;
    const conn = current;
    if (!conn) {
      setState('disconnected', { reason: 'closed' });
      return;
    }
    const socketClosed = new Promise<void>((resolve) => {
      if (conn.socket.destroyed) resolve();
      else conn.socket.once('close', () => resolve());
    });
    if (state === 'connected') {
      // A polite goodbye: Asterisk answers `Response: Goodbye` and closes. Waited for briefly only.
      const id = newActionId();
      pending.set(id, { name: 'Logoff', list: false, fail: () => {}, onMessage: () => pending.delete(id) });
      write(conn, serializeAction('Logoff', id));
      conn.socket.end();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([socketClosed, new Promise<void>((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
      clearTimeout(timer);
    }
    endConnection(conn, 'disconnected', 'closed');
    await socketClosed;
  }

  connect();

  return {
    get state() {
      return state;
    },
    get fullyBooted() {
      return fullyBooted;
    },
    get shuttingDown() {
      return shuttingDown;
    },
    get session() {
      return session;
    },
    get version() {
      return version;
    },
    onEvent(listener) {
      eventListeners.add(listener);
      return () => eventListeners.delete(listener);
    },
    onState(listener) {
      stateListeners.add(listener);
      return () => stateListeners.delete(listener);
    },
    action,
    actionList,
    stats: () => ({ ...counters }),
    close,
  };
}
