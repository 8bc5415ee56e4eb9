import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  decodeDispatcherStatus,
  decodeIntent,
  decodeNodeRecord,
  decodeStaticNode,
  MAX_RECORD_BYTES,
  type NodeRecord,
} from '../../../src/registry/records.ts';

const T = '2026-11-22T00:00:00.000Z';
const base = { id: 'as1', uri: 'sip:10.0.0.1:5060', state: 'ready', startedAt: T, updatedAt: T };
const withFields = (over: Record<string, unknown>) => JSON.stringify({ ...base, ...over });

function reason(raw: string): string {
  const r = decodeNodeRecord(raw);
  assert.equal(r.ok, false, `expected a rejection for ${raw}`);
  return r.ok ? '' : r.reason;
}

function decoded(raw: string): NodeRecord {
  const r = decodeNodeRecord(raw);
  if (!r.ok) assert.fail(`expected ${raw} to decode: ${r.reason}`);
  return r.value;
}

test('records - a minimal node record decodes with defaults', () => {
  const n = decoded(JSON.stringify(base));
  assert.deepEqual(n, { ...base, setId: 1, priority: 0, calls: 0, version: '' });
});

test('records - accepts hostnames, IPv4, bracketed IPv6, users and the transport parameter', () => {
  for (const uri of [
    'sip:as1.example.com',
    'sip:10.0.0.1',
    'sip:10.0.0.1:65535',
    'sips:10.0.0.1:5061;transport=tls',
    'sip:asterisk@10.0.0.1:5060;transport=tcp',
    'sip:[::1]',
    'sip:[2001:db8::10]:5060',
    'sip:[2001:db8::10]:5060;transport=udp',
    'sip:[::ffff:10.0.0.1]:5080',
  ]) {
    assert.equal(decoded(withFields({ uri })).uri, uri);
  }
});

test('records - refuses URIs that could break or inject into a dispatcher.list line', () => {
  for (const uri of [
    'sip:1.2.3.4;weight=100', // attribute injection
    'sip:1.2.3.4;transport=udp;lr',
    'sip:1.2.3.4;transport=udp;duid=other',
    'sip:a b', // whitespace ends the field
    'sip:x\n1 sip:evil', // a second line
    'sip:x\r\n',
    'sip:10.0.0.1\t',
    ' sip:10.0.0.1',
    'sip:10.0.0.1?X-Evil=1', // headers
    'sip:10.0.0.1:0',
    'sip:10.0.0.1:65536',
    'sip:10.0.0.1:',
    'sip:[fe80::1%eth0]',
    'sip:2001:db8::1', // IPv6 must be bracketed
    'sip:',
    'tel:+15551234',
    'http://10.0.0.1/',
    'sip:us er@10.0.0.1',
    'sip:10.0.0.1;transport=ws',
    `sip:${'a'.repeat(300)}.example.com`,
  ]) {
    assert.match(reason(withFields({ uri })), /uri/, `uri ${JSON.stringify(uri)}`);
  }
});

test('records - refuses ids that are not safe duid values', () => {
  for (const id of ['a;b', 'a=b', 'a b', '', '-a', '.a', 'a/b', 'nöde', 'a\nb', 'x'.repeat(64), 'a,b']) {
    assert.match(reason(withFields({ id })), /id/, `id ${JSON.stringify(id)}`);
  }
  assert.equal(decoded(withFields({ id: 'as-1.dc_2' })).id, 'as-1.dc_2');
  assert.equal(decoded(withFields({ id: 'x'.repeat(63) })).id.length, 63);
});

