import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';

/**
 * A fake Asterisk Manager Interface on 127.0.0.1, for tests of the AMI client, the call counter
 * and the agent. No real Asterisk can run here, so (architecture.md) the fake replays real ones:
 * every message it sends is a message from test/fixtures/ami/ (Asterisk 20.20.1 transcripts,
 * README there), with only ids, counters and clocks rewritten. It has its own tiny parser and
 * writer on purpose: it must not share a bug with src/proto/ami.ts, which it tests.
 *
 * Behaviour follows research/asterisk-observed.md:
 * - banner on connect; Login answers Success, then `FullyBooted` (unless still booting), then
 *   `SuccessfulAuth`; a wrong secret gets `Authentication failed` after authFailedDelayMs
 *   (manager.c sleeps 1 s) and the connection is closed;
 * - `CoreShowChannels` (EventList start, one CoreShowChannel per call, Complete + ListItems),
 *   `CoreStatus`, `Ping`, `Command`, `Logoff`; other actions `Invalid/unknown command`;
 * - while shutting down every action, Login included, answers `Asterisk is shutting down`;
 * - `core stop now` (Command or shutdown('now')): calls hung up with Cause 16, `Event: Shutdown`
 *   stopNowShutdownMs later, sockets closed, port closed (a new session is refused);
 * - `core stop gracefully`: refuses actions and new calls, leaves calls up, exits
 *   lastCallShutdownMs after the last one ends (idleShutdownMs when idle); `when convenient`
 *   refuses nothing until the last call ends. `core stop ...` sent as a Command gets no response.
 */

export interface FakeAmiTiming {
  /** manager.c sleeps 1 s before answering a failed Login. */
  authFailedDelayMs: number;
  /** stop-now/timeline.txt: `Event: Shutdown` ~1.1 s after `core stop now`. */
  stopNowShutdownMs: number;
  /** graceful/ and convenient/: `Event: Shutdown` ~1.9 s after the last call ended. */
  lastCallShutdownMs: number;
  /** idle-graceful/: `Event: Shutdown` within ~13 ms when there is no call. */
  idleShutdownMs: number;
  /** stop-now-monitor.txt: the socket closed 7 ms after `Event: Shutdown`. */
  closeAfterShutdownMs: number;
}

export interface FakeAmiOptions {
  username?: string;
  secret?: string;
  /** false: Asterisk is still starting, no FullyBooted until finishBoot(). Default true. */
  booted?: boolean;
  /** Defaults are the observed ones; tests usually shrink them. */
  timing?: Partial<FakeAmiTiming>;
  /**
   * The AMI user's `read =` classes in manager.conf, e.g. ['system', 'call'] as the agent guide
   * recommends. Asterisk sends an event only to users whose read permission includes one of the
   * classes in its `Privilege:` line (`dialplan` events such as VarSet and Newexten, `security`
   * events...). Default: every class, as the transcripts were recorded.
   */
  readClasses?: readonly string[];
}

export interface FakeCall {
  uniqueid: string;
  linkedid: string;
  channel: string;
  startedAtMs: number;
}

export interface FakeAmiAction {
  /** 1 for the first connection accepted, 2 for the next... */
  session: number;
  name: string;
  fields: Array<[string, string]>;
}

export type FakeStopKind = 'now' | 'gracefully' | 'when-convenient';

