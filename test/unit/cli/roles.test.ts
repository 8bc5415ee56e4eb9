import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runUntilSignal } from '../../../src/cli/roles.ts';
import { createSilentLogger } from '../../../src/core/logger.ts';

// process.emit delivers a signal to the listeners only: nothing is sent to the process itself.
const signal = () => process.emit('SIGTERM', 'SIGTERM');
const tick = () => new Promise((r) => setImmediate(r));

test('cli roles - SIGTERM stops the role and resolves 0', async () => {
  let stopped = 0;
  const done = runUntilSignal(
    async () => ({
      stop: async () => {
        stopped++;
      },
    }),
    createSilentLogger(),
  );
  await tick();
  assert.equal(stopped, 0, 'runs until signalled');
  signal();
  assert.equal(await done, 0);
  assert.equal(stopped, 1);
  assert.equal(process.listenerCount('SIGTERM'), 0, 'handlers removed');
});

test('cli roles - a role that fails to start resolves 1', async () => {
  const code = await runUntilSignal(async () => {
    throw new Error('port in use');
  }, createSilentLogger());
  assert.equal(code, 1);
  assert.equal(process.listenerCount('SIGTERM'), 0);
});

test('cli roles - a signal during start stops the role as soon as it is up', async () => {
  let release: (() => void) | undefined;
  let stopped = false;
  const done = runUntilSignal(async () => {
    await new Promise<void>((r) => (release = r));
    return {
      stop: async () => {
        stopped = true;
      },
    };
  }, createSilentLogger());
  await tick();
  signal();
  release?.();
  assert.equal(await done, 0);
  assert.equal(stopped, true);
});

test('cli roles - a failed stop or a second signal resolves 1', async () => {
  const failing = runUntilSignal(
    async () => ({
      stop: async () => {
        throw new Error('stuck');
      },
    }),
    createSilentLogger(),
  );
  await tick();
  signal();
  assert.equal(await failing, 1);

  const hanging = runUntilSignal(
    async () => ({ stop: () => new Promise<void>(() => {}) }),
    createSilentLogger(),
  );
  await tick();
  signal();
  await tick();
  signal();
  assert.equal(await hanging, 1);
});

test('cli roles - the stop timeout is the role own one when it states it, else the default', async () => {
  const slowStop = (ms: number) => () => new Promise<void>((r) => setTimeout(r, ms));
  // The role knows its stop takes up to 1 s (a drain): a default of 50 ms must not cut it short.
  const patient = runUntilSignal(
    async () => ({ stop: slowStop(150), stopTimeoutMs: 1000 }),
    createSilentLogger(),
    50,
  );
  await tick();
  signal();
  assert.equal(await patient, 0);
  // A role that states nothing gets the default, and a stop beyond it resolves 1.
  const impatient = runUntilSignal(async () => ({ stop: slowStop(150) }), createSilentLogger(), 50);
  await tick();
  signal();
  assert.equal(await impatient, 1);
});
