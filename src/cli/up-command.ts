import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from '@commander-js/extra-typings';
import pino from 'pino';
import { stringify } from 'yaml';
import { formatConfigProblems, loadConfig, redactConfig } from '../core/config/index.ts';
import { createLogger } from '../core/logger.ts';
import { UP_SECRET_PATHS, upConfigSchema } from '../up/config.ts';
import { ROLE_CONFIG_SCHEMAS } from './config.ts';
import type { CliContext } from './operator.ts';
import { ExitCode, writeErr, writeOut } from './output.ts';
import { runUntilSignal } from './roles.ts';

/**
 * `switchyard up [--config FILE]` (and `npm start`): the whole stack on one host. Without a
 * config file it runs the demo. Progress goes to the terminal; the logs (JSON) go to
 * <dataDir>/up.log, warnings and errors to stderr as well.
 */
export function registerUpCommand(program: Command, ctx: CliContext): void {
  program
    .command('up')
    .description(
      'run everything on one host: registry, Kamailio, dispatcher, capture, agents, console (demo without --config)',
    )
    .option('--config <file>', 'YAML or JSON config (docs/guides/up.md); without it: demo mode')
    .option('--demo', 'demo mode even with a config file: sipp backends and a call generator')
    .option('--data-dir <dir>', 'registry, capture store, Kamailio files, tokens and logs (default var)')
    .option('--console-port <port>', 'console port on 127.0.0.1 (default 7080)')
    .option('--sip-port <port>', "Kamailio's SIP port (default 5060)")
    .option('--no-install', 'never install missing packages, only say what is missing')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (log file)')
    .option('--print-config', 'print the effective config (secrets redacted) as YAML and exit')
    .action(async (opts) => {
      const demo = opts.demo === true || opts.config === undefined ? { enabled: true } : undefined;
      const res = loadConfig({
        schema: upConfigSchema,
        file: opts.config,
        sharedEnvSchemas: ROLE_CONFIG_SCHEMAS,
        secretPaths: UP_SECRET_PATHS,
        flags: {
          dataDir: opts.dataDir,
          demo,
          console: { port: opts.consolePort },
          kamailio: { sipPort: opts.sipPort },
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
        writeOut(stringify(redactConfig(config, UP_SECRET_PATHS)));
        return;
      }
      writeOut(
        config.demo.enabled
          ? 'switchyard up: demo mode (no --config): 3 sipp demo backends stand in for Asterisk, a call generator places calls.'
          : `switchyard up: ${config.nodes.length} node(s) from ${opts.config}`,
      );

      // Kamailio and sipp come from Debian's packages.
      const { checkPrerequisites, installPrerequisites } = await import('../up/demo-prerequisites.ts');
      const needs = [
        ...(config.kamailio.managed ? (['kamailio'] as const) : []),
        ...(config.demo.enabled ? (['sipp'] as const) : []),
      ];
      // PATH is where the operator's binaries are, not configuration: read it here, once.
      const pathEnv = process.env['PATH'] ?? '';
      const status = checkPrerequisites({ needs, pathEnv });
      if (status.missing.length > 0) {
        writeOut(`missing: ${status.missing.join(', ')}`);
        if (opts.install === false) {
          writeErr(
            `install them with: sudo apt-get install -y ${status.missing.map((m) => (m === 'sipp' ? 'sip-tester' : m)).join(' ')}`,
          );
          ctx.exitCode = ExitCode.runtime;
          return;
        }
        const outcome = await installPrerequisites(status.missing, {
          onProgress: (line: string) => writeOut(`  ${line}`),
          isRoot: process.getuid?.() === 0,
          pathEnv,
        });
        if (outcome.kind === 'manual' || outcome.kind === 'failed') {
          writeErr(
            outcome.kind === 'manual'
              ? `switchyard cannot install them itself (${outcome.reason}). Run:\n  ${outcome.commandLine}\nthen npm start again.`
              : `installing ${outcome.packages.join(' ')} failed: ${outcome.reason}`,
          );
          ctx.exitCode = ExitCode.runtime;
          return;
        }
      }

      const dataDir = resolve(config.dataDir);
      const logFile = join(dataDir, 'up.log');
      mkdirSync(dirname(logFile), { recursive: true });
      const level = config.log.level;
      const logger = createLogger({
        level,
        // Each role's child logger names itself (role: capture, agent...); no base role here.
        base: {},
        destination: pino.multistream([
          { level, stream: pino.destination({ dest: logFile, mkdir: true, sync: false }) },
          { level: 'warn', stream: pino.destination({ dest: 2, sync: false }) },
        ]),
      });
      writeOut(`logs: ${logFile}`);
      ctx.exitCode = await runUntilSignal(async () => {
        const { runUp } = await import('../up/index.ts');
        let n = 0;
        const up = await runUp(config, { logger, onStep: (text) => writeOut(`[${++n}] ${text}`) });
        writeOut(
          [
            '',
            'switchyard is up.',
            `  console    ${up.consoleUrl}`,
            `  sign in    ${up.loginUrl}   (one-time link, 15 minutes)`,
            up.adminTokenFile === undefined
              ? '  tokens     from your config (console.tokens)'
              : `  tokens     ${up.adminTokenFile} (admin), ${join(dirname(up.adminTokenFile), 'read.token')} (read-only)`,
            `  SIP        ${config.kamailio.sipIp}:${config.kamailio.sipPort} (Kamailio load balancer)`,
            `  CLI        switchyard status | drain NODE --wait | calls | trace CALL-ID   (--api ${up.consoleUrl})`,
            'Stop with Ctrl-C (calls in progress finish first).',
            '',
          ].join('\n'),
        );
        return {
          async stop() {
            writeOut('stopping: demo calls finish, nodes drain, then everything stops...');
            await up.stop();
            writeOut('stopped.');
          },
          stopTimeoutMs: up.stopTimeoutMs,
        };
      }, logger);
    });
}
