import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type ListDestination,
  MAX_LINE_BYTES,
  parseDispatcherList,
  percentWeights,
  renderDispatcherList,
} from '../../../src/proto/dispatcher-list.ts';

const dest = (over: Partial<ListDestination> = {}): ListDestination => ({
  setId: 1,
  uri: 'sip:10.0.0.11:5060',
  duid: 'ast1',
  enabled: true,
  priority: 0,
  weight: 10,
  ...over,
});

test('dispatcher-list - renders the golden file', () => {
  const out = renderDispatcherList([
    dest({ duid: 'ast2', uri: 'sip:10.0.0.12:5060', enabled: false }),
    dest(),
    dest({ duid: 'ast3', uri: 'sip:[2001:db8::3]:5060', weight: 20, maxCalls: 50, priority: 5 }),
    dest({ setId: 2, duid: 'edge1', uri: 'sip:edge1.example.net;transport=tcp' }),
  ]);
  const golden = readFileSync(new URL('../../fixtures/golden/dispatcher.list', import.meta.url), 'utf8');
  assert.equal(out.text, golden);
  assert.equal(out.refused.size, 0);
  assert.equal(out.attrs.get('1/ast3'), 'duid=ast3;weight=50;rweight=20;maxload=50');
});

test('dispatcher-list - same input in any order renders byte-identical files', () => {
  const a = [
    dest(),
    dest({ duid: 'b', uri: 'sip:10.0.0.2' }),
    dest({ duid: 'c', uri: 'sip:10.0.0.3', setId: 3 }),
  ];
  assert.equal(renderDispatcherList(a).text, renderDispatcherList([...a].reverse()).text);
});

test('dispatcher-list - refuses unsafe fields instead of writing them', () => {
  const out = renderDispatcherList([
    dest({ duid: 'ok1' }),
    dest({ duid: 'evil;weight=100', uri: 'sip:10.0.0.2' }),
    dest({ duid: 'sp', uri: 'sip:10.0.0.3 0 0 duid=x' }),
    dest({ duid: 'nl', uri: 'sip:10.0.0.4\n1 sip:6.6.6.6' }),
    dest({ duid: 'w', uri: 'sip:10.0.0.5', weight: 1000 }),
  ]);
  assert.deepEqual([...out.refused.keys()].sort(), ['1/evil;weight=100', '1/nl', '1/sp', '1/w']);
  assert.equal(out.text.split('\n').filter((l) => l && !l.startsWith('#')).length, 1);
});

test('dispatcher-list - percent weights sum to 100 and keep every node', () => {
  assert.deepEqual(percentWeights([10, 10, 10]), [34, 33, 33]);
  assert.deepEqual(percentWeights([25, 75]), [25, 75]);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 100 }), (ws) => {
      const p = percentWeights(ws);
      assert.equal(p.length, ws.length);
      assert.ok(p.every((x) => x >= 1));
      assert.equal(
        p.reduce((a, b) => a + b, 0),
        100,
      );
    }),
  );
});

test('dispatcher-list - parse reads back what render wrote', () => {
  const dests = [
    dest(),
    dest({ duid: 'x2', uri: 'sip:10.0.0.9:5070', enabled: false, weight: 7, maxCalls: 3 }),
  ];
  const parsed = parseDispatcherList(renderDispatcherList(dests).text);
  assert.equal(parsed.skipped, 0);
  assert.deepEqual(
    parsed.destinations.map((d) => [d.duid, d.uri, d.enabled, d.weight, d.maxCalls]),
    [
      ['ast1', 'sip:10.0.0.11:5060', true, 10, undefined],
      ['x2', 'sip:10.0.0.9:5070', false, 7, 3],
    ],
  );
});

test('dispatcher-list - fuzz: any input renders lines Kamailio parses as 5 fields under the limit', () => {
  const arbDest = fc.record({
    setId: fc.integer({ min: -1, max: 70000 }),
    uri: fc.oneof(fc.string(), fc.constantFrom('sip:1.2.3.4', 'sip:a.example:5060', 'sip:[::1]:5060')),
    duid: fc.oneof(fc.string(), fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/)),
    enabled: fc.boolean(),
    priority: fc.integer({ min: -5, max: 2000 }),
    weight: fc.integer({ min: -5, max: 200 }),
    maxCalls: fc.option(fc.integer({ min: -1, max: 10 }), { nil: undefined }),
  });
  fc.assert(
    fc.property(fc.array(arbDest, { maxLength: 30 }), (dests) => {
      const out = renderDispatcherList(dests);
      for (const line of out.text.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        assert.ok(Buffer.byteLength(line) <= MAX_LINE_BYTES);
        assert.equal(line.split(/\s+/).length, 5, line);
        assert.doesNotMatch(line, /[\r\t\0]/);
      }
      assert.doesNotThrow(() => parseDispatcherList(out.text));
    }),
  );
});

test('dispatcher-list - parse never throws on garbage and skips what it cannot read', () => {
  fc.assert(fc.property(fc.string(), (s) => void parseDispatcherList(s)));
  assert.equal(parseDispatcherList('1 sip:1.2.3.4 0 0 weight=5\nnot a line\n').skipped, 2);
});
