/**
 * Escaping for the console's server-rendered pages. Every interpolation in an `html` template is
 * escaped unless it is already `SafeHtml` (the result of another `html` template, or `raw()` for
 * markup produced elsewhere and escaped there, like the capture's SVG ladder). Attribute values
 * are always written in double quotes in the templates; escaping both quote kinds keeps a value
 * from breaking out even if a template used single quotes.
 */

const SAFE = Symbol('safe-html');

export interface SafeHtml {
  readonly [SAFE]: true;
  readonly value: string;
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c] ?? c);
}

/** Marks markup as safe to embed unescaped: only for text escaped by its producer. */
export function raw(markup: string): SafeHtml {
  return { [SAFE]: true, value: markup };
}

export function isSafeHtml(value: unknown): value is SafeHtml {
  return typeof value === 'object' && value !== null && (value as Partial<SafeHtml>)[SAFE] === true;
}

/** null, undefined and false render as nothing (handy for `cond && html\`...\``). */
function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (isSafeHtml(value)) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '');
  return raw(out);
}
