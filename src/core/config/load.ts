import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { coerceText, DEFAULT_ENV_PREFIX, envNameFor, PASSED_DOWN_ENV_NAMES } from './env.ts';
import { findJsonErrorOffset } from './json-error.ts';
import { redactUrlPasswords } from './redact.ts';
import { type ConfigLeaf, leafKindOf, listLeaves, objectNodeOf } from './schema-walk.ts';

/**
 * Where a value came from, in increasing precedence: schema defaults (no source), the caller's
 * defaults (e.g. `switchyard start`'s single-host choices), the file, the environment, flags.
 */
export type ConfigSource = 'defaults' | 'file' | 'env' | 'flags';

/** One thing wrong with the configuration. Every problem is reported, not just the first. */
export interface ConfigProblem {
  /**
   * Dotted key path (`massRemoval.maxFraction`, `sets.1` for an array element); for problems
   * outside the key space, the environment variable name or `file:line:col`.
   */
  path: string;
  message: string;
  source?: ConfigSource;
  /** The variable or file that supplied the value, when that helps to find it. */
  origin?: string;
}

export type ConfigResult<T> = { ok: true; config: Readonly<T> } | { ok: false; problems: ConfigProblem[] };

export interface LoadConfigOptions<S extends z.ZodType> {
  /** An object schema; defaults live in it. */
  schema: S;
  /**
   * Defaults of the caller that override the schema's (`switchyard start` pins the single-host
   * choices here so that they hold even if a schema default changes). Taken as typed.
   */
  defaults?: Readonly<Record<string, unknown>> | undefined;
  /** A .yaml, .yml or .json file. */
  file?: string | undefined;
  /** Defaults to process.env (read only here and in childEnvironment). */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  envPrefix?: string | undefined;
  /**
   * Command-line values, shaped like the schema (`{ admin: { port: '9401' } }`). Undefined values
   * are ignored, so commander's unset options can be passed as they are. Strings (and arrays of
   * strings) are coerced like environment values when the key expects a number, boolean or list.
   */
  flags?: Readonly<Record<string, unknown>> | undefined;
  /** Dotted paths of secrets: their values are never echoed in problems. */
  secretPaths?: readonly string[] | undefined;
  /**
   * Schemas of the other roles that read the same environment (one host, one .env). Their
   * variables are not typos for this one, so they are not reported as unknown.
   */
  sharedEnvSchemas?: readonly z.ZodType[] | undefined;
}

type Provenance = Map<string, { source: ConfigSource; origin?: string }>;
type Plain = Record<string, unknown>;