export interface FakeAmi {
  readonly host: string;
  readonly port: number;
  /** Every action received, in order (the Login's Secret included: tests may check it). */
  readonly actions: readonly FakeAmiAction[];
  readonly connectionsAccepted: number;
  /** Connections currently open. */
  readonly openSessions: number;
  /** Listening; false once a stop completed ("the process exited") or after kill(). */
  readonly running: boolean;
  readonly shuttingDown: boolean;
  onAction(listener: (action: FakeAmiAction) => void): () => void;
  calls(): FakeCall[];
  /** A caller's call answered by the dialplan (stop-now-monitor.txt's events); `linkedid` makes it another leg of that call. */
  addCall(opts?: { linkedid?: string }): FakeCall;
  /** The caller hangs up (graceful-monitor.txt's events, Cause 16). */
  hangupCall(uniqueid: string): void;
  /** Asterisk finished booting: FullyBooted to every logged-in session (booted: false). */
  finishBoot(): void;
  /** `core stop <kind>` from the CLI. */
  shutdown(kind: FakeStopKind): void;
  /** `core abort shutdown` from the CLI: back to normal, no AMI event (as observed). */
  abortShutdown(): void;
  /** Stop answering this action (it is still recorded), or answer again with on = false. */
  silence(actionName: string, on?: boolean): void;
  /**
   * Answers to this action are computed when it arrives (Asterisk's snapshot) but held back
   * until the returned release() is called, so that events can overtake them.
   */
  hold(actionName: string): () => void;
  /** Bytes to every open connection, as they are (garbage, oversized frames...). */
  sendRaw(data: string | Uint8Array): void;
  /** Resets every connection; keeps listening (a network blip). */
  dropConnections(): void;
  /** Like SIGKILL: connections reset, port closed, no Shutdown event. */
  kill(): Promise<void>;
  /** Asterisk started again on the same port: fresh boot, no calls. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

type Fields = Array<[string, string]>;

// --- transcripts -------------------------------------------------------------------------------

export interface TranscriptMessage {
  /** `(template: NAME)` before it, in derived-not-observed.txt. */
  label: string | undefined;
  fields: Fields;
}

export interface Transcript {
  banner: string | undefined;
  received: TranscriptMessage[];
}

const TIMESTAMP = /^\d{2}:\d{2}:\d{2}\.\d{3} ?/;

/** Reads a transcript of test/fixtures/ami/ (format in the README there). */
export function loadAmiTranscript(name: string): Transcript {
  const text = readFileSync(new URL(`../fixtures/ami/${name}`, import.meta.url), 'utf8');
  let banner: string | undefined;
  const received: TranscriptMessage[] = [];
  let fields: Fields = [];
  let label: string | undefined;
  const flush = () => {
    if (fields.length > 0) received.push({ label, fields });
    fields = [];
    label = undefined;
  };
  for (const raw of text.split('\n')) {
    if (raw.startsWith('# ')) continue;
    const line = raw.replace(TIMESTAMP, '');
    if (line.startsWith('>>> ')) continue;
    const note = /^\((.*)\)$/.exec(line);
    if (note) {
      flush();
      label = /^template: (.+)$/.exec(note[1]!)?.[1];
      continue;
    }
    if (line === '') {
      flush();
      continue;
    }
    if (
      banner === undefined &&
      received.length === 0 &&
      fields.length === 0 &&
      line.startsWith('Asterisk Call Manager/')
    ) {
      banner = line;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`fake ami: ${name}: not a Key: Value line: ${JSON.stringify(line)}`);
    const value = line.slice(colon + 1);
    fields.push([line.slice(0, colon), value.startsWith(' ') ? value.slice(1) : value]);
  }
  flush();
  return { banner, received };
}

const get = (fields: Fields, key: string): string | undefined => fields.find(([k]) => k === key)?.[1];

function findMessage(t: Transcript, file: string, what: string, test: (m: Fields) => boolean): Fields {
  const found = t.received.find((m) => test(m.fields));
  if (!found) throw new Error(`fake ami: no ${what} in ${file}`);
  return found.fields;
}

function labelled(t: Transcript, label: string): Fields {
  const found = t.received.find((m) => m.label === label);
  if (!found) throw new Error(`fake ami: no template ${label} in derived-not-observed.txt`);
  return found.fields;
}

