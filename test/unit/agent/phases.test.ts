import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  canTransition,
  isPhase,
  isTerminalPhase,
  nextPhases,
  PHASES,
  type Phase,
  registryStateOf,
} from '../../../src/agent/phases.ts';
import { NODE_STATES } from '../../../src/registry/index.ts';

test('phases - the normal life: boot, warm-up, up, draining, drained, stopped', () => {
  const path: Phase[] = ['boot', 'warm-up', 'up', 'draining', 'drained', 'stopped'];
  for (let i = 1; i < path.length; i++) {
    const from = path[i - 1] as Phase;
    const to = path[i] as Phase;
    assert.ok(canTransition(from, to), `${from} -> ${to}`);
  }
});

test('phases - first boot and upgrade lead to warm-up, never to up directly', () => {
  assert.ok(canTransition('boot', 'first-boot'));
  assert.ok(canTransition('boot', 'upgrade'));
  assert.ok(canTransition('first-boot', 'warm-up'));
  assert.ok(canTransition('upgrade', 'warm-up'));
  assert.equal(canTransition('first-boot', 'up'), false);
  assert.equal(canTransition('upgrade', 'up'), false);
  assert.equal(canTransition('boot', 'up'), false, 'nothing is up before a warm-up has proved it');
  assert.equal(canTransition('first-boot', 'upgrade'), false, 'a first boot installs the current version');
});

test('phases - a restart always goes back through warm-up (whaleware declared UP without probing)', () => {
  assert.ok(canTransition('up', 'restarting'));
  assert.ok(canTransition('restarting', 'warm-up'));
  assert.equal(canTransition('restarting', 'up'), false);
  assert.ok(canTransition('restarting', 'failed'), 'crash loop');
});

test('phases - every phase but stopped can be stopped; stopped is terminal', () => {
  for (const phase of PHASES) {
    if (phase === 'stopped') continue;
    assert.ok(canTransition(phase, 'stopped'), `${phase} -> stopped`);
    assert.equal(isTerminalPhase(phase), false);
  }
  assert.ok(isTerminalPhase('stopped'));
  assert.deepEqual(nextPhases('stopped'), []);
});

test('phases - failed is left only by an explicit retry or a stop', () => {
  assert.deepEqual([...nextPhases('failed')].sort(), ['restarting', 'stopped']);
  assert.equal(canTransition('failed', 'up'), false);
  assert.equal(canTransition('failed', 'warm-up'), false);
});

test('phases - a drain can be cancelled, and a drained node restarted (rolling upgrade)', () => {
  assert.ok(canTransition('draining', 'up'));
  assert.ok(canTransition('drained', 'up'));
  assert.ok(canTransition('drained', 'restarting'));
  assert.equal(canTransition('warm-up', 'draining'), false, 'never announced ready: nothing to drain');
});

test('phases - staying in a phase is not a transition', () => {
  for (const phase of PHASES) assert.equal(canTransition(phase, phase), false, phase);
});

test('phases - every phase maps to a registry state, and only up takes calls', () => {
  for (const phase of PHASES) assert.ok(NODE_STATES.includes(registryStateOf(phase)), phase);
  assert.deepEqual(
    PHASES.filter((p) => registryStateOf(p) === 'ready'),
    ['up'],
  );
  assert.equal(registryStateOf('boot'), 'starting');
  assert.equal(registryStateOf('warm-up'), 'starting');
  assert.equal(registryStateOf('draining'), 'draining');
  assert.equal(registryStateOf('drained'), 'drained');
  assert.equal(registryStateOf('restarting'), 'down');
  assert.equal(registryStateOf('failed'), 'down');
  assert.equal(registryStateOf('stopped'), 'down');
});

test('phases - isPhase accepts exactly the phase names', () => {
  assert.ok(isPhase('warm-up'));
  assert.equal(isPhase('WARMUP'), false);
  assert.equal(isPhase(undefined), false);
  assert.equal(isPhase('toString'), false);
});