test('records - refuses broken JSON and wrong types', () => {
  assert.match(reason('{"id":"as1",'), /not valid JSON/);
  assert.match(reason(''), /not valid JSON/);
  assert.match(reason('null'), /invalid/);
  assert.match(reason('[]'), /invalid/);
  assert.match(reason('"sip:10.0.0.1"'), /invalid/);
  assert.match(reason(withFields({ id: 7 })), /id/);
  assert.match(reason(withFields({ state: 'up' })), /state/);
  assert.match(reason(withFields({ calls: '3' })), /calls/);
  assert.match(reason(withFields({ weight: '50' })), /weight/);
  assert.match(reason(withFields({ setId: null })), /setId/);
  assert.match(reason(withFields({ stats: { nested: { a: 1 } } })), /stats/);
  const { uri: _uri, ...noUri } = base;
  assert.match(reason(JSON.stringify(noUri)), /uri/);
});

test('records - refuses numbers out of range', () => {
  for (const [field, value] of [
    ['weight', 0],
    ['weight', 101],
    ['weight', 1.5],
    ['weight', -1],
    ['maxCalls', 0],
    ['priority', 1001],
    ['priority', -1],
    ['setId', 0],
    ['setId', 65536],
    ['calls', -1],
    ['calls', 1e12],
  ] as const) {
    assert.match(reason(withFields({ [field]: value })), new RegExp(field), `${field}=${value}`);
  }
  assert.equal(decoded(withFields({ weight: 100, maxCalls: 1, setId: 65535 })).weight, 100);
});

test('records - refuses control characters in free text', () => {
  assert.match(reason(withFields({ version: 'v1\u001b[31m' })), /version/);
  assert.match(reason(withFields({ version: 'a\nb' })), /version/);
  assert.match(reason(withFields({ updatedAt: `${T}\n` })), /updatedAt/);
  assert.match(reason(withFields({ stats: { 'probe\nms': 3 } })), /stats/);
  assert.equal(decoded(withFields({ version: 'Asterisk 20.5.0 (cert)' })).version, 'Asterisk 20.5.0 (cert)');
});

test('records - refuses oversized values before parsing them', () => {
  const big = withFields({
    stats: {
      blob: 'x'.repeat(190),
      ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'y'.repeat(150)])),
    },
  });
  assert.ok(Buffer.byteLength(big) > MAX_RECORD_BYTES);
  assert.match(reason(big), /larger than 4096 bytes/);
  assert.match(reason(' '.repeat(MAX_RECORD_BYTES + 1)), /larger than/);
});

test('records - static nodes, intents and dispatcher status decode with the same rules', () => {
  const st = decodeStaticNode(JSON.stringify({ id: 'pbx1', uri: 'sip:[2001:db8::5]:5060', addedAt: T }));
  assert.ok(st.ok && st.value.addedBy === 'operator' && st.value.setId === 1);
  assert.equal(decodeStaticNode(JSON.stringify({ id: 'pbx1', uri: 'sip:a;b=c', addedAt: T })).ok, false);

  const it = decodeIntent(JSON.stringify({ drain: true, updatedAt: T }));
  assert.ok(it.ok && it.value.drain && !it.value.disable && it.value.by === 'operator');
  assert.equal(decodeIntent(JSON.stringify({ weight: 0, updatedAt: T })).ok, false);
  assert.equal(decodeIntent(JSON.stringify({ reason: 'a\u0007', updatedAt: T })).ok, false);

  const status = {
    name: 'lb1',
    kamailioRpc: 'http://127.0.0.1:5071/RPC',
    listFile: '/run/dispatcher.list',
    generation: 3,
    appliedHash: 'ab12',
    inSync: true,
    registryConnected: true,
    kamailioReachable: true,
    driftRepairs: 0,
    nodes: 2,
    updatedAt: T,
  };
  assert.equal(decodeDispatcherStatus(JSON.stringify(status)).ok, true);
  assert.equal(decodeDispatcherStatus(JSON.stringify({ ...status, generation: -1 })).ok, false);
});

// ---- properties --------------------------------------------------------------------------------

