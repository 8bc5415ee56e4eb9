/** Small formatting helpers shared by the pages (pure; the server passes every "now"). */

/** `2026-12-01 10:20:30.123` in UTC, from microseconds since the epoch. */
export function formatTsUs(tsUs: number): string {
  const d = new Date(Math.floor(tsUs / 1000));
  if (Number.isNaN(d.getTime())) return String(tsUs);
  return d.toISOString().replace('T', ' ').replace('Z', '');
}

/** `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago` (`in 4 s` for clock skew); the input when unparsable. */
export function relativeTime(iso: string, nowIso: string): string {
  const then = Date.parse(iso);
  const now = Date.parse(nowIso);
  if (Number.isNaN(then) || Number.isNaN(now)) return iso;
  const diffS = Math.round((now - then) / 1000);
  const abs = Math.abs(diffS);
  const text =
    abs < 60
      ? `${abs} s`
      : abs < 3600
        ? `${Math.floor(abs / 60)} min`
        : abs < 86_400
          ? `${Math.floor(abs / 3600)} h`
          : `${Math.floor(abs / 86_400)} d`;
  return diffS >= 0 ? `${text} ago` : `in ${text}`;
}

/** Microseconds as `850 ms` or `12.4 s`; '-' when unknown. */
export function formatDurationUs(us: number | undefined): string {
  if (us === undefined) return '-';
  if (us < 1_000_000) return `${Math.round(us / 1000)} ms`;
  if (us < 600_000_000) return `${(us / 1_000_000).toFixed(1)} s`;
  return `${Math.floor(us / 60_000_000)} min ${Math.round((us % 60_000_000) / 1_000_000)} s`;
}

/** Signed offset from a start time, `+1.234 s` / `-0.500 s`. */
export function formatOffsetUs(tsUs: number, startUs: number): string {
  const s = (tsUs - startUs) / 1_000_000;
  return `${s < 0 ? '-' : '+'}${Math.abs(s).toFixed(3)} s`;
}

/**
 * An event's detail as `key=value key2="two words"`: strings without spaces or quotes as they
 * are, everything else as JSON. console.js formats live events the same way.
 */
export function formatDetail(detail: Record<string, unknown>): string {
  return Object.entries(detail)
    .map(([k, v]) => `${k}=${typeof v === 'string' && /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
}
