import { type RoleRunOptions, type RunningRole, startRoleAdminServer } from '../core/admin-server.ts';
import { childEnvironment } from '../core/config/index.ts';
import { SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { createMetricsRegistry } from '../core/metrics.ts';
import { createCallCounter } from '../net/ami-calls.ts';
import { type AmiClient, createAmiClient } from '../net/ami-client.ts';
import { createOptionsPinger } from '../net/options-pinger.ts';
import { getField } from '../proto/ami.ts';
import { createRegistry, openStore } from '../registry/index.ts';
import { type AgentHandle, type AmiView, type CallSource, createAgent } from './agent.ts';
import { parseAmiUrl } from './ami-url.ts';
import { type AgentConfig, CORE_STOP_NOW_TIMEOUT_MS } from './config.ts';
import { prepareData } from './first-boot.ts';
import { createHookRunner, runHook } from './hooks.ts';
import { createSupervisor } from './supervisor.ts';
import { templateVariables } from './template-vars.ts';
import { formatTemplateProblems, renderTemplates } from './templates.ts';

export { type AgentHandle, type AgentPhase, type CallSource, createAgent } from './agent.ts';
export { type AgentConfig, agentConfigSchema } from './config.ts';

/** Asterisk's AMI seen the way the agent needs it: connection, boot, calls, `core stop now`. */
function amiView(client: AmiClient, logger: Logger): AmiView & { close(): Promise<void> } {
  const counter = createCallCounter(client, { logger });
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const fn of listeners) fn();
  };
  client.onState(notify);
  client.onEvent((e) => {
    const name = getField(e, 'Event')?.toLowerCase();
    if (name === 'fullybooted' || name === 'shutdown') notify();
  });
  counter.onChange(notify);
  return {
    connected: () => client.state === 'connected',
    fullyBooted: () => client.fullyBooted && !client.shuttingDown,
    calls() {
      const c = counter.calls();
      return c.synced ? { calls: c.calls, channels: c.channels } : undefined;
    },
    onChange: (fn) => void listeners.add(fn),
    async stopNow() {
      // Asterisk never answers `core stop now` (research/asterisk-observed.md): it closes the
      // session. A short deadline; the process signal follows anyway.
      await client
        .action('Command', { Command: 'core stop now' }, { timeoutMs: CORE_STOP_NOW_TIMEOUT_MS })
        .catch(() => {});
    },
    async close() {
      counter.close();
      await client.close();
    },
  };
}

/**
 * Wires an agent from its config: registry, SIP OPTIONS prober, AMI (optional), the supervised
 * process (optional), hooks, templates and first boot, metrics and the admin HTTP server.
 */
export async function runAgent(
  config: AgentConfig,
  opts: RoleRunOptions & { logger: Logger; calls?: CallSource },
): Promise<RunningRole & { agent: AgentHandle }> {
  const { logger } = opts;
  const metrics = opts.metrics ?? createMetricsRegistry();
  const env = childEnvironment();
  const store = await openStore(config.registry, { callTimeoutMs: config.registryCallTimeoutMs, logger });
  const registry = createRegistry(store, { prefix: config.registryPrefix, logger, metrics });
  const pinger = await createOptionsPinger({ logger });
  let ami: ReturnType<typeof amiView> | undefined;
  if (config.ami !== undefined) {
    const endpoint = parseAmiUrl(config.ami);
    if (!endpoint.ok) throw new SwitchyardError('SY_ERR_INVALID_ARGUMENT', `ami: ${endpoint.reason}`);
    const e = endpoint.value;
    ami = amiView(
      createAmiClient({ host: e.host, port: e.port, username: e.username, secret: e.password, logger }),
      logger,
    );
  }
  const supervisor =
    config.command === undefined
      ? undefined
      : createSupervisor({
          command: config.command,
          env,
          logger: logger.child({ component: 'service' }),
          restart: {
            initialBackoffMs: config.restart.initialBackoffMs,
            maxBackoffMs: config.restart.maxBackoffMs,
            crashLoopRestarts: config.restart.crashLoopRestarts,
            crashLoopWindowMs: config.restart.crashLoopWindowMs,
          },
          stopGraceMs: config.stop.graceMs,
          ...(config.stop.onAgentDeath === 'none' ? {} : { parentDeathSignal: config.stop.onAgentDeath }),
          ...(config.runAs === undefined
            ? {}
            : { runAs: { user: config.runAs.user, group: config.runAs.group ?? config.runAs.user } }),
        });
  const hooks = createHookRunner({
    hooks: config.hooks,
    env,
    nodeId: config.nodeId,
    sipUri: config.sipUri,
    logger,
    metrics,
  });
  const agent = createAgent({
    options: {
      nodeId: config.nodeId,
      sipUri: config.sipUri,
      setId: config.setId,
      ...(config.weight === undefined ? {} : { weight: config.weight }),
      ...(config.maxCalls === undefined ? {} : { maxCalls: config.maxCalls }),
      priority: config.priority,
      version: config.version ?? '',
      leaseTtlMs: config.leaseTtlMs,
      health: config.health,
      readiness: config.readiness,
      restart: config.restart,
      drain: config.drain,
      stop: config.stop,
    },
    registry,
    probe: (uri, timeoutMs) => pinger.probe(uri, { timeoutMs }),
    ...(supervisor ? { service: supervisor } : {}),
    ...(ami ? { ami } : {}),
    ...(opts.calls ? { calls: opts.calls } : {}),
    onPhase: (phase, previous) => void hooks.run(phase, previous),
    async prepare(setPhase) {
      if (config.templates.length > 0) {
        const out = await renderTemplates({
          templates: config.templates,
          vars: templateVariables(config),
          logger,
        });
        if (out.changed.length > 0) logger.info({ changed: out.changed }, 'templates rendered');
      }
      if (config.firstBoot.command === undefined && config.upgrade.command === undefined) return;
      const outcome = await prepareData({
        dataDir: config.paths.data,
        version: config.version,
        firstBoot: config.firstBoot,
        upgrade: config.upgrade,
        // The command sees SWITCHYARD_PHASE=first-boot or upgrade: what it is being run for.
        run: (command, timeoutMs, action) =>
          runHook({
            command,
            timeoutMs,
            env,
            logger,
            phase: action,
            nodeId: config.nodeId,
            sipUri: config.sipUri,
          }),
        logger,
        onAction: (action) => setPhase(action),
      });
      if ('ok' in outcome && !outcome.ok)
        throw new SwitchyardError('SY_ERR_AGENT_BOOT', `${outcome.action} failed`);
    },
    logger,
    metrics,
  });
  const admin = await startRoleAdminServer(opts, config.admin, {
    metrics,
    health: () => agent.health(),
    ready: () => agent.ready(),
    logger,
  });
  logger.info(
    {
      admin: admin?.url,
      registry: store.kind,
      sipUri: config.sipUri,
      supervising: config.command !== undefined,
      ami: config.ami === undefined ? false : parseAmiUrl(config.ami).ok,
    },
    'agent starting',
  );
  await agent.start();
  return {
    adminUrl: admin?.url,
    agent,
    health: () => agent.health(),
    ready: () => agent.ready(),
    async stop() {
      await agent.shutdown();
      await hooks.close();
      await ami?.close();
      await admin?.close();
      await pinger.close();
      await registry.close();
      await store.close();
      logger.info('agent stopped');
    },
  };
}

export { formatTemplateProblems };
