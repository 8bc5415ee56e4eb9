import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  FIRST_BOOT_MARKER,
  type PrepareDataOptions,
  planBoot,
  prepareData,
  type RunBootCommand,
  readMarker,
} from '../../../src/agent/first-boot.ts';
import { runHook } from '../../../src/agent/hooks.ts';
import { captureLogger } from './helpers.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'sy-first-boot-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const AT = new Date('2026-11-22T10:00:00.000Z');
const LATER = new Date('2026-12-01T10:00:00.000Z');

/** Runs commands as real processes (runHook) and records which ran. */
function recordingRunner(ran: string[]): RunBootCommand {
  const { logger } = captureLogger();
  return (command, timeoutMs, action) => {
    ran.push(command.join(' '));
    return runHook({ phase: action, command, timeoutMs, env: { PATH: process.env['PATH'] }, logger });
  };
}

function options(dataDir: string, over: Partial<PrepareDataOptions> = {}): PrepareDataOptions {
  return {
    dataDir,
    version: '20.1',
    firstBoot: { command: ['sh', '-c', 'exit 0'], timeoutMs: 5000 },
    upgrade: { command: ['sh', '-c', 'exit 0'], timeoutMs: 5000 },
    run: recordingRunner([]),
    logger: captureLogger().logger,
    now: () => AT,
    ...over,
  };
}

test('first-boot - the marker is written only after the first-boot command succeeded', async (t) => {
  const dir = tempDir(t);
  const ran: string[] = [];
  const failing = await prepareData(
    options(dir, {
      firstBoot: { command: ['sh', '-c', 'exit 4'], timeoutMs: 5000 },
      run: recordingRunner(ran),
    }),
  );
  assert.ok(failing.action === 'first-boot');
  assert.equal(failing.ok, false);
  assert.equal(failing.markerWritten, false);
  assert.equal(failing.result?.exitCode, 4);
  assert.equal(existsSync(join(dir, FIRST_BOOT_MARKER)), false, 'whaleware wrote it anyway');

  // The next start tries the first boot again, and this time it works.
  const ok = await prepareData(options(dir, { run: recordingRunner(ran) }));
  assert.ok(ok.action === 'first-boot' && ok.ok && ok.ran && ok.markerWritten);
  assert.deepEqual(ran, ['sh -c exit 4', 'sh -c exit 0']);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, FIRST_BOOT_MARKER), 'utf8')), {
    version: '20.1',
    firstBootAt: AT.toISOString(),
  });

  // And never again.
  const again = await prepareData(options(dir, { run: recordingRunner(ran) }));
  assert.deepEqual(again, { action: 'none' });
  assert.equal(ran.length, 2);
});

test('first-boot - a first boot that times out writes no marker', async (t) => {
  const dir = tempDir(t);
  const res = await prepareData(options(dir, { firstBoot: { command: ['sleep', '60'], timeoutMs: 200 } }));
  assert.ok(res.action === 'first-boot' && !res.ok);
  assert.equal(res.result?.timedOut, true);
  assert.equal(existsSync(join(dir, FIRST_BOOT_MARKER)), false);
});

test('first-boot - with no first-boot command the marker is simply written', async (t) => {
  const dir = tempDir(t);
  const res = await prepareData(options(dir, { firstBoot: { timeoutMs: 5000 } }));
  assert.ok(res.action === 'first-boot' && res.ok && !res.ran && res.markerWritten);
  assert.deepEqual(await readMarker(dir), {
    present: true,
    version: '20.1',
    content: { version: '20.1', firstBootAt: AT.toISOString() },
  });
});

test('first-boot - a new version runs the upgrade, then rewrites the marker; a failed upgrade keeps the old one', async (t) => {
  const dir = tempDir(t);
  await prepareData(options(dir));
  const ran: string[] = [];
  const actions: string[] = [];

  const failed = await prepareData(
    options(dir, {
      version: '21.0',
      upgrade: { command: ['sh', '-c', 'echo "$SWITCHYARD_PHASE"; exit 2'], timeoutMs: 5000 },
      run: recordingRunner(ran),
      onAction: (a) => actions.push(a),
      now: () => LATER,
    }),
  );
  assert.ok(failed.action === 'upgrade' && !failed.ok && !failed.markerWritten);
  assert.equal(failed.fromVersion, '20.1');
  assert.equal(failed.toVersion, '21.0');
  assert.equal(failed.result?.stdoutTail, 'upgrade\n', 'the command knows which step it is');
  assert.deepEqual(await readMarker(dir), {
    present: true,
    version: '20.1',
    content: { version: '20.1', firstBootAt: AT.toISOString() },
  });

  const done = await prepareData(
    options(dir, {
      version: '21.0',
      run: recordingRunner(ran),
      onAction: (a) => actions.push(a),
      now: () => LATER,
    }),
  );
  assert.ok(done.action === 'upgrade' && done.ok && done.markerWritten);
  assert.deepEqual(actions, ['upgrade', 'upgrade']);
  assert.equal(ran.length, 2);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, FIRST_BOOT_MARKER), 'utf8')), {
    version: '21.0',
    firstBootAt: AT.toISOString(),
    upgradedAt: LATER.toISOString(),
  });
  assert.deepEqual(await prepareData(options(dir, { version: '21.0' })), { action: 'none' });
});

test('first-boot - planning: no marker is a first boot; an unreadable marker is never a second first boot', async (t) => {
  assert.equal(planBoot({ present: false }, undefined), 'first-boot');
  assert.equal(planBoot({ present: true, version: '1' }, undefined), 'none', 'versions not tracked');
  assert.equal(planBoot({ present: true, version: '1' }, ''), 'none');
  assert.equal(planBoot({ present: true, version: '1' }, '1'), 'none');
  assert.equal(planBoot({ present: true, version: '1' }, '2'), 'upgrade');
  assert.equal(planBoot({ present: true, version: undefined }, '2'), 'upgrade');

  const dir = tempDir(t);
  writeFileSync(join(dir, FIRST_BOOT_MARKER), 'garbage');
  assert.deepEqual(await readMarker(dir), { present: true, version: undefined });
  const ran: string[] = [];
  const res = await prepareData(options(dir, { run: recordingRunner(ran) }));
  assert.equal(res.action, 'upgrade');
  assert.equal(ran.length, 1);
});
