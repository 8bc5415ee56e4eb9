import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHookRunner, hookEnvironment, runHook } from '../../../src/agent/hooks.ts';
import { createMetricsRegistry } from '../../../src/core/metrics.ts';
import { captureLogger, isAlive, killIfAlive } from './helpers.ts';

const NODE = process.execPath;
const PATH_ONLY = { PATH: process.env['PATH'] };

test('hooks - the hook gets the base environment plus its phase, node and SIP URI', async () => {
  const { logger } = captureLogger();
  const r = await runHook({
    phase: 'up',
    previousPhase: 'warm-up',
    nodeId: 'as1',
    sipUri: 'sip:10.0.0.21:5060',
    command: [NODE, '-e', 'process.stdout.write(JSON.stringify(process.env))'],
    timeoutMs: 5000,
    env: { ...PATH_ONLY, FROM_BASE: 'yes', SWITCHYARD_PHASE: 'stale' },
    logger,
  });
  assert.ok(r.ok, JSON.stringify(r));
  const env = JSON.parse(r.stdoutTail) as Record<string, string>;
  assert.equal(env['FROM_BASE'], 'yes');
  assert.equal(env['SWITCHYARD_PHASE'], 'up', 'ours win over inherited ones');
  assert.equal(env['SWITCHYARD_PREVIOUS_PHASE'], 'warm-up');
  assert.equal(env['SWITCHYARD_NODE_ID'], 'as1');
  assert.equal(env['SWITCHYARD_SIP_URI'], 'sip:10.0.0.21:5060');
  assert.equal(
    hookEnvironment({ SWITCHYARD_PREVIOUS_PHASE: 'x' }, { phase: 'boot' })['SWITCHYARD_PREVIOUS_PHASE'],
    undefined,
  );
});

test('hooks - a hook past its deadline is killed with its whole process group', async () => {
  const { logger } = captureLogger();
  let grandchild: number | undefined;
  try {
    const r = await runHook({
      phase: 'draining',
      command: ['sh', '-c', 'sleep 60 & echo $!; wait'],
      timeoutMs: 300,
      env: PATH_ONLY,
      logger,
    });
    grandchild = Number.parseInt(r.stdoutTail, 10);
    assert.equal(r.ok, false);
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGTERM');
    assert.ok(r.durationMs >= 300 && r.durationMs < 1300, `took ${r.durationMs} ms`);
    assert.ok(Number.isInteger(grandchild));
    assert.equal(isAlive(grandchild), false, 'the backgrounded sleep died with the group');
  } finally {
    killIfAlive(grandchild);
  }
});

test('hooks - a hook that ignores SIGTERM is SIGKILLed after the kill grace', async () => {
  const { logger } = captureLogger();
  let grandchild: number | undefined;
  try {
    const r = await runHook({
      phase: 'draining',
      // An ignored signal stays ignored in children: the sleep ignores SIGTERM too.
      command: ['sh', '-c', 'trap "" TERM; sleep 60 & echo $!; wait'],
      timeoutMs: 300,
      killGraceMs: 200,
      env: PATH_ONLY,
      logger,
    });
    grandchild = Number.parseInt(r.stdoutTail, 10);
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGKILL');
    assert.ok(r.durationMs >= 500 && r.durationMs < 1500, `took ${r.durationMs} ms`);
    assert.equal(isAlive(grandchild), false);
  } finally {
    killIfAlive(grandchild);
  }
});

test('hooks - a missing program is reported, not thrown', async () => {
  const { logger, lines } = captureLogger();
  const r = await runHook({
    phase: 'up',
    command: ['/nonexistent/hook'],
    timeoutMs: 1000,
    env: PATH_ONLY,
    logger,
  });
  assert.equal(r.ok, false);
  assert.equal(r.exitCode, null);
  assert.equal(r.timedOut, false);
  assert.match(r.error ?? '', /ENOENT/);
  assert.ok(lines.some((l) => l['msg'] === 'hook failed' && /ENOENT/.test(String(l['error']))));
  const empty = await runHook({ phase: 'up', command: [], timeoutMs: 1000, env: PATH_ONLY, logger });
  assert.equal(empty.error, 'empty command');
});

