import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.ts';
import { SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { HookResult } from './hooks.ts';

/**
 * First boot and upgrades, decided by a marker file in the data directory (the persistent state
 * layer). Whaleware touched its marker whatever `firstboot` returned (research/seed-systems.md
 * §5), so a failed first boot was never retried and the node ran half-initialised for good. Here
 * the marker is written only after the command succeeded; a failure leaves the next start to
 * try again.
 */

export const FIRST_BOOT_MARKER = '.switchyard-first-boot-done';

/** What the marker says; JSON, so that a shell script can read it with jq. */
export interface MarkerContent {
  /** config.version when the first boot or the last upgrade succeeded ('' when unset). */
  version: string;
  firstBootAt: string;
  upgradedAt?: string;
}

export type MarkerState =
  | { present: false }
  /** `version` undefined: the file exists but is not a marker we can read (edited, corrupt). */
  | { present: true; version: string | undefined; content?: MarkerContent };

export type BootAction = 'first-boot' | 'upgrade' | 'none';

/**
 * Runs a command and says how it went; runHook fits (pass `action` as its phase, so the command
 * sees SWITCHYARD_PHASE=first-boot or upgrade).
 */
export type RunBootCommand = (
  command: readonly string[],
  timeoutMs: number,
  action: 'first-boot' | 'upgrade',
) => Promise<HookResult>;

export interface BootStepOptions {
  /** paths.data. */
  dataDir: string;
  /** config.version; '' or undefined when the node does not track versions. */
  version: string | undefined;
  /** Unset: there is nothing to run, only the marker to write. */
  command?: readonly string[] | undefined;
  timeoutMs: number;
  run: RunBootCommand;
  logger: Logger;
  now?: () => Date;
}

export interface BootStepOutcome {
  action: Exclude<BootAction, 'none'>;
  /** The step succeeded (or had no command) and the marker now records `version`. */
  ok: boolean;
  /** Whether a command ran (false when none is configured). */
  ran: boolean;
  result?: HookResult;
  markerWritten: boolean;
  /** The version the marker recorded before (upgrade only). */
  fromVersion?: string | undefined;
  toVersion: string;
}

export function markerPath(dataDir: string): string {
  return join(dataDir, FIRST_BOOT_MARKER);
}

function markerError(message: string, cause: unknown): SwitchyardError {
  return new SwitchyardError('SY_ERR_FIRST_BOOT_MARKER', message, { retryable: true, cause });
}

function parseMarker(text: string): MarkerContent | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) return undefined;
    const { version, firstBootAt, upgradedAt } = value as Record<string, unknown>;
    if (typeof version !== 'string' || typeof firstBootAt !== 'string') return undefined;
    return typeof upgradedAt === 'string' ? { version, firstBootAt, upgradedAt } : { version, firstBootAt };
  } catch {
    return undefined;
  }
}

/**
 * Reads the marker. Absent means first boot; present but unreadable means the first boot did
 * happen (never run it again on an initialised data directory) but the version is unknown.
 * @throws SwitchyardError SY_ERR_FIRST_BOOT_MARKER when the file exists but cannot be read.
 */
