import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLabNetwork } from '../../../src/lab/netns.ts';
import { routable } from '../../../src/lab/observe.ts';

test('lab netns - names and addresses are checked before any command runs', async () => {
  const bad = [
    { prefix: 'Bad Prefix', hosts: [{ name: 'a', ip: '10.213.0.1' }] },
    { prefix: 'syl;rm', hosts: [{ name: 'a', ip: '10.213.0.1' }] },
    { prefix: 'sylx', hosts: [{ name: 'a b', ip: '10.213.0.1' }] },
    { prefix: 'sylx', hosts: [{ name: 'a', ip: '10.213.0.300' }] },
    { prefix: 'sylx', hosts: [{ name: 'a', ip: '10.213.0.1; reboot' }] },
  ];
  for (const b of bad) {
    await assert.rejects(
      createLabNetwork({ ...b, prefixLength: 24 }),
      /SY_ERR_INVALID_ARGUMENT|invalid/,
      JSON.stringify(b),
    );
  }
  await assert.rejects(
    createLabNetwork({
      prefix: 'sylx',
      hosts: [{ name: 'a', ip: '10.213.0.1' }],
      prefixLength: 24,
      sysctls: { a: ['net.ipv4.ip_forward=1 && reboot'] },
    }),
  );
});

test('lab observe - routable means active or trying, not inactive, disabled or absent', () => {
  const d = new Map([
    ['as1', 'AP'],
    ['as2', 'IP'],
    ['as3', 'DX'],
    ['as4', 'TP'],
  ]);
  assert.equal(routable(d, 'as1'), true);
  assert.equal(routable(d, 'as2'), false);
  assert.equal(routable(d, 'as3'), false);
  assert.equal(routable(d, 'as4'), true);
  assert.equal(routable(d, 'as5'), false);
  assert.equal(routable(undefined, 'as1'), false);
});
