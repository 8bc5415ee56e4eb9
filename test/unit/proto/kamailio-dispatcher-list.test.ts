import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { type ListedDestination, parseDispatcherList } from '../../../src/proto/kamailio-dispatcher-list.ts';

/** The `result` member of a reply captured from a real Kamailio 5.6.3 (capture-fixtures.ts). */
function captured(name: string): unknown {
  const reply = JSON.parse(readFileSync(new URL(`../../fixtures/kamailio/${name}`, import.meta.url), 'utf8'));
  return reply.result;
}

function parsed(name: string): ListedDestination[] {
  const r = parseDispatcherList(captured(name));
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.value;
}

const byDuid = (list: ListedDestination[]) => new Map(list.map((d) => [d.attrs.duid ?? d.uri, d]));

test('dispatcher list - parses several sets with duid, weight, rweight and maxload', () => {
  const list = parsed('dispatcher-list-mixed.jsonrpc');
  assert.equal(list.length, 5);
  assert.deepEqual(
    list.map((d) => d.setId),
    [1, 1, 3, 2, 2],
    'Kamailio order is kept',
  );
  const d = byDuid(list);
  assert.deepEqual(d.get('as1'), {
    setId: 1,
    uri: d.get('as1')!.uri,
    flags: 'AP',
    priority: 0,
    attrs: { body: 'duid=as1;weight=50;rweight=50', duid: 'as1', weight: 50, rweight: 50, maxload: 0 },
  });
  assert.deepEqual(d.get('as2')?.attrs, {
    body: 'duid=as2;weight=50;rweight=50;maxload=20',
    duid: 'as2',
    weight: 50,
    rweight: 50,
    maxload: 20,
  });
  assert.equal(d.get('as2')?.flags, 'IP', 'an unreachable destination is inactive and probing');
  assert.equal(d.get('as2')?.priority, 5);
  assert.equal(d.get('as-4.x_y')?.setId, 3);
  assert.match(d.get('as-4.x_y')!.uri, /^sip:127\.[0-9.]+:5060;transport=udp$/);
  assert.equal(d.get('as-4.x_y')?.attrs.rweight, 7);
  assert.equal(d.get('as-4.x_y')?.attrs.weight, 0, 'Kamailio reports an unset weight as 0');
  for (const x of list) assert.match(x.uri, /^sip:127\./);
});

test('dispatcher list - a disabled entry reads DX', () => {
  const as3 = byDuid(parsed('dispatcher-list-mixed.jsonrpc')).get('as3');
  assert.equal(as3?.flags, 'DX');
  assert.equal(as3?.setId, 2);
  assert.equal(as3?.attrs.weight, 100);
});

test('dispatcher list - an entry without attrs gets an empty body and no duid', () => {
  const noAttrs = parsed('dispatcher-list-mixed.jsonrpc').filter((d) => d.attrs.duid === undefined);
  assert.equal(noAttrs.length, 1);
  assert.deepEqual(noAttrs[0]?.attrs, { body: '' });
  assert.equal(noAttrs[0]?.setId, 2);
  assert.match(noAttrs[0]!.uri, /^sip:127\.[0-9.]+$/);
});

test('dispatcher list - a freshly reloaded list is active and not yet probed', () => {
  const list = parsed('dispatcher-list-fresh.jsonrpc');
  assert.deepEqual(
    list.map((d) => d.flags),
    ['AX', 'AX', 'AX', 'AX', 'DX'],
  );
});

test('dispatcher list - a destination set to trying reads TX', () => {
  assert.equal(byDuid(parsed('dispatcher-list-trying.jsonrpc')).get('as2')?.flags, 'TX');
});

test('dispatcher list - full and short modes parse to the same destinations', () => {
  const normal = parsed('dispatcher-list-mixed.jsonrpc');
  assert.deepEqual(parsed('dispatcher-list-full.jsonrpc'), normal);
  const short = parsed('dispatcher-list-short.jsonrpc');
  assert.deepEqual(
    short.map((d) => [d.setId, d.uri, d.flags, d.priority, d.attrs.body]),
    normal.map((d) => [d.setId, d.uri, d.flags, d.priority, '']),
  );
});

test('dispatcher list - an empty RECORDS array is an empty list', () => {
  assert.deepEqual(parseDispatcherList({ NRSETS: 0, RECORDS: [] }), { ok: true, value: [] });
});

test('dispatcher list - names the first malformed member', () => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /result is not an object/],
    [{}, /RECORDS is not an array/],
    [{ RECORDS: [1] }, /RECORDS\[0\] is not an object/],
    [{ RECORDS: [{ SET: { ID: '1', TARGETS: [] } }] }, /SET\.ID is not an integer/],
    [{ RECORDS: [{ SET: { ID: 1, TARGETS: {} } }] }, /TARGETS is not an array/],
    [{ RECORDS: [{ SET: { ID: 1, TARGETS: [{ DEST: { URI: '', FLAGS: 'AP' } }] } }] }, /URI/],
    [{ RECORDS: [{ SET: { ID: 1, TARGETS: [{ DEST: { URI: 'sip:a', FLAGS: 'ZZ' } }] } }] }, /FLAGS/],
    [
      { RECORDS: [{ SET: { ID: 1, TARGETS: [{ DEST: { URI: 'sip:a', FLAGS: 'AP', PRIORITY: 1.5 } }] } }] },
      /PRIORITY/,
    ],
    [
      {
        RECORDS: [{ SET: { ID: 1, TARGETS: [{ DEST: { URI: 'sip:a', FLAGS: 'AP', ATTRS: { BODY: 1 } } }] } }],
      },
      /ATTRS\.BODY/,
    ],
    [
      {
        RECORDS: [
          { SET: { ID: 1, TARGETS: [{ DEST: { URI: 'sip:a', FLAGS: 'AP', ATTRS: { WEIGHT: '5' } } }] } },
        ],
      },
      /ATTRS\.WEIGHT/,
    ],
  ];
  for (const [input, reason] of cases) {
    const r = parseDispatcherList(input);
    assert.equal(r.ok, false, JSON.stringify(input));
    assert.match(r.ok ? '' : r.reason, reason);
  }
});

test('dispatcher list - never throws on arbitrary JSON', () => {
  const dest = fc.record(
    {
      URI: fc.oneof(fc.string(), fc.jsonValue()),
      FLAGS: fc.oneof(fc.constantFrom('AP', 'IP', 'DX', 'TX', 'AX'), fc.jsonValue()),
      PRIORITY: fc.oneof(fc.integer(), fc.jsonValue()),
      ATTRS: fc.oneof(
        fc.record(
          { BODY: fc.jsonValue(), DUID: fc.jsonValue(), WEIGHT: fc.jsonValue(), MAXLOAD: fc.jsonValue() },
          { requiredKeys: [] },
        ),
        fc.jsonValue(),
      ),
    },
    { requiredKeys: [] },
  );
  const nearlyValid = fc.record({
    NRSETS: fc.jsonValue(),
    RECORDS: fc.array(
      fc.oneof(
        fc.record({
          SET: fc.record({
            ID: fc.oneof(fc.integer(), fc.jsonValue()),
            TARGETS: fc.array(fc.record({ DEST: dest })),
          }),
        }),
        fc.jsonValue(),
      ),
    ),
  });
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), nearlyValid), (value) => {
      const r = parseDispatcherList(value);
      assert.equal(typeof r.ok, 'boolean');
    }),
    { numRuns: 1500 },
  );
});
