import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml, stringify } from 'yaml';
import { formatConfigProblems, loadConfig } from '../../../src/core/config/index.ts';
import { UP_SECRET_PATHS, upConfigSchema } from '../../../src/up/config.ts';

/** The documented example for a real host (docs/guides/up.md links it). */
const EXAMPLE = resolve(import.meta.dirname, '../../../deploy/up/switchyard.example.yaml');

const example = (): Record<string, unknown> =>
  parseYaml(readFileSync(EXAMPLE, 'utf8')) as Record<string, unknown>;

/** Loads a config file the way `switchyard up --config FILE` does, with an empty environment. */
function loadFile(t: { after(fn: () => void): void }, config: unknown) {
  const dir = mkdtempSync(join(tmpdir(), 'sy-up-example-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'up.yaml');
  writeFileSync(file, stringify(config));
  return loadConfig({ schema: upConfigSchema, file, env: {}, secretPaths: UP_SECRET_PATHS });
}

test('up example config - is valid, not demo mode, three Asterisk nodes under call load', () => {
  const res = upConfigSchema.safeParse(example());
  assert.ok(res.success, res.success ? '' : JSON.stringify(res.error.issues, null, 2));
  const c = res.data;
  assert.equal(c.demo.enabled, false);
  assert.equal(c.kamailio.managed, true);
  assert.equal(c.kamailio.algorithm, 'call-load');
  assert.equal(c.nodes.length, 3);
  for (const n of c.nodes) {
    assert.ok(n.maxCalls !== undefined, `${n.id} has maxCalls (call load needs it)`);
    assert.match(n.ami ?? '', /^ami:\/\/[^:]+:[^@]+@127\.0\.0\.1:\d+$/, `${n.id} has AMI on loopback`);
    assert.equal(n.command?.[1], '-f', `${n.id} runs Asterisk in the foreground`);
  }
  // Each Asterisk on its own SIP port, AMI port and asterisk.conf.
  assert.equal(new Set(c.nodes.map((n) => n.sipUri)).size, 3);
  assert.equal(new Set(c.nodes.map((n) => n.ami)).size, 3);
  assert.equal(new Set(c.nodes.map((n) => n.command?.join(' '))).size, 3);
  // Tokens: both roles, and clearly placeholders.
  assert.deepEqual(c.console.tokens.map((t) => t.role).sort(), ['admin', 'read']);
  for (const t of c.console.tokens) assert.match(t.token, /^REPLACE-ME/);
  assert.equal(c.console.host, '127.0.0.1');
});

test('up example config - loads the way `up --config FILE` loads it', (t) => {
  const res = loadFile(t, example());
  assert.ok(res.ok, res.ok ? '' : formatConfigProblems(res.problems));
  assert.equal(res.config.demo.enabled, false);
});

test('up example config - a duplicate node id and a bad port are refused with their paths', (t) => {
  const bad = example();
  const nodes = structuredClone(bad['nodes']) as Record<string, unknown>[];
  (nodes[1] as Record<string, unknown>)['id'] = (nodes[0] as Record<string, unknown>)['id'];
  bad['nodes'] = nodes;
  bad['kamailio'] = { ...(bad['kamailio'] as Record<string, unknown>), sipPort: 70000 };

  const parsed = upConfigSchema.safeParse(bad);
  assert.equal(parsed.success, false);
  const paths = parsed.success ? [] : parsed.error.issues.map((i) => i.path.join('.'));
  assert.ok(paths.includes('nodes.1.id'), paths.join(', '));
  assert.ok(paths.includes('kamailio.sipPort'), paths.join(', '));

  const res = loadFile(t, bad);
  assert.equal(res.ok, false);
  const text = res.ok ? '' : formatConfigProblems(res.problems);
  assert.match(text, /nodes\.1\.id: duplicate node id as1/);
  assert.match(text, /kamailio\.sipPort:/);
  assert.doesNotMatch(text, /REPLACE-ME/, 'no secret echoed');
});

test('up example config - without nodes and without demo it is refused', () => {
  const res = upConfigSchema.safeParse({ ...example(), nodes: [] });
  assert.equal(res.success, false);
  assert.match(
    res.success ? '' : res.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n'),
    /^nodes: list at least one node/m,
  );
});
