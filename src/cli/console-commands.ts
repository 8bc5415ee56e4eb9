import type { Command } from '@commander-js/extra-typings';
import type { ClusterModel, ClusterNode } from '../console/model.ts';
import { type ApiFlags, apiOptionHelp, type ConsoleApi, connectApi } from './api-client.ts';
import type { CliContext } from './operator.ts';
import { formatAge, printable, renderTable, reportError, writeErr, writeJson, writeOut } from './output.ts';

/** `switchyard status`: the cluster page in a terminal, over the console API. */
export function registerConsoleCommands(program: Command, ctx: CliContext): void {
  const o = apiOptionHelp();
  program
    .command('status')
    .description('the cluster as the console sees it: nodes, calls, dispatchers, services (console API)')
    .option(o.api[0], o.api[1])
    .option(o.tokenFile[0], o.tokenFile[1])
    .option('--json', 'print the API answer as JSON')
    .action(async (opts) => {
      try {
        const api = connectApi(opts);
        const model = await api.get<ClusterModel>('/api/v1/cluster');
        if (opts.json) writeJson(model);
        else writeOut(renderStatus(model, Date.now()));
      } catch (err) {
        ctx.exitCode = reportError(err, opts.json === true);
      }
    });
}

const callsCell = (n: ClusterNode) =>
  n.calls === null ? '-' : n.maxCalls === null ? String(n.calls) : `${n.calls}/${n.maxCalls}`;

/** The human form of `switchyard status`. */
export function renderStatus(model: ClusterModel, nowMs: number): string {
  const out: string[] = [];
  out.push(
    model.nodes.length === 0
      ? 'No nodes.'
      : renderTable(
          ['NODE', 'URI', 'EFFECTIVE', 'PHASE', 'HEALTH', 'CALLS', 'WEIGHT', 'RESTARTS', 'CHANGED'],
          model.nodes.map((n) => [
            n.id,
            n.uri,
            n.drain?.state === 'waiting' ? `${n.effective} (draining)` : n.effective,
            n.phase ?? '-',
            n.healthy === null ? '-' : n.healthy ? 'ok' : 'DOWN',
            callsCell(n),
            `${n.weight}${n.weightOverridden ? '*' : ''}`,
            n.restarts === null ? '-' : String(n.restarts),
            formatAge(n.lastChange ?? n.since, nowMs),
          ]),
        ),
  );
  if (model.dispatchers.length > 0) {
    out.push('');
    out.push(
      renderTable(
        ['DISPATCHER', 'GENERATION', 'IN SYNC', 'KAMAILIO', 'DRIFT REPAIRS', 'LAST ERROR'],
        model.dispatchers.map((d) => [
          d.name,
          String(d.generation),
          d.inSync ? 'yes' : 'NO',
          d.kamailioReachable ? 'reachable' : 'UNREACHABLE',
          String(d.driftRepairs),
          d.lastError ?? '-',
        ]),
      ),
    );
  }
  if (model.services.length > 0) {
    out.push('');
    out.push(
      renderTable(
        ['SERVICE', 'STATE', 'DETAIL'],
        model.services.map((s) => [s.name, s.state, s.detail ?? '']),
      ),
    );
  }
  const g = model.generator;
  if (g) {
    out.push('');
    out.push(
      `demo calls to ${g.target}: ${g.attempted} placed, ${g.succeeded} completed, ${g.failed} failed, ${g.active} up now`,
    );
  }
  for (const r of model.rejected) out.push(printable(`rejected registry key ${r.key}: ${r.reason}`));
  return out.join('\n');
}

/** A text progress bar: `[#######-------]`. */
export function progressBar(done: number, total: number, width = 24): string {
  const f = total <= 0 ? 1 : Math.min(1, Math.max(0, done / total));
  const filled = Math.round(f * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

/**
 * Follows a drain until the node's calls reach zero (or the console says it is done), with a
 * progress bar on a terminal and one line per change otherwise. Resolves with the final node;
 * rejects after `timeoutMs`.
 */
export async function waitForDrain(
  api: ConsoleApi,
  id: string,
  opts: { timeoutMs: number; pollMs?: number; tty?: boolean },
): Promise<ClusterNode> {
  const pollMs = opts.pollMs ?? 500;
  const tty = opts.tty ?? process.stderr.isTTY === true;
  const started = Date.now();
  let last = '';
  for (;;) {
    const node = await api.get<ClusterNode>(`/api/v1/nodes/${encodeURIComponent(id)}`);
    const d = node.drain;
    const start = d?.startCalls ?? node.calls ?? 0;
    const left = node.calls;
    const elapsedS = Math.round((Date.now() - started) / 1000);
    const line =
      left === null
        ? `draining ${id}: calls not counted (no AMI or capture); waiting for the node to say drained, ${elapsedS}s`
        : `draining ${id} ${progressBar(start - left, start)} ${left} call${left === 1 ? '' : 's'} left of ${start}, ${elapsedS}s`;
    if (tty) process.stderr.write(`\r${line}\u001b[K`);
    else if (line.replace(/, \d+s$/, '') !== last.replace(/, \d+s$/, '')) writeErr(line);
    last = line;
    if (d?.state === 'done' || (d === null && left === 0)) {
      if (tty) process.stderr.write('\n');
      return node;
    }
    if (d?.state === 'cancelled') {
      if (tty) process.stderr.write('\n');
      throw new Error(`drain of ${id} was cancelled (undrained) before its calls ended`);
    }
    if (Date.now() - started > opts.timeoutMs) {
      if (tty) process.stderr.write('\n');
      throw new Error(
        `drain of ${id}: ${left ?? 'unknown'} calls still up after ${Math.round(opts.timeoutMs / 1000)} s`,
      );
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export type { ApiFlags };
