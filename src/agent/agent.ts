import { describeError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { Counter, Gauge, Histogram, type Registry as MetricsRegistry } from '../core/metrics.ts';
import type { AnnounceInput, Announcement, Registry } from '../registry/index.ts';
import { createHealthTracker } from './health.ts';
import { canTransition, type Phase, registryStateOf } from './phases.ts';
import { describeExit } from './restart-policy.ts';
import type { Supervisor } from './supervisor.ts';

/**
 * The node agent's life-cycle (docs/reference/agent.md): boot, warm-up, up, restarting,
 * draining, drained, stopped, failed. The node is announced only once ready (process alive,
 * AMI fully booted when configured, SIP OPTIONS answered), marked down the moment its process
 * dies or its health fails, re-announced ready when it recovers, drained on SIGTERM or an
 * operator's intent.
 *
 * Everything outside the decisions is injected (the supervised process, AMI, the prober, the
 * registry, hooks), so the same code watches a supervised Asterisk, an Asterisk run by
 * something else, or any SIP server without AMI.
 */

export type AgentPhase = Phase;

/** The supervised process (src/agent/supervisor.ts), when the agent runs one. */
export type ServiceControl = Pick<
  Supervisor,
  'state' | 'pid' | 'restarts' | 'start' | 'stop' | 'restart' | 'on'
>;

/** Asterisk's manager interface, when configured. */
export interface AmiView {
  connected(): boolean;
  /** FullyBooted seen on the current session. */
  fullyBooted(): boolean;
  /** Live calls and channels, or undefined until counted (CoreShowChannels after each login). */
  calls(): { calls: number; channels: number } | undefined;
  /** Called on connection, boot and call-count changes. */
  onChange(fn: () => void): void;
  /** `core stop now`; best effort (the process signal follows anyway). */
  stopNow(): Promise<void>;
}

/**
 * Where the live call count comes from when it is not AMI: e.g. the captured SIP of the load
 * balancer (src/capture/live-calls.ts) for a backend without a manager interface (sipp, another
 * SIP server). Given, it replaces AMI's count everywhere a count is used (record, metrics,
 * stats, drain); AMI, when configured too, still decides readiness and stops the process.
 */
export interface CallSource {
  /** Reported in the record's stats as `callsSource`, e.g. `capture`. */
  readonly kind: string;
  /** Live calls and channels (legs), or undefined until first counted. */
  calls(): { calls: number; channels: number } | undefined;
  /** Called whenever the count changes. */
  onChange(fn: () => void): void;
}

export interface ProbeResult {
  up: boolean;
  rttMs?: number;
  reason?: string;
}

export interface AgentOptions {
  nodeId: string;
  sipUri: string;
  setId: number;
  weight?: number;
  maxCalls?: number;
  priority: number;
  version: string;
  leaseTtlMs: number;
  health: {
    optionsIntervalMs: number;
    optionsTimeoutMs: number;
    failuresToDown: number;
    successesToUp: number;
    /** How long AMI may stay lost while the node serves before that makes it unhealthy. */
    amiDownGraceMs: number;
  };
  readiness: { timeoutMs: number };
  restart: { unhealthyRestartAfterMs: number };
  drain: { deadlineMs: number; progressIntervalMs: number };
  stop: { graceMs: number };
}

export interface AgentDeps {
  options: AgentOptions;
  registry: Pick<Registry, 'announce' | 'watchView'>;
  probe(uri: string, timeoutMs: number): Promise<ProbeResult>;
  service?: ServiceControl;
  ami?: AmiView;
  /** Counts live calls instead of AMI (CallSource); default: AMI's count, when AMI is configured. */
  calls?: CallSource;
  /** Runs the user hook of a phase; must not throw and should not block (queue it). */
  onPhase?(phase: AgentPhase, previous: AgentPhase | undefined): void;
  /** Boot work before warm-up: templates, first-boot, upgrade. May set the phase. */
  prepare?(setPhase: (phase: AgentPhase) => void): Promise<void>;
  logger: Logger;
  metrics: MetricsRegistry;
  now?: () => number;
}

export interface AgentStatus {
  nodeId: string;
  phase: AgentPhase;
  since: string;
  healthy: boolean;
  announced: boolean;
  calls: number | undefined;
  restarts: number;
  /** The supervised process, while it runs. */
  pid: number | undefined;
  lastProbeMs: number | undefined;
  reason: string | undefined;
}

export interface AgentHandle {
  /** Boots and runs the life-cycle in the background; resolves once warm-up has begun. */
  start(): Promise<void>;
  /**
   * Drains (no new calls, waits for calls to end or the deadline), stops the supervised
   * process, withdraws the record. Resolves when done; what SIGTERM does.
   */
  shutdown(): Promise<void>;
  status(): AgentStatus;
  health(): { ok: boolean; checks: Record<string, unknown> };
  ready(): { ok: boolean; checks: Record<string, unknown> };
}

/** Longest delay of a call-count or stats update to the node record. */
const RECORD_COALESCE_MS = 1000;

/** Back-off between attempts to open the intent watch while the registry is away at boot. */
const WATCH_RETRY_INITIAL_MS = 500;
const WATCH_RETRY_MAX_MS = 5000;

export function createAgent(deps: AgentDeps): AgentHandle {
  const { options: o, logger } = deps;
  const now = deps.now ?? Date.now;
  const m = createAgentMetrics(deps.metrics);
  const tracker = createHealthTracker(o.health);
  const startedAt = new Date(now()).toISOString();
  const service = deps.service;
  const ami = deps.ami;
  const callSource = deps.calls;
  /** The live calls from the call source, else from AMI; undefined while not counted (or nothing counts). */
  const countCalls = (): { calls: number; channels: number } | undefined =>
    callSource ? callSource.calls() : ami?.calls();
  const callsSource: string | undefined = callSource?.kind ?? (ami ? 'ami' : undefined);

  let phase: AgentPhase = 'boot';
  let phaseSince = now();
  let reason: string | undefined;
  let announcement: Announcement | undefined;
  let announcing = false;
  let lastProbeMs: number | undefined;
  let stopping = false;
  /** shutdown() was called: the drain that precedes the stop is not the operator's to cancel. */
  let shutdownRequested = false;
  /** The operator's drain intent for this node, from the registry. */
  let drainIntent = false;
  /** Set while an up node fails its checks: it is out of rotation (record `down`). */
  let unhealthySince: number | undefined;
  /** Since when AMI has been lost (disconnected, or back but not booted again); undefined while fine. */
  let amiLostSince: number | undefined;
  /** Re-evaluates when the AMI grace ends: a lost AMI says nothing more by itself. */
  let amiGraceTimer: NodeJS.Timeout | undefined;
  /** Asterisk said Shutdown on a live session: out of rotation until it is booted again. */
  let amiShutdownSeen = false;
  /** Why the agent itself asked for the current restart; its `restarting` reason says so. */
  let restartCause: string | undefined;
  let probeTimer: NodeJS.Timeout | undefined;
  let readyDeadline: NodeJS.Timeout | undefined;
  let recordTimer: NodeJS.Timeout | undefined;
  let viewWatch: { close(): Promise<void> } | undefined;
  /** Settles once the operator's intents are known (or the agent stops): announcing waits for it. */
  let intentsKnown: Promise<void> = Promise.resolve();
  /** Ends the wait between two attempts to open the intent watch (shutdown). */
  let wakeWatchRetry: (() => void) | undefined;
  let started = false;
  /** Ends the current drain wait early (calls changed, undrain, shutdown). */
  let wakeDrain: (() => void) | undefined;
  let shutdownPromise: Promise<void> | undefined;

  function setPhase(next: AgentPhase, why?: string): void {
    if (next === phase) {
      if (why !== reason) {
        reason = why;
        writeRecord(true);
      }
      return;
    }
    if (!canTransition(phase, next)) {
      // A bug, not an operator error: say so loudly but do not wedge the node.
      logger.error({ from: phase, to: next }, 'life-cycle transition not in the table');
    }
    const previous = phase;
    phase = next;
    phaseSince = now();
    reason = why;
    m.phase.reset();
    m.phase.set({ phase: next }, 1);
    m.transitions.inc({ from: previous, to: next });
    logger.info({ phase: next, previous, reason: why }, 'phase');
    deps.onPhase?.(next, previous);
    writeRecord(true);
  }

  function stats(): Record<string, string | number | boolean> {
    const s: Record<string, string | number | boolean> = {
      phase,
      restarts: service?.restarts ?? 0,
      uptimeS: Math.round((now() - Date.parse(startedAt)) / 1000),
    };
    if (lastProbeMs !== undefined) s.probeMs = Math.round(lastProbeMs * 10) / 10;
    if (reason !== undefined) s.reason = reason.slice(0, 200);
    if (ami) s.ami = ami.connected() ? 'connected' : 'disconnected';
    // Absent when nothing counts calls: the record's 0 then means "unknown" (the console says so).
    if (callsSource !== undefined) s.callsSource = callsSource;
    const count = countCalls();
    if (count) s.channels = count.channels;
    return s;
  }

  function recordInput(): AnnounceInput {
    const input: AnnounceInput = {
      id: o.nodeId,
      setId: o.setId,
      uri: o.sipUri,
      priority: o.priority,
      // Up but failing its checks: out of rotation until it recovers or is restarted.
      state: phase === 'up' && unhealthySince !== undefined ? 'down' : registryStateOf(phase),
      calls: countCalls()?.calls ?? 0,
      version: o.version,
      startedAt,
      stats: stats(),
    };
    if (o.weight !== undefined) input.weight = o.weight;
    if (o.maxCalls !== undefined) input.maxCalls = o.maxCalls;
    return input;
  }

  /**
   * Keeps the registry record current. State changes go out at once (every dispatcher disables
   * a dead node on this write); call counts and stats are coalesced to one write per
   * RECORD_COALESCE_MS, so a busy node costs the registry one write a second, not one per call.
   * Nothing is written before the node was first ready: never announce before ready.
   */
  function writeRecord(urgent: boolean): void {
    if (!announcement) return;
    if (!urgent) {
      recordTimer ??= setTimeout(() => {
        recordTimer = undefined;
        writeRecord(true);
      }, RECORD_COALESCE_MS);
      return;
    }
    if (recordTimer) clearTimeout(recordTimer);
    recordTimer = undefined;
    const { id: _id, ...patch } = recordInput();
    announcement.update(patch).catch((err: unknown) => {
      if (!stopping) logger.warn({ err: describeError(err) }, 'node record update failed');
    });
  }

  /** First readiness: the record appears, already `ready` (or `draining` if the operator said so). */
  async function announceUp(): Promise<void> {
    if (announcement) {
      // Back after a restart; an operator drain still in force applies again.
      setPhase('up');
      if (drainIntent && !shutdownRequested) void drain('intent');
      return;
    }
    if (announcing) return;
    announcing = true;
    try {
      // Never into rotation against a drain the operator has asked for but we have not read yet.
      await intentsKnown;
      if (stopping || shutdownRequested) return;
      // The wait may have been long (the registry away at boot): decide on what holds now. A
      // service that is no longer ready gets its warm-up deadline back and is announced later.
      if (phase !== 'warm-up' || !readiness().ok) {
        if (phase === 'warm-up') armReadyDeadline();
        return;
      }
      const previous = phase;
      phase = 'up';
      const input = recordInput();
      phase = previous;
      announcement = await deps.registry.announce(input, {
        ttlMs: o.leaseTtlMs,
        onLost: (err) => logger.warn({ err: describeError(err) }, 'registry lease lost; re-announcing'),
        onRecovered: () => logger.info('node record back in the registry'),
      });
      if (stopping) return;
      if (phase !== 'warm-up') {
        // The service went down while the first write waited for the registry: say so now.
        writeRecord(true);
        return;
      }
      setPhase('up');
      // Anything that failed during that wait takes the node out again at once.
      evaluate();
      if (drainIntent && !shutdownRequested) void drain('intent');
    } finally {
      announcing = false;
    }
  }

  // ---- health --------------------------------------------------------------------------

  function scheduleProbe(delayMs: number): void {
    if (probeTimer) clearTimeout(probeTimer);
    probeTimer = setTimeout(() => void probeOnce(), delayMs);
  }

  async function probeOnce(): Promise<void> {
    probeTimer = undefined;
    if (stopping) return;
    const t0 = performance.now();
    let res: ProbeResult;
    try {
      res = await deps.probe(o.sipUri, o.health.optionsTimeoutMs);
    } catch (err) {
      res = { up: false, reason: describeError(err) };
    }
    if (stopping) return;
    m.probes.inc({ result: res.up ? 'up' : 'down' });
    if (res.up) {
      lastProbeMs = res.rttMs ?? performance.now() - t0;
      m.probeSeconds.observe(lastProbeMs / 1000);
    }
    if (tracker.record(res.up))
      logger.info({ healthy: tracker.healthy(), reason: res.reason }, 'SIP health changed');
    evaluate(res.reason);
    scheduleProbe(o.health.optionsIntervalMs);
  }

  const serving = (): boolean => phase === 'up' || phase === 'draining' || phase === 'drained';

  /**
   * Follows how long AMI has been lost and wakes evaluate() when the grace ends: a lost AMI
   * reports nothing more by itself, so without the timer the node would wait for the next probe.
   */
  function trackAmi(): void {
    if (!ami) return;
    if (ami.connected() && ami.fullyBooted()) {
      amiLostSince = undefined;
      amiShutdownSeen = false;
      if (amiGraceTimer) clearTimeout(amiGraceTimer);
      amiGraceTimer = undefined;
      return;
    }
    // Connected and no longer booted, with no loss before: Asterisk announced its shutdown on
    // the live session. Sticky until it boots again, so the disconnect that follows is no blip.
    if (ami.connected() && amiLostSince === undefined && serving()) amiShutdownSeen = true;
    // Back but not booted yet keeps the loss running: the reconnect is part of the same blip.
    if (!ami.connected()) amiLostSince ??= now();
    if (amiLostSince === undefined || amiGraceTimer) return;
    const remainingMs = amiLostSince + o.health.amiDownGraceMs - now();
    if (remainingMs <= 0) return;
    amiGraceTimer = setTimeout(() => {
      amiGraceTimer = undefined;
      evaluate();
    }, remainingMs);
  }

  /**
   * Why AMI keeps the node from being ready, if it does. Warm-up is strict: connected and
   * FullyBooted, or no announcement. A serving node gets `health.amiDownGraceMs` of grace for a
   * lost session (manager reload, TCP reset; the client reconnects by itself), since a dead
   * Asterisk is caught at once anyway, by the process exit and by OPTIONS.
   */
  function amiProblem(): string | undefined {
    if (!ami) return undefined;
    if (amiShutdownSeen) return 'AMI says Asterisk is shutting down';
    if (serving() && amiLostSince !== undefined) {
      const lostMs = now() - amiLostSince;
      if (lostMs < o.health.amiDownGraceMs) return undefined;
      return ami.connected()
        ? `AMI back but no FullyBooted for ${lostMs} ms`
        : `AMI disconnected for ${lostMs} ms`;
    }
    if (!ami.connected()) return 'AMI not connected';
    if (!ami.fullyBooted()) {
      // A serving node's own session losing its boot means Asterisk announced a shutdown.
      return serving() ? 'AMI says Asterisk is shutting down' : 'AMI has not sent FullyBooted';
    }
    return undefined;
  }

  /** Ready: process running (when supervised), AMI fully booted (when configured), SIP healthy. */
  function readiness(): { ok: true } | { ok: false; why: string } {
    if (service && service.state !== 'running') return { ok: false, why: `process ${service.state}` };
    const amiWhy = amiProblem();
    if (amiWhy !== undefined) return { ok: false, why: amiWhy };
    if (!tracker.healthy()) return { ok: false, why: 'SIP OPTIONS not answered with 2xx' };
    return { ok: true };
  }

  /** Restarts the supervised process on the agent's own decision, remembering why for the record. */
  function restartService(why: string): void {
    if (service?.restart(why, { graceMs: o.stop.graceMs })) restartCause = why;
  }

  /** Re-decides after any change of health, AMI or process state. */
  function evaluate(probeReason?: string): void {
    if (stopping) return;
    trackAmi();
    const r = readiness();
    m.healthy.set(r.ok ? 1 : 0);
    if (phase === 'warm-up') {
      if (!r.ok) return;
      if (readyDeadline) clearTimeout(readyDeadline);
      readyDeadline = undefined;
      announceUp().catch((err: unknown) => logger.error({ err: describeError(err) }, 'announce failed'));
      return;
    }
    if (!serving()) return;
    if (!r.ok) {
      if (unhealthySince === undefined) {
        // Out of rotation at once; the process gets unhealthyRestartAfterMs to recover.
        unhealthySince = now();
        reason = `unhealthy: ${r.why}${probeReason ? ` (${probeReason})` : ''}`;
        m.unhealthy.inc();
        logger.warn({ reason }, 'unhealthy: out of rotation');
        writeRecord(true);
      } else if (
        service &&
        restartCause === undefined &&
        now() - unhealthySince >= o.restart.unhealthyRestartAfterMs
      ) {
        logger.warn({ unhealthyMs: now() - unhealthySince, reason }, 'unhealthy for too long: restarting');
        restartService(reason ?? 'unhealthy');
      }
      return;
    }
    if (unhealthySince !== undefined) {
      unhealthySince = undefined;
      reason = undefined;
      logger.info('healthy again: back in rotation');
      writeRecord(true);
    }
  }

  // ---- the supervised process ----------------------------------------------------------

  function beginWarmUp(): void {
    tracker.reset();
    m.healthy.set(0);
    unhealthySince = undefined;
    setPhase('warm-up');
    if (readyDeadline) clearTimeout(readyDeadline);
    readyDeadline = undefined;
    armReadyDeadline();
    scheduleProbe(0);
  }

  /** Not ready within readiness.timeoutMs of now: restart the service (or say why, if not ours). */
  function armReadyDeadline(): void {
    if (readyDeadline) return;
    readyDeadline = setTimeout(() => {
      readyDeadline = undefined;
      if (phase !== 'warm-up' || stopping) return;
      const r = readiness();
      const why = `not ready after ${o.readiness.timeoutMs} ms: ${r.ok ? 'unknown' : r.why}`;
      logger.warn({ reason: why }, 'warm-up timed out');
      // The reason shows in status (and the record after a restart) while it lasts.
      setPhase('warm-up', why);
      // Something that was never ready cannot be fixed by waiting: restart it if it is ours.
      restartService(why);
    }, o.readiness.timeoutMs);
  }

  function watchService(svc: ServiceControl): void {
    svc.on('started', ({ pid, restarts }) => {
      logger.info({ pid, restarts }, 'service running');
      restartCause = undefined;
      if (!stopping) beginWarmUp();
    });
    svc.on('exited', (info) => {
      if (stopping) return;
      if (!info.expected) m.exits.inc();
      const exit = `process ${describeExit(info)} after ${Math.round(info.uptimeMs / 1000)} s`;
      // The agent's own restart says why it was asked for, not just how the process ended.
      const why = info.expected && restartCause !== undefined ? `restarted: ${restartCause}` : exit;
      logger.warn(
        { code: info.code, signal: info.signal, uptimeMs: info.uptimeMs, expected: info.expected },
        'service exited',
      );
      // Down in the registry before anything else: dispatchers disable the node at once,
      // long before Kamailio's own OPTIONS probing would notice.
      if (phase !== 'failed') setPhase('restarting', why);
    });
    svc.on('restart-scheduled', ({ delayMs, attempt }) => {
      m.restarts.inc();
      logger.info({ delayMs, attempt }, 'restart scheduled');
    });
    svc.on('crash-loop', ({ reason: why }) => {
      logger.error({ reason: why }, 'crash loop: no more restarts; the node stays out of rotation');
      setPhase('failed', why);
    });
  }

  // ---- drain ---------------------------------------------------------------------------

  /**
   * Out of rotation (record `draining`: every dispatcher disables the node), then wait until the
   * node's channels reach zero or the deadline. The count is the call source's when one is given
   * (e.g. captured SIP in `switchyard up`), else AMI's; with neither nothing counts calls and the
   * wait is the whole deadline. A count not known yet (AMI not synced, capture not yet polled) is
   * waited for like calls up.
   */
  async function drain(cause: 'intent' | 'shutdown'): Promise<void> {
    setPhase('draining', cause === 'intent' ? 'operator drain' : 'stopping');
    const deadline = now() + o.drain.deadlineMs;
    let lastReport = Number.NEGATIVE_INFINITY;
    for (;;) {
      if (cause === 'intent' && (!drainIntent || stopping || shutdownRequested)) return;
      if (phase !== 'draining') return; // the process died meanwhile: restarting
      const count = countCalls();
      if (now() - lastReport >= o.drain.progressIntervalMs) {
        lastReport = now();
        logger.info(
          {
            calls: count?.calls ?? null,
            channels: count?.channels ?? null,
            remainingMs: Math.max(0, deadline - now()),
            cause,
            ...(callsSource === undefined ? {} : { source: callsSource }),
          },
          callsSource !== undefined
            ? 'draining: waiting for calls to end'
            : 'draining without AMI: waiting out the deadline',
        );
      }
      if (count?.channels === 0) break;
      if (now() >= deadline) {
        if (count !== undefined)
          logger.warn(
            { channels: count.channels, deadlineMs: o.drain.deadlineMs },
            'drain deadline reached with calls up',
          );
        break;
      }
      await new Promise<void>((resolve) => {
        wakeDrain = resolve;
        setTimeout(resolve, Math.min(o.drain.progressIntervalMs, Math.max(1, deadline - now())));
      });
      wakeDrain = undefined;
    }
    if (cause === 'intent') setPhase('drained', 'operator drain');
  }

  function onIntent(wantDrain: boolean): void {
    if (wantDrain === drainIntent) return;
    drainIntent = wantDrain;
    if (stopping || shutdownRequested) return;
    if (wantDrain && phase === 'up') void drain('intent');
    if (!wantDrain && (phase === 'draining' || phase === 'drained')) {
      wakeDrain?.();
      logger.info('undrained by the operator: back in service');
      setPhase('up');
      evaluate();
    }
  }

  async function shutdownInner(): Promise<void> {
    if (readyDeadline) clearTimeout(readyDeadline);
    const serving =
      announcement !== undefined && (phase === 'up' || phase === 'draining' || phase === 'drained');
    shutdownRequested = true;
    if (serving && phase !== 'drained') {
      wakeDrain?.(); // an operator drain in progress hands over to this one
      await drain('shutdown');
    }
    stopping = true;
    wakeDrain?.();
    wakeWatchRetry?.();
    if (service && service.state !== 'stopped' && service.state !== 'idle') {
      // `core stop now` first: Asterisk hangs up what is left and exits cleanly; the signal
      // after stop.graceMs is the safety net.
      if (ami?.connected()) await ami.stopNow().catch(() => {});
      await service.stop({ graceMs: o.stop.graceMs });
    }
    setPhase('stopped');
    if (probeTimer) clearTimeout(probeTimer);
    if (recordTimer) clearTimeout(recordTimer);
    if (amiGraceTimer) clearTimeout(amiGraceTimer);
    await viewWatch?.close().catch(() => {});
    await announcement?.withdraw().catch((err: unknown) => {
      logger.warn(
        { err: describeError(err) },
        'could not withdraw the node record; it expires with its lease',
      );
    });
  }

  /**
   * Opens the watch of the operator's intents, retrying with back-off while the registry is away:
   * a node that boots before its registry (a site powering up, etcd coming back last) starts its
   * service and warms up meanwhile, instead of exiting.
   */
  async function watchIntents(): Promise<void> {
    for (let delayMs = WATCH_RETRY_INITIAL_MS; !stopping && !shutdownRequested; ) {
      try {
        const watch = await deps.registry.watchView((view) =>
          onIntent(view.intents.get(o.nodeId)?.drain === true),
        );
        if (stopping) {
          await watch.close().catch(() => {});
          return;
        }
        viewWatch = watch;
        drainIntent = watch.current().intents.get(o.nodeId)?.drain === true;
        return;
      } catch (err) {
        if (stopping || shutdownRequested) return;
        logger.warn(
          { err: describeError(err), retryInMs: delayMs },
          'registry unreachable: cannot read operator intents yet; the node is not announced until it can',
        );
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delayMs);
          timer.unref();
          wakeWatchRetry = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wakeWatchRetry = undefined;
        delayMs = Math.min(delayMs * 2, WATCH_RETRY_MAX_MS);
      }
    }
  }

  return {
    async start() {
      if (started) throw new Error('agent already started');
      started = true;
      m.phase.set({ phase: 'boot' }, 1);
      deps.onPhase?.('boot', undefined);
      if (service) watchService(service);
      ami?.onChange(() => {
        if (!callSource) m.calls.set(ami.calls()?.calls ?? 0);
        writeRecord(false);
        wakeDrain?.();
        evaluate();
      });
      callSource?.onChange(() => {
        m.calls.set(callSource.calls()?.calls ?? 0);
        writeRecord(false);
        wakeDrain?.();
      });
      intentsKnown = watchIntents();
      try {
        await deps.prepare?.((p) => setPhase(p));
      } catch (err) {
        setPhase('failed', `boot failed: ${describeError(err)}`);
        return;
      }
      if (service) {
        // warm-up begins on the supervisor's `started` event; a spawn failure is an exit.
        await service.start();
      } else beginWarmUp();
    },
    shutdown() {
      shutdownPromise ??= shutdownInner();
      return shutdownPromise;
    },
    status() {
      return {
        nodeId: o.nodeId,
        phase,
        since: new Date(phaseSince).toISOString(),
        healthy: tracker.healthy(),
        announced: announcement !== undefined,
        calls: countCalls()?.calls,
        restarts: service?.restarts ?? 0,
        pid: service?.pid,
        lastProbeMs,
        reason,
      };
    },
    health() {
      return { ok: phase !== 'failed', checks: { phase, reason: reason ?? null } };
    },
    ready() {
      const ok = phase === 'up' && unhealthySince === undefined;
      return { ok, checks: { phase, healthy: tracker.healthy(), announced: announcement !== undefined } };
    },
  };
}

