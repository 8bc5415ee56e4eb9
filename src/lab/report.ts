import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.ts';
import { ErrorCode, SwitchyardError } from '../core/errors.ts';

/**
 * Results of `switchyard lab ha`: one ScenarioResult per scenario and mode (switchyard, or the
 * baseline without it), written as JSON (the record) and as a markdown table (for people and for
 * docs/reliability.md, whose generated block is replaced in place).
 */

export type LabMode = 'switchyard' | 'baseline';

export interface ScenarioTarget {
  /** No call lost at all: no new call failed and no established call lost. */
  noLoss?: boolean;
  /** No new call failed (established calls on a dead node may be lost: nothing can save them). */
  noNewCallFailed?: boolean;
  /** The VIP moved to the other load balancer within this many ms. */
  vipWithinMs?: number;
}

export interface ScenarioResult {
  id: number;
  name: string;
  mode: LabMode;
  attempted: number;
  failedNew: number;
  lostEstablished: number;
  /** From the fault to the control plane noticing it (null: not measured or never). */
  detectMs: number | null;
  /** From the fault to new calls being routed around it again. */
  routedMs: number | null;
  /** From the fault to the VIP answering on the other load balancer (null: not a VIP scenario). */
  vipFailoverMs: number | null;
  /** After the scenario, every node took calls again. */
  backToFullCapacity: boolean;
  notes: string[];
  target: ScenarioTarget;
  /** null: not evaluated yet. */
  passed: boolean | null;
}

export interface LabReport {
  startedAt: string;
  profile: 'short' | 'full';
  machine: { cores: number; memGiB: number; kernel: string };
  settings: Record<string, unknown>;
  results: ScenarioResult[];
}

export interface TargetEvaluation {
  passed: boolean;
  /** Why it did not pass (empty when it passed). */
  reasons: string[];
}

/** Checks a result against its targets; backToFullCapacity is required by every scenario. */
export function evaluateTargets(result: ScenarioResult): TargetEvaluation {
  const reasons: string[] = [];
  const { target } = result;
  if (target.noLoss === true) {
    if (result.failedNew !== 0) reasons.push(`${result.failedNew} new call(s) failed (target: no loss)`);
    if (result.lostEstablished !== 0)
      reasons.push(`${result.lostEstablished} established call(s) lost (target: no loss)`);
  }
  if (target.noNewCallFailed === true && result.failedNew !== 0 && target.noLoss !== true)
    reasons.push(`${result.failedNew} new call(s) failed (target: no new call failed)`);
  if (target.vipWithinMs !== undefined) {
    if (result.vipFailoverMs === null)
      reasons.push(`VIP failover not observed (target: within ${formatMs(target.vipWithinMs)})`);
    else if (result.vipFailoverMs > target.vipWithinMs)
      reasons.push(
        `VIP failover took ${formatMs(result.vipFailoverMs)} (target: within ${formatMs(target.vipWithinMs)})`,
      );
  }
  if (!result.backToFullCapacity) reasons.push('not back to full capacity afterwards');
  return { passed: reasons.length === 0, reasons };
}

