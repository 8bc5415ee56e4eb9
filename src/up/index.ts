import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import pkg from '../../package.json' with { type: 'json' };
import { agentStopBudgetMs } from '../agent/config.ts';
import { agentConfigSchema, type CallSource, runAgent } from '../agent/index.ts';
import { captureConfigSchema, runCapture } from '../capture/index.ts';
import { createLiveCallsPoller, type LiveCallsPoller } from '../capture/live-calls.ts';
import { buildConsoleApp } from '../console/app.ts';
import { type ConsoleToken, createConsoleAuth, randomSecret } from '../console/auth.ts';
import { createEventLog } from '../console/event-log.ts';
import type { GeneratorStatus, ServiceStatus } from '../console/model.ts';
import { createConsoleService, endpointOfUri } from '../console/service.ts';
import type { HealthReport, RunningRole } from '../core/admin-server.ts';
import { describeError, ErrorCode, SwitchyardError } from '../core/errors.ts';
import { findExecutable, setprivWithPdeathsig } from '../core/executables.ts';
import type { Logger } from '../core/logger.ts';
import {
  aggregateMetricsText,
  collectDefaultMetrics,
  createMetricsRegistry,
  type Registry as MetricsRegistry,
} from '../core/metrics.ts';
import { dispatcherConfigSchema, runDispatcher } from '../dispatcher/index.ts';
import { createRegistry, openStore } from '../registry/index.ts';
import type { UpConfig, UpNode } from './config.ts';
import { type CallGenerator, demoBackendCommand, startCallGenerator } from './demo.ts';
import { type KamailioService, startKamailioService } from './kamailio-service.ts';

/**
 * `switchyard up`: the whole stack in one process on one host (docs/guides/up.md). Each role is
 * its own module, wired here the way they would run on separate hosts, only sharing this
 * process's metrics and one console in place of an admin server each:
 *
 *   embedded registry  <- agents (one per node), dispatcher, console, capture's event feed
 *   Kamailio (supervised, generated config) <- dispatcher (list file + JSON-RPC)
 *   Kamailio siptrace -> capture (HEP) -> live call counts for nodes without AMI
 *   console: API, pages, SSE; demo: sipp backends and a call generator
 */

export interface RunningUp {
  consoleUrl: string;
  /** One-time sign-in link for the browser (valid 15 minutes). */
  loginUrl: string;
  /** Where the generated admin token is kept (undefined when tokens come from the config). */
  adminTokenFile: string | undefined;
  stop(): Promise<void>;
  /** The longest stop() may take: the demo calls' end, the slowest agent's drain and stop, the rest. */
  stopTimeoutMs: number;
}

/** Stopping Kamailio, the dispatcher, capture and the console, beyond the agents and demo calls. */
const OTHER_STOPS_MS = 30_000;

export interface UpOptions {
  logger: Logger;
  /** Progress for the operator: one line per step. */
  onStep?: (text: string) => void;
}

