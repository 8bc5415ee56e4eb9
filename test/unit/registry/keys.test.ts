import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeEntry } from '../../../src/registry/decode.ts';
import { DEFAULT_PREFIX, KeyKind, keyFor, parseKey, prefixFor } from '../../../src/registry/keys.ts';

const T = '2026-11-22T00:00:00.000Z';
const P = DEFAULT_PREFIX;
const nodeJson = (id: string, uri = 'sip:10.0.0.1:5060') =>
  JSON.stringify({ id, uri, state: 'ready', startedAt: T, updatedAt: T });

test('keys - layout under the prefix', () => {
  assert.equal(keyFor(P, KeyKind.node, 'as1'), '/switchyard/nodes/as1');
  assert.equal(keyFor(P, KeyKind.static, 'pbx'), '/switchyard/static/pbx');
  assert.equal(keyFor(P, KeyKind.intent, 'as1'), '/switchyard/intents/as1');
  assert.equal(keyFor('/lab/east', KeyKind.dispatcher, 'lb1'), '/lab/east/dispatchers/lb1');
  assert.equal(prefixFor(P), '/switchyard/');
  assert.equal(prefixFor(P, KeyKind.node), '/switchyard/nodes/');
});

test('keys - parseKey inverts keyFor for every kind', () => {
  for (const kind of Object.values(KeyKind)) {
    assert.deepEqual(parseKey(P, keyFor(P, kind, 'as-1.x_y')), { kind, id: 'as-1.x_y' });
  }
  fc.assert(
    fc.property(
      fc.constantFrom(...Object.values(KeyKind)),
      fc.string({ minLength: 1 }).filter((s) => !s.includes('/')),
      (kind, id) => {
        assert.deepEqual(parseKey(P, keyFor(P, kind, id)), { kind, id });
      },
    ),
  );
});

test('keys - parseKey ignores keys that are not ours', () => {
  for (const key of [
    '/other/nodes/as1',
    '/switchyardx/nodes/as1', // prefix boundary
    '/switchyard',
    '/switchyard/',
    '/switchyard/nodes',
    '/switchyard/nodes/',
    '/switchyard/nodes/a/b',
    '/switchyard/election/x',
    '/switchyard//as1',
  ]) {
    assert.equal(parseKey(P, key), undefined, key);
  }
});

test('keys - decodeEntry rejects ids in keys that are unsafe as duid', () => {
  for (const id of ['a;b', 'a=b', 'a b', '-a', 'ä', 'x'.repeat(64), 'a\nb']) {
    const e = decodeEntry(P, keyFor(P, KeyKind.node, id), nodeJson('as1'));
    assert.ok(e && !e.ok, id);
    assert.match(e.reason, /invalid id in key/);
    const intent = decodeEntry(
      P,
      keyFor(P, KeyKind.intent, id),
      JSON.stringify({ drain: true, updatedAt: T }),
    );
    assert.ok(intent && !intent.ok, `intent ${id}`);
  }
});

test('keys - decodeEntry rejects a record whose id differs from its key', () => {
  const e = decodeEntry(P, keyFor(P, KeyKind.node, 'as2'), nodeJson('as1'));
  assert.ok(e && !e.ok);
  assert.match(e.reason, /differs from key id/);
  const s = decodeEntry(
    P,
    keyFor(P, KeyKind.static, 'pbx2'),
    JSON.stringify({ id: 'pbx1', uri: 'sip:a', addedAt: T }),
  );
  assert.ok(s && !s.ok);
  const d = decodeEntry(
    P,
    keyFor(P, KeyKind.dispatcher, 'lb2'),
    JSON.stringify({
      name: 'lb1',
      kamailioRpc: 'x',
      listFile: 'y',
      generation: 0,
      appliedHash: '',
      inSync: false,
      registryConnected: true,
      kamailioReachable: true,
      driftRepairs: 0,
      nodes: 0,
      updatedAt: T,
    }),
  );
  assert.ok(d && !d.ok);
  assert.match(d.reason, /name lb1 differs/);
});

test('keys - decodeEntry decodes each kind and reports malformed keys of known kinds', () => {
  const n = decodeEntry(P, keyFor(P, KeyKind.node, 'as1'), nodeJson('as1'));
  assert.ok(n?.ok && n.kind === 'nodes' && n.value.uri === 'sip:10.0.0.1:5060');
  const i = decodeEntry(P, keyFor(P, KeyKind.intent, 'as1'), JSON.stringify({ disable: true, updatedAt: T }));
  assert.ok(i?.ok && i.kind === 'intents' && i.value.disable);
  const bad = decodeEntry(P, keyFor(P, KeyKind.node, 'as1'), nodeJson('as1', 'sip:1.2.3.4;weight=100'));
  assert.ok(bad && !bad.ok && bad.kind === 'nodes');
  const nested = decodeEntry(P, '/switchyard/nodes/a/b', nodeJson('a'));
  assert.ok(nested && !nested.ok);
  assert.equal(nested.reason, 'malformed key');
  assert.equal(decodeEntry(P, '/switchyard/election/x', 'whatever'), undefined);
  assert.equal(decodeEntry(P, '/elsewhere/nodes/as1', nodeJson('as1')), undefined);
});
