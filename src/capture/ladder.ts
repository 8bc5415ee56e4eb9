import type { ControlEvent, StoredMessage } from './model.ts';

/**
 * A call's ladder (sequence) diagram as standalone SVG, and the same call as plain text. Pure
 * functions of stored messages: the console serves the SVG inline, `switchyard trace` writes
 * either. Everything taken from SIP (methods, reasons, addresses) is XML-escaped: captured
 * traffic is attacker-controlled text.
 *
 * Layout: one column per `ip:port` in order of first appearance, one row per message, time
 * running down; control-plane events that fall within the call are drawn as labelled dashed
 * rules at their place in time, between the messages around them.
 */

const COL_WIDTH = 190;
const ROW_HEIGHT = 34;
const LEFT = 130;
const TOP = 56;
const MAX_LABEL = 40;

type Row = { kind: 'message'; m: StoredMessage } | { kind: 'event'; e: ControlEvent };

/** XML-escaped, and control characters (not allowed in XML 1.0, or invisible) shown as `?`. */
export function escapeXml(text: string): string {
  return text
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
    .replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function endpoint(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** `INVITE`, `180 Ringing`, `200 OK (INVITE)` for responses to something else than the call's INVITE. */
export function messageLabel(m: StoredMessage): string {
  if (m.method !== undefined) return m.method;
  const firstLine = firstLineOf(m.raw);
  const reason = firstLine.replace(/^SIP\/2\.0\s+\d{3}\s*/i, '');
  const cseqMethod = m.cseq.split(' ')[1] ?? '';
  const label = `${m.status ?? ''} ${reason}`.trim();
  return cseqMethod && cseqMethod !== 'INVITE' ? `${label} (${cseqMethod})` : label;
}

function firstLineOf(raw: Uint8Array): string {
  const end = Math.min(raw.length, 200);
  let i = 0;
  while (i < end && raw[i] !== 0x0d && raw[i] !== 0x0a) i++;
  return Buffer.from(raw.buffer, raw.byteOffset, i).toString('latin1');
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** `+0.123 s` from the first message. */
function offset(tsUs: number, t0: number): string {
  return `+${((tsUs - t0) / 1e6).toFixed(3)} s`;
}

export function ladderSvg(messages: readonly StoredMessage[], events: readonly ControlEvent[] = []): string {
  const sorted = [...messages].sort((a, b) => a.tsUs - b.tsUs || a.id - b.id);
  const columns: string[] = [];
  for (const m of sorted) {
    for (const ep of [endpoint(m.srcIp, m.srcPort), endpoint(m.dstIp, m.dstPort)]) {
      if (!columns.includes(ep)) columns.push(ep);
    }
  }
  const t0 = sorted[0]?.tsUs ?? 0;
  const tEnd = sorted.at(-1)?.tsUs ?? 0;
  const rows: Row[] = sorted.map((m) => ({ kind: 'message', m }));
  for (const e of events) {
    if (e.tsUs < t0 || e.tsUs > tEnd) continue;
    const at = rows.findIndex((r) => (r.kind === 'message' ? r.m.tsUs : r.e.tsUs) > e.tsUs);
    rows.splice(at < 0 ? rows.length : at, 0, { kind: 'event', e });
  }
  const width = LEFT + Math.max(1, columns.length) * COL_WIDTH;
  const height = TOP + rows.length * ROW_HEIGHT + 30;
  const x = (ep: string) => LEFT + columns.indexOf(ep) * COL_WIDTH + COL_WIDTH / 2;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="ui-monospace, monospace" font-size="12">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>',
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
  );
  for (const ep of columns) {
    out.push(
      `<text x="${x(ep)}" y="24" text-anchor="middle" font-weight="bold">${escapeXml(ep)}</text>`,
      `<line x1="${x(ep)}" y1="34" x2="${x(ep)}" y2="${height - 10}" stroke="#bbb"/>`,
    );
  }
  rows.forEach((row, i) => {
    const y = TOP + i * ROW_HEIGHT + ROW_HEIGHT / 2;
    if (row.kind === 'event') {
      const label = `${row.e.kind} ${row.e.subject}`;
      out.push(
        `<g class="event"><line x1="${LEFT - 10}" y1="${y}" x2="${width - 10}" y2="${y}" stroke="#c60" stroke-dasharray="6 4"/>`,
        `<text x="8" y="${y + 4}" fill="#c60">${escapeXml(offset(row.e.tsUs, t0))}</text>`,
        `<text x="${LEFT}" y="${y - 4}" fill="#c60">${escapeXml(truncate(label, 80))}</text></g>`,
      );
      return;
    }
    const m = row.m;
    const x1 = x(endpoint(m.srcIp, m.srcPort));
    const x2 = x(endpoint(m.dstIp, m.dstPort));
    const colour =
      m.status === undefined ? '#0a4' : m.status >= 400 ? '#c22' : m.status >= 200 ? '#06c' : '#777';
    const label = escapeXml(truncate(messageLabel(m), MAX_LABEL));
    out.push(
      `<g class="message" data-id="${m.id}">`,
      `<text x="8" y="${y + 4}" fill="#555">${escapeXml(offset(m.tsUs, t0))}</text>`,
    );
    if (x1 === x2) {
      // A message to itself (rare: loopback hairpin): a small loop.
      out.push(
        `<path d="M ${x1} ${y - 6} h 30 v 12 h -30" fill="none" stroke="${colour}" marker-end="url(#arrow)"/>`,
      );
    } else {
      out.push(
        `<line x1="${x1}" y1="${y}" x2="${x2}" y2="${y}" stroke="${colour}" stroke-width="1.5" marker-end="url(#arrow)"/>`,
      );
    }
    out.push(
      `<text x="${(x1 + x2) / 2}" y="${y - 5}" text-anchor="middle" fill="${colour}">${label}</text></g>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The call as text: one header line per message, then the message as received. */
export function callText(messages: readonly StoredMessage[], events: readonly ControlEvent[] = []): string {
  const sorted = [...messages].sort((a, b) => a.tsUs - b.tsUs || a.id - b.id);
  const t0 = sorted[0]?.tsUs ?? 0;
  const items: Array<{ ts: number; text: string }> = sorted.map((m) => ({
    ts: m.tsUs,
    text: [
      `--- ${new Date(m.tsUs / 1000).toISOString()} (${offset(m.tsUs, t0)}) ${m.transport.toUpperCase()} ${endpoint(m.srcIp, m.srcPort)} -> ${endpoint(m.dstIp, m.dstPort)} capture ${m.captureId}`,
      safeMessageText(Buffer.from(m.raw.buffer, m.raw.byteOffset, m.raw.byteLength).toString('utf8')),
      '',
    ].join('\n'),
  }));
  for (const e of events) {
    items.push({
      ts: e.tsUs,
      text: `${safeMessageText(`=== ${new Date(e.tsUs / 1000).toISOString()} (${offset(e.tsUs, t0)}) ${e.kind} ${e.subject} ${JSON.stringify(e.detail)}`)}\n`,
    });
  }
  items.sort((a, b) => a.ts - b.ts);
  return items.map((i) => i.text).join('\n');
}

/**
 * Captured bytes made safe for a terminal: CRLF to LF, and every other control character
 * (an ESC could recolour or retitle the operator's terminal) shown as `\xNN`.
 */
export function safeMessageText(text: string): string {
  return text
    .replace(/\r\n/g, '\n')
    .replace(
      /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g,
      (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
    )
    .trimEnd();
}
