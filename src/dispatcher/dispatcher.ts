import { describeError, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { Counter, Gauge, Histogram, type Registry as MetricsRegistry } from '../core/metrics.ts';
import type { KamailioRpc } from '../net/kamailio-rpc-types.ts';
import { parseDispatcherList, type RenderedList, renderDispatcherList } from '../proto/dispatcher-list.ts';
import type { DispatcherStatus } from '../registry/records.ts';
import type { RegistryView } from '../registry/view.ts';
import { compareWithKamailio, type StateChange } from './compare.ts';
import type { DispatcherConfig } from './config.ts';
import { computeDesired, type DesiredDestination } from './desired.ts';
import { readListFile, writeListFileAtomic } from './list-file.ts';
import { createRemovalGuard, type HeldRemoval } from './removal-guard.ts';

/** The registry as the dispatcher uses it (implemented by registry/registry.ts). */
export interface DispatcherRegistry {
  watchView(
    onChange: (view: RegistryView) => void,
    opts?: { onConnection?: (connected: boolean) => void },
  ): Promise<{ close(): Promise<void>; current(): RegistryView }>;
  publishDispatcherStatus(opts: { ttlMs: number }): {
    update(status: DispatcherStatus): void;
    close(): Promise<void>;
  };
}

export interface DispatcherDeps {
  config: Pick<
    DispatcherConfig,
    | 'name'
    | 'kamailioRpc'
    | 'listFile'
    | 'sets'
    | 'reloadDeltaMs'
    | 'verifyIntervalMs'
    | 'statusTtlMs'
    | 'massRemoval'
  >;
  registry: DispatcherRegistry;
  rpc: KamailioRpc;
  /** SIP OPTIONS probe: true when the URI answers 2xx. Used to confirm held removals. */
  probe: (uri: string, timeoutMs: number) => Promise<boolean>;
  logger: Logger;
  metrics: MetricsRegistry;
  now?: () => number;
}

export interface DispatcherHandle {
  start(): Promise<void>;
  close(): Promise<void>;
  /** Runs one reconcile pass now and waits for it (tests, benchmarks). */
  reconcileNow(): Promise<void>;
  status(): DispatcherStatus;
  health(): { ok: boolean; checks: Record<string, unknown> };
  ready(): { ok: boolean; checks: Record<string, unknown> };
}

const MAX_ROUNDS_PER_PASS = 4;
/** set_duid_state calls in flight at once (Kamailio's RPC workers are few; a burst of 1,000 would queue). */
const STATE_CHANGE_CONCURRENCY = 8;

/**
 * One dispatcher per Kamailio: watches the registry, renders dispatcher.list, writes it
 * atomically when it changes, applies it over JSON-RPC (reload for membership and attributes,
 * set_duid_state for admin state), reads Kamailio's view back and repairs drift.
 *
 * Fail-static: the view only changes when the registry delivers a complete, decoded batch; an
 * unreachable registry leaves the last good set in place (and is reported).
 */
export function createDispatcher(deps: DispatcherDeps): DispatcherHandle {
  const { config, rpc, logger } = deps;
  const now = deps.now ?? Date.now;
  const m = createDispatcherMetrics(deps.metrics);
  const guard = createRemovalGuard(config.massRemoval);

  let watch: { close(): Promise<void>; current(): RegistryView } | undefined;
  let statusPublisher: ReturnType<DispatcherRegistry['publishDispatcherStatus']> | undefined;
  let view: RegistryView | undefined;
  let lastRenderedRaw: string | undefined;
  let registryConnected = false;
  let kamailioReachable = false;
  let fileOk = true;
  let lastApplied: DesiredDestination[] | undefined;
  let lastWrittenText: string | undefined;
  let lastReloadAt = Number.NEGATIVE_INFINITY;
  let busyRetries = 0;
  let failures = 0;
  let appliedHash = '';
  let appliedAt: number | undefined;
  let inSync = false;
  let generation = 0;
  let driftRepairs = 0;
  let lastDrift: string | undefined;
  let lastError: string | undefined;
  let held: HeldRemoval[] = [];
  let lastPassAt = now();
  let nodes = 0;
  const firstSeen = new Map<string, number>();
  const lastProbeAt = new Map<string, number>();
  const loggedProblems = new Set<string>();

  let closed = false;
  let running: Promise<void> | undefined;
  let rerun = false;
  let timer: NodeJS.Timeout | undefined;
  let timerAt = Number.POSITIVE_INFINITY;

  function schedule(delayMs: number): void {
    if (closed) return;
    const at = now() + Math.max(0, delayMs);
    if (timer && timerAt <= at) return;
    if (timer) clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(
      () => {
        timer = undefined;
        timerAt = Number.POSITIVE_INFINITY;
        void runPass();
      },
      Math.max(0, delayMs),
    );
  }

  async function runPass(): Promise<void> {
    if (closed) return;
    if (running) {
      rerun = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          rerun = false;
          await reconcile();
        } while (rerun && !closed);
      } catch (err) {
        noteError(`reconcile failed: ${describeError(err)}`);
      } finally {
        lastPassAt = now();
        running = undefined;
        publishStatus();
        schedule(config.verifyIntervalMs);
      }
    })();
    return running;
  }

  function noteError(message: string): void {
    failures++;
    if (message !== lastError) logger.error({ err: message }, 'dispatcher error');
    lastError = message;
  }

  function logOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (loggedProblems.has(key)) return;
    loggedProblems.add(key);
    logger.warn(fields, msg);
  }

  function retryDelay(): number {
    return Math.min(config.verifyIntervalMs, 200 * 2 ** Math.min(failures, 6));
  }

  async function reconcile(): Promise<void> {
    const current = view;
    if (!current) return; // nothing known from the registry yet: never write anything
    const { destinations, conflicts } = computeDesired(current, config.sets);
    for (const [duid, why] of conflicts)
      logOnce(`conflict:${duid}:${why}`, { node: duid, reason: why }, 'node ignored');
    const guarded = guard.apply(destinations, lastApplied, now());
    reportHeld(guarded.held);
    if (guarded.toProbe.length > 0) probeHeld(guarded.toProbe);
    const rendered = renderDispatcherList(guarded.destinations);
    for (const [key, why] of rendered.refused)
      logOnce(`refused:${key}:${why}`, { node: key, reason: why }, 'node refused');
    if (!firstSeen.has(rendered.hash)) firstSeen.set(rendered.hash, now());
    nodes = rendered.attrs.size;
    // A new desired list: Kamailio is not in sync with it until this pass has applied it, and
    // status() must not pair the new node count with the old list's "in sync".
    if (rendered.hash !== appliedHash && inSync) {
      inSync = false;
      m.inSync.set(0);
    }
    updateDestinationGauges(guarded.destinations, rendered);

    // The file write and the first read-back are independent: overlap them.
    const [fileResult, firstRead] = await Promise.allSettled([syncFile(rendered), rpc.listDispatchers()]);
    fileOk = fileResult.status === 'fulfilled';
    if (!fileOk) noteError(describeError((fileResult as PromiseRejectedResult).reason));
    lastApplied = guarded.destinations;

    let actual = firstRead;
    for (let round = 0; round < MAX_ROUNDS_PER_PASS && !closed; round++) {
      if (actual.status === 'rejected') {
        kamailioReachable = false;
        m.kamailioReachable.set(0);
        noteError(`kamailio: ${describeError(actual.reason)}`);
        schedule(retryDelay());
        return;
      }
      kamailioReachable = true;
      m.kamailioReachable.set(1);
      const cmp = compareWithKamailio(guarded.destinations, rendered, actual.value);
      if (cmp.reloadReasons.length === 0 && cmp.stateChanges.length === 0) {
        markInSync(rendered);
        return;
      }
      if (round === 0 && inSync && appliedHash === rendered.hash) {
        // We had verified exactly this list and Kamailio no longer matches: something else
        // changed it (a restart with an old file, a hand edit, an RPC by someone else).
        driftRepairs++;
        m.driftRepairs.inc();
        lastDrift = [...cmp.reloadReasons, ...cmp.stateChanges.map((s) => `${s.duid}: state -> ${s.state}`)]
          .slice(0, 5)
          .join('; ');
        logger.warn({ drift: lastDrift }, 'kamailio drifted from the registry; repairing');
      }
      inSync = false;
      m.inSync.set(0);
      // A reload that can go now resets every state to the file's flags, and the states are
      // re-applied from the read-back after it: set them first only when the reload must wait.
      const reloadNow =
        cmp.reloadReasons.length > 0 && fileOk && lastReloadAt + config.reloadDeltaMs - now() <= 0;
      if (!reloadNow) await applyStates(cmp.stateChanges);
      if (cmp.reloadReasons.length > 0) {
        if (!fileOk) {
          schedule(retryDelay());
          return;
        }
        const wait = lastReloadAt + config.reloadDeltaMs - now();
        if (wait > 0) {
          // Kamailio would answer "Ongoing reload": coalesce until reload_delta has passed.
          schedule(wait + 5);
          return;
        }
        logger.debug({ reasons: cmp.reloadReasons.slice(0, 5) }, 'reloading dispatcher list');
        try {
          await rpc.reload();
          lastReloadAt = now();
          busyRetries = 0;
          m.reloads.inc({ result: 'ok' });
        } catch (err) {
          if (SwitchyardError.is(err) && err.code === 'SY_ERR_KAMAILIO_RELOAD_BUSY') {
            m.reloads.inc({ result: 'busy' });
            await applyStates(cmp.stateChanges);
            lastReloadAt = now();
            busyRetries++;
            schedule(Math.min(config.reloadDeltaMs, 100 * 2 ** Math.min(busyRetries, 6)));
            return;
          }
          m.reloads.inc({ result: 'error' });
          noteError(`reload: ${describeError(err)}`);
          await applyStates(cmp.stateChanges);
          schedule(retryDelay());
          return;
        }
      }
      // A reload resets every destination to the file's flags: read back, then re-apply states.
      actual = await Promise.allSettled([rpc.listDispatchers()]).then((r) => r[0]);
    }
    schedule(0);
  }

  /** set_duid_state for each change, a few at a time: Kamailio serves RPC with few workers. */
  async function applyStates(changes: readonly StateChange[]): Promise<void> {
    const queue = [...changes];
    const worker = async () => {
      for (let change = queue.shift(); change !== undefined; change = queue.shift()) {
        try {
          await rpc.setDuidState(change.state, change.setId, change.duid);
          m.stateChanges.inc({ state: change.state, result: 'ok' });
        } catch (err) {
          m.stateChanges.inc({ state: change.state, result: 'error' });
          noteError(`set_duid_state ${change.duid}: ${describeError(err)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(STATE_CHANGE_CONCURRENCY, queue.length) }, worker));
  }

  async function syncFile(rendered: RenderedList): Promise<void> {
    const onDisk = await readListFile(config.listFile);
    if (onDisk === rendered.text) return;
    if (onDisk !== undefined && lastWrittenText !== undefined && onDisk !== lastWrittenText) {
      driftRepairs++;
      m.driftRepairs.inc();
      lastDrift = `list file ${config.listFile} was changed by someone else`;
      logger.warn({ file: config.listFile }, 'list file changed behind our back; rewriting');
    }
    try {
      await writeListFileAtomic(config.listFile, rendered.text);
      m.listWrites.inc({ result: 'ok' });
    } catch (err) {
      m.listWrites.inc({ result: 'error' });
      throw err;
    }
    lastWrittenText = rendered.text;
  }

  function markInSync(rendered: RenderedList): void {
    failures = 0;
    lastError = undefined;
    if (!inSync || appliedHash !== rendered.hash) {
      const since = firstSeen.get(rendered.hash);
      if (appliedHash !== rendered.hash) {
        generation++;
        appliedHash = rendered.hash;
        appliedAt = now();
        if (since !== undefined) m.applySeconds.observe((now() - since) / 1000);
        logger.info(
          { generation, hash: rendered.hash, nodes: rendered.attrs.size },
          'dispatcher list applied',
        );
      }
      firstSeen.clear();
    }
    inSync = true;
    m.inSync.set(1);
    m.generation.set(generation);
  }

  function reportHeld(now: HeldRemoval[]): void {
    const before = JSON.stringify(held);
    held = now;
    m.heldRemovals.set(guard.heldCount());
    if (JSON.stringify(held) !== before && held.length > 0) {
      logger.warn(
        { held },
        'mass removal held: most of a set would go at once; probing the nodes before removing',
      );
    }
  }

  function probeHeld(dests: DesiredDestination[]): void {
    for (const d of dests) {
      const key = `${d.setId}/${d.duid}`;
      const last = lastProbeAt.get(key) ?? Number.NEGATIVE_INFINITY;
      if (now() - last < config.massRemoval.recheckIntervalMs) continue;
      lastProbeAt.set(key, now());
      void deps
        .probe(d.uri, config.massRemoval.probeTimeoutMs)
        .catch(() => false)
        .then((up) => {
          if (guard.reportProbe(d.setId, d.duid, up)) {
            logger.info(
              { node: d.duid, up },
              up ? 'held node answers OPTIONS: keeping it' : 'held node is gone',
            );
            schedule(0);
          }
        });
    }
    schedule(config.massRemoval.recheckIntervalMs);
  }

  function updateDestinationGauges(dests: DesiredDestination[], rendered: RenderedList): void {
    m.destinations.reset();
    for (const d of dests) {
      if (!rendered.attrs.has(`${d.setId}/${d.duid}`)) continue;
      m.destinations.inc({ set: String(d.setId), state: d.enabled ? 'enabled' : 'disabled' });
    }
    m.rejected.set((view?.rejected.size ?? 0) + rendered.refused.size);
  }

  function status(): DispatcherStatus {
    const s: DispatcherStatus = {
      name: config.name,
      kamailioRpc: config.kamailioRpc,
      listFile: config.listFile,
      generation,
      appliedHash,
      inSync,
      registryConnected,
      kamailioReachable,
      driftRepairs,
      nodes,
      updatedAt: new Date(now()).toISOString(),
    };
    if (appliedAt !== undefined) s.appliedAt = new Date(appliedAt).toISOString();
    if (lastDrift !== undefined) s.lastDrift = lastDrift.slice(0, 200);
    if (lastError !== undefined) s.lastError = lastError.slice(0, 200);
    const firstHeld = held[0];
    if (firstHeld) {
      s.heldRemoval = {
        setId: firstHeld.setId,
        nodes: firstHeld.nodes,
        since: new Date(firstHeld.since).toISOString(),
      };
    }
    return s;
  }

  let lastPublished = '';
  function publishStatus(): void {
    if (!statusPublisher || closed) return;
    const s = status();
    const { updatedAt: _ignored, ...content } = s;
    const key = JSON.stringify(content);
    if (key === lastPublished) return;
    lastPublished = key;
    statusPublisher.update(s);
  }

  function onView(next: RegistryView): void {
    view = next;
    m.rejected.set(next.rejected.size);
    for (const [key, why] of next.rejected)
      logOnce(`rejected:${key}:${why}`, { key, reason: why }, 'registry record rejected');
    // Our own status record comes back through the same watch: only react when the list changes.
    const raw = renderDispatcherList(computeDesired(next, config.sets).destinations).text;
    if (raw === lastRenderedRaw) return;
    lastRenderedRaw = raw;
    schedule(0);
  }

  function onConnection(connected: boolean): void {
    if (connected === registryConnected) return;
    registryConnected = connected;
    m.registryConnected.set(connected ? 1 : 0);
    if (connected) logger.info('registry reachable again; converging');
    else logger.warn('registry unreachable: keeping the last good dispatcher set (fail-static)');
    publishStatus();
    schedule(0);
  }

  return {
    async start() {
      // What we applied last, from the file itself: a dispatcher restarted against a registry
      // that lost its data must still see that as a mass removal, not as a fresh start.
      const existing = await readListFile(config.listFile).catch(() => undefined);
      if (existing !== undefined) {
        lastWrittenText = existing;
        const parsed = parseDispatcherList(existing);
        if (parsed.destinations.length > 0) {
          lastApplied = parsed.destinations.map((d) => ({
            ...d,
            source: 'static',
            effective: d.enabled ? 'in-rotation' : 'disabled',
            byOperator: false,
          }));
        }
      }
      statusPublisher = deps.registry.publishDispatcherStatus({ ttlMs: config.statusTtlMs });
      watch = await deps.registry.watchView(onView, { onConnection });
      registryConnected = true;
      m.registryConnected.set(1);
      onView(watch.current());
      await runPass();
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await running;
      await watch?.close();
      await statusPublisher?.close();
    },
    reconcileNow: () => runPass(),
    status,
    health() {
      const stuckMs = now() - lastPassAt;
      const ok = running === undefined || stuckMs < config.verifyIntervalMs * 3 + 10_000;
      return { ok, checks: { lastPassMsAgo: stuckMs } };
    },
    ready() {
      const ok = view !== undefined && kamailioReachable && fileOk;
      return {
        ok,
        checks: {
          registryLoaded: view !== undefined,
          registryConnected,
          kamailioReachable,
          listFileWritable: fileOk,
          inSync,
        },
      };
    },
  };
}

function createDispatcherMetrics(registry: MetricsRegistry) {
  const registers = [registry];
  return {
    reloads: new Counter({
      name: 'switchyard_dispatcher_reloads_total',
      help: 'dispatcher.reload calls by result (ok, busy = "Ongoing reload", error)',
      labelNames: ['result'],
      registers,
    }),
    stateChanges: new Counter({
      name: 'switchyard_dispatcher_state_changes_total',
      help: 'dispatcher.set_duid_state calls by state and result',
      labelNames: ['state', 'result'],
      registers,
    }),
    listWrites: new Counter({
      name: 'switchyard_dispatcher_list_writes_total',
      help: 'Atomic writes of dispatcher.list by result',
      labelNames: ['result'],
      registers,
    }),
    driftRepairs: new Counter({
      name: 'switchyard_dispatcher_drift_repairs_total',
      help: 'Times Kamailio or the list file no longer matched a list already verified, and was repaired',
      registers,
    }),
    inSync: new Gauge({
      name: 'switchyard_dispatcher_in_sync',
      help: '1 when Kamailio matches the registry',
      registers,
    }),
    generation: new Gauge({
      name: 'switchyard_dispatcher_generation',
      help: 'Number of distinct lists verified in Kamailio since start',
      registers,
    }),
    registryConnected: new Gauge({
      name: 'switchyard_dispatcher_registry_connected',
      help: '1 while the registry watch is connected (0 = fail-static)',
      registers,
    }),
    kamailioReachable: new Gauge({
      name: 'switchyard_dispatcher_kamailio_reachable',
      help: '1 when the last JSON-RPC call to Kamailio got an answer',
      registers,
    }),
    destinations: new Gauge({
      name: 'switchyard_dispatcher_destinations',
      help: 'Destinations in the rendered list by set and admin state',
      labelNames: ['set', 'state'],
      registers,
    }),
    heldRemovals: new Gauge({
      name: 'switchyard_dispatcher_held_removals',
      help: 'Nodes kept in the list by the mass-removal guard',
      registers,
    }),
    rejected: new Gauge({
      name: 'switchyard_dispatcher_rejected_records',
      help: 'Registry records refused (invalid, duplicate or unsafe) and kept out of dispatcher.list',
      registers,
    }),
    applySeconds: new Histogram({
      name: 'switchyard_dispatcher_apply_seconds',
      help: 'Time from a new desired list to Kamailio verified showing it',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
  };
}
