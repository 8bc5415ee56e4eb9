import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { z } from 'zod';
import {
  type ConfigResult,
  envNameFor,
  formatConfigProblems,
  listLeaves,
  loadConfig,
  redactConfig,
  redactUrlPasswords,
} from '../../../src/core/config/index.ts';
import { dispatcherConfigSchema } from '../../../src/dispatcher/config.ts';

const schema = z
  .object({
    url: z.string().default('http://127.0.0.1:5071/RPC'),
    timeoutMs: z.number().int().min(1).max(10_000).default(1000),
    verbose: z.boolean().default(false),
    sets: z.array(z.number().int().min(1)).default([]),
    tags: z.array(z.string()).default([]),
    password: z.string().optional(),
    mode: z.enum(['a', 'b']).default('a'),
    nested: z
      .object({
        maxFraction: z.number().min(0).max(1).default(0.5),
        alwaysAllow: z.number().int().default(1),
        token: z.string().optional(),
      })
      .prefault({}),
  })
  .strict();

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'sy-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function expectOk<T>(res: ConfigResult<T>): Readonly<T> {
  if (!res.ok) assert.fail(`unexpected problems:\n${formatConfigProblems(res.problems)}`);
  return res.config;
}

function expectProblems<T>(res: ConfigResult<T>) {
  if (res.ok) assert.fail('expected config problems');
  return res.problems;
}

test('config - schema defaults apply when nothing is set', () => {
  const config = expectOk(loadConfig({ schema, env: {} }));
  assert.deepEqual(config, {
    url: 'http://127.0.0.1:5071/RPC',
    timeoutMs: 1000,
    verbose: false,
    sets: [],
    tags: [],
    mode: 'a',
    nested: { maxFraction: 0.5, alwaysAllow: 1 },
  });
});

test('config - precedence is defaults < file < env < flags, merged key by key', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'c.yaml');
  writeFileSync(
    file,
    'timeoutMs: 10\nverbose: true\nsets: [1, 2]\nnested:\n  maxFraction: 0.1\n  alwaysAllow: 7\n',
  );
  const config = expectOk(
    loadConfig({
      schema,
      file,
      env: { SWITCHYARD_TIMEOUT_MS: '20', SWITCHYARD_NESTED__MAX_FRACTION: '0.2', SWITCHYARD_SETS: '3' },
      flags: { timeoutMs: '30', nested: { alwaysAllow: undefined }, mode: undefined },
    }),
  );
  assert.equal(config.timeoutMs, 30, 'flags beat env and file');
  assert.equal(config.verbose, true, 'file beats defaults');
  assert.deepEqual(config.sets, [3], 'arrays replace, they do not merge');
  assert.equal(config.nested.maxFraction, 0.2, 'env beats file inside a nested object');
  assert.equal(config.nested.alwaysAllow, 7, 'undefined flags are ignored; sibling keys survive the merge');
  assert.equal(config.mode, 'a');
});

test('config - caller defaults sit between schema defaults and the file', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'c.json');
  writeFileSync(file, '{ "timeoutMs": 5 }');
  const config = expectOk(loadConfig({ schema, env: {}, defaults: { timeoutMs: 2, mode: 'b' }, file }));
  assert.equal(config.timeoutMs, 5);
  assert.equal(config.mode, 'b');
});

test('config - reads JSON files as well as YAML', (t) => {
  const dir = tempDir(t);
  const json = join(dir, 'c.json');
  writeFileSync(json, '{ "url": "http://x/RPC", "nested": { "alwaysAllow": 3 } }');
  const yml = join(dir, 'c.yml');
  writeFileSync(yml, 'url: http://y/RPC\n');
  assert.equal(expectOk(loadConfig({ schema, env: {}, file: json })).nested.alwaysAllow, 3);
  assert.equal(expectOk(loadConfig({ schema, env: {}, file: yml })).url, 'http://y/RPC');
  const empty = join(dir, 'empty.yaml');
  writeFileSync(empty, '# nothing set\n');
  assert.equal(expectOk(loadConfig({ schema, env: {}, file: empty })).timeoutMs, 1000);
});

