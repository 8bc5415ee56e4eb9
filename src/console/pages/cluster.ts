import type { DispatcherStatus } from '../../registry/records.ts';
import type { ClusterModel, ClusterNode, DrainProgress, GeneratorStatus, ServiceStatus } from '../model.ts';
import { relativeTime } from './format.ts';
import { html, raw, type SafeHtml } from './html.ts';
import { type PageContext, renderLayout } from './layout.ts';

/** Colour class for an effective state or a service state (console.css). */
export function stateClass(state: string): string {
  switch (state) {
    case 'in-rotation':
    case 'running':
    case 'up':
      return 'st-ok';
    case 'draining':
    case 'drained':
    case 'starting':
    case 'restarting':
    case 'warm-up':
    case 'boot':
      return 'st-warn';
    case 'down':
    case 'failed':
    case 'excluded':
      return 'st-bad';
    case 'disabled':
    case 'stopped':
      return 'st-off';
    default:
      return 'st-other';
  }
}

function stateLabel(effective: string): string {
  return effective === 'in-rotation' ? 'in rotation' : effective;
}

function time(iso: string | null | undefined, nowIso: string): SafeHtml | string {
  if (iso === null || iso === undefined) return '-';
  return html`<time datetime="${iso}" title="${iso}">${relativeTime(iso, nowIso)}</time>`;
}

function yesNo(value: boolean | null, yes = 'yes', no = 'no'): SafeHtml {
  if (value === null) return html`<span class="muted">-</span>`;
  return value ? html`<span class="st-ok">${yes}</span>` : html`<span class="st-bad">${no}</span>`;
}

function callsCell(n: ClusterNode): SafeHtml {
  const text = n.calls === null ? '-' : n.maxCalls === null ? `${n.calls}` : `${n.calls}/${n.maxCalls}`;
  const title = n.callsSource === null ? 'source unknown' : `from ${n.callsSource}`;
  return html`<td class="num" data-testid="node-calls-${n.id}" title="${title}">${text}</td>`;
}

function drainCell(n: ClusterNode): SafeHtml {
  const d = n.drain;
  if (d === null) return html`<td class="drain"></td>`;
  return html`<td class="drain">${drainProgress(d)}</td>`;
}

function drainProgress(d: DrainProgress): SafeHtml {
  const title = `drain by ${d.by} since ${d.startedAt}${d.finishedAt === null ? '' : `, finished ${d.finishedAt}`}`;
  let bar: SafeHtml | string = '';
  if (d.state === 'waiting') {
    // The bar fills as calls end: value = calls gone since the drain began, max = calls then.
    bar =
      d.startCalls !== null && d.startCalls > 0 && d.calls !== null
        ? html`<progress max="${d.startCalls}" value="${Math.max(0, d.startCalls - Math.min(d.calls, d.startCalls))}"></progress>`
        : html`<progress></progress>`;
  } else if (d.state === 'done') bar = html`<progress max="1" value="1"></progress>`;
  const text =
    d.state === 'done'
      ? 'drained'
      : d.state === 'cancelled'
        ? 'cancelled'
        : d.calls === null
          ? 'calls unknown'
          : `${d.calls} call${d.calls === 1 ? '' : 's'} left`;
  return html`<div class="drain-progress drain-${d.state}" data-testid="drain-progress-${d.nodeId}" title="${title}">${bar} <span>${text}</span></div>`;
}

function actionButton(action: string, id: string, label: string, cls = ''): SafeHtml {
  return html`<button type="button" class="${`act ${cls}`.trim()}" data-action="${action}" data-node="${id}" data-testid="${action}-${id}">${label}</button>`;
}

function actionsCell(n: ClusterNode): SafeHtml {
  const drained = n.intent?.drain === true;
  const disabled = n.intent?.disable === true;
  const buttons: SafeHtml[] = [];
  // Undrain only undoes an operator drain; a node draining on its own (SIGTERM) is left alone.
  if (drained) buttons.push(actionButton('undrain', n.id, 'Undrain'));
  else buttons.push(actionButton('drain', n.id, 'Drain', 'warn'));
  if (disabled) buttons.push(actionButton('enable', n.id, 'Enable'));
  else buttons.push(actionButton('disable', n.id, 'Disable', 'danger'));
  const weight = html`<span class="weight-form"><input type="number" min="1" max="100" step="1" value="${n.weight}" aria-label="weight for ${n.id}" id="weight-input-${n.id}" data-testid="weight-input-${n.id}"><button type="button" class="act" data-action="weight" data-node="${n.id}" data-testid="weight-set-${n.id}">Set</button>${
    n.weightOverridden
      ? html`<button type="button" class="act" data-action="weight" data-clear="1" data-node="${n.id}" data-testid="weight-clear-${n.id}" title="back to the node's own weight">Clear</button>`
      : ''
  }</span>`;
  return html`<td class="actions">${buttons} ${weight}</td>`;
}

