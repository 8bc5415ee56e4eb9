import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { agentConfigSchema } from '../../../src/agent/config.ts';
import {
  ACCOUNT_NAME,
  parentDeathPrefix,
  setprivWithPdeathsig,
  supervisionPrefix,
} from '../../../src/core/executables.ts';

const SETPRIV = '/usr/bin/setpriv';

test('executables - parent-death prefix: setpriv with the signal, or nothing when setpriv is missing', () => {
  assert.deepEqual(parentDeathPrefix('SIGTERM', SETPRIV), [SETPRIV, '--pdeathsig', 'SIGTERM']);
  assert.deepEqual(parentDeathPrefix('SIGKILL', '/bin/setpriv'), ['/bin/setpriv', '--pdeathsig', 'SIGKILL']);
  assert.deepEqual(parentDeathPrefix('SIGTERM', undefined), []);
});

test('executables - this machine has a setpriv that knows --pdeathsig (util-linux 2.38)', () => {
  assert.match(setprivWithPdeathsig() ?? '', /\/setpriv$/);
});

test('executables - runAs: one setpriv changes the credentials and then sets the signal', () => {
  assert.deepEqual(
    supervisionPrefix(
      { runAs: { user: 'asterisk', group: 'asterisk' }, parentDeathSignal: 'SIGTERM' },
      SETPRIV,
    ),
    [SETPRIV, '--reuid=asterisk', '--regid=asterisk', '--init-groups', '--pdeathsig', 'SIGTERM', '--'],
  );
  assert.deepEqual(supervisionPrefix({ runAs: { user: '1001', group: '1001' } }, SETPRIV), [
    SETPRIV,
    '--reuid=1001',
    '--regid=1001',
    '--init-groups',
    '--',
  ]);
  assert.deepEqual(supervisionPrefix({}, SETPRIV), []);
  assert.deepEqual(supervisionPrefix({ parentDeathSignal: 'SIGKILL' }, undefined), []);
  assert.throws(
    () => supervisionPrefix({ runAs: { user: 'asterisk', group: 'asterisk' } }, undefined),
    /needs setpriv/,
  );
});

test('executables - a user or group that setpriv could read as an option, or that holds a separator, is refused', () => {
  for (const bad of ['--help', '-u', 'a b', 'root,wheel', 'a=b', '', 'x'.repeat(40), 'a\nb'])
    assert.throws(
      () => supervisionPrefix({ runAs: { user: bad, group: 'g' } }, SETPRIV),
      /bad user or group/,
      bad,
    );
  fc.assert(
    fc.property(fc.string(), (name) => {
      // Whatever passes can only be one whole argument value: no leading dash, no space, no '='.
      if (!ACCOUNT_NAME.test(name)) return true;
      return !name.startsWith('-') && !/[\s=,]/.test(name);
    }),
  );
});

test('executables - agent config: runAs needs a command, and its names are checked', () => {
  const base = { sipUri: 'sip:127.0.0.1:5060' };
  assert.equal(agentConfigSchema.safeParse({ ...base, runAs: { user: 'asterisk' } }).success, false);
  const ok = agentConfigSchema.parse({ ...base, command: ['asterisk', '-f'], runAs: { user: 'asterisk' } });
  assert.deepEqual(ok.runAs, { user: 'asterisk' });
  assert.equal(
    agentConfigSchema.safeParse({ ...base, command: ['asterisk', '-f'], runAs: { user: '--reuid=0' } })
      .success,
    false,
  );
});