function createAgentMetrics(registry: MetricsRegistry) {
  const registers = [registry];
  return {
    phase: new Gauge({
      name: 'switchyard_agent_phase',
      help: 'Current life-cycle phase (1 for the current one)',
      labelNames: ['phase'],
      registers,
    }),
    transitions: new Counter({
      name: 'switchyard_agent_transitions_total',
      help: 'Life-cycle transitions',
      labelNames: ['from', 'to'],
      registers,
    }),
    restarts: new Counter({
      name: 'switchyard_agent_restarts_total',
      help: 'Restarts of the supervised process',
      registers,
    }),
    exits: new Counter({
      name: 'switchyard_agent_service_exits_total',
      help: 'Exits of the supervised process the agent did not ask for',
      registers,
    }),
    calls: new Gauge({
      name: 'switchyard_agent_calls',
      help: 'Live calls, from the call source (captured SIP) or AMI',
      registers,
    }),
    healthy: new Gauge({
      name: 'switchyard_agent_healthy',
      help: '1 while the node passes its checks: process, AMI (with its grace), SIP OPTIONS (with hysteresis)',
      registers,
    }),
    unhealthy: new Counter({
      name: 'switchyard_agent_unhealthy_total',
      help: 'Times a serving node failed its checks and went out of rotation (record down)',
      registers,
    }),
    probes: new Counter({
      name: 'switchyard_agent_probes_total',
      help: 'SIP OPTIONS probes by result',
      labelNames: ['result'],
      registers,
    }),
    probeSeconds: new Histogram({
      name: 'switchyard_agent_probe_seconds',
      help: 'SIP OPTIONS round trip of answered probes',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    }),
  };
}