/** Characters that matter to Kamailio's list parser or to a log line, plus ordinary ones. */
const NASTY = [
  ' ',
  '\t',
  '\n',
  '\r',
  '\u0000',
  '\u001b',
  '\u007f',
  '\u2028',
  ';',
  '=',
  ',',
  '@',
  ':',
  '[',
  ']',
  '?',
  '&',
  '"',
  "'",
  '/',
  '%',
  '#',
  'a',
  'Z',
  '0',
  '9',
  '.',
  '-',
  '_',
  '+',
  'é',
];
const nastyString = fc.array(fc.constantFrom(...NASTY), { maxLength: 40 }).map((cs) => cs.join(''));
const anyString = fc.oneof(fc.string({ unit: 'binary', maxLength: 80 }), nastyString);
/** Plausible URIs built from valid pieces, sometimes with one nasty character spliced in. */
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
const host = fc.oneof(
  fc.ipV4(),
  fc.ipV6().map((h) => `[${h}]`),
  fc.array(label, { minLength: 1, maxLength: 3 }).map((ls) => ls.join('.')),
);
const plausibleUri = fc
  .tuple(
    fc.constantFrom('sip:', 'sips:'),
    fc.option(fc.stringMatching(/^[a-z0-9._+-]{1,10}@$/), { nil: '' }),
    host,
    fc.option(
      fc.integer({ min: 0, max: 70000 }).map((p) => `:${p}`),
      { nil: '' },
    ),
    fc.option(
      fc.constantFrom(';transport=udp', ';transport=tls', ';transport=ws', ';lr', ';transport=udp;lr'),
      {
        nil: '',
      },
    ),
  )
  .map((parts) => parts.join(''));
const splice = fc
  .tuple(plausibleUri, fc.constantFrom(...NASTY), fc.nat())
  .map(([u, c, at]) => u.slice(0, at % (u.length + 1)) + c + u.slice(at % (u.length + 1)));
const uriCandidate = fc.oneof(
  { arbitrary: plausibleUri, weight: 6 },
  { arbitrary: splice, weight: 3 },
  anyString,
  fc
    .tuple(fc.constantFrom('sip:', 'sips:', 'sip:10.0.0.1', 'sip:[::1]', 'sip:a@b'), anyString)
    .map(([a, b]) => a + b),
  fc
    .tuple(
      fc.constantFrom('sip:10.0.0.1:5060', 'sip:h.example'),
      fc.constantFrom(';transport=', ';', ''),
      anyString,
    )
    .map(([a, b, c]) => a + b + c),
);

test('records - decodeNodeRecord never throws, whatever the input (property)', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.json(), anyString), (raw) => {
      const r = decodeNodeRecord(raw);
      assert.equal(typeof r.ok, 'boolean');
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.anything(), (value) => {
      let raw: string | undefined;
      try {
        raw = JSON.stringify(value);
      } catch {
        return; // BigInt and friends are not JSON
      }
      if (raw === undefined) return;
      assert.equal(typeof decodeNodeRecord(raw).ok, 'boolean');
    }),
    { numRuns: 1000 },
  );
});

test('records - whatever decodes has an id and URI safe to render (property)', () => {
  const unsafe = /[\s\u0000-\u001f\u007f\u0080-\u009f\u2028\u2029]/;
  let accepted = 0;
  fc.assert(
    fc.property(
      uriCandidate,
      fc.oneof(
        { arbitrary: anyString, weight: 1 },
        { arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,70}$/), weight: 4 },
      ),
      (uri, id) => {
        const r = decodeNodeRecord(withFields({ uri, id }));
        if (!r.ok) return;
        accepted++;
        const { uri: u, id: i } = r.value;
        assert.doesNotMatch(u, unsafe);
        assert.doesNotMatch(i, unsafe);
        assert.doesNotMatch(i, /[;=,/]/);
        // The only parameter that survives is transport.
        assert.doesNotMatch(u.replace(/;transport=(udp|tcp|tls|sctp)$/, ''), /[;=?&]/);
        assert.ok(u.length <= 255 && i.length <= 63);
      },
    ),
    { numRuns: 5000 },
  );
  // The property means something only if plenty of generated records are accepted.
  assert.ok(accepted > 500, `only ${accepted} of 5000 generated records decoded`);
});