export async function readMarker(dataDir: string): Promise<MarkerState> {
  let text: string;
  try {
    text = await readFile(markerPath(dataDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { present: false };
    throw markerError(`cannot read ${markerPath(dataDir)}: ${(err as Error).message}`, err);
  }
  const content = parseMarker(text);
  return content === undefined
    ? { present: true, version: undefined }
    : { present: true, version: content.version, content };
}

/**
 * What this start has to do. An upgrade needs a configured version that differs from the
 * marker's; a marker whose version cannot be read counts as different (upgrade commands are
 * meant to be re-runnable, first-boot commands are not).
 */
export function planBoot(marker: MarkerState, version: string | undefined): BootAction {
  if (!marker.present) return 'first-boot';
  if (version === undefined || version === '') return 'none';
  return marker.version === version ? 'none' : 'upgrade';
}

async function writeMarker(dataDir: string, content: MarkerContent): Promise<void> {
  try {
    // syncDirectory: the marker's existence is the decision; it must survive a power cut.
    await writeFileAtomic(markerPath(dataDir), `${JSON.stringify(content)}\n`, {
      mode: 0o644,
      syncDirectory: true,
    });
  } catch (err) {
    throw markerError(`cannot write ${markerPath(dataDir)}: ${(err as Error).message}`, err);
  }
}

async function runStep(
  action: 'first-boot' | 'upgrade',
  opts: BootStepOptions,
  content: (at: string) => MarkerContent,
  fromVersion?: string,
): Promise<BootStepOutcome> {
  const toVersion = opts.version ?? '';
  const base = { action, toVersion, ...(action === 'upgrade' ? { fromVersion } : {}) };
  let result: HookResult | undefined;
  if (opts.command !== undefined) {
    opts.logger.info({ action, fromVersion, toVersion }, `${action} command starting`);
    result = await opts.run(opts.command, opts.timeoutMs, action);
    if (!result.ok) {
      // No marker: the next start runs this step again instead of pretending it happened.
      opts.logger.error(
        {
          action,
          exitCode: result.exitCode,
          signal: result.signal,
          timedOut: result.timedOut,
          error: result.error,
        },
        `${action} command failed; the marker is not written, the next start tries again`,
      );
      return { ...base, ok: false, ran: true, result, markerWritten: false };
    }
  }
  await writeMarker(opts.dataDir, content((opts.now ?? (() => new Date()))().toISOString()));
  opts.logger.info({ action, toVersion, ran: result !== undefined }, `${action} done`);
  return {
    ...base,
    ok: true,
    ran: result !== undefined,
    ...(result === undefined ? {} : { result }),
    markerWritten: true,
  };
}

/**
 * Runs the first-boot command (if any), then writes the marker with `version`, only if the
 * command exited 0 in time.
 * @throws SwitchyardError SY_ERR_FIRST_BOOT_MARKER when the marker cannot be written.
 */
export function runFirstBoot(opts: BootStepOptions): Promise<BootStepOutcome> {
  return runStep('first-boot', opts, (at) => ({ version: opts.version ?? '', firstBootAt: at }));
}

/**
 * Runs the upgrade command (if any) from the marker's version to `version`, then rewrites the
 * marker, keeping when the first boot happened. A failed upgrade leaves the old marker.
 * @throws SwitchyardError SY_ERR_FIRST_BOOT_MARKER when the marker cannot be written.
 */
export function runUpgrade(opts: BootStepOptions & { marker: MarkerState }): Promise<BootStepOutcome> {
  const previous = opts.marker.present ? opts.marker.content : undefined;
  return runStep(
    'upgrade',
    opts,
    (at) => ({ version: opts.version ?? '', firstBootAt: previous?.firstBootAt ?? at, upgradedAt: at }),
    opts.marker.present ? opts.marker.version : undefined,
  );
}

export interface PrepareDataOptions {
  dataDir: string;
  version: string | undefined;
  firstBoot: { command?: readonly string[] | undefined; timeoutMs: number };
  upgrade: { command?: readonly string[] | undefined; timeoutMs: number };
  run: RunBootCommand;
  logger: Logger;
  /** Called with the phase about to run ('first-boot' or 'upgrade'), before it runs. */
  onAction?: (action: Exclude<BootAction, 'none'>) => void;
  now?: () => Date;
}

/**
 * The whole decision for one start: read the marker, then run the first boot or the upgrade if
 * one is due. `{ action: 'none' }` when neither is.
 */
export async function prepareData(opts: PrepareDataOptions): Promise<BootStepOutcome | { action: 'none' }> {
  const marker = await readMarker(opts.dataDir);
  const action = planBoot(marker, opts.version);
  if (action === 'none') return { action };
  if (marker.present && marker.version === undefined)
    opts.logger.warn(
      { marker: markerPath(opts.dataDir) },
      'first-boot marker unreadable: treating it as an older version',
    );
  opts.onAction?.(action);
  const common = {
    dataDir: opts.dataDir,
    version: opts.version,
    run: opts.run,
    logger: opts.logger,
    ...(opts.now === undefined ? {} : { now: opts.now }),
  };
  return action === 'first-boot'
    ? runFirstBoot({ ...common, command: opts.firstBoot.command, timeoutMs: opts.firstBoot.timeoutMs })
    : runUpgrade({ ...common, command: opts.upgrade.command, timeoutMs: opts.upgrade.timeoutMs, marker });
}
