/**
 * Regenerates the key tables of docs/reference/config.md from the zod schemas, so the reference
 * cannot drift from the code: keys, environment names, types and defaults come from the schemas,
 * meanings from the TSDoc comment above each key in the schema's source file.
 *
 *   node scripts/gen-config-doc.ts           rewrite the tables in place
 *   node scripts/gen-config-doc.ts --check   exit 1 if the doc is stale (for CI)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import ts from 'typescript';
import { z } from 'zod';
import { agentConfigSchema } from '../src/agent/config.ts';
import { captureConfigSchema } from '../src/capture/config.ts';
import { cliConfigSchema } from '../src/cli/config.ts';
import { envNameFor, listLeaves } from '../src/core/config/index.ts';
import { dispatcherConfigSchema } from '../src/dispatcher/config.ts';
import { upConfigSchema } from '../src/up/config.ts';

const ROOT = resolve(import.meta.dirname, '..');
const DOC = resolve(ROOT, 'docs/reference/config.md');

interface Section {
  /** Marker name: the table sits between `<!-- generated:config:NAME -->` and `<!-- /generated:config:NAME -->`. */
  name: string;
  schema: z.ZodType;
  /** The file declaring the schema, read for the comments above its keys. */
  source: string;
}

const SECTIONS: Section[] = [
  { name: 'dispatcher', schema: dispatcherConfigSchema, source: 'src/dispatcher/config.ts' },
  { name: 'cli', schema: cliConfigSchema, source: 'src/cli/config.ts' },
  { name: 'agent', schema: agentConfigSchema, source: 'src/agent/config.ts' },
  { name: 'capture', schema: captureConfigSchema, source: 'src/capture/config.ts' },
  { name: 'up', schema: upConfigSchema, source: 'src/up/config.ts' },
];

/** Defaults computed at run time, described instead of shown as this machine's value. */
const DYNAMIC_DEFAULTS: Record<string, string> = {
  'dispatcher:name': 'the host name, characters outside `[A-Za-z0-9._-]` replaced by `-`',
  'agent:nodeId': 'the host name, characters outside `[A-Za-z0-9._-]` replaced by `-`',
};

/** `path -> comment` for every property of the object literals in a schema file. */
function readKeyComments(file: string): Map<string, string> {
  const text = readFileSync(resolve(ROOT, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const comments = new Map<string, string>();
  const visit = (node: ts.Node): void => {
    if (ts.isPropertyAssignment(node) && (ts.isIdentifier(node.name) || ts.isStringLiteral(node.name))) {
      const path: string[] = [];
      for (let n: ts.Node | undefined = node; n !== undefined; n = n.parent) {
        if (ts.isPropertyAssignment(n) && (ts.isIdentifier(n.name) || ts.isStringLiteral(n.name))) {
          path.unshift(n.name.text);
        }
      }
      const docs = ts.getJSDocCommentsAndTags(node).filter(ts.isJSDoc);
      const comment = docs.map((d) => ts.getTextOfJSDocComment(d.comment) ?? '').join(' ');
      if (comment.trim() !== '') comments.set(path.join('.'), comment.replace(/\s+/g, ' ').trim());
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return comments;
}

type JsonSchema = {
  type?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  pattern?: string;
  format?: string;
  enum?: unknown[];
  items?: JsonSchema;
};

function describeType(s: JsonSchema): string {
  if (s.enum !== undefined) return `one of ${s.enum.map((v) => `\`${String(v)}\``).join(', ')}`;
  if (s.type === 'array') {
    // Lists of objects are written as one JSON array (core/config/schema-walk.ts leafKindOf).
    if (s.items?.type === 'object' || s.items?.type === 'array') return 'list of objects (env: JSON)';
    return `list of ${s.items ? describeType(s.items) : 'values'} (env: comma-separated)`;
  }
  if (s.type === 'object') return 'mapping (env: JSON)';
  if (s.type === 'integer' || s.type === 'number') {
    const lo = s.minimum ?? s.exclusiveMinimum;
    const range =
      lo !== undefined && s.maximum !== undefined
        ? ` ${lo}..${s.maximum}`
        : lo !== undefined
          ? ` >= ${lo}`
          : '';
    return `${s.type}${range}`;
  }
  if (s.type === 'string') {
    if (s.format === 'uri') return 'URL';
    if (s.pattern !== undefined) return `string matching \`${s.pattern}\``;
    if (s.minLength === 1) return 'non-empty string';
    return 'string';
  }
  if (s.type === 'boolean') return 'boolean (env: true, false, 1, 0)';
  return s.type ?? 'JSON';
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** Keys without a meaning: --check fails on them, every key must be explained. */
const missingComments: string[] = [];

function renderSection(section: Section, allComments: Map<string, string>[]): string {
  const own = readKeyComments(section.source);
  const rows = listLeaves(section.schema).map((leaf) => {
    const path = leaf.path.join('.');
    const json = z.toJSONSchema(leaf.schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
    const dynamic = DYNAMIC_DEFAULTS[`${section.name}:${path}`];
    const def = dynamic ?? (leaf.hasDefault ? `\`${JSON.stringify(leaf.defaultValue)}\`` : '(none)');
    // The key's own comment, else the same key's comment in another schema (the operator keys
    // reuse the dispatcher's registry keys).
    // `up` reuses whole sub-schemas (capture.retention is capture's retention): then the longest
    // suffix of the path that another schema explains.
    const lookup = (p: string) => own.get(p) ?? allComments.map((c) => c.get(p)).find((c) => c !== undefined);
    let meaning = lookup(path);
    for (let i = 1; meaning === undefined && i < leaf.path.length - 1; i++)
      meaning = lookup(leaf.path.slice(i).join('.'));
    if (meaning === undefined) missingComments.push(`${section.source}: no comment for ${path}`);
    return `| \`${path}\` | \`${envNameFor(leaf.path)}\` | ${cell(describeType(json))} | ${cell(def)} | ${cell(meaning ?? '')} |`;
  });
  return ['| key | environment | type | default | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}

function main(): number {
  const check = process.argv.includes('--check');
  const allComments = SECTIONS.map((s) => readKeyComments(s.source));
  let doc = readFileSync(DOC, 'utf8');
  for (const section of SECTIONS) {
    const start = `<!-- generated:config:${section.name} -->`;
    const end = `<!-- /generated:config:${section.name} -->`;
    const from = doc.indexOf(start);
    const to = doc.indexOf(end);
    if (from < 0 || to < from) {
      process.stderr.write(`${DOC}: markers ${start} ... ${end} not found\n`);
      return 1;
    }
    const table = renderSection(section, allComments);
    doc = `${doc.slice(0, from + start.length)}\n<!-- generated by scripts/gen-config-doc.ts: do not edit -->\n${table}\n${doc.slice(to)}`;
  }
  const current = readFileSync(DOC, 'utf8');
  for (const m of missingComments) process.stderr.write(`${check ? 'error' : 'warning'}: ${m}\n`);
  if (check) {
    if (missingComments.length > 0) return 1;
    if (current !== doc) {
      process.stderr.write(`${DOC} is stale: run node scripts/gen-config-doc.ts\n`);
      return 1;
    }
    return 0;
  }
  if (current !== doc) writeFileSync(DOC, doc);
  process.stdout.write(`${DOC} ${current === doc ? 'up to date' : 'updated'}\n`);
  return 0;
}

process.exitCode = main();
