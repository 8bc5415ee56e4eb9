import type { z } from 'zod';

/**
 * How a config leaf is written as text (in an environment variable or on the command line), and
 * so how such text is coerced before the schema validates it.
 */
export type LeafKind =
  | { type: 'string' }
  | { type: 'number' }
  | { type: 'boolean' }
  /** Comma-separated; each element coerced by `element`. */
  | { type: 'array'; element: LeafKind }
  /** Anything structured that has no key-by-key mapping (records, unions of objects...): JSON text. */
  | { type: 'json' };

/** One settable leaf of a config schema. */
export interface ConfigLeaf {
  /** Keys from the root, e.g. ['massRemoval', 'maxFraction']. */
  path: readonly string[];
  kind: LeafKind;
  /** The leaf's schema with its wrappers (default, optional...) still on. */
  schema: z.ZodType;
  /** Whether the schema supplies a value when the leaf is not set. */
  hasDefault: boolean;
  /** The default, when `hasDefault`. */
  defaultValue?: unknown;
}

/** An object level of the schema: which keys it knows and whether it accepts others. */
export interface ConfigObjectNode {
  shape: Readonly<Record<string, z.ZodType>>;
  /** True for loose objects (catchall other than never): unknown keys are not typos there. */
  acceptsUnknownKeys: boolean;
}

type Def = z.core.$ZodTypes['_zod']['def'];

function defOf(schema: z.ZodType | z.core.$ZodType): Def {
  return (schema as z.core.$ZodTypes)._zod.def;
}

/**
 * Strips the wrappers that do not change how a value is written (default, prefault, optional,
 * nullable, readonly, catch, non-optional; the input side of a pipe), so that the walk sees the
 * object, array or scalar underneath. Lazy schemas are resolved once.
 */
export function unwrapSchema(schema: z.ZodType | z.core.$ZodType): z.core.$ZodType {
  let current = schema as z.core.$ZodType;
  for (let depth = 0; depth < 64; depth++) {
    const def = defOf(current);
    switch (def.type) {
      case 'default':
      case 'prefault':
      case 'optional':
      case 'nullable':
      case 'readonly':
      case 'catch':
      case 'nonoptional':
        current = def.innerType;
        break;
      case 'pipe':
        current = def.in;
        break;
      case 'lazy':
        current = def.getter();
        break;
      default:
        return current;
    }
  }
  return current;
}

/** The object level of `schema` (after unwrapping), or undefined if it is not an object. */
export function objectNodeOf(schema: z.ZodType | z.core.$ZodType): ConfigObjectNode | undefined {
  const def = defOf(unwrapSchema(schema));
  if (def.type !== 'object') return undefined;
  const catchall = def.catchall === undefined ? undefined : defOf(def.catchall).type;
  return {
    shape: def.shape as Record<string, z.ZodType>,
    acceptsUnknownKeys: catchall !== undefined && catchall !== 'never',
  };
}

/** How text for `schema` is coerced. */
export function leafKindOf(schema: z.ZodType | z.core.$ZodType): LeafKind {
  const def = defOf(unwrapSchema(schema));
  switch (def.type) {
    case 'string':
    case 'enum':
    case 'template_literal':
      return { type: 'string' };
    case 'number':
    case 'bigint':
      return { type: 'number' };
    case 'boolean':
      return { type: 'boolean' };
    case 'literal': {
      const first = def.values[0];
      if (typeof first === 'number') return { type: 'number' };
      if (typeof first === 'boolean') return { type: 'boolean' };
      return { type: 'string' };
    }
    case 'array': {
      // Comma-separated text cannot carry structured elements (a JSON object has commas of its
      // own): a list of objects or of lists is written as one JSON array.
      const element = leafKindOf(def.element);
      return element.type === 'json' || element.type === 'array'
        ? { type: 'json' }
        : { type: 'array', element };
    }
    case 'union': {
      // A union of scalars of one kind (e.g. two enums) is written like that kind; anything else is JSON.
      const kinds = def.options.map((o) => leafKindOf(o));
      const first = kinds[0];
      if (first !== undefined && first.type !== 'array' && kinds.every((k) => k.type === first.type))
        return first;
      return { type: 'json' };
    }
    default:
      return { type: 'json' };
  }
}

function readDefault(schema: z.core.$ZodType): { hasDefault: boolean; defaultValue?: unknown } {
  let current = schema;
  for (let depth = 0; depth < 64; depth++) {
    const def = defOf(current);
    if (def.type === 'default' || def.type === 'prefault')
      return { hasDefault: true, defaultValue: def.defaultValue };
    if (
      def.type === 'optional' ||
      def.type === 'nullable' ||
      def.type === 'readonly' ||
      def.type === 'catch'
    ) {
      current = def.innerType;
      continue;
    }
    break;
  }
  return { hasDefault: false };
}

/**
 * Every settable leaf of an object schema, depth first in declaration order. Objects are walked
 * key by key; everything else (scalars, arrays, records) is a leaf.
 */
export function listLeaves(schema: z.ZodType): ConfigLeaf[] {
  const leaves: ConfigLeaf[] = [];
  const visit = (node: z.core.$ZodType, path: string[], depth: number): void => {
    const obj = depth < 16 ? objectNodeOf(node) : undefined;
    if (obj === undefined) {
      leaves.push({ path, kind: leafKindOf(node), schema: node as z.ZodType, ...readDefault(node) });
      return;
    }
    for (const [key, child] of Object.entries(obj.shape)) visit(child, [...path, key], depth + 1);
  };
  const root = objectNodeOf(schema);
  if (root === undefined) return leaves;
  for (const [key, child] of Object.entries(root.shape)) visit(child, [key], 1);
  return leaves;
}
