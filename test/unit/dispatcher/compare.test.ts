import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareWithKamailio } from '../../../src/dispatcher/compare.ts';
import type { KamailioDestination } from '../../../src/net/kamailio-rpc-types.ts';
import { type ListDestination, renderDispatcherList } from '../../../src/proto/dispatcher-list.ts';

const d = (duid: string, over: Partial<ListDestination> = {}): ListDestination => ({
  setId: 1,
  uri: `sip:10.0.0.${duid.length}:5060`,
  duid,
  enabled: true,
  priority: 0,
  weight: 10,
  ...over,
});

function kamailioView(dests: ListDestination[], flags: Record<string, string> = {}): KamailioDestination[] {
  const r = renderDispatcherList(dests);
  return dests.map((x) => ({
    setId: x.setId,
    uri: x.uri,
    flags: flags[x.duid] ?? (x.enabled ? 'AP' : 'DX'),
    priority: x.priority,
    attrs: { body: r.attrs.get(`${x.setId}/${x.duid}`)!, duid: x.duid },
  }));
}

test('compare - identical view needs nothing, whatever Kamailio thinks of health', () => {
  const want = [d('a'), d('bb', { enabled: false })];
  const cmp = compareWithKamailio(want, renderDispatcherList(want), kamailioView(want, { a: 'IP' }));
  assert.deepEqual(cmp, { reloadReasons: [], stateChanges: [] });
});

test('compare - drain is a state change, not a reload', () => {
  const before = [d('a'), d('bb')];
  const after = [d('a'), d('bb', { enabled: false })];
  const cmp = compareWithKamailio(after, renderDispatcherList(after), kamailioView(before));
  // bb's attrs are equal; only the admin state differs
  assert.deepEqual(cmp.stateChanges, [{ setId: 1, duid: 'bb', state: 'd' }]);
  assert.deepEqual(cmp.reloadReasons, []);
});

test('compare - a lost node is disabled at once and removed by reload', () => {
  const before = [d('a'), d('bb'), d('ccc')];
  const after = [d('a'), d('bb')];
  const cmp = compareWithKamailio(after, renderDispatcherList(after), kamailioView(before));
  assert.deepEqual(cmp.stateChanges, [{ setId: 1, duid: 'ccc', state: 'd' }]);
  assert.ok(cmp.reloadReasons.some((r) => r.includes('extra ccc')));
});

test('compare - join, weight change, foreign and duplicate entries need a reload', () => {
  const want = [d('a', { weight: 20 }), d('bb')];
  const actual = kamailioView([d('a')]);
  actual.push({ setId: 1, uri: 'sip:6.6.6.6', flags: 'AP', priority: 0, attrs: { body: '' } });
  const cmp = compareWithKamailio(want, renderDispatcherList(want), actual);
  assert.ok(cmp.reloadReasons.some((r) => r.includes('missing bb')));
  assert.ok(cmp.reloadReasons.some((r) => r.includes('a: attrs')));
  assert.ok(cmp.reloadReasons.some((r) => r.includes('foreign')));
});

test('compare - undrain re-enables a disabled destination', () => {
  const want = [d('a')];
  const cmp = compareWithKamailio(want, renderDispatcherList(want), kamailioView(want, { a: 'DX' }));
  assert.deepEqual(cmp.stateChanges, [{ setId: 1, duid: 'a', state: 'a' }]);
});