/** One call's events in a transcript, split where the hang-up starts. */
function callEvents(
  t: Transcript,
  file: string,
): { setup: Fields[]; teardown: Fields[]; channel: string; uniqueid: string } {
  const first = findMessage(t, file, 'Newchannel', (m) => get(m, 'Event') === 'Newchannel');
  const uniqueid = get(first, 'Uniqueid')!;
  const events = t.received.map((m) => m.fields).filter((m) => get(m, 'Uniqueid') === uniqueid);
  // Hang-up starts with a (Soft)HangupRequest, or with the RTP statistics VarSets Asterisk sets
  // when the media goes away (graceful-monitor.txt: the caller's BYE).
  const split = events.findIndex(
    (m) =>
      /^(Soft)?HangupRequest$/.test(get(m, 'Event') ?? '') ||
      (get(m, 'Event') === 'VarSet' && (get(m, 'Variable') ?? '').startsWith('RTPAUDIOQOS')),
  );
  if (split <= 0) throw new Error(`fake ami: no hang-up in ${file}`);
  return {
    setup: events.slice(0, split),
    teardown: events.slice(split),
    channel: get(first, 'Channel')!,
    uniqueid,
  };
}

function loadTemplates() {
  const idle = loadAmiTranscript('idle-login.txt');
  const oneCall = loadAmiTranscript('one-call-new-session.txt');
  const stopNow = loadAmiTranscript('stop-now-monitor.txt');
  const graceful = loadAmiTranscript('graceful-monitor.txt');
  const refused = loadAmiTranscript('graceful-new-session.txt');
  const derived = loadAmiTranscript('derived-not-observed.txt');
  const call = callEvents(stopNow, 'stop-now-monitor.txt');
  const hangup = callEvents(graceful, 'graceful-monitor.txt');
  if (!idle.banner) throw new Error('fake ami: no banner in idle-login.txt');
  return {
    banner: idle.banner,
    loginOk: findMessage(idle, 'idle-login.txt', 'Login response', (m) => get(m, 'ActionID') === 'login'),
    fullyBooted: findMessage(idle, 'idle-login.txt', 'FullyBooted', (m) => get(m, 'Event') === 'FullyBooted'),
    successfulAuth: findMessage(
      idle,
      'idle-login.txt',
      'SuccessfulAuth',
      (m) => get(m, 'Event') === 'SuccessfulAuth',
    ),
    coreStatus: findMessage(
      idle,
      'idle-login.txt',
      'CoreStatus',
      (m) => get(m, 'CoreCurrentCalls') !== undefined,
    ),
    listStart: findMessage(idle, 'idle-login.txt', 'EventList start', (m) => get(m, 'EventList') === 'start'),
    listComplete: findMessage(
      idle,
      'idle-login.txt',
      'CoreShowChannelsComplete',
      (m) => get(m, 'Event') === 'CoreShowChannelsComplete',
    ),
    listItem: findMessage(
      oneCall,
      'one-call-new-session.txt',
      'CoreShowChannel',
      (m) => get(m, 'Event') === 'CoreShowChannel',
    ),
    pong: findMessage(stopNow, 'stop-now-monitor.txt', 'Ping response', (m) => get(m, 'Ping') === 'Pong'),
    shutdown: findMessage(stopNow, 'stop-now-monitor.txt', 'Shutdown', (m) => get(m, 'Event') === 'Shutdown'),
    shuttingDown: findMessage(
      refused,
      'graceful-new-session.txt',
      'shutting down error',
      (m) => get(m, 'Message') === 'Asterisk is shutting down',
    ),
    callSetup: call.setup,
    stopNowTeardown: call.teardown,
    hangupTeardown: hangup.teardown,
    callOrigin: { channel: call.channel, uniqueid: call.uniqueid },
    hangupOrigin: { channel: hangup.channel, uniqueid: hangup.uniqueid },
    authFailed: labelled(derived, 'auth-failed'),
    permissionDenied: labelled(derived, 'permission-denied'),
    unknownAction: labelled(derived, 'unknown-action'),
    commandOutput: labelled(derived, 'command-output'),
    noSuchCommand: labelled(derived, 'command-no-such-command'),
    goodbye: labelled(derived, 'goodbye'),
  };
}

type Templates = ReturnType<typeof loadTemplates>;
let cachedTemplates: Templates | undefined;

/**
 * A copy of `template` with the given keys' values replaced (order and every other line kept).
 * `ActionID: undefined` removes the line: Asterisk writes no ActionID when the action had none.
 */
