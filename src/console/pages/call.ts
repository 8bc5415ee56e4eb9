import type { ControlEvent } from '../../capture/model.ts';
import type { CallDetail, CallMessage } from '../model.ts';
import { callsTable, statusClass } from './calls.ts';
import { formatDetail, formatDurationUs, formatOffsetUs, formatTsUs } from './format.ts';
import { html, raw, type SafeHtml } from './html.ts';
import { type PageContext, renderLayout } from './layout.ts';

function messageRow(m: CallMessage, startUs: number): SafeHtml {
  return html`<tr data-testid="message-row">
<td class="num mono">${formatOffsetUs(m.tsUs, startUs)}</td>
<td class="mono small">${m.src} → ${m.dst}${m.transport === 'udp' ? '' : html` <span class="tag">${m.transport}</span>`}</td>
<td><details><summary>${m.label}</summary><pre class="sip">${m.text}</pre></details></td>
<td class="mono">${m.cseq}</td>
</tr>`;
}

function eventItem(e: ControlEvent, startUs: number): SafeHtml {
  return html`<li data-testid="call-event"><span class="mono">${formatOffsetUs(e.tsUs, startUs)}</span> <strong>${e.kind}</strong> ${e.subject} <span class="muted">${formatDetail(e.detail)}</span></li>`;
}

export function renderCallPage(ctx: PageContext, detail: CallDetail, ladderSvg: string): string {
  const c = detail.call;
  const id = encodeURIComponent(c.callId);
  const startUs = c.firstTsUs;
  const main = html`<dl class="summary" data-testid="call-summary">
<div><dt>Call-ID</dt><dd class="mono">${c.callId}</dd></div>
<div><dt>Started (UTC)</dt><dd class="mono">${formatTsUs(c.firstTsUs)}</dd></div>
<div><dt>From → To</dt><dd>${c.fromUser || '?'} → ${c.toUser || '?'}</dd></div>
<div><dt>Method</dt><dd>${c.method}</dd></div>
<div><dt>Status</dt><dd><span class="${statusClass(c.status)}">${c.status}</span>${c.finalStatus === undefined ? '' : ` (${c.finalStatus})`}</dd></div>
<div><dt>Setup delay</dt><dd>${formatDurationUs(c.setupDelayUs)}</dd></div>
<div><dt>Duration</dt><dd>${formatDurationUs(c.durationUs)}</dd></div>
<div><dt>Messages</dt><dd>${c.messageCount}</dd></div>
<div><dt>Endpoints</dt><dd class="mono small">${c.endpoints.join(', ')}</dd></div>
<div><dt>Nodes</dt><dd>${detail.nodes.length === 0 ? '-' : detail.nodes.join(', ')}</dd></div>
${c.correlation.length === 0 ? '' : html`<div><dt>Correlation</dt><dd class="mono small">${c.correlation.join(', ')}</dd></div>`}
</dl>
<p class="downloads"><a href="/api/v1/calls/${id}/pcap" data-testid="pcap-link" download>Download pcap</a> · <a href="/api/v1/calls/${id}/text" data-testid="text-link">Text</a></p>
${
  detail.related.length === 0
    ? ''
    : html`<section><h2>Related legs</h2>
${callsTable(detail.related, 'related-table')}
</section>`
}
<section><h2>Ladder</h2>
<div class="ladder" data-testid="ladder">${raw(ladderSvg)}</div>
</section>
${
  detail.events.length === 0
    ? ''
    : html`<section><h2>Control-plane events</h2>
<ul class="events-list">${detail.events.map((e) => eventItem(e, startUs))}</ul>
</section>`
}
<section><h2>Messages</h2>
${
  detail.messages.length === 0
    ? html`<p class="empty">No messages stored (retention may have removed them).</p>`
    : html`<table class="grid messages" data-testid="messages-table">
<thead><tr><th>Offset</th><th>Src → Dst</th><th>Message</th><th>CSeq</th></tr></thead>
<tbody>
${detail.messages.map((m) => messageRow(m, startUs))}
</tbody>
</table>`
}
</section>`;
  return renderLayout(ctx, 'calls', `Call ${c.fromUser || '?'} → ${c.toUser || '?'}`, main);
}
