/** What a secret is replaced with in printed config and logs. */
export const REDACTED = '[redacted]';

// scheme://user:password@host -> scheme://user:[redacted]@host. The password stops at the last
// '@' before the host part, so passwords containing '@' are still fully hidden.
const URL_USERINFO = /([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/\s:@]*:)[^/\s]*@/g;

/** Hides the password of every `scheme://user:password@` found in a string. */
export function redactUrlPasswords(text: string): string {
  return text.replace(URL_USERINFO, `$1${REDACTED}@`);
}

function matches(pattern: readonly string[], path: readonly string[]): boolean {
  if (pattern.length !== path.length) return false;
  return pattern.every((p, i) => p === '*' || p === path[i]);
}

/**
 * A copy of `config` for printing: values at `secretPaths` (dotted; `*` matches any one key,
 * e.g. `trunks.*.password`) become "[redacted]", and URL passwords are hidden in every string.
 * Unset secrets stay unset, so the output still tells whether a secret was given.
 */
export function redactConfig<T>(config: T, secretPaths: readonly string[] = []): T {
  const patterns = secretPaths.map((p) => p.split('.'));
  const visit = (value: unknown, path: string[]): unknown => {
    if (value !== undefined && value !== null && patterns.some((p) => matches(p, path))) return REDACTED;
    if (typeof value === 'string') return redactUrlPasswords(value);
    if (Array.isArray(value)) return value.map((v, i) => visit(v, [...path, String(i)]));
    if (typeof value === 'object' && value !== null) {
      // fromEntries defines own properties, so even a key named __proto__ stays plain data.
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, visit(v, [...path, k])]));
    }
    return value;
  };
  return visit(config, []) as T;
}
