import type { CallSummary } from '../../capture/model.ts';
import type { KeptSummary } from '../../capture/status.ts';
import { formatDurationUs, formatTsUs } from './format.ts';
import { html, type SafeHtml } from './html.ts';
import { type PageContext, renderLayout } from './layout.ts';

export interface CallFilters {
  since: string;
  number: string;
  status: string;
  node: string;
}

const SINCE = [
  ['5m', 'last 5 minutes'],
  ['15m', 'last 15 minutes'],
  ['1h', 'last hour'],
  ['24h', 'last 24 hours'],
] as const;
const STATUSES = ['ringing', 'answered', 'failed', 'cancelled', 'busy', 'unknown'] as const;

export function callHref(callId: string): string {
  return `/calls/${encodeURIComponent(callId)}`;
}

export function statusClass(status: CallSummary['status']): string {
  switch (status) {
    case 'answered':
      return 'st-ok';
    case 'ringing':
      return 'st-warn';
    case 'failed':
    case 'busy':
      return 'st-bad';
    default:
      return 'st-off';
  }
}

function option(value: string, label: string, selected: string): SafeHtml {
  return html`<option value="${value}"${value === selected ? html` selected` : ''}>${label}</option>`;
}

function filterForm(f: CallFilters, nodes: { id: string; uri: string }[]): SafeHtml {
  return html`<form method="get" action="/calls" class="filters" data-testid="calls-filter">
<label>Since <select name="since">${SINCE.map(([v, l]) => option(v, l, f.since))}</select></label>
<label>Number <input type="search" name="number" value="${f.number}" placeholder="from or to" autocomplete="off"></label>
<label>Status <select name="status">${option('', 'any', f.status)}${STATUSES.map((s) => option(s, s, f.status))}</select></label>
<label>Node <select name="node">${option('', 'any', f.node)}${nodes.map((n) => option(n.id, `${n.id} (${n.uri})`, f.node))}</select></label>
<button type="submit">Search</button>
</form>`;
}

/** One call as a table row; also used for the related legs on the call page. */
export function callRow(c: CallSummary): SafeHtml {
  return html`<tr>
<td class="mono"><a href="${callHref(c.callId)}" data-testid="call-row-${c.callId}" title="${c.callId}">${formatTsUs(c.firstTsUs)}</a></td>
<td>${c.fromUser || '?'} → ${c.toUser || '?'}${c.method === 'INVITE' ? '' : html` <span class="tag">${c.method}</span>`}</td>
<td><span class="${statusClass(c.status)}">${c.status}</span></td>
<td class="num">${c.finalStatus ?? '-'}</td>
<td class="num">${formatDurationUs(c.setupDelayUs)}</td>
<td class="num">${formatDurationUs(c.durationUs)}</td>
<td class="mono small">${c.endpoints.join(', ')}</td>
<td class="num">${c.messageCount}</td>
</tr>`;
}

export function callsTable(calls: CallSummary[], testId: string): SafeHtml {
  return html`<table class="grid calls" data-testid="${testId}">
<thead><tr><th>Time (UTC)</th><th>From → To</th><th>Status</th><th>Final</th><th>Setup</th><th>Duration</th><th>Endpoints</th><th>Msgs</th></tr></thead>
<tbody>
${calls.map(callRow)}
</tbody>
</table>`;
}

/** `1,234 calls (5.2 MB) from 2026-12-01 10:00:00.000 to ...; kept up to 168 h and 1024 MiB`. */
export function keptLine(kept: KeptSummary): SafeHtml {
  const mb = (kept.bytes / 1_000_000).toFixed(1);
  const span =
    kept.oldest === undefined || kept.newest === undefined
      ? ''
      : ` from ${kept.oldest.replace('T', ' ').replace('Z', '')} to ${kept.newest.replace('T', ' ').replace('Z', '')} UTC`;
  const limits = [
    ...(kept.retention.maxAgeMs === undefined
      ? []
      : // Two decimals at most: 0.25 h is a valid setting and must not read as 0 h.
        [`${Number((kept.retention.maxAgeMs / 3_600_000).toFixed(2))} h`]),
    ...(kept.retention.maxBytes === undefined
      ? []
      : [`${Math.round(kept.retention.maxBytes / 1_048_576)} MiB`]),
  ];
  const retention =
    limits.length > 0
      ? `kept up to ${limits.join(' and ')}`
      : kept.retention.lastRun === undefined
        ? 'no retention run yet'
        : 'kept without limit';
  return html`<p class="muted" data-testid="capture-kept">Capture holds ${kept.calls.toLocaleString('en')} calls (${mb} MB of SIP)${span}; ${retention}.</p>`;
}

export function renderCallsPage(
  ctx: PageContext,
  filters: CallFilters,
  calls: CallSummary[],
  nodes: { id: string; uri: string }[],
  kept?: KeptSummary,
): string {
  return renderLayout(
    ctx,
    'calls',
    'Calls',
    html`${filterForm(filters, nodes)}
${kept === undefined ? '' : keptLine(kept)}
${
  calls.length === 0
    ? html`<p class="empty">No calls match.</p>`
    : html`<p class="muted">${calls.length} call${calls.length === 1 ? '' : 's'}, newest first.</p>
${callsTable(calls, 'calls-table')}`
}`,
  );
}
