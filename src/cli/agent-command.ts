import type { Command } from '@commander-js/extra-typings';
import { stringify } from 'yaml';
import { AGENT_SECRET_PATHS, agentConfigSchema, agentStopBudgetMs } from '../agent/config.ts';
import { formatConfigProblems, loadConfig, redactConfig } from '../core/config/index.ts';
import { createLogger } from '../core/logger.ts';
import { ROLE_CONFIG_SCHEMAS } from './config.ts';
import type { CliContext } from './operator.ts';
import { ExitCode, writeErr, writeOut } from './output.ts';
import { runUntilSignal } from './roles.ts';

/**
 * `switchyard agent [options] [-- COMMAND ARGS...]`: the node agent. With a command after `--`
 * it supervises that process (`asterisk -f`); without one it watches a service run by
 * something else. SIGTERM drains the node, stops the process and exits 0.
 */
export function registerAgentCommand(program: Command, ctx: CliContext): void {
  program
    .command('agent')
    .description('run the node agent beside one Asterisk (or any SIP server): probe, announce, heal, drain')
    .argument('[command...]', 'the service to supervise, after --, e.g. -- asterisk -f')
    .option('--registry <spec>', 'etcd://host:port[,host:port...] or embedded:PATH')
    .option('--prefix <prefix>', 'registry key prefix')
    .option('--node-id <id>', 'this node in the registry and as dispatcher duid (default: host name)')
    .option('--sip-uri <uri>', 'where Kamailio sends calls, e.g. sip:10.0.0.21:5060')
    .option('--set <n>', 'dispatcher set id (default 1)')
    .option('--ami <url>', 'ami://USER:PASSWORD@127.0.0.1:5038 (password redacted in every output)')
    .option('--weight <w>', 'relative weight 1-100')
    .option('--max-calls <n>', 'maximum calls (dispatcher maxload)')
    .option('--version-label <text>', 'version shown in the registry (default: from the service)')
    .option('--admin-port <port>', '/metrics, /healthz, /readyz port (0: any free port)')
    .option('--admin-host <host>', 'admin address (default 127.0.0.1: keep it on loopback)')
    .option('--config <file>', 'YAML or JSON config file (below env and flags in precedence)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace')
    .option('--print-config', 'print the effective config (secrets redacted) as YAML and exit')
    .action(async (command, opts) => {
      if (opts.weight !== undefined && opts.maxCalls !== undefined) {
        writeErr('error: --weight and --max-calls are alternatives: give one of them');
        ctx.exitCode = ExitCode.usage;
        return;
      }
      const res = loadConfig({
        schema: agentConfigSchema,
        file: opts.config,
        sharedEnvSchemas: ROLE_CONFIG_SCHEMAS,
        secretPaths: AGENT_SECRET_PATHS,
        flags: {
          registry: opts.registry,
          registryPrefix: opts.prefix,
          nodeId: opts.nodeId,
          sipUri: opts.sipUri,
          setId: opts.set,
          ami: opts.ami,
          weight: opts.weight,
          maxCalls: opts.maxCalls,
          version: opts.versionLabel,
          command: command.length > 0 ? command : undefined,
          admin: { port: opts.adminPort, host: opts.adminHost },
          log: { level: opts.logLevel },
        },
      });
      if (!res.ok) {
        writeErr(formatConfigProblems(res.problems));
        ctx.exitCode = ExitCode.usage;
        return;
      }
      const config = res.config;
      if (opts.printConfig) {
        writeOut(stringify(redactConfig(config, AGENT_SECRET_PATHS)));
        ctx.exitCode = ExitCode.ok;
        return;
      }
      const logger = createLogger({ level: config.log.level, base: { role: 'agent', node: config.nodeId } });
      ctx.exitCode = await runUntilSignal(
        async () => {
          // Loaded on demand: --print-config and config errors must not need the whole agent.
          const { runAgent } = await import('../agent/index.ts');
          return runAgent(config, { logger });
        },
        logger,
        agentStopBudgetMs(config),
      );
    });
}
