import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from '@commander-js/extra-typings';
import { stringify } from 'yaml';
import { formatConfigProblems, loadConfig, redactConfig } from '../core/config/index.ts';
import { describeError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { type DispatcherConfig, dispatcherConfigSchema } from '../dispatcher/config.ts';
import { DISPATCHER_SECRET_PATHS, ROLE_CONFIG_SCHEMAS } from './config.ts';
import type { CliContext } from './operator.ts';
import { ExitCode, writeErr, writeOut } from './output.ts';

/** How long a role may take to stop after SIGTERM/SIGINT before the process gives up on it. */
const STOP_TIMEOUT_MS = 15_000;

/** Single-host choices of `switchyard start`; pinned here so a schema default change keeps them. */
export const START_DEFAULTS = {
  registry: 'embedded:var/registry.db',
  listFile: 'var/dispatcher.list',
  kamailioRpc: 'http://127.0.0.1:5071/RPC',
} as const;

function addDispatcherOptions(cmd: Command) {
  return cmd
    .option('--registry <spec>', 'etcd://host:port[,host:port...] or embedded:PATH')
    .option('--prefix <prefix>', 'registry key prefix')
    .option('--kamailio-rpc <url>', "Kamailio's JSON-RPC over HTTP, e.g. http://127.0.0.1:5071/RPC")
    .option('--list-file <path>', "the file Kamailio's dispatcher loads (modparam list_file)")
    .option(
      '--set <n>',
      'manage only this set id (repeatable or comma-separated; all sets when absent)',
      (v: string, prev?: string[]) => [...(prev ?? []), v],
    )
    .option('--name <name>', 'this dispatcher in the registry (default: host name)')
    .option('--reload-delta-ms <ms>', 'must equal modparam("dispatcher", "reload_delta") in ms')
    .option('--admin-port <port>', '/metrics, /healthz, /readyz port (0: any free port)')
    .option('--admin-host <host>', 'admin address (default 127.0.0.1: keep it on loopback)')
    .option('--config <file>', 'YAML or JSON config file (below env and flags in precedence)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace')
    .option('--print-config', 'print the effective config (secrets redacted) as YAML and exit');
}

type DispatcherFlags = ReturnType<ReturnType<typeof addDispatcherOptions>['opts']>;

/** Loads the dispatcher config the way both `dispatcher` and `start` do. */
export function loadDispatcherConfig(opts: DispatcherFlags, singleHost: boolean) {
  return loadConfig({
    schema: dispatcherConfigSchema,
    defaults: singleHost ? START_DEFAULTS : undefined,
    file: opts.config,
    sharedEnvSchemas: ROLE_CONFIG_SCHEMAS,
    secretPaths: DISPATCHER_SECRET_PATHS,
    flags: {
      registry: opts.registry,
      registryPrefix: opts.prefix,
      kamailioRpc: opts.kamailioRpc,
      listFile: opts.listFile,
      sets: opts.set,
      name: opts.name,
      reloadDeltaMs: opts.reloadDeltaMs,
      admin: { port: opts.adminPort, host: opts.adminHost },
      log: { level: opts.logLevel },
    },
  });
}

/** Path of an embedded registry spec (`embedded:PATH` or a bare path), undefined for etcd. */
function embeddedPath(spec: string): string | undefined {
  if (/^etcd:/i.test(spec)) return undefined;
  return spec.startsWith('embedded:') ? spec.slice('embedded:'.length) : spec;
}

function printStartPlan(config: Readonly<DispatcherConfig>): void {
  const lines = [
    'switchyard start: single-host mode. For now this runs the dispatcher (one per Kamailio):',
    `  registry      ${redactConfig(config.registry)}`,
    `  list file     ${resolve(config.listFile)}`,
    `  kamailio rpc  ${redactConfig(config.kamailioRpc)}`,
    config.admin.port === 0
      ? '  admin         a free port on ' + config.admin.host + ', printed once listening'
      : `  admin         http://${config.admin.host}:${config.admin.port} (/metrics /healthz /readyz)`,
    '',
    'Start Kamailio first, in another terminal, with the config switchyard ships:',
    '  kamailio -f deploy/kamailio/kamailio.cfg -DD -E ...   (exact command: docs/guides/dispatcher.md)',
    `Its dispatcher list_file must be ${resolve(config.listFile)} and its JSON-RPC (xhttp)`,
    `must answer at ${redactConfig(config.kamailioRpc)}; until it does, the dispatcher keeps retrying.`,
    'Then add backends, e.g.:  switchyard node add pbx1 --uri sip:127.0.0.1:5080',
    'Stop with Ctrl-C.',
    '',
  ];
  writeOut(lines.join('\n'));
}

/**
 * Runs a long-lived role until SIGTERM or SIGINT, then stops it and resolves with the exit code:
 * 0 after a clean stop, 1 if it failed to start, failed to stop, took longer than
 * `stopTimeoutMs` (default STOP_TIMEOUT_MS), or a second signal asked to give up waiting.
 */
export async function runUntilSignal(
  /** A handle's `stopTimeoutMs`, when it knows its own, replaces `stopTimeoutMs`. */
  start: () => Promise<{ stop(): Promise<void>; stopTimeoutMs?: number }>,
  logger: Logger,
  stopTimeoutMs = STOP_TIMEOUT_MS,
): Promise<number> {
  let signalled: NodeJS.Signals | undefined;
  let wake: (() => void) | undefined;
  let giveUp: ((code: number) => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled !== undefined) {
      logger.warn({ signal }, 'second signal: exiting without waiting for stop');
      giveUp?.(ExitCode.runtime);
      return;
    }
    signalled = signal;
    logger.info({ signal }, 'stopping');
    wake?.();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    let handle: { stop(): Promise<void>; stopTimeoutMs?: number };
    try {
      handle = await start();
    } catch (err) {
      logger.error({ err: describeError(err) }, 'failed to start');
      writeErr(`error: ${describeError(err)}`);
      return ExitCode.runtime;
    }
    if (signalled === undefined) await new Promise<void>((r) => (wake = r));
    return await new Promise<number>((done) => {
      giveUp = (code) => {
        clearTimeout(timer);
        done(code);
      };
      const timeoutMs = handle.stopTimeoutMs ?? stopTimeoutMs;
      const timer = setTimeout(() => {
        logger.error({ timeoutMs }, 'stop timed out');
        done(ExitCode.runtime);
      }, timeoutMs);
      handle.stop().then(
        () => {
          clearTimeout(timer);
          done(ExitCode.ok);
        },
        (err: unknown) => {
          clearTimeout(timer);
          logger.error({ err: describeError(err) }, 'stop failed');
          done(ExitCode.runtime);
        },
      );
    });
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

async function runDispatcherCommand(opts: DispatcherFlags, singleHost: boolean): Promise<number> {
  const res = loadDispatcherConfig(opts, singleHost);
  if (!res.ok) {
    writeErr(formatConfigProblems(res.problems));
    return ExitCode.usage;
  }
  const config = res.config;
  if (opts.printConfig) {
    writeOut(stringify(redactConfig(config, DISPATCHER_SECRET_PATHS)));
    return ExitCode.ok;
  }
  if (singleHost) {
    printStartPlan(config);
    // One host, relative paths: make sure var/ exists before the store and the list file need it.
    const registryFile = embeddedPath(config.registry);
    if (registryFile !== undefined) mkdirSync(dirname(resolve(registryFile)), { recursive: true });
    mkdirSync(dirname(resolve(config.listFile)), { recursive: true });
  }
  const logger = createLogger({ level: config.log.level, base: { role: 'dispatcher', name: config.name } });
  return runUntilSignal(async () => {
    // Loaded on demand: --print-config and config errors must not need the whole dispatcher.
    const { runDispatcher } = await import('../dispatcher/index.ts');
    const handle = await runDispatcher(config, { logger });
    if (singleHost) writeOut(`admin listening on ${handle.adminUrl} (/metrics /healthz /readyz)`);
    return handle;
  }, logger);
}

export function registerRoleCommands(program: Command, ctx: CliContext): void {
  addDispatcherOptions(
    program
      .command('dispatcher')
      .description("run the dispatcher for one Kamailio: registry -> dispatcher.list -> Kamailio's JSON-RPC"),
  ).action(async (opts) => {
    ctx.exitCode = await runDispatcherCommand(opts, false);
  });
  addDispatcherOptions(
    program
      .command('start')
      .description('run switchyard on one host (for now: the dispatcher, embedded registry under var/)'),
  ).action(async (opts) => {
    ctx.exitCode = await runDispatcherCommand(opts, true);
  });
}
