import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  evaluateTargets,
  formatMs,
  GENERATED_BEGIN,
  GENERATED_END,
  type LabReport,
  renderMarkdownTable,
  replaceGeneratedBlock,
  type ScenarioResult,
  updateReliabilityDoc,
  writeReport,
} from '../../../src/lab/report.ts';

function result(over: Partial<ScenarioResult> = {}): ScenarioResult {
  return {
    id: 1,
    name: 'backend crash',
    mode: 'switchyard',
    attempted: 300,
    failedNew: 0,
    lostEstablished: 0,
    detectMs: 1234,
    routedMs: 1500,
    vipFailoverMs: null,
    backToFullCapacity: true,
    notes: [],
    target: { noLoss: true },
    passed: null,
    ...over,
  };
}

function report(results: ScenarioResult[]): LabReport {
  return {
    startedAt: '2026-12-01T13:00:00.000Z',
    profile: 'short',
    machine: { cores: 4, memGiB: 15.6, kernel: '6.1.0-18-amd64' },
    settings: { ratePerSecond: 10 },
    results,
  };
}

test('report - noLoss needs no failed new call and no lost established call', () => {
  assert.deepEqual(evaluateTargets(result()), { passed: true, reasons: [] });
  const failed = evaluateTargets(result({ failedNew: 2, lostEstablished: 1 }));
  assert.equal(failed.passed, false);
  assert.equal(failed.reasons.length, 2);
  assert.match(failed.reasons[0]!, /2 new call/);
  assert.match(failed.reasons[1]!, /1 established call/);
});

test('report - noNewCallFailed tolerates lost established calls', () => {
  const target = { noNewCallFailed: true };
  assert.equal(evaluateTargets(result({ target, lostEstablished: 7 })).passed, true);
  assert.equal(evaluateTargets(result({ target, failedNew: 1 })).passed, false);
});

test('report - vipWithinMs needs a measured failover within the bound', () => {
  const target = { vipWithinMs: 3000 };
  assert.equal(evaluateTargets(result({ target, vipFailoverMs: 3000 })).passed, true);
  assert.equal(evaluateTargets(result({ target, vipFailoverMs: 3001 })).passed, false);
  const none = evaluateTargets(result({ target, vipFailoverMs: null }));
  assert.equal(none.passed, false);
  assert.match(none.reasons[0]!, /not observed/);
});

test('report - every scenario must end back at full capacity', () => {
  const r = evaluateTargets(result({ target: {}, backToFullCapacity: false }));
  assert.equal(r.passed, false);
  assert.match(r.reasons[0]!, /full capacity/);
});

test('report - times are shown in seconds with one decimal, - when not measured', () => {
  assert.equal(formatMs(1234), '1.2 s');
  assert.equal(formatMs(0), '0.0 s');
  assert.equal(formatMs(null), '-');
  assert.equal(formatMs(Number.NaN), '-');
});

test('report - the table puts switchyard and baseline side by side per scenario', () => {
  const md = renderMarkdownTable(
    report([
      result({
        id: 2,
        name: 'LB host down',
        vipFailoverMs: 640,
        target: { vipWithinMs: 3000 },
        passed: true,
      }),
      result({
        id: 2,
        name: 'LB host down',
        mode: 'baseline',
        failedNew: 5,
        detectMs: null,
        routedMs: null,
        vipFailoverMs: 640,
        passed: false,
        notes: ['no dispatcher'],
      }),
      result({ id: 1, name: 'crash | restart' }),
    ]),
  );
  const rows = md.split('\n').filter((l) => l.startsWith('| '));
  assert.equal(rows.length, 3, md);
  assert.match(
    rows[0]!,
    /\| scenario \| calls attempted \| new calls failed \| established lost \| detect \| routed again \| VIP failover \| target met \|/,
  );
  // Sorted by id; a `|` in a name is escaped; a missing baseline shows `-`.
  assert.equal(
    rows[1],
    '| 1. crash \\| restart | 300 / - | 0 / - | 0 / - | 1.2 s / - | 1.5 s / - | - / - | yes / - |',
  );
  assert.equal(
    rows[2],
    '| 2. LB host down | 300 / 300 | 0 / 5 | 0 / 0 | 1.2 s / - | 1.5 s / - | 0.6 s / 0.6 s | yes / no |',
  );
  assert.match(md, /- 2 \(baseline\): no dispatcher/);
  assert.match(md, /4 cores, 15.6 GiB, kernel 6.1.0-18-amd64/);
});

test('report - writeReport writes the JSON and the markdown', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sy-report-'));
  try {
    const r = report([result()]);
    const [jsonPath, mdPath] = await writeReport(r, dir);
    assert.equal(jsonPath, join(dir, 'ha-lab-short.json'));
    assert.deepEqual(JSON.parse(await readFile(jsonPath!, 'utf8')), r);
    assert.match(await readFile(mdPath!, 'utf8'), /^# HA lab \(short\)\n\n.*\n\n\| scenario/);
    // Atomic writes leave no temp files behind.
    assert.deepEqual((await readdir(dir)).sort(), ['ha-lab-short.json', 'ha-lab-short.md']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('report - the generated block of a doc is replaced, the rest kept', async () => {
  const doc = `# Reliability\n\nBefore.\n\n${GENERATED_BEGIN}\nold table\n${GENERATED_END}\n\nAfter.\n`;
  const out = replaceGeneratedBlock(doc, report([result()]));
  assert.ok(out.startsWith(`# Reliability\n\nBefore.\n\n${GENERATED_BEGIN}\nProfile`));
  assert.ok(out.endsWith(`|\n${GENERATED_END}\n\nAfter.\n`));
  assert.ok(!out.includes('old table'));
  // Idempotent: replacing again gives the same text.
  assert.equal(replaceGeneratedBlock(out, report([result()])), out);

  const dir = await mkdtemp(join(tmpdir(), 'sy-report-doc-'));
  try {
    const path = join(dir, 'reliability.md');
    await writeFile(path, doc);
    await updateReliabilityDoc(report([result()]), path);
    assert.equal(await readFile(path, 'utf8'), out);
    await writeFile(path, '# no markers\n');
    await assert.rejects(updateReliabilityDoc(report([]), path), /markers/);
    await assert.rejects(updateReliabilityDoc(report([]), join(dir, 'missing.md')), /cannot read/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('report - markers out of order or repeated are an error', () => {
  assert.throws(() => replaceGeneratedBlock(`${GENERATED_END}\n${GENERATED_BEGIN}\n`, report([])), /markers/);
  assert.throws(
    () =>
      replaceGeneratedBlock(
        `${GENERATED_BEGIN}\n${GENERATED_END}\n${GENERATED_BEGIN}\n${GENERATED_END}\n`,
        report([]),
      ),
    /more than once/,
  );
});
