import type { Command } from '@commander-js/extra-typings';
import { describeNodes, type NodeRow, type NodesReport } from '../console/nodes-report.ts';
import { type Intent, NODE_ID_PATTERN, staticNodeSchema } from '../registry/records.ts';
import { addRegistryOptions, type CliContext, runOperatorCommand } from './operator.ts';
import { formatAge, printable, renderTable, usageError, warn, writeJson, writeOut } from './output.ts';

function describeIntent(intent: Intent): string {
  const parts: string[] = [];
  if (intent.disable) parts.push('disable');
  if (intent.drain) parts.push('drain');
  if (intent.weight !== undefined) parts.push(`weight ${intent.weight}`);
  if (parts.length === 0) parts.push('none');
  const reason = intent.reason === undefined ? '' : ` (reason: ${intent.reason})`;
  return `${parts.join(', ')}${reason} by ${intent.by}`;
}

export function effectiveLabel(effective: NodeRow['effective']): string {
  return effective === 'in-rotation' ? 'in rotation' : effective;
}

/** The human form of `switchyard nodes`. */
export function renderNodes(report: NodesReport, nowMs: number): string {
  const out: string[] = [];
  if (report.nodes.length === 0) out.push('No nodes in the registry.');
  else {
    out.push(
      renderTable(
        ['ID', 'SET', 'URI', 'STATE', 'EFFECTIVE', 'WEIGHT', 'CALLS', 'SOURCE', 'AGE'],
        report.nodes.map((n) => [
          n.id,
          String(n.setId),
          n.uri,
          n.state ?? '-',
          effectiveLabel(n.effective),
          `${n.weight}${n.weightOverridden ? '*' : ''}`,
          n.calls === null ? '-' : n.maxCalls === null ? String(n.calls) : `${n.calls}/${n.maxCalls}`,
          n.source,
          formatAge(n.since, nowMs),
        ]),
      ),
    );
    if (report.nodes.some((n) => n.weightOverridden))
      out.push('* weight set by an operator (switchyard weight <id> clear)');
    const notes = report.nodes.filter((n) => n.intent !== null || n.excluded !== undefined);
    for (const n of notes) {
      if (n.excluded !== undefined) out.push(printable(`  ${n.id}: excluded: ${n.excluded}`));
      if (n.intent !== null)
        out.push(
          printable(
            `  ${n.id}: intent ${describeIntent(n.intent)}, ${formatAge(n.intent.updatedAt, nowMs)} ago`,
          ),
        );
    }
  }
  if (report.orphanIntents.length > 0) {
    out.push('', 'Intents for nodes not in the registry (they apply when the node appears):');
    for (const i of report.orphanIntents)
      out.push(printable(`  ${i.id}: ${describeIntent(i)}, ${formatAge(i.updatedAt, nowMs)} ago`));
  }
  if (report.rejected.length > 0) {
    out.push('', 'Rejected records (ignored by every dispatcher):');
    for (const r of report.rejected) out.push(printable(`  ${r.key}: ${r.reason}`));
  }
  out.push('');
  if (report.dispatchers.length === 0) out.push('No dispatcher has reported.');
  else {
    out.push(
      renderTable(
        ['DISPATCHER', 'GENERATION', 'IN SYNC', 'KAMAILIO', 'REGISTRY', 'UPDATED', 'LAST ERROR'],
        report.dispatchers.map((d) => [
          d.name,
          String(d.generation),
          d.inSync ? 'yes' : 'no',
          d.kamailioReachable ? 'up' : 'down',
          d.registryConnected ? 'connected' : 'away',
          `${formatAge(d.updatedAt, nowMs)} ago`,
          d.lastError ?? '-',
        ]),
      ),
    );
    for (const d of report.dispatchers) {
      if (d.heldRemoval) {
        out.push(
          printable(
            `  ${d.name}: holding removal of ${d.heldRemoval.nodes.join(', ')} from set ${d.heldRemoval.setId} ` +
              `since ${formatAge(d.heldRemoval.since, nowMs)} ago (mass-removal guard)`,
          ),
        );
      }
    }
  }
  // Tables sanitise their cells; every other line is sanitised here, one line at a time.
  return out.join('\n');
}

/** Validates a node id argument (it becomes the dispatcher `duid`). */
export function checkNodeId(id: string): string {
  if (!NODE_ID_PATTERN.test(id)) throw usageError(invalidNodeIdMessage(id));
  return id;
}

function invalidNodeIdMessage(id: string): string {
  return `invalid node id ${JSON.stringify(printable(id))}: 1-63 characters of A-Z a-z 0-9 . _ - (first one alphanumeric)`;
}