test('config - env strings are coerced by the type of their key', () => {
  const config = expectOk(
    loadConfig({
      schema,
      env: {
        SWITCHYARD_VERBOSE: '1',
        SWITCHYARD_SETS: '1, 2,3',
        SWITCHYARD_TAGS: ' a , b',
        SWITCHYARD_MODE: 'b',
        SWITCHYARD_NESTED__MAX_FRACTION: '.25',
        PATH: '/usr/bin',
        OTHER_TIMEOUT_MS: 'x',
      },
    }),
  );
  assert.equal(config.verbose, true);
  assert.deepEqual(config.sets, [1, 2, 3]);
  assert.deepEqual(config.tags, ['a', 'b']);
  assert.equal(config.mode, 'b');
  assert.equal(config.nested.maxFraction, 0.25);
  assert.equal(expectOk(loadConfig({ schema, env: { SWITCHYARD_VERBOSE: 'FALSE' } })).verbose, false);
  assert.deepEqual(expectOk(loadConfig({ schema, env: { SWITCHYARD_SETS: '' } })).sets, []);
});

test('config - env names are UPPER_SNAKE with __ between levels', () => {
  assert.equal(envNameFor('kamailioRpc'), 'SWITCHYARD_KAMAILIO_RPC');
  assert.equal(envNameFor('massRemoval.maxFraction'), 'SWITCHYARD_MASS_REMOVAL__MAX_FRACTION');
  assert.equal(envNameFor(['registryCallTimeoutMs']), 'SWITCHYARD_REGISTRY_CALL_TIMEOUT_MS');
  assert.equal(envNameFor('admin.port', 'X_'), 'X_ADMIN__PORT');
  const names = listLeaves(dispatcherConfigSchema).map((l) => envNameFor(l.path));
  assert.ok(names.includes('SWITCHYARD_MASS_REMOVAL__PROBE_TIMEOUT_MS'));
  assert.equal(new Set(names).size, names.length, 'no two dispatcher keys share a variable');
});

test('config - every problem is reported in one run, with its path and source', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'timeoutMs: 0\nnested:\n  maxFraction: 2\n');
  const problems = expectProblems(
    loadConfig({ schema, file, env: { SWITCHYARD_VERBOSE: 'maybe' }, flags: { mode: 'c' } }),
  );
  const text = formatConfigProblems(problems);
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.length, 4, text);
  assert.ok(
    lines.every((l) => l.startsWith('config error: ')),
    text,
  );
  assert.match(
    text,
    /^config error: verbose: expected true, false, 1 or 0, got "maybe" \(from env SWITCHYARD_VERBOSE\)$/m,
  );
  assert.match(
    text,
    new RegExp(`^config error: timeoutMs: .*>=1 \\(from file ${file.replace(/[.]/g, '\\.')}\\)$`, 'm'),
  );
  assert.match(text, /^config error: nested\.maxFraction: .*<=1 \(from file /m);
  assert.match(text, /^config error: mode: .* \(from flags\)$/m);
});

test('config - unknown keys in the file are reported with their key path', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'timeoutMs: 5\ntimeoutMS: 6\nnested:\n  maxFracton: 0.3\n  deeper: { a: 1 }\n');
  const problems = expectProblems(loadConfig({ schema, env: {}, file }));
  assert.deepEqual(
    problems.map((p) => [p.path, p.source]),
    [
      ['timeoutMS', 'file'],
      ['nested.maxFracton', 'file'],
      ['nested.deeper', 'file'],
    ],
  );
  assert.match(problems[1]?.message ?? '', /did you mean maxFraction\?/);
});

test('config - unknown SWITCHYARD_ variables are typos, unless another role owns them', () => {
  const problems = expectProblems(
    loadConfig({ schema, env: { SWITCHYARD_TIMEOUTMS: '5', SWITCHYARD_NESTED_MAX_FRACTION: '1' } }),
  );
  assert.deepEqual(
    problems.map((p) => p.path),
    ['SWITCHYARD_NESTED_MAX_FRACTION', 'SWITCHYARD_TIMEOUTMS'],
  );
  assert.match(problems[0]?.message ?? '', /did you mean SWITCHYARD_NESTED__MAX_FRACTION\?/);
  assert.match(problems[1]?.message ?? '', /did you mean SWITCHYARD_TIMEOUT_MS\?/);
  const other = z.object({ listFile: z.string().default('x') });
  expectOk(loadConfig({ schema, env: { SWITCHYARD_LIST_FILE: 'y' }, sharedEnvSchemas: [other] }));
});

