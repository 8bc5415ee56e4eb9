import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { test } from 'node:test';
import {
  createSupervisor,
  type Supervisor,
  type SupervisorEvent,
  type SupervisorEvents,
  type SupervisorOptions,
} from '../../../src/agent/supervisor.ts';
import { SwitchyardError } from '../../../src/core/errors.ts';
import { captureLogger, isAlive, killIfAlive, waitFor } from './helpers.ts';

const NODE = process.execPath;
const FAST = { initialBackoffMs: 20, maxBackoffMs: 40, crashLoopRestarts: 3, crashLoopWindowMs: 10_000 };

function make(command: string[], over: Partial<SupervisorOptions> = {}) {
  const { logger, lines } = captureLogger();
  const sup = createSupervisor({ command, logger, restart: FAST, stopGraceMs: 1000, ...over });
  const events: { event: SupervisorEvent; payload: unknown }[] = [];
  for (const event of ['started', 'exited', 'restart-scheduled', 'crash-loop'] as const) {
    sup.on(event, (payload) => events.push({ event, payload }));
  }
  const of = <E extends SupervisorEvent>(event: E) =>
    events.filter((e) => e.event === event).map((e) => e.payload as SupervisorEvents[E]);
  return { sup, lines, events, of };
}

/** Stops the supervisor and SIGKILLs anything a test left behind. */
async function cleanup(sup: Supervisor, ...pids: (number | undefined)[]) {
  const pid = sup.pid;
  await sup.stop({ graceMs: 0 });
  for (const p of [pid, ...pids]) killIfAlive(p);
}

test('supervisor - starts the process, logs its output lines and reports its exit', async () => {
  const { sup, lines, of } = make(
    [NODE, '-e', "console.log('hello'); console.error('ami://u:hunter2@h'); console.log('y'.repeat(500))"],
    { autoRestart: false, maxLineChars: 100 },
  );
  try {
    await sup.start();
    const pid = of('started')[0]?.pid;
    assert.ok(pid !== undefined && pid > 0);
    await waitFor(() => sup.state === 'exited', 2000, 'exit');
    const exit = of('exited')[0];
    assert.equal(exit?.code, 0);
    assert.equal(exit?.expected, false);
    assert.ok((exit?.uptimeMs ?? -1) >= 0);
    await waitFor(() => lines.filter((l) => l['stream'] !== undefined).length === 3, 1000, 'output lines');
    // stdout and stderr are two pipes: their lines interleave in any order, each stream in order.
    const stream = (name: string) => lines.filter((l) => l['stream'] === name).map((l) => l['msg']);
    assert.deepEqual(stream('stdout'), ['hello', `${'y'.repeat(100)} [truncated]`]);
    assert.deepEqual(stream('stderr'), ['ami://u:[redacted]@h']);
    assert.equal(sup.state, 'exited', 'autoRestart false: waits for the owner');
  } finally {
    await cleanup(sup);
  }
});

test('supervisor - a crashing process is restarted with back-off until the crash loop gives up', async () => {
  const { sup, of } = make(['sh', '-c', 'exit 3']);
  try {
    await sup.start();
    await waitFor(() => sup.state === 'failed', 2500, 'crash loop');
    assert.deepEqual(
      of('restart-scheduled').map((r) => r.delayMs),
      [20, 40, 40],
    );
    assert.equal(of('started').length, 4, 'the first start and 3 restarts');
    assert.equal(sup.restarts, 3);
    assert.deepEqual(of('crash-loop'), [{ reason: '3 restarts within 10 s; last exit code 3' }]);
    assert.equal(sup.failure, '3 restarts within 10 s; last exit code 3');
    assert.ok(of('exited').every((e) => e.code === 3 && !e.expected));
  } finally {
    await cleanup(sup);
  }
});

test('supervisor - restart() from failed is an operator retry: it starts at once', async () => {
  const { sup, of } = make(['sh', '-c', 'exit 1'], {
    restart: { ...FAST, crashLoopRestarts: 1 },
  });
  try {
    await sup.start();
    await waitFor(() => sup.state === 'failed', 2000, 'crash loop');
    const starts = of('started').length;
    assert.equal(sup.restart('operator retry'), true);
    await waitFor(() => of('started').length === starts + 1, 2000, 'restart');
    await waitFor(() => sup.state === 'failed', 2000, 'failing again');
  } finally {
    await cleanup(sup);
  }
});

test('supervisor - a process that stays up long enough resets the back-off', async () => {
  const { sup, of } = make([NODE, '-e', 'setTimeout(() => process.exit(1), 150)'], {
    restart: { ...FAST, crashLoopRestarts: 100 },
    stableAfterMs: 100,
  });
  try {
    await sup.start();
    await waitFor(() => of('restart-scheduled').length >= 3, 2500, 'three restarts');
    assert.deepEqual(
      of('restart-scheduled')
        .slice(0, 3)
        .map((r) => r.delayMs),
      [20, 20, 20],
    );
  } finally {
    await cleanup(sup);
  }
});

