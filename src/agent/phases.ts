import type { NodeState } from '../registry/index.ts';

/**
 * The managed life-cycle of one supervised Asterisk, after whaleware's (research/seed-systems.md
 * §5) with its gaps closed: a restart goes back through warm-up (whaleware declared UP again
 * without re-probing), draining is a phase of its own (take the node out at the load balancer
 * before stopping it), and `failed` is real (whaleware's ERROR was "not currently used").
 */
export const PHASES = [
  'boot',
  'first-boot',
  'upgrade',
  'warm-up',
  'up',
  'restarting',
  'draining',
  'drained',
  'stopped',
  'failed',
] as const;
export type Phase = (typeof PHASES)[number];

/**
 * Allowed transitions, by phase left. `stopped` is terminal (the agent exits); everything else
 * can reach it, because a stop request (SIGTERM, operator) must be honoured in any phase.
 */
const TRANSITIONS: Readonly<Record<Phase, readonly Phase[]>> = {
  // Rendering templates or reading the first-boot marker can fail: `failed`, not a retry loop.
  boot: ['first-boot', 'upgrade', 'warm-up', 'stopped', 'failed'],
  // The first boot installs the current version, so no upgrade follows it.
  'first-boot': ['warm-up', 'stopped', 'failed'],
  upgrade: ['warm-up', 'stopped', 'failed'],
  // A warm-up that misses its deadline or whose process dies restarts it. A stop during warm-up
  // skips draining: the node was never announced as ready, so no call can be on it.
  'warm-up': ['up', 'restarting', 'stopped', 'failed'],
  up: ['draining', 'restarting', 'stopped', 'failed'],
  // Every (re)start is followed by a fresh warm-up; the crash-loop detector ends in `failed`.
  restarting: ['warm-up', 'stopped', 'failed'],
  // `up` again when the operator cancels the drain; `restarting` when the process dies meanwhile.
  draining: ['drained', 'up', 'restarting', 'stopped', 'failed'],
  // Drained for maintenance: undrain, restart (rolling upgrade) or stop.
  drained: ['up', 'restarting', 'stopped', 'failed'],
  stopped: [],
  // Only an explicit operator retry leaves `failed` (or a stop); never an automatic restart.
  failed: ['restarting', 'stopped'],
};

/** Whether the life-cycle may go from `from` to `to`; staying in the same phase is not a transition. */
export function canTransition(from: Phase, to: Phase): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Phases reachable from `from` in one step. */
export function nextPhases(from: Phase): readonly Phase[] {
  return TRANSITIONS[from];
}

export function isPhase(value: unknown): value is Phase {
  return typeof value === 'string' && (PHASES as readonly string[]).includes(value);
}

/** No transition leaves a terminal phase. */
export function isTerminalPhase(phase: Phase): boolean {
  return TRANSITIONS[phase].length === 0;
}

/**
 * The `state` a node record carries in each phase. Only `ready` takes calls (the dispatcher
 * enables a destination for nothing else). `restarting`, `stopped` and `failed` are `down`, not
 * `starting`: the process is gone or given up on, and the console should say so.
 */
const REGISTRY_STATE: Readonly<Record<Phase, NodeState>> = {
  boot: 'starting',
  'first-boot': 'starting',
  upgrade: 'starting',
  'warm-up': 'starting',
  up: 'ready',
  restarting: 'down',
  draining: 'draining',
  drained: 'drained',
  stopped: 'down',
  failed: 'down',
};

export function registryStateOf(phase: Phase): NodeState {
  return REGISTRY_STATE[phase];
}
