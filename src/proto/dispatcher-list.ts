import { createHash } from 'node:crypto';
import { NODE_ID_PATTERN, SIP_URI_PATTERN } from '../registry/records.ts';

/**
 * Kamailio dispatcher.list rendering (dispatcher module, ds_load_list in dispatch.c, 5.6):
 * `setid destination flags priority attrs`, whitespace separated, `#` comments, each line read
 * with fgets(line, 1024): a longer line would be cut and mis-parsed, so we refuse to render one.
 */

/** fgets buffer in ds_load_list, including the newline and the terminating NUL. */
export const MAX_LINE_BYTES = 1022;

/** Flag 4: admin-disabled. Kamailio never probes it and a late reply never re-enables it. */
export const FLAG_DISABLED = 4;

export interface ListDestination {
  setId: number;
  uri: string;
  /** Node id; rendered as the `duid` attribute so RPCs address it by id, not by URI spelling. */
  duid: string;
  enabled: boolean;
  priority: number;
  /** Relative weight 1..100 (rweight, alg 11); also turned into a per-set percentage (weight, alg 9). */
  weight: number;
  /** Max concurrent calls for alg 10 (maxload); omitted when unlimited. */
  maxCalls?: number | undefined;
}

export interface RenderedList {
  text: string;
  /** sha256 of the destination lines: equal lists hash equal on every dispatcher. */
  hash: string;
  /** Attribute body per `${setId}/${duid}`, as Kamailio will report it in ATTRS.BODY. */
  attrs: Map<string, string>;
  /** Destinations refused because their line would not be safe (reason per duid). */
  refused: Map<string, string>;
}

export const destinationKey = (setId: number, duid: string): string => `${setId}/${duid}`;

/**
 * Per-set percentages for alg 9: proportional to the relative weights, summing to exactly 100
 * (largest remainder), each at least 1 so that every destination keeps a slot. Kamailio's
 * 100-slot table cannot honour more than 100 destinations in one set; docs recommend alg 11
 * (rweight) there.
 */
export function percentWeights(weights: readonly number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  if (weights.length === 0 || total <= 0) return weights.map(() => 1);
  const exact = weights.map((w) => (w * 100) / total);
  const floors = exact.map((x) => Math.max(1, Math.floor(x)));
  let left = 100 - floors.reduce((a, b) => a + b, 0);
  const order = exact
    .map((x, i) => ({ i, rem: x - Math.floor(x) }))
    .sort((a, b) => b.rem - a.rem || a.i - b.i);
  for (let k = 0; left > 0 && order.length > 0; k = (k + 1) % order.length, left--) floors[order[k]!.i]!++;
  return floors;
}

function attrBody(d: ListDestination, percent: number): string {
  let body = `duid=${d.duid};weight=${percent};rweight=${d.weight}`;
  if (d.maxCalls !== undefined) body += `;maxload=${d.maxCalls}`;
  return body;
}

/**
 * Renders the whole file. Deterministic: sorted by set then duid, no timestamps or names in
 * it, so every dispatcher watching the same registry writes byte-identical files.
 * Every field is re-checked here even though the registry decoder already did: this is the
 * last gate before a file Kamailio parses.
 */
export function renderDispatcherList(destinations: readonly ListDestination[]): RenderedList {
  const refused = new Map<string, string>();
  const safe = destinations.filter((d) => {
    const why = unsafeReason(d);
    if (why) refused.set(destinationKey(d.setId, d.duid), why);
    return !why;
  });
  const sorted = [...safe].sort(
    (a, b) => a.setId - b.setId || (a.duid < b.duid ? -1 : a.duid > b.duid ? 1 : 0),
  );
  const bySet = new Map<number, ListDestination[]>();
  for (const d of sorted) {
    const list = bySet.get(d.setId) ?? [];
    list.push(d);
    bySet.set(d.setId, list);
  }
  const lines: string[] = [];
  const attrs = new Map<string, string>();
  for (const [setId, dests] of bySet) {
    const percents = percentWeights(dests.map((d) => d.weight));
    dests.forEach((d, i) => {
      const body = attrBody(d, percents[i]!);
      const line = `${setId} ${d.uri} ${d.enabled ? 0 : FLAG_DISABLED} ${d.priority} ${body}`;
      if (Buffer.byteLength(line, 'utf8') > MAX_LINE_BYTES) {
        refused.set(destinationKey(setId, d.duid), `line longer than ${MAX_LINE_BYTES} bytes`);
        return;
      }
      attrs.set(destinationKey(setId, d.duid), body);
      lines.push(line);
    });
  }
  const body = lines.join('\n');
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
  const header = [
    '# dispatcher.list written by switchyard: do not edit, changes are overwritten.',
    '# setid destination flags priority attrs (flags 4 = disabled by switchyard)',
    `# hash ${hash}`,
  ];
  return { text: `${[...header, ...lines].join('\n')}\n`, hash, attrs, refused };
}

function unsafeReason(d: ListDestination): string | undefined {
  if (!Number.isInteger(d.setId) || d.setId < 1 || d.setId > 65535) return 'set id out of range';
  if (!NODE_ID_PATTERN.test(d.duid)) return 'duid has characters Kamailio cannot take';
  if (d.uri.length > 255 || !SIP_URI_PATTERN.test(d.uri)) return 'uri is not a plain SIP URI';
  if (!Number.isInteger(d.priority) || d.priority < 0 || d.priority > 1000) return 'priority out of range';
  if (!Number.isInteger(d.weight) || d.weight < 1 || d.weight > 100) return 'weight out of range';
  if (d.maxCalls !== undefined && (!Number.isInteger(d.maxCalls) || d.maxCalls < 1))
    return 'maxCalls out of range';
  return undefined;
}

/**
 * Parses a dispatcher.list that switchyard wrote (used at start-up to know what was applied
 * last, so a dispatcher restarted against an empty registry cannot wipe Kamailio). Lines that
 * do not parse, or carry no duid, are skipped and reported: the file may have been edited.
 */
export function parseDispatcherList(text: string): { destinations: ListDestination[]; skipped: number } {
  const destinations: ListDestination[] = [];
  let skipped = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const [setText, uri, flagsText = '0', priorityText = '0', attrsText = ''] = fields;
    const setId = Number(setText);
    const flags = Number(flagsText);
    const priority = Number(priorityText);
    const attrs = new Map<string, string>();
    for (const part of attrsText.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0) attrs.set(part.slice(0, eq), part.slice(eq + 1));
    }
    const duid = attrs.get('duid');
    const weight = Number(attrs.get('rweight') ?? attrs.get('weight') ?? '10');
    const maxload = attrs.get('maxload');
    const dest: ListDestination = {
      setId,
      uri: uri ?? '',
      duid: duid ?? '',
      enabled: (flags & FLAG_DISABLED) === 0,
      priority,
      weight: Number.isInteger(weight) && weight >= 1 && weight <= 100 ? weight : 10,
      maxCalls: maxload === undefined ? undefined : Number(maxload),
    };
    if (!Number.isInteger(flags) || unsafeReason(dest) !== undefined) {
      skipped++;
      continue;
    }
    destinations.push(dest);
  }
  return { destinations, skipped };
}
