import type { LeafKind } from './schema-walk.ts';

/** Prefix of every environment variable switchyard reads. */
export const DEFAULT_ENV_PREFIX = 'SWITCHYARD_';

/**
 * Variables switchyard sets for the commands it runs (the agent's hooks), not config. A hook
 * that calls `switchyard nodes` inherits them; the loader must not call them unknown keys.
 */
export const PASSED_DOWN_ENV_NAMES = ['SWITCHYARD_PHASE', 'SWITCHYARD_PREVIOUS_PHASE'] as const;

/** `kamailioRpc` -> `KAMAILIO_RPC`, `registryCallTimeoutMs` -> `REGISTRY_CALL_TIMEOUT_MS`. */
function toUpperSnake(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toUpperCase();
}

/**
 * The environment variable that sets a config key: UPPER_SNAKE per key, `__` between nesting
 * levels, after the prefix.
 *
 * @example envNameFor('massRemoval.maxFraction') === 'SWITCHYARD_MASS_REMOVAL__MAX_FRACTION'
 */
export function envNameFor(path: string | readonly string[], prefix: string = DEFAULT_ENV_PREFIX): string {
  const keys = typeof path === 'string' ? path.split('.') : path;
  return prefix + keys.map(toUpperSnake).join('__');
}

export type Coerced = { ok: true; value: unknown } | { ok: false; message: string };

const NUMBER_TEXT = /^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/;
const TEXT_SAMPLE_CHARS = 60;

/** A short quoted sample of a value for a message (never the whole of a long value). */
export function quoteSample(text: string): string {
  const sample = text.length > TEXT_SAMPLE_CHARS ? `${text.slice(0, TEXT_SAMPLE_CHARS)}...` : text;
  return JSON.stringify(sample);
}

/**
 * Turns text (an environment variable, a command-line flag) into the value a leaf expects.
 * Strict on purpose: `Number('')` is 0 and `Number('0x1f')` is 31, neither of which an operator
 * means, so numbers must look like decimal numbers. Failures name the expected form; `show`
 * says whether the text may be echoed (it may not for secrets).
 */
export function coerceText(text: string, kind: LeafKind, show = true): Coerced {
  const got = show ? `, got ${quoteSample(text)}` : '';
  switch (kind.type) {
    case 'string':
      return { ok: true, value: text };
    case 'number': {
      const trimmed = text.trim();
      if (!NUMBER_TEXT.test(trimmed)) return { ok: false, message: `expected a number${got}` };
      return { ok: true, value: Number(trimmed) };
    }
    case 'boolean': {
      const lower = text.trim().toLowerCase();
      if (lower === 'true' || lower === '1') return { ok: true, value: true };
      if (lower === 'false' || lower === '0') return { ok: true, value: false };
      return { ok: false, message: `expected true, false, 1 or 0${got}` };
    }
    case 'array': {
      if (text.trim() === '') return { ok: true, value: [] };
      const values: unknown[] = [];
      for (const part of text.split(',')) {
        const element = coerceText(kind.element.type === 'string' ? part.trim() : part, kind.element, show);
        if (!element.ok)
          return { ok: false, message: `list element ${values.length + 1}: ${element.message}` };
        values.push(element.value);
      }
      return { ok: true, value: values };
    }
    case 'json':
      try {
        return { ok: true, value: JSON.parse(text) };
      } catch {
        return { ok: false, message: `expected JSON${got}` };
      }
  }
}

/**
 * The environment for processes switchyard starts (the supervised service, hooks): the agent's
 * own, minus every SWITCHYARD_* variable. Config can carry secrets (the AMI URL's password) and
 * a child gets what it needs explicitly (hooks: SWITCHYARD_PHASE and friends). Besides the
 * loader, the only reader of process.env.
 */
export function childEnvironment(
  env: Readonly<Record<string, string | undefined>> = process.env,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env))
    if (v !== undefined && !k.startsWith(DEFAULT_ENV_PREFIX)) out[k] = v;
  return out;
}