test('config - file parse errors give line and column', (t) => {
  const dir = tempDir(t);
  const yaml = join(dir, 'bad.yaml');
  writeFileSync(yaml, 'url: x\nsets: [1, 2\nmode: a\n');
  const [yamlProblem] = expectProblems(loadConfig({ schema, env: {}, file: yaml }));
  assert.match(yamlProblem?.path ?? '', /bad\.yaml:\d+:\d+$/);
  assert.match(yamlProblem?.message ?? '', /^invalid YAML: /);

  const json = join(dir, 'bad.json');
  writeFileSync(json, '{\n  "url": "http://u:hunter2@x",\n  "timeoutMs": ,\n}');
  const jsonProblems = expectProblems(loadConfig({ schema, env: {}, file: json }));
  assert.equal(jsonProblems[0]?.path, `${json}:3:16`);
  assert.equal(jsonProblems[0]?.message, 'invalid JSON: unexpected ","');
  assert.doesNotMatch(formatConfigProblems(jsonProblems), /hunter2/, 'the file text is not quoted');

  const dup = join(dir, 'dup.yaml');
  writeFileSync(dup, 'url: a\nurl: b\n');
  assert.match(expectProblems(loadConfig({ schema, env: {}, file: dup }))[0]?.path ?? '', /dup\.yaml:2:1$/);

  const missing = expectProblems(loadConfig({ schema, env: {}, file: join(dir, 'nope.yaml') }));
  assert.match(missing[0]?.message ?? '', /no such file/);
  const wrongType = expectProblems(loadConfig({ schema, env: {}, file: join(dir, 'c.toml') }));
  assert.match(wrongType[0]?.message ?? '', /use \.yaml, \.yml or \.json/);
  const list = join(dir, 'list.yaml');
  writeFileSync(list, '- a\n- b\n');
  assert.match(expectProblems(loadConfig({ schema, env: {}, file: list }))[0]?.message ?? '', /mapping/);
});

test('config - a file that cannot be parsed still reports environment problems', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'bad.json');
  writeFileSync(file, '{');
  const problems = expectProblems(loadConfig({ schema, env: { SWITCHYARD_TIMEOUT_MS: 'soon' }, file }));
  assert.deepEqual(
    problems.map((p) => p.source),
    ['file', 'env'],
  );
});

test('config - the result is deep-frozen', () => {
  const config = expectOk(loadConfig({ schema, env: { SWITCHYARD_SETS: '1,2' } }));
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.nested));
  assert.ok(Object.isFrozen(config.sets));
  assert.throws(() => {
    (config as { timeoutMs: number }).timeoutMs = 1;
  }, TypeError);
  assert.throws(() => (config.sets as number[]).push(3), TypeError);
});

test('config - secrets are redacted by path and in URLs, without touching the original', () => {
  const config = expectOk(
    loadConfig({
      schema,
      env: {
        SWITCHYARD_PASSWORD: 's3cret',
        SWITCHYARD_URL: 'http://admin:pa:ss@127.0.0.1:5071/RPC',
        SWITCHYARD_TAGS: 'etcd://root:toor@10.0.0.1:2379,plain',
      },
    }),
  );
  const shown = redactConfig(config, ['password', 'nested.token']);
  assert.equal(shown.password, '[redacted]');
  assert.equal('token' in shown.nested, false, 'an unset secret stays unset');
  assert.equal(shown.url, 'http://admin:[redacted]@127.0.0.1:5071/RPC');
  assert.deepEqual(shown.tags, ['etcd://root:[redacted]@10.0.0.1:2379', 'plain']);
  assert.equal(config.password, 's3cret');
  assert.deepEqual(redactConfig({ a: [{ token: 'x' }] }, ['a.*.token']), { a: [{ token: '[redacted]' }] });
  assert.equal(
    redactUrlPasswords('sip:alice@example.com and http://u@h'),
    'sip:alice@example.com and http://u@h',
  );
});