const STATIC_FLAG_NAMES: Record<string, string> = {
  id: '<id>',
  setId: '--set',
  uri: '--uri',
  weight: '--weight',
  maxCalls: '--max-calls',
  priority: '--priority',
  addedBy: '--by',
};

export function registerNodeCommands(program: Command, ctx: CliContext): void {
  addRegistryOptions(
    program
      .command('nodes')
      .description('list nodes, what the dispatchers do with them, and the dispatchers'),
  )
    .addHelpText(
      'after',
      '\nEFFECTIVE is what the dispatcher does: in rotation, drained, disabled, or the node state.\n',
    )
    .action(async (opts) => {
      await runOperatorCommand(
        ctx,
        opts,
        () => undefined,
        async ({ registry }) => {
          const report = describeNodes(await registry.snapshot());
          if (opts.json) writeJson({ ok: true, ...report });
          else writeOut(renderNodes(report, Date.now()));
        },
      );
    });

  const node = program.command('node').description('add or remove static nodes (backends without an agent)');
  addRegistryOptions(node.command('add').description('add (or replace) a static node'))
    .argument('<id>', 'node id, also the dispatcher duid')
    .requiredOption('--uri <sip-uri>', 'where Kamailio sends calls, e.g. sip:10.0.0.5:5060')
    .option('--set <n>', 'dispatcher set id', '1')
    .option('--weight <w>', 'relative weight 1-100')
    .option('--max-calls <n>', 'calls limit (dispatcher maxload)')
    .option('--priority <p>', 'dispatcher priority 0-1000', '0')
    .option('--by <name>', 'who adds it (shown in listings)', 'operator')
    .action(async (id, opts) => {
      const parse = () => {
        // Every problem at once, like config errors: an operator fixes them in one go.
        const problems: string[] = [];
        if (!NODE_ID_PATTERN.test(id)) problems.push(invalidNodeIdMessage(id));
        const integer = (name: string, text: string | undefined): number | undefined => {
          if (text === undefined) return undefined;
          if (/^\s*-?\d{1,15}\s*$/.test(text)) return Number(text);
          problems.push(`invalid ${name}: expected an integer, got ${JSON.stringify(printable(text))}`);
          return undefined;
        };
        const candidate = {
          id,
          uri: opts.uri,
          setId: integer('--set', opts.set),
          weight: integer('--weight', opts.weight),
          maxCalls: integer('--max-calls', opts.maxCalls),
          priority: integer('--priority', opts.priority),
          addedAt: new Date().toISOString(),
          addedBy: opts.by,
        };
        const parsed = staticNodeSchema.safeParse(candidate);
        if (!parsed.success) {
          for (const issue of parsed.error.issues) {
            const field = String(issue.path[0] ?? '');
            // Already reported above: a bad id, or an integer that did not parse.
            if (field === 'id' || (candidate as Record<string, unknown>)[field] === undefined) continue;
            problems.push(`invalid ${STATIC_FLAG_NAMES[field] ?? field}: ${issue.message}`);
          }
        }
        if (problems.length > 0 || !parsed.success) throw usageError(problems.join('\n'));
        return parsed.data;
      };
      await runOperatorCommand(ctx, opts, parse, async ({ registry }, node) => {
        const view = await registry.snapshot();
        const replaced = view.statics.has(id);
        await registry.putStatic(node);
        if (view.nodes.has(id))
          warn(`an agent announces node ${id}: its own record wins over this static one`);
        if (opts.json) writeJson({ ok: true, replaced, node });
        else
          writeOut(`${replaced ? 'replaced' : 'added'} static node ${id} -> ${node.uri} (set ${node.setId})`);
      });
    });

  addRegistryOptions(node.command('remove').description('remove a static node'))
    .argument('<id>', 'node id')
    .action(async (id, opts) => {
      await runOperatorCommand(
        ctx,
        opts,
        () => checkNodeId(id),
        async ({ registry }) => {
          const removed = await registry.removeStatic(id);
          let warning: string | undefined;
          if (!removed) {
            const view = await registry.snapshot();
            warning = view.nodes.has(id)
              ? `${id} is announced by its agent, not a static node: stop the agent, or drain/disable it`
              : `no static node ${id}; nothing removed`;
            warn(warning);
          }
          if (opts.json) writeJson({ ok: true, removed, ...(warning === undefined ? {} : { warning }) });
          else if (removed) writeOut(`removed static node ${id}`);
        },
      );
    });
}
