import type { Command } from '@commander-js/extra-typings';
import type { ClusterNode } from '../console/model.ts';
import { effectiveState } from '../dispatcher/desired.ts';
import { type Intent, intentSchema, weightSchema } from '../registry/records.ts';
import { type ApiFlags, apiOptionHelp } from './api-client.ts';
import { parseAge } from './capture-commands.ts';
import { checkNodeId, effectiveLabel } from './nodes.ts';
import { addRegistryOptions, type CliContext, parseIntegerOption, runOperatorCommand } from './operator.ts';
import { printable, reportError, usageError, warn, writeJson, writeOut } from './output.ts';
import type { RegistryFlags } from './registry-session.ts';

/** What an intent command changes; `weight: null` clears the override. */
interface IntentPatch {
  drain?: boolean;
  disable?: boolean;
  weight?: number | null;
}

function checkText(name: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const res = intentSchema.shape.reason.safeParse(text);
  if (!res.success) throw usageError(`invalid ${name}: ${res.error.issues.map((i) => i.message).join('; ')}`);
  return text;
}

/** Parses the argument of `switchyard weight`: an integer 1-100, or `clear`. */
export function parseWeightArgument(text: string): number | null {
  if (text.trim().toLowerCase() === 'clear') return null;
  const n = parseIntegerOption('weight', text);
  if (!weightSchema.safeParse(n).success) {
    throw usageError(
      `invalid weight ${n}: must be an integer from 1 to 100, or "clear" to remove the override`,
    );
  }
  return n;
}

type IntentFlags = RegistryFlags & {
  json?: true | undefined;
  by?: string | undefined;
  reason?: string | undefined;
};

/**
 * Stores an intent change and reports what the node will do now. An intent for an id no node
 * has yet is allowed (the operator may drain a node before it boots), with a warning.
 */
async function applyIntent(
  ctx: CliContext,
  id: string,
  makePatch: () => IntentPatch,
  opts: IntentFlags,
): Promise<void> {
  const parse = () => {
    checkNodeId(id);
    const by = checkText('--by', opts.by) ?? 'operator';
    const reason = checkText('--reason', opts.reason);
    return { ...makePatch(), by, ...(reason === undefined ? {} : { reason }) };
  };
  await runOperatorCommand(ctx, opts, parse, async ({ registry }, patch) => {
    const intent: Intent = await registry.setIntent(id, patch);
    const view = await registry.snapshot();
    const node = view.nodes.get(id);
    const known = node !== undefined || view.statics.has(id);
    const warnings: string[] = [];
    if (!known) {
      warnings.push(`no node ${id} in the registry (yet): the intent is stored and applies when it appears`);
    }
    for (const w of warnings) warn(w);
    const effective = known ? effectiveState(node ?? {}, intent) : undefined;
    if (opts.json) {
      writeJson({ ok: true, id, known, intent, effective: effective ?? null, warnings });
      return;
    }
    const parts: string[] = [];
    if (intent.disable) parts.push('disabled');
    if (intent.drain) parts.push('drained');
    if (intent.weight !== undefined) parts.push(`weight ${intent.weight}`);
    const now = parts.length === 0 ? 'no operator intent' : parts.join(', ');
    const then = effective === undefined ? '' : `; effective: ${effectiveLabel(effective)}`;
    writeOut(printable(`${id}: ${now}${then}`));
  });
}

/** The console-API form of an intent command (`--api`, `--token-file` or `--wait` given). */
async function applyIntentOverApi(
  ctx: CliContext,
  id: string,
  action: 'drain' | 'undrain' | 'disable' | 'enable' | 'weight',
  makeBody: () => Record<string, unknown>,
  opts: IntentFlags & ApiFlags & { wait?: true | undefined; timeout?: string | undefined },
): Promise<void> {
  try {
    checkNodeId(id);
    const reason = checkText('--reason', opts.reason);
    if (opts.by !== undefined)
      warn('--by is ignored with the console API: actions are recorded under the token name');
    const body = { ...makeBody(), ...(reason === undefined || action === 'weight' ? {} : { reason }) };
    const timeoutMs = opts.timeout === undefined ? 30 * 60_000 : parseAge(opts.timeout);
    const { connectApi } = await import('./api-client.ts');
    const api = connectApi(opts);
    let node = await api.post<ClusterNode>(`/api/v1/nodes/${encodeURIComponent(id)}/${action}`, body);
    if (opts.wait && action === 'drain') {
      const { waitForDrain } = await import('./console-commands.ts');
      node = await waitForDrain(api, id, { timeoutMs });
    }
    if (opts.json) writeJson({ ok: true, node });
    else writeOut(printable(`${id}: ${node.effective}${node.calls === null ? '' : `, ${node.calls} calls`}`));
  } catch (err) {
    ctx.exitCode = reportError(err, opts.json === true);
  }
}

const viaApi = (opts: ApiFlags & { wait?: true | undefined }) =>
  opts.api !== undefined || opts.tokenFile !== undefined || opts.wait === true;

export function registerIntentCommands(program: Command, ctx: CliContext): void {
  const o = apiOptionHelp();
  const intentCommand = (name: string, description: string) =>
    addRegistryOptions(program.command(name).description(description))
      .argument('<id>', 'node id')
      .option('--by <name>', 'who asks (stored with the intent; registry mode only)')
      .option(o.api[0], `${o.api[1]}; without it the registry is written directly`)
      .option(o.tokenFile[0], o.tokenFile[1]);

  intentCommand('drain', 'stop sending new calls to a node; calls in progress continue')
    .option('--reason <text>', 'why (shown in listings)')
    .option('--wait', 'follow the drain with a progress bar until the calls reach zero (console API)')
    .option('--timeout <age>', 'with --wait: give up after this long, e.g. 10m (default 30m)')
    .action((id, opts) =>
      viaApi(opts)
        ? applyIntentOverApi(ctx, id, 'drain', () => ({}), opts)
        : applyIntent(ctx, id, () => ({ drain: true }), opts),
    );
  intentCommand('undrain', 'send new calls to a drained node again')
    .option('--reason <text>', 'why')
    .action((id, opts) =>
      viaApi(opts)
        ? applyIntentOverApi(ctx, id, 'undrain', () => ({}), opts)
        : applyIntent(ctx, id, () => ({ drain: false }), opts),
    );
  intentCommand('disable', 'take a node out of rotation (Kamailio state disabled) until enabled')
    .option('--reason <text>', 'why (shown in listings)')
    .action((id, opts) =>
      viaApi(opts)
        ? applyIntentOverApi(ctx, id, 'disable', () => ({}), opts)
        : applyIntent(ctx, id, () => ({ disable: true }), opts),
    );
  intentCommand('enable', 'undo disable')
    .option('--reason <text>', 'why')
    .action((id, opts) =>
      viaApi(opts)
        ? applyIntentOverApi(ctx, id, 'enable', () => ({}), opts)
        : applyIntent(ctx, id, () => ({ disable: false }), opts),
    );
  intentCommand('weight', "override a node's weight (1-100), or clear the override")
    .argument('<weight>', 'integer 1-100, or "clear"')
    .option('--reason <text>', 'why (shown in listings)')
    .action((id, weightText, opts) =>
      viaApi(opts)
        ? applyIntentOverApi(ctx, id, 'weight', () => ({ weight: parseWeightArgument(weightText) }), opts)
        : applyIntent(ctx, id, () => ({ weight: parseWeightArgument(weightText) }), opts),
    );
}