test('config - secret values are never echoed in problems', () => {
  const secretSchema = z.object({ pin: z.number().optional() });
  const problems = expectProblems(
    loadConfig({ schema: secretSchema, env: { SWITCHYARD_PIN: 'abc123' }, secretPaths: ['pin'] }),
  );
  assert.doesNotMatch(formatConfigProblems(problems), /abc123/);
});

test('config - prototype keys in a file are reported, never merged', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'proto.json');
  writeFileSync(file, '{ "__proto__": { "polluted": true }, "nested": { "constructor": { "x": 1 } } }');
  const problems = expectProblems(loadConfig({ schema, env: {}, file }));
  assert.deepEqual(
    problems.map((p) => p.path),
    ['__proto__', 'nested.constructor'],
  );
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('config - loadConfig never throws on arbitrary environments', () => {
  const leafNames = listLeaves(schema).map((l) => envNameFor(l.path));
  const name = fc.oneof(
    fc.constantFrom(...leafNames),
    fc.string().map((s) => `SWITCHYARD_${s}`),
    fc.constantFrom('__proto__', 'constructor', 'SWITCHYARD_', 'SWITCHYARD___', 'PATH'),
    fc.string(),
  );
  const value = fc.oneof(
    fc.string(),
    fc.constantFrom('', ',', '1,x', 'true', '1e999', '-0', 'NaN', '{"a":1}'),
  );
  fc.assert(
    fc.property(fc.dictionary(name, value), (env) => {
      const res = loadConfig({ schema, env });
      if (res.ok) assert.ok(Object.isFrozen(res.config));
      else assert.ok(res.problems.length > 0 && typeof formatConfigProblems(res.problems) === 'string');
    }),
    { numRuns: 500 },
  );
});

test('config - loadConfig never throws on arbitrary files and flags', (t) => {
  const dir = tempDir(t);
  let n = 0;
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.json(),
        fc.jsonValue().map((v) => JSON.stringify(v)),
      ),
      fc.constantFrom('.yaml', '.json'),
      fc.object(),
      (text, ext, flags) => {
        const file = join(dir, `f${n++}${ext}`);
        writeFileSync(file, text);
        const res = loadConfig({ schema, env: {}, file, flags });
        if (!res.ok) formatConfigProblems(res.problems);
      },
    ),
    { numRuns: 300 },
  );
});

test('config - the dispatcher schema loads with defaults and nested env keys', () => {
  const config = expectOk(
    loadConfig({
      schema: dispatcherConfigSchema,
      env: {
        SWITCHYARD_MASS_REMOVAL__MAX_FRACTION: '0.25',
        SWITCHYARD_ADMIN__PORT: '0',
        SWITCHYARD_SETS: '2,3',
      },
    }),
  );
  assert.equal(config.massRemoval.maxFraction, 0.25);
  assert.equal(config.massRemoval.alwaysAllow, 1);
  assert.equal(config.admin.port, 0);
  assert.equal(config.admin.host, '127.0.0.1');
  assert.deepEqual(config.sets, [2, 3]);
});

test('config - lists of objects are one JSON value in the environment, not comma-separated', () => {
  const s = z.object({ items: z.array(z.object({ a: z.string() }).strict()).default([]) }).strict();
  assert.deepEqual(listLeaves(s)[0]?.kind, { type: 'json' });
  const config = expectOk(loadConfig({ schema: s, env: { SWITCHYARD_ITEMS: '[{"a":"x,y"},{"a":"z"}]' } }));
  assert.deepEqual(config.items, [{ a: 'x,y' }, { a: 'z' }]);
});

test('config - a structured leaf holding secrets is secret as a whole: broken JSON is not quoted', () => {
  const s = z.object({ vars: z.record(z.string(), z.string()).default({}) }).strict();
  const problems = expectProblems(
    loadConfig({ schema: s, env: { SWITCHYARD_VARS: '{"pass":"hunter2"' }, secretPaths: ['vars.*'] }),
  );
  assert.doesNotMatch(formatConfigProblems(problems), /hunter2/);
});

test('config - the variables switchyard sets for hooks are not reported as unknown', () => {
  expectOk(loadConfig({ schema, env: { SWITCHYARD_PHASE: 'up', SWITCHYARD_PREVIOUS_PHASE: 'warm-up' } }));
});