/** `1.2 s` (one decimal), `-` when not measured. */
export function formatMs(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '-';
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Keeps a cell on one row: a `|` or a line break in a name would break the table. */
function cell(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').replace(/\|/g, '\\|');
}

function verdict(result: ScenarioResult | undefined): string {
  if (result === undefined) return '-';
  const passed = result.passed ?? evaluateTargets(result).passed;
  return passed ? 'yes' : 'no';
}

function pair(
  sw: ScenarioResult | undefined,
  base: ScenarioResult | undefined,
  show: (r: ScenarioResult) => string,
): string {
  return `${sw === undefined ? '-' : show(sw)} / ${base === undefined ? '-' : show(base)}`;
}

/**
 * One table, one row per scenario, each cell `switchyard / baseline` so the two modes read side
 * by side. A scenario run in one mode only shows `-` for the other.
 */
export function renderMarkdownTable(report: LabReport): string {
  const ids: number[] = [];
  for (const r of report.results) if (!ids.includes(r.id)) ids.push(r.id);
  ids.sort((a, b) => a - b);
  const lines = [
    `Profile \`${report.profile}\`, started ${report.startedAt}; machine: ${report.machine.cores} cores, ` +
      `${report.machine.memGiB} GiB, kernel ${cell(report.machine.kernel)}. Each cell: switchyard / baseline.`,
    '',
    '| scenario | calls attempted | new calls failed | established lost | detect | routed again | VIP failover | target met |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const id of ids) {
    const sw = report.results.find((r) => r.id === id && r.mode === 'switchyard');
    const base = report.results.find((r) => r.id === id && r.mode === 'baseline');
    const name = (sw ?? base)?.name ?? '';
    lines.push(
      `| ${id}. ${cell(name)} | ${pair(sw, base, (r) => String(r.attempted))} | ` +
        `${pair(sw, base, (r) => String(r.failedNew))} | ${pair(sw, base, (r) => String(r.lostEstablished))} | ` +
        `${pair(sw, base, (r) => formatMs(r.detectMs))} | ${pair(sw, base, (r) => formatMs(r.routedMs))} | ` +
        `${pair(sw, base, (r) => formatMs(r.vipFailoverMs))} | ${verdict(sw)} / ${verdict(base)} |`,
    );
  }
  const notes = report.results.filter((r) => r.notes.length > 0);
  if (notes.length > 0) {
    lines.push('', 'Notes:', '');
    for (const r of notes) lines.push(`- ${r.id} (${r.mode}): ${cell(r.notes.join('; '))}`);
  }
  return `${lines.join('\n')}\n`;
}

function reportError(message: string, cause?: unknown): SwitchyardError {
  return new SwitchyardError(ErrorCode.INVALID_ARGUMENT, `lab report: ${message}`, { cause });
}

/** Writes `ha-lab-<profile>.json` and `ha-lab-<profile>.md` into `dir`, each atomically. */
export async function writeReport(report: LabReport, dir: string): Promise<string[]> {
  const jsonPath = join(dir, `ha-lab-${report.profile}.json`);
  const mdPath = join(dir, `ha-lab-${report.profile}.md`);
  await writeFileAtomic(jsonPath, `${JSON.stringify(report, null, 2)}\n`, { mode: 0o644 });
  await writeFileAtomic(mdPath, `# HA lab (${report.profile})\n\n${renderMarkdownTable(report)}`, {
    mode: 0o644,
  });
  return [jsonPath, mdPath];
}

export const GENERATED_BEGIN = '<!-- generated:ha-lab -->';
export const GENERATED_END = '<!-- /generated:ha-lab -->';

/** Replaces what is between the markers with the table; pure, for tests. Throws when they are missing. */
export function replaceGeneratedBlock(doc: string, report: LabReport): string {
  const begin = doc.indexOf(GENERATED_BEGIN);
  const end = doc.indexOf(GENERATED_END, begin === -1 ? 0 : begin);
  if (begin === -1 || end === -1)
    throw reportError(`markers ${GENERATED_BEGIN} ... ${GENERATED_END} not found (in that order)`);
  if (doc.indexOf(GENERATED_BEGIN, begin + GENERATED_BEGIN.length) !== -1)
    throw reportError(`marker ${GENERATED_BEGIN} appears more than once`);
  return `${doc.slice(0, begin + GENERATED_BEGIN.length)}\n${renderMarkdownTable(report)}${doc.slice(end)}`;
}

/** Rewrites the generated block of a markdown file (docs/reliability.md) atomically. */
export async function updateReliabilityDoc(report: LabReport, docPath: string): Promise<void> {
  let doc: string;
  try {
    doc = await readFile(docPath, 'utf8');
  } catch (err) {
    throw reportError(`cannot read ${docPath}`, err);
  }
  await writeFileAtomic(docPath, replaceGeneratedBlock(doc, report), { mode: 0o644 });
}
