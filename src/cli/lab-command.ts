import { resolve } from 'node:path';
import type { Command } from '@commander-js/extra-typings';
import { createLogger } from '../core/logger.ts';
import type { CliContext } from './operator.ts';
import { ExitCode, reportError, usageError, writeErr, writeOut } from './output.ts';
import { runUntilSignal } from './roles.ts';

/**
 * `switchyard lab ha` (npm run lab:ha): the HA lab in network namespaces and its fault
 * scenarios (docs/guides/lab.md). `lab announce` is the baseline's heartbeat process and
 * `lab clean` removes namespaces a killed lab left behind.
 */
export function registerLabCommands(program: Command, ctx: CliContext): void {
  const lab = program
    .command('lab')
    .description('the HA lab: a cluster in network namespaces, fault scenarios under load');
  lab
    .command('ha')
    .description(
      'build the HA lab (3 etcd, 2 Kamailio+keepalived, N agents, a caller), run the fault scenarios, report',
    )
    .option('--profile <name>', 'short (a few minutes, what npm test runs) or full', 'short')
    .option('--baseline', "also run the original system's settings (15 s OPTIONS, 20 s heartbeat, no agent)")
    .option('--baseline-only', "only the original system's settings")
    .option('--scenarios <ids>', 'comma-separated scenario numbers (default: all ten)')
    .option('--backends <n>', 'backend hosts (default 3)', '3')
    .option('--out <dir>', 'where ha-lab-<profile>.json and .md go', 'bench/results')
    .option('--update-doc', 'write the table into docs/reliability.md')
    .option('--keep', 'keep the work dir (configs and logs of every process)')
    .action(async (opts) => {
      try {
        const { LAB_PROFILES, runHaLab } = await import('../lab/index.ts');
        const profile = LAB_PROFILES[opts.profile as 'short' | 'full'];
        if (!profile)
          throw usageError(`--profile must be short or full, not ${JSON.stringify(opts.profile)}`);
        const scenarios = (opts.scenarios ?? '')
          .split(',')
          .filter(Boolean)
          .map((s) => Number(s));
        if (scenarios.some((n) => !Number.isInteger(n) || n < 1 || n > 10))
          throw usageError('--scenarios takes numbers 1-10, e.g. 1,3,6');
        const backends = Number(opts.backends);
        if (!Number.isInteger(backends) || backends < 2 || backends > 9)
          throw usageError('--backends must be 2-9');
        const modes = opts.baselineOnly
          ? (['baseline'] as const)
          : opts.baseline
            ? (['switchyard', 'baseline'] as const)
            : (['switchyard'] as const);
        const logger = createLogger({ level: 'warn', base: { role: 'lab' }, destination: process.stderr });
        let aborted = false;
        const onSigint = () => {
          if (aborted) {
            // A second Ctrl-C: no waiting for the scenario, but nothing left behind either.
            writeErr('tearing the lab down now');
            void import('../lab/ha-lab.ts')
              .then((m) => m.teardownAllLabs())
              .finally(() => process.exit(ExitCode.runtime));
            return;
          }
          aborted = true;
          writeErr('stopping after this scenario; the lab is torn down either way (Ctrl-C again to hurry)');
        };
        process.on('SIGINT', onSigint);
        try {
          const report = await runHaLab({
            profile,
            modes,
            scenarios,
            backends,
            logger,
            onStep: (t) => writeOut(t),
            keepWorkDir: opts.keep === true,
            aborted: () => aborted,
          });
          const { evaluateTargets, renderMarkdownTable, updateReliabilityDoc, writeReport } = await import(
            '../lab/report.ts'
          );
          writeOut(`\n${renderMarkdownTable(report)}`);
          if (aborted) {
            writeErr('interrupted: the results above are partial and were not written');
            ctx.exitCode = ExitCode.runtime;
            return;
          }
          const files = await writeReport(report, resolve(opts.out));
          writeOut(`written: ${files.join(', ')}`);
          if (opts.updateDoc) {
            await updateReliabilityDoc(report, resolve('docs/reliability.md'));
            writeOut('updated docs/reliability.md');
          }
          const missed = report.results.filter((r) => r.mode === 'switchyard' && !evaluateTargets(r).passed);
          for (const r of missed)
            writeErr(`target missed: scenario ${r.id} (${r.name}): ${evaluateTargets(r).reasons.join('; ')}`);
          ctx.exitCode = missed.length === 0 && !aborted ? ExitCode.ok : ExitCode.runtime;
        } finally {
          process.off('SIGINT', onSigint);
        }
      } catch (err) {
        ctx.exitCode = reportError(err, false);
      }
    });

  lab
    .command('announce', { hidden: true })
    .description("the baseline's heartbeat: announce a node with a long TTL and never check it")
    .requiredOption('--registry <spec>', 'etcd://...')
    .requiredOption('--node-id <id>', 'node id')
    .requiredOption('--sip-uri <uri>', 'SIP URI')
    .option('--ttl-ms <ms>', 'heartbeat timeout', '20000')
    .action(async (opts) => {
      const logger = createLogger({
        level: 'warn',
        base: { role: 'lab-announcer' },
        destination: process.stderr,
      });
      ctx.exitCode = await runUntilSignal(async () => {
        const { runAnnouncer } = await import('../lab/announce.ts');
        return runAnnouncer({
          registry: opts.registry,
          nodeId: opts.nodeId,
          sipUri: opts.sipUri,
          ttlMs: Number(opts.ttlMs),
          logger,
        });
      }, logger);
    });

  lab
    .command('clean')
    .description('remove network namespaces left by a lab that was killed (names syl*-*)')
    .action(async () => {
      try {
        const { execFile } = await import('node:child_process');
        const { promisify } = await import('node:util');
        const { stdout } = await promisify(execFile)('ip', ['netns', 'list']);
        const names = stdout
          .split('\n')
          .map((l) => l.split(' ')[0] ?? '')
          .filter((n) => /^syl[a-z0-9]{4}-[a-z0-9-]+$/.test(n));
        for (const n of names) await promisify(execFile)('ip', ['netns', 'del', n]);
        writeOut(names.length === 0 ? 'no lab namespaces found' : `removed ${names.join(', ')}`);
      } catch (err) {
        ctx.exitCode = reportError(err, false);
      }
    });
}
