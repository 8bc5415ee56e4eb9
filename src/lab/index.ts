import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../core/logger.ts';
import { type LabMode, type LabSettings, startHaLab } from './ha-lab.ts';
import { labUnavailableReason } from './netns.ts';
import type { LabReport, ScenarioResult } from './report.ts';
import { type LabProfile, PROFILES, runScenario, SCENARIOS } from './scenarios.ts';

export { labUnavailableReason } from './netns.ts';
export { PROFILES } from './scenarios.ts';

/** The original system's timing (research/seed-systems.md §1-2): OPTIONS every 15 s, 20 s heartbeat. */
const BASELINE = { pingIntervalS: 15, nodeTtlMs: 20_000 };

export interface RunHaLabOptions {
  profile: LabProfile;
  modes: readonly LabMode[];
  /** Scenario ids to run (all when empty). */
  scenarios: readonly number[];
  backends: number;
  logger: Logger;
  onStep: (text: string) => void;
  /** Keep the work dir (logs, configs) after the run. */
  keepWorkDir?: boolean;
  /** Checked between scenarios: stop early (Ctrl-C). */
  aborted?: () => boolean;
}

/**
 * Builds the lab once per mode, runs the scenarios in order, tears it down (also on failure or
 * abort), and returns the report. Refuses, with the reason, where it cannot run.
 */
export async function runHaLab(opts: RunHaLabOptions): Promise<LabReport> {
  const why = await labUnavailableReason();
  if (why !== undefined) throw new Error(why);
  const results: ScenarioResult[] = [];
  const startedAt = new Date().toISOString();
  const selected = SCENARIOS.filter((s) => opts.scenarios.length === 0 || opts.scenarios.includes(s.id));
  for (const mode of opts.modes) {
    if (opts.aborted?.()) break;
    const settings: LabSettings = {
      mode,
      backends: opts.backends,
      pingIntervalS: mode === 'baseline' ? BASELINE.pingIntervalS : 2,
      nodeTtlMs: mode === 'baseline' ? BASELINE.nodeTtlMs : 3000,
      callDurationMs: opts.profile.callDurationMs,
    };
    const workDir = mkdtempSync(join(tmpdir(), `sy-lab-${mode}-`));
    // A short random prefix: two labs (or a leftover of a killed one) never share a namespace.
    const prefix = `syl${Math.random().toString(36).slice(2, 6)}`;
    opts.onStep(`building the ${mode} lab (${prefix}-*, work dir ${workDir})`);
    const lab = await startHaLab({ prefix, workDir, settings, logger: opts.logger, onStep: opts.onStep });
    try {
      for (const s of selected) {
        if (opts.aborted?.()) break;
        results.push(await runScenario(lab, s, opts.profile, { logger: opts.logger, onStep: opts.onStep }));
      }
    } finally {
      opts.onStep(`tearing the ${mode} lab down`);
      await lab.teardown();
      if (!opts.keepWorkDir) rmSync(workDir, { recursive: true, force: true });
    }
  }
  return {
    startedAt,
    profile: opts.profile.name,
    machine: { cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), kernel: release() },
    settings: { ...opts.profile, backends: opts.backends, baseline: BASELINE },
    results,
  };
}

export type { LabProfile };
export { PROFILES as LAB_PROFILES };