/** An admin and a read-only token, generated once into dataDir/console/ (0600) when none is configured. */
function ensureTokens(config: UpConfig, dataDir: string): { tokens: ConsoleToken[]; adminFile?: string } {
  if (config.console.tokens.length > 0) return { tokens: config.console.tokens };
  const dir = join(dataDir, 'console');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const read = (role: 'admin' | 'read') => {
    const file = join(dir, `${role}.token`);
    if (!existsSync(file)) writeFileSync(file, `${randomSecret()}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    return { file, token: readFileSync(file, 'utf8').trim() };
  };
  const admin = read('admin');
  const readOnly = read('read');
  return {
    tokens: [
      { name: 'admin', role: 'admin', token: admin.token },
      { name: 'viewer', role: 'read', token: readOnly.token },
    ],
    adminFile: admin.file,
  };
}

/** The nodes to run agents for: the demo backends (in demo mode), then the configured ones. */
function nodesOf(config: UpConfig, sippBin: string | undefined): (UpNode & { demo: boolean })[] {
  const configured = config.nodes.map((n) => ({ ...n, demo: false }));
  if (!config.demo.enabled) return configured;
  if (sippBin === undefined)
    throw new SwitchyardError(ErrorCode.CONFIG_INVALID, 'demo mode needs sipp (sip-tester)');
  const demo: (UpNode & { demo: boolean })[] = [];
  for (let i = 0; i < config.demo.backends; i++) {
    const name = `demo-${i + 1}`;
    const ip = config.demo.backendIp;
    const port = config.demo.firstPort + i;
    demo.push({
      id: name,
      sipUri: `sip:${ip.includes(':') ? `[${ip}]` : ip}:${port}`,
      command: demoBackendCommand({ sippBin, name, ip, port }),
      demo: true,
    });
  }
  return [...demo, ...configured];
}

export async function runUp(config: UpConfig, opts: UpOptions): Promise<RunningUp> {
  const { logger } = opts;
  const step = opts.onStep ?? (() => {});
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const registrySpec = `embedded:${join(dataDir, 'registry.db')}`;
  // The roles' own configs have no 'silent'; their loggers come from here anyway.
  const roleLogLevel = config.log.level === 'silent' ? 'fatal' : config.log.level;
  const metrics = createMetricsRegistry();
  collectDefaultMetrics({ register: metrics, prefix: 'switchyard_up_' });
  const agentMetrics: MetricsRegistry[] = [];
  const stops: { name: string; stop: () => Promise<void> }[] = [];
  const roles = new Map<string, RunningRole>();
  const services = new Map<string, () => ServiceStatus>();
  let generator: CallGenerator | undefined;
  /** The agents drain and stop in parallel: the slowest sets the pace. */
  let slowestAgentStopMs = 0;
  let poller: LiveCallsPoller | undefined;
  const events = createEventLog();

  const stopAll = async () => {
    for (const s of stops.reverse()) {
      try {
        step(`stopping ${s.name}`);
        await s.stop();
      } catch (err) {
        logger.error({ err: describeError(err), component: s.name }, 'stop failed');
      }
    }
  };

  try {
    // 1. Registry.
    step(`registry: embedded, ${join(dataDir, 'registry.db')}`);
    const store = await openStore(registrySpec, { logger });
    const registry = createRegistry(store, { prefix: config.registryPrefix, logger, metrics });
    stops.push({
      name: 'registry',
      stop: async () => {
        await registry.close();
        await store.close();
      },
    });

    // 2. Capture.
    let capture: Awaited<ReturnType<typeof runCapture>> | undefined;
    if (config.capture.enabled) {
      const storeSpec = config.capture.store ?? `sqlite:${join(dataDir, 'capture.db')}`;
      step(
        `capture: HEP on ${config.capture.listen}, store ${storeSpec.replace(/\/\/[^@/]*@/, '//[redacted]@')}`,
      );
      capture = await runCapture(
        captureConfigSchema.parse({
          listen: config.capture.listen,
          store: storeSpec,
          retention: config.capture.retention,
          registry: registrySpec,
          registryPrefix: config.registryPrefix,
          log: { level: roleLogLevel },
        }),
        { logger: logger.child({ role: 'capture' }), metrics, admin: false },
      );
      const c = capture;
      roles.set('capture', c);
      stops.push({ name: 'capture', stop: () => c.stop() });
      services.set('capture', () => ({
        name: 'capture',
        state: c.server.healthy() ? 'running' : 'failed',
        detail: `HEP ${c.server.addresses.map((a) => `${a.transport}://${a.host}:${a.port}`).join(', ')}, ${c.store.kind}`,
      }));
      poller = createLiveCallsPoller({ store: c.store, logger });
      const p = poller;
      stops.push({ name: 'live call counter', stop: async () => p.close() });
    }

    // Agents stop together, each draining its node (waiting for its calls), after the dispatcher
    // and Kamailio: the whole stack is going, so there is no load balancer left to steer, and
    // the dispatcher does not see every node vanish at once (a mass removal it would hold).
    const agents: RunningRole[] = [];
    stops.push({ name: 'agents', stop: async () => void (await Promise.all(agents.map((a) => a.stop()))) });

    // 3. Kamailio.
    const kamailioDir = join(dataDir, 'kamailio');
    mkdirSync(kamailioDir, { recursive: true });
    let kamailio: KamailioService | undefined;
    let listFile = join(kamailioDir, 'dispatcher.list');
    let rpcUrl = `http://127.0.0.1:${config.kamailio.rpcPort}/RPC`;
    if (config.kamailio.managed) {
      const bin = findExecutable(config.kamailio.bin) ?? config.kamailio.bin;
      const hepUdp = /(?:^|,)udp:\/\/([^,]+):(\d+)/.exec(config.capture.listen);
      step(
        `kamailio: ${config.kamailio.configFile ?? 'generated config'}, SIP ${config.kamailio.sipIp}:${config.kamailio.sipPort}, algorithm ${config.kamailio.algorithm}`,
      );
      kamailio = await startKamailioService({
        bin,
        workDir: kamailioDir,
        ...(config.kamailio.configFile === undefined
          ? {}
          : { configFile: resolve(config.kamailio.configFile) }),
        lb: {
          sipIp: config.kamailio.sipIp,
          sipPort: config.kamailio.sipPort,
          httpPort: config.kamailio.rpcPort,
          reloadDeltaS: config.kamailio.reloadDeltaS,
          pingIntervalS: config.kamailio.pingIntervalS,
          frTimerMs: config.kamailio.frTimerMs,
          algorithm: config.kamailio.algorithm,
          ...(config.capture.enabled && hepUdp
            ? {
                hep: {
                  ip: (hepUdp[1] as string).replace(/^\[|\]$/g, ''),
                  port: Number(hepUdp[2]),
                  captureId: 1,
                },
              }
            : {}),
        },
        logger: logger.child({ role: 'kamailio' }),
      });
      const k = kamailio;
      listFile = k.listFile;
      rpcUrl = k.rpcUrl;
      stops.push({ name: 'kamailio', stop: () => k.stop() });
      services.set('kamailio', () => k.status());
      await k.waitReady(15_000);
      step(`kamailio: ready (JSON-RPC ${rpcUrl})`);
    }

    // 4. Dispatcher.
    step('dispatcher: registry -> dispatcher.list -> Kamailio');
    const dispatcher = await runDispatcher(
      dispatcherConfigSchema.parse({
        registry: registrySpec,
        registryPrefix: config.registryPrefix,
        kamailioRpc: rpcUrl,
        listFile,
        name: 'up',
        reloadDeltaMs: config.kamailio.reloadDeltaS * 1000,
        log: { level: roleLogLevel },
      }),
      { logger: logger.child({ role: 'dispatcher' }), metrics, admin: false },
    );
    roles.set('dispatcher', dispatcher);
    stops.push({ name: 'dispatcher', stop: () => dispatcher.stop() });
    services.set('dispatcher', () => {
      const r = dispatcher.ready() as HealthReport;
      return { name: 'dispatcher', state: r.ok ? 'running' : 'degraded', detail: null };
    });

    // 5. Agents.
    const sippBin = findExecutable('sipp');
    const nodes = nodesOf(config, sippBin);
    for (const node of nodes) {
      const runs = node.demo ? 'a demo sipp backend' : node.command?.[0];
      step(`agent ${node.id}: ${node.sipUri}${runs === undefined ? '' : ` (runs ${runs})`}`);
      const fileConfig =
        node.agentConfig === undefined ? {} : parseYaml(readFileSync(node.agentConfig, 'utf8'));
      const parsed = agentConfigSchema.safeParse({
        ...(typeof fileConfig === 'object' && fileConfig !== null ? fileConfig : {}),
        registry: registrySpec,
        registryPrefix: config.registryPrefix,
        nodeId: node.id,
        sipUri: node.sipUri,
        ...(node.ami === undefined ? {} : { ami: node.ami }),
        ...(node.weight === undefined ? {} : { weight: node.weight }),
        ...(node.maxCalls === undefined ? {} : { maxCalls: node.maxCalls }),
        ...(node.command === undefined ? {} : { command: node.command }),
        ...(node.runAs === undefined ? {} : { runAs: node.runAs }),
        ...(node.demo
          ? {
              drain: { deadlineMs: config.demo.callDurationMs + 2000 },
              paths: { data: join(dataDir, 'demo', node.id) },
            }
          : {}),
        log: { level: roleLogLevel },
      });
      if (!parsed.success) {
        const where = `node ${node.id}${node.agentConfig === undefined ? '' : ` (agentConfig ${node.agentConfig})`}`;
        const problems = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
        throw new SwitchyardError(ErrorCode.CONFIG_INVALID, `${where}:\n${problems.join('\n')}`);
      }
      const agentConfig = parsed.data;
      slowestAgentStopMs = Math.max(slowestAgentStopMs, agentStopBudgetMs(agentConfig));
      const endpoint = endpointOfUri(node.sipUri);
      const calls: CallSource | undefined =
        node.ami === undefined && poller !== undefined && endpoint !== undefined
          ? poller.sourceFor(endpoint)
          : undefined;
      const nodeMetrics = createMetricsRegistry({ node: node.id });
      agentMetrics.push(nodeMetrics);
      const agent = await runAgent(agentConfig, {
        logger: logger.child({ role: 'agent', node: node.id }),
        metrics: nodeMetrics,
        admin: false,
        ...(calls ? { calls } : {}),
      });
      roles.set(`agent ${node.id}`, agent);
      agents.push(agent);
    }

    // 6. Console.
    const { tokens, adminFile } = ensureTokens(config, dataDir);
    const auth = createConsoleAuth({ tokens });
    if (capture) {
      const c = capture;
      // Operator actions go beside the registry's events in the store, on calls' timelines.
      events.subscribe((e) => {
        if (e.kind.startsWith('operator.') || e.kind.startsWith('drain.'))
          c.server.recordEvent({
            tsUs: e.tsUs,
            kind: e.kind,
            subject: e.subject,
            detail: { ...e.detail, by: e.actor },
          });
      });
    }
    const service = createConsoleService({
      registry,
      ...(capture ? { calls: capture.store } : {}),
      events,
      services: () => [...services.values()].map((s) => s()),
      generator: (): GeneratorStatus | null => generator?.stats() ?? null,
      logger: logger.child({ role: 'console' }),
    });
    await service.start();
    stops.push({ name: 'console service', stop: () => service.close() });
    kamailio?.onChange(() => service.touch());
    const health = () => {
      const checks: Record<string, unknown> = {};
      let ok = true;
      for (const [name, role] of roles) {
        const h = role.health() as HealthReport;
        checks[name] = h.ok ? 'ok' : (h.checks ?? 'fail');
        ok &&= h.ok;
      }
      const k = kamailio?.status();
      if (k) {
        checks['kamailio'] = k.state;
        ok &&= k.state !== 'failed';
      }
      return { ok, checks };
    };
    const ready = async () => {
      const checks: Record<string, unknown> = {};
      let ok = true;
      for (const [name, role] of roles) {
        const r = await role.ready();
        checks[name] = r.ok ? 'ok' : (r.checks ?? 'fail');
        ok &&= r.ok;
      }
      return { ok, checks };
    };
    const host = config.console.host;
    const app = await buildConsoleApp({
      service,
      events,
      auth,
      title: config.demo.enabled ? 'switchyard up (demo)' : 'switchyard up',
      version: pkg.version,
      ...(host === '127.0.0.1' || host === '::1'
        ? { allowedHosts: ['127.0.0.1', 'localhost', '[::1]'] }
        : {}),
      metrics,
      metricsText: () => aggregateMetricsText([metrics, ...agentMetrics]),
      health,
      ready,
      logger: logger.child({ role: 'console' }),
    });
    stops.push({ name: 'console', stop: () => app.close() });
    await app.listen({ host, port: config.console.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.console.port;
    const shownHost = host.includes(':') ? `[${host}]` : host;
    const consoleUrl = `http://${shownHost}:${port}`;
    step(`console: ${consoleUrl}`);

    // 7. Demo calls.
    if (config.demo.enabled && config.demo.callsPerSecond > 0 && sippBin !== undefined) {
      // Calls before the nodes are in Kamailio's list would fail with 503: wait for them.
      step('demo calls: waiting for the nodes to be in rotation');
      const deadline = Date.now() + 30_000;
      const inRotation = () => {
        const m = service.cluster();
        const rotating = m.nodes.filter((n) => n.effective === 'in-rotation').length;
        return rotating === nodes.length && m.dispatchers.every((d) => d.inSync);
      };
      while (!inRotation() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      if (!inRotation()) logger.warn('not every node is in rotation after 30 s; starting demo calls anyway');
      generator = await startCallGenerator({
        sippBin,
        target: `${config.kamailio.sipIp}:${config.kamailio.sipPort}`,
        ratePerSecond: config.demo.callsPerSecond,
        callDurationMs: config.demo.callDurationMs,
        maxConcurrent: config.demo.maxConcurrent,
        localIp: config.demo.callerIp,
        localPort: config.demo.callerPort,
        logger: logger.child({ role: 'demo-caller' }),
        // Calls in progress end normally on stop, so the agents' drains find no calls left.
        stopGraceMs: config.demo.callDurationMs + 1000,
        setprivBin: setprivWithPdeathsig(),
      });
      const g = generator;
      g.onStats(() => service.touch());
      stops.push({ name: 'demo call generator', stop: () => g.stop() });
      step(
        `demo calls: ${config.demo.callsPerSecond}/s, ${config.demo.callDurationMs / 1000} s each, to ${config.kamailio.sipIp}:${config.kamailio.sipPort}`,
      );
    }

    const code = auth.createLoginCode(tokens.find((t) => t.role === 'admin') ?? (tokens[0] as ConsoleToken));
    return {
      consoleUrl,
      loginUrl: `${consoleUrl}/login?code=${code}`,
      adminTokenFile: adminFile,
      stop: stopAll,
      stopTimeoutMs:
        (generator === undefined ? 0 : config.demo.callDurationMs + 1000) +
        slowestAgentStopMs +
        OTHER_STOPS_MS,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