function nodeRow(n: ClusterNode, nowIso: string, canAdmin: boolean): SafeHtml {
  const stateTitle = [
    n.state === null ? `${n.source} node` : `node says ${n.state}`,
    n.excluded ?? '',
    n.intent === null
      ? ''
      : `intent by ${n.intent.by}${n.intent.reason === undefined ? '' : `: ${n.intent.reason}`}`,
  ]
    .filter((s) => s !== '')
    .join('; ');
  const reason = [
    n.reason,
    n.excluded,
    n.intent?.reason === undefined ? null : `operator: ${n.intent.reason}`,
  ]
    .filter((s): s is string => s !== null && s !== undefined && s !== '')
    .join('; ');
  return html`<tr data-testid="node-row-${n.id}" id="node-${n.id}">
<td><strong>${n.id}</strong>${n.source === 'static' ? html` <span class="tag">static</span>` : ''}${n.version ? html`<div class="muted small">${n.version}</div>` : ''}</td>
<td class="mono">${n.uri}${n.setId === 1 ? '' : html` <span class="tag">set ${n.setId}</span>`}</td>
<td><span class="state ${stateClass(n.effective)}" data-testid="node-state-${n.id}" title="${stateTitle}">${stateLabel(n.effective)}</span></td>
<td>${n.phase === null ? '-' : html`<span class="${stateClass(n.phase)}">${n.phase}</span>`}</td>
<td>${yesNo(n.healthy, 'healthy', 'unhealthy')}</td>
${callsCell(n)}
<td class="num" title="${n.weightOverridden ? 'operator override' : "node's own weight"}">${n.weight}${n.weightOverridden ? '*' : ''}</td>
<td class="num">${n.restarts ?? '-'}</td>
<td class="num">${n.probeMs === null ? '-' : `${n.probeMs} ms`}</td>
<td>${time(n.since, nowIso)}</td>
<td>${time(n.lastChange, nowIso)}</td>
<td class="reason">${reason}</td>
${drainCell(n)}
${canAdmin ? actionsCell(n) : ''}
</tr>`;
}

function nodesTable(model: ClusterModel, canAdmin: boolean): SafeHtml {
  if (model.nodes.length === 0) return html`<p class="empty">No nodes in the registry yet.</p>`;
  return html`<table class="grid nodes" data-testid="nodes-table">
<thead><tr><th>Node</th><th>URI</th><th>State</th><th>Phase</th><th>Health</th><th>Calls</th><th>Weight</th><th>Restarts</th><th>Probe</th><th>Since</th><th>Last change</th><th>Reason</th><th>Drain</th>${canAdmin ? html`<th>Actions</th>` : ''}</tr></thead>
<tbody>
${model.nodes.map((n) => nodeRow(n, model.generatedAt, canAdmin))}
</tbody>
</table>`;
}

function dispatcherRow(d: DispatcherStatus, nowIso: string): SafeHtml {
  const held =
    d.heldRemoval === undefined
      ? '-'
      : html`<span class="st-warn" title="${`set ${d.heldRemoval.setId} since ${d.heldRemoval.since}`}">${d.heldRemoval.nodes.length} held: ${d.heldRemoval.nodes.join(', ')}</span>`;
  return html`<tr data-testid="dispatcher-row">
<td><strong>${d.name}</strong><div class="muted small mono">${d.kamailioRpc}</div></td>
<td class="num" title="${d.appliedHash}">${d.generation}</td>
<td>${yesNo(d.inSync, 'in sync', 'out of sync')}</td>
<td>${yesNo(d.registryConnected, 'connected', 'away')}</td>
<td>${yesNo(d.kamailioReachable, 'reachable', 'unreachable')}</td>
<td class="num">${d.nodes}</td>
<td class="num">${d.driftRepairs}${d.lastDrift === undefined ? '' : html`<div class="muted small">${d.lastDrift}</div>`}</td>
<td class="reason">${d.lastError ?? ''}</td>
<td>${held}</td>
<td>${time(d.updatedAt, nowIso)}</td>
</tr>`;
}