function isPlainObject(value: unknown): value is Plain {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Keys that must never be assigned with `obj[key] = ...` (prototype pollution). */
function isDangerousKey(key: string): boolean {
  return key === '__proto__' || key === 'constructor' || key === 'prototype';
}

function setOwn(target: Plain, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 4;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** " (did you mean X?)" for the closest candidate within a small edit distance, else "". */
function suggest(name: string, candidates: Iterable<string>): string {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  const upper = name.toUpperCase();
  for (const c of candidates) {
    const d = editDistance(upper, c.toUpperCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= 3 && bestDistance <= name.length / 2
    ? ` (did you mean ${best}?)`
    : '';
}

function lineColAt(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, col: (lines.at(-1)?.length ?? 0) + 1 };
}

const MAX_FILE_PROBLEMS = 20;

/** Reads and parses the config file into a plain object, or problems that say where it broke. */
function readFileLayer(file: string): { value?: Plain; problems: ConfigProblem[] } {
  const problem = (path: string, message: string): ConfigProblem => ({ path, message, source: 'file' });
  const ext = extname(file).toLowerCase();
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') {
    return { problems: [problem(file, 'unsupported config file type: use .yaml, .yml or .json')] };
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    return { problems: [problem(file, `cannot read config file: ${why}`)] };
  }
  let parsed: unknown;
  if (ext === '.json') {
    try {
      parsed = JSON.parse(text);
    } catch {
      // V8's message quotes the text around the error, which may be a secret: say where, not what.
      const offset = findJsonErrorOffset(text);
      const { line, col } = lineColAt(text, offset);
      const what =
        offset >= text.length ? 'unexpected end of input' : `unexpected ${JSON.stringify(text[offset])}`;
      return { problems: [problem(`${file}:${line}:${col}`, `invalid JSON: ${what}`)] };
    }
  } else {
    const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
    if (doc.errors.length > 0) {
      return {
        problems: doc.errors.slice(0, MAX_FILE_PROBLEMS).map((e) => {
          const pos = e.linePos?.[0];
          const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
          const reason = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
          return problem(where, `invalid YAML: ${reason}`);
        }),
      };
    }
    try {
      parsed = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      return { problems: [problem(file, `invalid YAML: ${(err as Error).message}`)] };
    }
  }
  if (parsed === null || parsed === undefined) return { value: {}, problems: [] };
  if (!isPlainObject(parsed))
    return { problems: [problem(file, 'the top level must be a mapping of config keys')] };
  return { value: parsed, problems: [] };
}

interface LayerContext {
  source: ConfigSource;
  origin?: string;
  problems: ConfigProblem[];
  /** Coerce strings like environment values (flags) or take values as typed (file). */
  coerceStrings: boolean;
  isSecret(path: readonly string[]): boolean;
}

/**
 * Copies one layer (file or flags) keeping only keys the schema knows: unknown keys are
 * reported with their path and dropped, undefined values are skipped, and flag strings are
 * coerced to what the key expects.
 */
function sanitizeLayer(
  value: unknown,
  schema: z.core.$ZodType | undefined,
  path: string[],
  ctx: LayerContext,
): unknown {
  const node = schema === undefined ? undefined : objectNodeOf(schema);
  if (node !== undefined && isPlainObject(value)) {
    const out: Plain = {};
    for (const [key, child] of Object.entries(value)) {
      if (child === undefined) continue;
      const childSchema = Object.hasOwn(node.shape, key) ? node.shape[key] : undefined;
      if (childSchema === undefined && (!node.acceptsUnknownKeys || isDangerousKey(key))) {
        const where = [...path, key].join('.');
        ctx.problems.push({
          path: where,
          message: `unknown key${suggest(key, Object.keys(node.shape))}`,
          source: ctx.source,
          ...(ctx.origin === undefined ? {} : { origin: ctx.origin }),
        });
        continue;
      }
      setOwn(out, key, sanitizeLayer(child, childSchema, [...path, key], ctx));
    }
    return out;
  }
  if (!ctx.coerceStrings || schema === undefined || node !== undefined) return value;
  const kind = leafKindOf(schema);
  const coerce = (text: string) => {
    const res = coerceText(text, kind, !ctx.isSecret(path));
    if (res.ok) return res.value;
    ctx.problems.push({ path: path.join('.'), message: res.message, source: ctx.source });
    return undefined;
  };
  if (typeof value === 'string' && kind.type !== 'string') return coerce(value);
  if (kind.type === 'array' && Array.isArray(value) && value.every((v) => typeof v === 'string')) {
    if (kind.element.type === 'string') return value;
    // A repeated flag (`--set 1 --set 2`), each possibly a list itself (`--set 1,2`).
    return coerce(value.join(','));
  }
  return value;
}

/** Builds the environment layer from every variable under the prefix. */
function readEnvLayer(
  env: Readonly<Record<string, string | undefined>>,
  prefix: string,
  leaves: readonly ConfigLeaf[],
  sharedNames: ReadonlySet<string>,
  isSecret: (path: readonly string[]) => boolean,
  problems: ConfigProblem[],
  provenanceOrigins: Map<string, string>,
): Plain {
  const byName = new Map(leaves.map((leaf) => [envNameFor(leaf.path, prefix), leaf]));
  const layer: Plain = {};
  // Sorted so that problems come out in a stable order whatever the environment's order.
  const names = Object.keys(env)
    .filter((n) => prefix !== '' && n.startsWith(prefix))
    .sort();
  for (const name of names) {
    const text = env[name];
    if (typeof text !== 'string') continue;
    const leaf = byName.get(name);
    if (leaf === undefined) {
      if (sharedNames.has(name) || (PASSED_DOWN_ENV_NAMES as readonly string[]).includes(name)) continue;
      problems.push({
        path: name,
        message: `no config key is set by this variable${suggest(name, byName.keys())}`,
        source: 'env',
      });
      continue;
    }
    const res = coerceText(text, leaf.kind, !isSecret(leaf.path));
    if (!res.ok) {
      problems.push({ path: leaf.path.join('.'), message: res.message, source: 'env', origin: name });
      continue;
    }
    let target = layer;
    for (const key of leaf.path.slice(0, -1)) {
      const next = target[key];
      if (isPlainObject(next)) target = next;
      else {
        const created: Plain = {};
        setOwn(target, key, created);
        target = created;
      }
    }
    setOwn(target, leaf.path.at(-1) ?? '', res.value);
    provenanceOrigins.set(leaf.path.join('.'), name);
  }
  return layer;
}

/**
 * Deep-merges `layer` into `target`: objects key by key, anything else (arrays included)
 * replaces. Records which source last set each path, to say where a bad value came from.
 */
function mergeLayer(
  target: Plain,
  layer: Plain,
  path: string[],
  source: ConfigSource,
  provenance: Provenance,
  originOf: (path: string) => string | undefined,
): void {
  for (const [key, value] of Object.entries(layer)) {
    if (value === undefined) continue;
    const childPath = [...path, key];
    const dotted = childPath.join('.');
    const origin = originOf(dotted);
    provenance.set(dotted, origin === undefined ? { source } : { source, origin });
    const existing = target[key];
    if (isPlainObject(value)) {
      const into = isPlainObject(existing) ? existing : {};
      if (into !== existing) setOwn(target, key, into);
      mergeLayer(into, value, childPath, source, provenance, originOf);
    } else {
      setOwn(target, key, Array.isArray(value) ? [...value] : value);
    }
  }
}

function attribute(
  path: readonly PropertyKey[],
  provenance: Provenance,
): Pick<ConfigProblem, 'source' | 'origin'> {
  const keys = path.map(String);
  for (let n = keys.length; n > 0; n--) {
    const found = provenance.get(keys.slice(0, n).join('.'));
    if (found !== undefined) return found;
  }
  return {};
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * Loads a role's configuration: schema defaults (then the caller's `defaults`), then the file,
 * then SWITCHYARD_* environment variables, then command-line flags, deep-merged in that order (objects key by key, arrays
 * replace). Validates once and reports every problem with its path and source; on success the
 * config is deep-frozen. Never throws for bad input: the caller prints
 * `formatConfigProblems(problems)` and exits 2.
 *
 * @example
 * const res = loadConfig({ schema: dispatcherConfigSchema, file: opts.config, flags: { admin: { port: opts.adminPort } } });
 * if (!res.ok) { process.stderr.write(formatConfigProblems(res.problems)); process.exitCode = 2; return; }
 */
export function loadConfig<S extends z.ZodType>(opts: LoadConfigOptions<S>): ConfigResult<z.output<S>> {
  const prefix = opts.envPrefix ?? DEFAULT_ENV_PREFIX;
  const env = opts.env ?? process.env;
  const leaves = listLeaves(opts.schema);
  const secretPatterns = (opts.secretPaths ?? []).map((p) => p.split('.'));
  // A leaf is secret when a secret path names it or lies inside it: `templateVars.*` makes the
  // whole `templateVars` leaf (a record, written as JSON text) secret.
  const isSecret = (path: readonly string[]) =>
    secretPatterns.some((p) => p.length >= path.length && path.every((k, i) => p[i] === '*' || p[i] === k));
  const sharedNames = new Set<string>();
  for (const other of opts.sharedEnvSchemas ?? []) {
    for (const leaf of listLeaves(other)) sharedNames.add(envNameFor(leaf.path, prefix));
  }

  const problems: ConfigProblem[] = [];
  const merged: Plain = {};
  const provenance: Provenance = new Map();
  const schema = opts.schema as unknown as z.core.$ZodType;

  if (opts.defaults !== undefined) {
    const ctx: LayerContext = { source: 'defaults', problems, coerceStrings: false, isSecret };
    const clean = sanitizeLayer(opts.defaults, schema, [], ctx);
    if (isPlainObject(clean)) mergeLayer(merged, clean, [], 'defaults', provenance, () => undefined);
  }

  let fileUnreadable = false;
  if (opts.file !== undefined) {
    const { value, problems: fileProblems } = readFileLayer(opts.file);
    problems.push(...fileProblems);
    if (value === undefined) fileUnreadable = true;
    else {
      const ctx: LayerContext = {
        source: 'file',
        origin: opts.file,
        problems,
        coerceStrings: false,
        isSecret,
      };
      const clean = sanitizeLayer(value, schema, [], ctx) as Plain;
      const file = opts.file;
      mergeLayer(merged, clean, [], 'file', provenance, () => file);
    }
  }

  const envOrigins = new Map<string, string>();
  const envLayer = readEnvLayer(env, prefix, leaves, sharedNames, isSecret, problems, envOrigins);
  mergeLayer(merged, envLayer, [], 'env', provenance, (p) => envOrigins.get(p));

  if (opts.flags !== undefined) {
    const ctx: LayerContext = { source: 'flags', problems, coerceStrings: true, isSecret };
    const clean = sanitizeLayer(opts.flags, schema, [], ctx);
    if (isPlainObject(clean)) mergeLayer(merged, clean, [], 'flags', provenance, () => undefined);
  }

  // Without the file's contents, validation would only add noise (keys the file sets look missing).
  if (fileUnreadable) return { ok: false, problems };

  const parsed = opts.schema.safeParse(merged);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const keys =
        issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
      for (const path of keys) {
        const where = attribute(path, provenance);
        const message =
          issue.code === 'unrecognized_keys' ? 'unknown key' : redactUrlPasswords(issue.message);
        problems.push({ path: path.map(String).join('.') || '(root)', message, ...where });
      }
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, config: deepFreeze(parsed.data as z.output<S>) };
}

/** One line per problem: `config error: <path>: <message> (from <source> [<origin>])`. */
export function formatConfigProblems(problems: readonly ConfigProblem[]): string {
  return problems
    .map((p) => {
      const origin = p.origin !== undefined && p.origin !== p.path ? ` ${p.origin}` : '';
      const from = p.source === undefined ? '' : ` (from ${p.source}${origin})`;
      return `config error: ${p.path}: ${p.message}${from}\n`;
    })
    .join('');
}
