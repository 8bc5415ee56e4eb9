import type { LogEvent } from '../model.ts';
import { formatDetail, formatTsUs } from './format.ts';
import { html, type SafeHtml } from './html.ts';
import { type PageContext, renderLayout } from './layout.ts';

/** console.js builds the same row (with textContent) for events arriving over SSE. */
function eventRow(e: LogEvent): SafeHtml {
  return html`<tr data-testid="event-row">
<td class="mono">${formatTsUs(e.tsUs)}</td>
<td><span class="kind">${e.kind}</span></td>
<td>${e.subject}</td>
<td>${e.actor}</td>
<td class="mono small detail">${formatDetail(e.detail)}</td>
</tr>`;
}

export function renderEventsPage(ctx: PageContext, events: LogEvent[]): string {
  const sorted = [...events].sort((a, b) => b.tsUs - a.tsUs);
  return renderLayout(
    ctx,
    'events',
    'Events',
    html`<table class="grid events" data-testid="events-table">
<thead><tr><th>Time (UTC)</th><th>Kind</th><th>Subject</th><th>Actor</th><th>Detail</th></tr></thead>
<tbody id="events-body">
${sorted.map(eventRow)}
</tbody>
</table>
${sorted.length === 0 ? html`<p class="empty" id="events-empty">No events yet; new ones appear here as they happen.</p>` : ''}`,
  );
}
