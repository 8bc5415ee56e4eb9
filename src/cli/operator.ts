import type { Command } from '@commander-js/extra-typings';
import { printable, reportError, usageError } from './output.ts';
import { type RegistryFlags, type RegistrySession, withRegistry } from './registry-session.ts';

/** State of one CLI run, passed to every command (no module-level state). */
export interface CliContext {
  exitCode: number;
}

/** The options every operator command takes: where the registry is, and --json. */
export function addRegistryOptions(cmd: Command) {
  return cmd
    .option('--registry <spec>', 'etcd://host:port[,host:port...] or embedded:PATH (env SWITCHYARD_REGISTRY)')
    .option('--prefix <prefix>', 'registry key prefix (env SWITCHYARD_REGISTRY_PREFIX, default /switchyard)')
    .option(
      '--call-timeout-ms <ms>',
      'deadline of each registry call (env SWITCHYARD_REGISTRY_CALL_TIMEOUT_MS)',
    )
    .option('--log-level <level>', 'log level on stderr (env SWITCHYARD_LOG__LEVEL, default warn)')
    .option('--json', 'print the outcome as JSON (errors too: { ok: false, error })');
}

/**
 * Runs an operator command against the registry: checks the input with `parse` first (bad input
 * never waits for a registry), opens the registry from the flags, runs `fn`, closes it, and
 * turns any failure into a message and an exit code (2 usage/config, 1 runtime).
 */
export async function runOperatorCommand<T>(
  ctx: CliContext,
  opts: RegistryFlags & { json?: true | undefined },
  parse: () => T,
  fn: (session: RegistrySession, input: T) => Promise<void>,
): Promise<void> {
  try {
    const input = parse();
    await withRegistry(opts, (session) => fn(session, input));
  } catch (err) {
    ctx.exitCode = reportError(err, opts.json === true);
  }
}

/** A whole decimal integer from an option or argument, or a usage error naming the option. */
export function parseIntegerOption(name: string, text: string): number {
  const trimmed = text.trim();
  if (!/^-?\d{1,15}$/.test(trimmed)) {
    throw usageError(`invalid ${name}: expected an integer, got ${JSON.stringify(printable(text))}`);
  }
  return Number(trimmed);
}