test('hooks - the tail of the output is captured, bounded, and logged', async () => {
  const { logger, lines } = captureLogger();
  const r = await runHook({
    phase: 'up',
    command: [
      NODE,
      '-e',
      "process.stdout.write('x'.repeat(10000) + 'END'); process.stderr.write('oops ami://u:hunter2@h'); process.exitCode = 3",
    ],
    timeoutMs: 5000,
    env: PATH_ONLY,
    logger,
  });
  assert.equal(r.ok, false);
  assert.equal(r.exitCode, 3);
  assert.equal(r.stdoutTail.length, 4096);
  assert.ok(r.stdoutTail.endsWith('xEND'));
  assert.equal(r.stderrTail, 'oops ami://u:[redacted]@h');
  const logged = lines.find((l) => l['msg'] === 'hook failed');
  assert.equal(logged?.['exitCode'], 3);
  assert.equal(logged?.['stderr'], 'oops ami://u:[redacted]@h');
});

test('hooks - a hook that exits but leaves a child holding its output does not wedge the caller', async () => {
  const { logger } = captureLogger();
  let orphan: number | undefined;
  try {
    const started = Date.now();
    const r = await runHook({
      phase: 'up',
      command: ['sh', '-c', 'sleep 60 & echo $!'],
      timeoutMs: 10_000,
      env: PATH_ONLY,
      logger,
    });
    orphan = Number.parseInt(r.stdoutTail, 10);
    assert.ok(r.ok);
    assert.ok(Date.now() - started < 1500, 'settled on exit, not on the pipes closing');
  } finally {
    killIfAlive(orphan);
  }
});

test('hooks - the runner runs hooks one at a time in transition order, without blocking the caller', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-hooks-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'order');
  const { logger } = captureLogger();
  const metrics = createMetricsRegistry();
  const script = `echo "start $SWITCHYARD_PHASE" >> ${file}; sleep 0.1; echo "end $SWITCHYARD_PHASE" >> ${file}`;
  const runner = createHookRunner({
    hooks: {
      'warm-up': { command: ['sh', '-c', script], timeoutMs: 5000 },
      up: { command: ['sh', '-c', script], timeoutMs: 5000 },
      stopped: { command: ['sh', '-c', 'exit 1'], timeoutMs: 5000 },
    },
    env: PATH_ONLY,
    nodeId: 'as1',
    sipUri: 'sip:10.0.0.21',
    logger,
    metrics,
  });
  const before = Date.now();
  const first = runner.run('warm-up', 'boot');
  const second = runner.run('up', 'warm-up');
  assert.ok(Date.now() - before < 50, 'run() returns at once');
  assert.equal(runner.pending(), 2);
  assert.equal(await runner.run('draining', 'up'), undefined, 'no hook configured');
  await runner.idle();
  assert.equal(runner.pending(), 0);
  assert.equal(readFileSync(file, 'utf8'), 'start warm-up\nend warm-up\nstart up\nend up\n');
  assert.ok((await first)?.ok);
  assert.ok((await second)?.ok);
  assert.equal((await runner.run('stopped', 'draining'))?.exitCode, 1);
  await runner.close();
  assert.equal(await runner.run('up', 'warm-up'), undefined, 'closed');
  const text = await metrics.metrics();
  assert.match(text, /switchyard_agent_hooks_total\{phase="up",result="ok"\} 1/);
  assert.match(text, /switchyard_agent_hooks_total\{phase="stopped",result="failed"\} 1/);
  assert.match(text, /switchyard_agent_hooks_total\{phase="up",result="dropped"\} 1/);
});