function dispatchersTable(model: ClusterModel): SafeHtml {
  if (model.dispatchers.length === 0) return html`<p class="empty">No dispatcher has reported yet.</p>`;
  return html`<table class="grid dispatchers" data-testid="dispatchers-table">
<thead><tr><th>Dispatcher</th><th>Generation</th><th>Kamailio list</th><th>Registry</th><th>Kamailio</th><th>Nodes</th><th>Drift repairs</th><th>Last error</th><th>Held removal</th><th>Updated</th></tr></thead>
<tbody>
${model.dispatchers.map((d) => dispatcherRow(d, model.generatedAt))}
</tbody>
</table>`;
}

function servicesList(services: ServiceStatus[]): SafeHtml | string {
  if (services.length === 0) return '';
  return html`<section class="card"><h2>Services</h2>
<table class="grid services" data-testid="services-table"><tbody>
${services.map((s) => html`<tr><th>${s.name}</th><td><span class="state ${stateClass(s.state)}">${s.state}</span></td><td class="reason">${s.detail ?? ''}</td></tr>`)}
</tbody></table></section>`;
}

function generatorCard(g: GeneratorStatus | null): SafeHtml | string {
  if (g === null) return '';
  return html`<section class="card" data-testid="generator"><h2>Call generator</h2>
<dl class="counters">
<div><dt>Target</dt><dd class="mono">${g.target}</dd></div>
<div><dt>Rate</dt><dd>${g.ratePerSecond}/s</dd></div>
<div><dt>Attempted</dt><dd>${g.attempted}</dd></div>
<div><dt>Succeeded</dt><dd class="st-ok">${g.succeeded}</dd></div>
<div><dt>Failed</dt><dd class="${g.failed > 0 ? 'st-bad' : ''}">${g.failed}</dd></div>
<div><dt>Active</dt><dd>${g.active}</dd></div>
</dl></section>`;
}

function problems(model: ClusterModel): SafeHtml | string {
  const parts: SafeHtml[] = [];
  if (model.rejected.length > 0)
    parts.push(html`<section class="card warn-card" data-testid="rejected"><h2>Rejected registry keys</h2>
<p class="muted">These keys did not decode and never reach Kamailio.</p>
<ul>${model.rejected.map((r) => html`<li><code>${r.key}</code>: ${r.reason}</li>`)}</ul></section>`);
  if (model.orphanIntents.length > 0)
    parts.push(html`<section class="card" data-testid="orphan-intents"><h2>Intents for unknown nodes</h2>
<ul>${model.orphanIntents.map((i) => {
      const what = [
        i.drain ? 'drain' : '',
        i.disable ? 'disable' : '',
        i.weight === undefined ? '' : `weight ${i.weight}`,
      ]
        .filter((s) => s !== '')
        .join(', ');
      return html`<li><code>${i.id}</code>: ${what || 'none'} by ${i.by}${i.reason === undefined ? '' : ` (${i.reason})`}, ${time(i.updatedAt, model.generatedAt)}</li>`;
    })}</ul></section>`);
  return parts.length === 0 ? '' : html`${parts}`;
}

/** The live part of the cluster page: console.js swaps it in on every `cluster` SSE event. */
export function renderClusterFragment(model: ClusterModel, canAdmin: boolean): string {
  return html`<div class="revision muted small" data-revision="${model.revision}">registry revision ${model.revision}, as of <time datetime="${model.generatedAt}">${model.generatedAt}</time></div>
<section><h2>Nodes</h2>
${nodesTable(model, canAdmin)}
</section>
<section><h2>Dispatchers</h2>
${dispatchersTable(model)}
</section>
<div class="cards">
${servicesList(model.services)}
${generatorCard(model.generator)}
</div>
${problems(model)}
`.value;
}

export function renderClusterPage(ctx: PageContext, model: ClusterModel): string {
  const canAdmin = ctx.principal.role === 'admin';
  return renderLayout(
    ctx,
    'cluster',
    'Cluster',
    html`<div id="cluster-live">
${raw(renderClusterFragment(model, canAdmin))}
</div>`,
  );
}