function fill(template: Fields, values: Record<string, string | undefined>): Fields {
  const out: Fields = [];
  for (const [k, v] of template) {
    if (!Object.hasOwn(values, k)) out.push([k, v]);
    else if (values[k] !== undefined) out.push([k, values[k]]);
  }
  return out;
}

/** Rewrites one call's events for another channel: every value naming the old one is changed. */
function rewriteCall(
  events: Fields[],
  from: { channel: string; uniqueid: string },
  call: FakeCall,
): Fields[] {
  return events.map((m) =>
    m.map(([k, v]): [string, string] => {
      if (k === 'Uniqueid' && v === from.uniqueid) return [k, call.uniqueid];
      if (k === 'Linkedid' && v === from.uniqueid) return [k, call.linkedid];
      return [k, v.split(from.channel).join(call.channel)];
    }),
  );
}

function serialize(fields: Fields): string {
  return `${fields.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** `2026-11-22T02:42:06.439+0000`, Asterisk's EventTV format. */
const eventTv = (ms: number): string => new Date(ms).toISOString().replace('Z', '+0000');
const two = (n: number): string => String(n).padStart(2, '0');

// --- server ------------------------------------------------------------------------------------

interface Session {
  n: number;
  socket: Socket;
  /** While set, what would be written is collected here instead (hold()). */
  capture: string[] | undefined;
  authed: boolean;
  events: boolean;
  input: string;
  sessionId: string;
}

const ACTION_END = /\r?\n\r?\n/;

/**
 * A TCP reset, as a crashing Asterisk gives. Not on a socket already ended (Logoff, failed
 * Login, exit): resetAndDestroy() racing a pending shutdown can leave the handle referenced and
 * the process spinning at exit on Node 24 (seen here; libp2p/js-libp2p#3597).
 */
function resetSocket(socket: Socket): void {
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

const DEFAULT_TIMING: FakeAmiTiming = {
  authFailedDelayMs: 1000,
  stopNowShutdownMs: 1100,
  lastCallShutdownMs: 1900,
  idleShutdownMs: 13,
  closeAfterShutdownMs: 7,
};

export async function startFakeAmi(opts: FakeAmiOptions = {}): Promise<FakeAmi> {
  cachedTemplates ??= loadTemplates();
  const t = cachedTemplates;
  const username = opts.username ?? 'test';
  const secret = opts.secret ?? 'test';
  const timing: FakeAmiTiming = { ...DEFAULT_TIMING, ...opts.timing };
  const host = '127.0.0.1';

  const sessions = new Set<Session>();
  const timers = new Set<NodeJS.Timeout>();
  const actions: FakeAmiAction[] = [];
  const actionListeners = new Set<(a: FakeAmiAction) => void>();
  const silenced = new Set<string>();
  /** Held answers per action name (lower case), written on release. */
  const held = new Map<string, Array<() => void>>();
  let calls: FakeCall[] = [];
  let accepted = 0;
  let channelCounter = 0;
  let processedCalls = 0;
  let startedAtMs = Date.now();
  let booted = opts.booted ?? true;
  let shuttingDown = false;
  let pendingStop: FakeStopKind | undefined;
  let running = false;
  let server: Server | undefined;
  let port = 0;

  /** Timers of a stop under way, cancelled by abortShutdown(). */
  const stopTimers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void, group?: Set<NodeJS.Timeout>): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      group?.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
    group?.add(timer);
  };

  const send = (s: Session, fields: Fields): void => {
    if (s.capture) s.capture.push(serialize(fields));
    else if (!s.socket.destroyed) s.socket.write(serialize(fields));
  };
  /** Events go to logged-in sessions that asked for them (`Events: on`) and may read their class. */
  const readable = (fields: Fields): boolean => {
    if (opts.readClasses === undefined) return true;
    const privilege = get(fields, 'Privilege');
    if (privilege === undefined) return true;
    return privilege.split(',').some((c) => c !== 'all' && opts.readClasses?.includes(c.trim()));
  };
  const broadcast = (fields: Fields): void => {
    if (!readable(fields)) return;
    for (const s of sessions) if (s.authed && s.events) send(s, fields);
  };
  const uptimeS = (): string => String(Math.floor((Date.now() - startedAtMs) / 1000));

  function respond(
    s: Session,
    template: Fields,
    actionId: string | undefined,
    values: Record<string, string> = {},
  ) {
    send(s, fill(template, { ...values, ActionID: actionId }));
  }

  function onAction(s: Session, fields: Fields): void {
    const nameField = fields.find(([k]) => k.toLowerCase() === 'action');
    const name = nameField?.[1] ?? '';
    const action: FakeAmiAction = { session: s.n, name, fields };
    actions.push(action);
    for (const listener of actionListeners) listener(action);
    const field = (key: string) => fields.find(([k]) => k.toLowerCase() === key.toLowerCase())?.[1];
    const id = field('ActionID') || undefined;
    const lower = name.toLowerCase();
    if (silenced.has(lower)) return;
    const queue = held.get(lower);
    if (queue) {
      s.capture = [];
      answer(s, name, lower, id, field);
      const texts = s.capture;
      s.capture = undefined;
      queue.push(() => {
        for (const text of texts) if (!s.socket.destroyed) s.socket.write(text);
      });
      return;
    }
    answer(s, name, lower, id, field);
  }

  function answer(
    s: Session,
    name: string,
    lower: string,
    id: string | undefined,
    field: (key: string) => string | undefined,
  ): void {
    // manager.c process_message: a stop under way refuses every action, Login included.
    if (shuttingDown) {
      respond(s, t.shuttingDown, id);
      return;
    }
    if (!s.authed && lower !== 'login' && lower !== 'logoff' && lower !== 'challenge') {
      respond(s, t.permissionDenied, id);
      return;
    }
    switch (lower) {
      case 'login':
        login(s, id, field('Username') ?? '', field('Secret') ?? '', field('Events'));
        return;
      case 'logoff':
        respond(s, t.goodbye, id);
        s.socket.end();
        return;
      case 'ping': {
        const now = Date.now();
        respond(s, t.pong, id, {
          Timestamp: `${Math.floor(now / 1000)}.${String((now % 1000) * 1000).padStart(6, '0')}`,
        });
        return;
      }
      case 'corestatus': {
        const d = new Date(startedAtMs);
        const date = `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}`;
        const time = `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
        respond(s, t.coreStatus, id, {
          CoreStartupDate: date,
          CoreStartupTime: time,
          CoreReloadDate: date,
          CoreReloadTime: time,
          CoreCurrentCalls: String(calls.length),
          CoreProcessedCalls: String(processedCalls),
        });
        return;
      }
      case 'coreshowchannels': {
        respond(s, t.listStart, id);
        for (const call of calls) {
          const seconds = Math.floor((Date.now() - call.startedAtMs) / 1000);
          const duration = `${two(Math.floor(seconds / 3600))}:${two(Math.floor(seconds / 60) % 60)}:${two(seconds % 60)}`;
          respond(s, t.listItem, id, {
            Channel: call.channel,
            Uniqueid: call.uniqueid,
            Linkedid: call.linkedid,
            Duration: duration,
          });
        }
        respond(s, t.listComplete, id, { ListItems: String(calls.length) });
        return;
      }
      case 'command':
        command(s, id, (field('Command') ?? '').trim().replace(/\s+/g, ' '));
        return;
      default:
        respond(s, t.unknownAction, id, {
          Message: `Invalid/unknown command: ${name}. Use Action: ListCommands to show available commands.`,
        });
        return;
    }
  }

  function login(s: Session, id: string | undefined, user: string, pass: string, events: string | undefined) {
    // manager.c: user names compare case-insensitively, secrets exactly.
    if (user.toLowerCase() !== username.toLowerCase() || pass !== secret) {
      later(timing.authFailedDelayMs, () => {
        respond(s, t.authFailed, id);
        s.socket.end();
      });
      return;
    }
    s.authed = true;
    s.events = (events ?? 'on').toLowerCase() !== 'off';
    respond(s, t.loginOk, id);
    if (booted && s.events) send(s, fill(t.fullyBooted, { Uptime: uptimeS(), LastReload: uptimeS() }));
    if (s.events) {
      const now = eventTv(Date.now());
      const remote = `IPV4/TCP/${s.socket.remoteAddress}/${s.socket.remotePort}`;
      send(
        s,
        fill(t.successfulAuth, {
          EventTV: now,
          SessionTV: now,
          AccountID: user,
          SessionID: s.sessionId,
          LocalAddress: `IPV4/TCP/${host}/${port}`,
          RemoteAddress: remote,
        }),
      );
    }
  }

  function command(s: Session, id: string | undefined, cmd: string): void {
    // `core stop ...` blocks in the CLI handler until the process exits: no response, ever
    // (ami-graceful/ami-cmd.txt).
    if (cmd === 'core stop now') {
      shutdown('now');
      return;
    }
    if (cmd === 'core stop gracefully') {
      shutdown('gracefully');
      return;
    }
    if (cmd === 'core stop when convenient') {
      shutdown('when-convenient');
      return;
    }
    if (cmd === 'core show channels count') {
      const channels = calls.length;
      const distinct = new Set(calls.map((c) => c.linkedid)).size;
      const ess = (n: number) => (n === 1 ? '' : 's');
      send(
        s,
        fill(t.commandOutput, { ActionID: id, Output: undefined }).concat([
          ['Output', `${channels} active channel${ess(channels)}`],
          ['Output', `${distinct} active call${ess(distinct)}`],
          ['Output', `${processedCalls} call${ess(processedCalls)} processed`],
        ]),
      );
      return;
    }
    respond(s, t.noSuchCommand, id, {
      Output: `No such command '${cmd}' (type 'core show help ${cmd}' for other possible commands)`,
    });
    return;
  }

  function addCall(callOpts: { linkedid?: string } = {}): FakeCall {
    if (!running) throw new Error('fake ami: Asterisk is not running');
    if (shuttingDown) throw new Error('fake ami: channel allocation refused (Asterisk is shutting down)');
    const n = channelCounter++;
    const uniqueid = `${Math.floor(startedAtMs / 1000)}.${n}`;
    const call: FakeCall = {
      uniqueid,
      linkedid: callOpts.linkedid ?? uniqueid,
      channel: `SIP/127.0.0.1-${n.toString(16).padStart(8, '0')}`,
      startedAtMs: Date.now(),
    };
    calls.push(call);
    processedCalls++;
    for (const event of rewriteCall(t.callSetup, t.callOrigin, call)) broadcast(event);
    return call;
  }

  function endCall(uniqueid: string, teardown: Fields[], origin: { channel: string; uniqueid: string }) {
    const call = calls.find((c) => c.uniqueid === uniqueid);
    if (!call) throw new Error(`fake ami: no call ${uniqueid}`);
    calls = calls.filter((c) => c !== call);
    for (const event of rewriteCall(teardown, origin, call)) broadcast(event);
  }

  function hangupCall(uniqueid: string): void {
    endCall(uniqueid, t.hangupTeardown, t.hangupOrigin);
    if (calls.length === 0 && pendingStop !== undefined && pendingStop !== 'now') {
      shuttingDown = true;
      later(timing.lastCallShutdownMs, exit, stopTimers);
    }
  }

  /** The last moments of the process: Shutdown to every session, sockets closed, port closed. */
  function exit(): void {
    if (!running) return;
    broadcast(t.shutdown);
    later(timing.closeAfterShutdownMs, () => void stopListening(false), stopTimers);
  }

  function shutdown(kind: FakeStopKind): void {
    if (!running || pendingStop === 'now') return;
    pendingStop = kind;
    if (kind === 'now') {
      shuttingDown = true;
      // stop-now-monitor.txt: every call hung up at once with Cause 16, Shutdown ~1.1 s later.
      for (const call of [...calls]) endCall(call.uniqueid, t.stopNowTeardown, t.callOrigin);
      later(timing.stopNowShutdownMs, exit, stopTimers);
      return;
    }
    if (kind === 'gracefully') shuttingDown = true;
    if (calls.length === 0) {
      shuttingDown = true;
      later(kind === 'gracefully' ? timing.idleShutdownMs : timing.lastCallShutdownMs, exit, stopTimers);
    }
  }

  async function stopListening(reset: boolean): Promise<void> {
    running = false;
    for (const s of sessions) {
      if (reset) resetSocket(s.socket);
      else s.socket.end();
    }
    const srv = server;
    server = undefined;
    if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
  }

  function onConnection(socket: Socket): void {
    accepted++;
    const s: Session = {
      n: accepted,
      socket,
      authed: false,
      events: false,
      input: '',
      capture: undefined,
      sessionId: `0x${randomBytes(6).toString('hex')}`,
    };
    sessions.add(s);
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sessions.delete(s));
    socket.write(`${t.banner}\r\n`);
    socket.on('data', (chunk: Buffer) => {
      s.input += chunk.toString('utf8');
      // Actions end with an empty line; tolerant of LF-only as Asterisk is.
      for (let end = ACTION_END.exec(s.input); end !== null; end = ACTION_END.exec(s.input)) {
        const block = s.input.slice(0, end.index);
        s.input = s.input.slice(end.index + end[0].length);
        const fields: Fields = [];
        for (const line of block.split(/\r?\n/)) {
          const colon = line.indexOf(':');
          if (colon <= 0) continue;
          const value = line.slice(colon + 1);
          fields.push([line.slice(0, colon), value.startsWith(' ') ? value.slice(1) : value]);
        }
        if (fields.length > 0) onAction(s, fields);
      }
    });
  }

  async function listen(onPort: number): Promise<void> {
    const srv = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(onPort, host, () => {
        srv.off('error', reject);
        resolve();
      });
    });
    const addr = srv.address();
    if (typeof addr !== 'object' || addr === null) throw new Error('fake ami: no address');
    server = srv;
    port = addr.port;
    running = true;
    startedAtMs = Date.now();
    booted = opts.booted ?? true;
    shuttingDown = false;
    pendingStop = undefined;
    calls = [];
    // channelCounter keeps running: a restart within the same second must not reuse a Uniqueid.
    processedCalls = 0;
  }

  await listen(0);

  return {
    host,
    get port() {
      return port;
    },
    actions,
    get connectionsAccepted() {
      return accepted;
    },
    get openSessions() {
      return sessions.size;
    },
    get running() {
      return running;
    },
    get shuttingDown() {
      return shuttingDown;
    },
    onAction(listener) {
      actionListeners.add(listener);
      return () => actionListeners.delete(listener);
    },
    calls: () => calls.map((c) => ({ ...c })),
    addCall,
    hangupCall,
    finishBoot() {
      if (booted) return;
      booted = true;
      broadcast(fill(t.fullyBooted, { Uptime: uptimeS(), LastReload: uptimeS() }));
    },
    shutdown,
    abortShutdown() {
      if (!running) return;
      pendingStop = undefined;
      shuttingDown = false;
      for (const timer of stopTimers) {
        clearTimeout(timer);
        timers.delete(timer);
      }
      stopTimers.clear();
    },
    silence(actionName, on = true) {
      if (on) silenced.add(actionName.toLowerCase());
      else silenced.delete(actionName.toLowerCase());
    },
    hold(actionName) {
      const lower = actionName.toLowerCase();
      held.set(lower, []);
      return () => {
        const queue = held.get(lower) ?? [];
        held.delete(lower);
        for (const write of queue) write();
      };
    },
    sendRaw(data) {
      for (const s of sessions) if (!s.socket.destroyed) s.socket.write(data);
    },
    dropConnections() {
      for (const s of sessions) resetSocket(s.socket);
    },
    kill: () => stopListening(true),
    async restart() {
      if (running) await stopListening(true);
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await listen(port);
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      actionListeners.clear();
      await stopListening(true);
    },
  };
}