test('supervisor - stop() SIGKILLs a process that ignores SIGTERM after the grace, and never restarts it', async () => {
  const { sup, lines, of } = make([
    NODE,
    '-e',
    "process.on('SIGTERM', () => console.log('ignored')); console.log('ready'); setInterval(() => {}, 1000)",
  ]);
  try {
    await sup.start();
    await waitFor(() => lines.some((l) => l['msg'] === 'ready'), 2000, 'ready');
    const started = Date.now();
    const exit = await sup.stop({ graceMs: 300 });
    const elapsed = Date.now() - started;
    assert.equal(exit?.signal, 'SIGKILL');
    assert.equal(exit?.expected, true);
    assert.ok(elapsed >= 290 && elapsed < 1500, `stopped in ${elapsed} ms`);
    assert.ok(
      lines.some((l) => l['msg'] === 'ignored'),
      'SIGTERM came first',
    );
    assert.equal(sup.state, 'stopped');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(of('started').length, 1, 'no restart after stop()');
    assert.equal(sup.restart('too late'), false);
    await assert.rejects(sup.start(), (err) => SwitchyardError.is(err) && err.code === 'SY_ERR_CLOSED');
  } finally {
    await cleanup(sup);
  }
});

test('supervisor - stop() reaches everything the process started (its process group)', async () => {
  const { sup, lines } = make(['sh', '-c', 'sleep 60 & echo $!; wait']);
  let grandchild: number | undefined;
  try {
    await sup.start();
    await waitFor(() => lines.some((l) => l['stream'] === 'stdout'), 2000, 'pid line');
    grandchild = Number(lines.find((l) => l['stream'] === 'stdout')?.['msg']);
    assert.ok(isAlive(grandchild));
    const exit = await sup.stop({ graceMs: 1000 });
    assert.equal(exit?.signal, 'SIGTERM');
    await waitFor(() => !isAlive(grandchild ?? 0), 1000, 'grandchild gone');
  } finally {
    await cleanup(sup, grandchild);
  }
});

test('supervisor - restart() stops the running process and starts it again; the exit is expected', async () => {
  const { sup, of } = make([NODE, '-e', 'setInterval(() => {}, 1000)']);
  try {
    await sup.start();
    const first = sup.pid;
    assert.equal(sup.restart('unhealthy for 30 s'), true);
    assert.equal(sup.restart('again'), false, 'one restart at a time');
    await waitFor(() => of('started').length === 2, 2000, 'second start');
    assert.notEqual(sup.pid, first);
    assert.equal(of('exited')[0]?.expected, true);
    assert.equal(of('restart-scheduled')[0]?.reason, 'unhealthy for 30 s');
    assert.equal(sup.restarts, 1);
    assert.equal(isAlive(first ?? 0), false);
  } finally {
    await cleanup(sup);
  }
});

test('supervisor - stop() during the back-off cancels the restart', async () => {
  const { sup, of } = make(['sh', '-c', 'exit 1'], {
    restart: { ...FAST, initialBackoffMs: 200, maxBackoffMs: 200 },
  });
  try {
    await sup.start();
    await waitFor(() => sup.state === 'backoff', 2000, 'back-off');
    assert.equal(await sup.stop(), undefined);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(of('started').length, 1);
    assert.equal(sup.state, 'stopped');
  } finally {
    await cleanup(sup);
  }
});

test('supervisor - a program that cannot be started counts as a crash, with the reason', async () => {
  const { sup, of } = make(['/nonexistent/asterisk', '-f']);
  try {
    await sup.start();
    await waitFor(() => sup.state === 'failed', 2000, 'crash loop');
    assert.equal(of('started').length, 0);
    assert.match(of('exited')[0]?.error ?? '', /ENOENT/);
    assert.equal(
      sup.failure,
      '3 restarts within 10 s; last start failed: spawn /nonexistent/asterisk ENOENT',
    );
    assert.throws(
      () => make([]),
      (err) => SwitchyardError.is(err) && err.code === 'SY_ERR_INVALID_ARGUMENT',
    );
  } finally {
    await cleanup(sup);
  }
});

test('supervisor - behind setpriv, a missing program still fails to start with ENOENT', async () => {
  for (const command of [
    ['/nonexistent/asterisk', '-f'],
    ['no-such-asterisk-binary', '-f'],
  ]) {
    const { sup, of } = make(command, { parentDeathSignal: 'SIGTERM' });
    try {
      await sup.start();
      await waitFor(() => sup.state === 'failed', 2000, 'crash loop');
      assert.equal(of('started').length, 0, 'not reported as started (setpriv would have run)');
      assert.equal(of('exited')[0]?.error, `spawn ${command[0]} ENOENT`);
    } finally {
      await cleanup(sup);
    }
  }
});

test('supervisor - with a parent-death signal the process runs under setpriv, same pid, and is logged by its name', async () => {
  const { sup, lines } = make([NODE, '-e', 'setInterval(() => {}, 1000)'], { parentDeathSignal: 'SIGKILL' });
  try {
    await sup.start();
    await waitFor(() => sup.state === 'running', 2000, 'running');
    const pid = sup.pid as number;
    // setpriv execs the command: the pid is the service's own, and the kernel holds the signal.
    await waitFor(() => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(`${NODE}\0`), 2000, 'exec');
    const started = lines.find((l) => l['msg'] === 'process started');
    assert.equal(started?.['proc'], basename(NODE), 'named after the service, not setpriv');
    assert.equal(started?.['pid'], pid);
  } finally {
    await cleanup(sup);
  }
});

test('supervisor - start() is allowed once', async () => {
  const { sup } = make([NODE, '-e', 'setInterval(() => {}, 1000)']);
  try {
    await sup.start();
    await assert.rejects(
      sup.start(),
      (err) => SwitchyardError.is(err) && err.code === 'SY_ERR_INVALID_ARGUMENT',
    );
    assert.equal(sup.signal('SIGTERM'), true);
    await waitFor(() => sup.state !== 'running', 2000, 'signalled exit');
  } finally {
    await cleanup(sup);
  }
});
