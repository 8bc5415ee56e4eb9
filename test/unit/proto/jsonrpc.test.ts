import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeResponse, encodeRequest } from '../../../src/proto/jsonrpc.ts';

const fixture = (name: string) =>
  readFileSync(new URL(`../../fixtures/kamailio/${name}`, import.meta.url), 'utf8');

test('jsonrpc - encodes a request with positional params and an id', () => {
  const text = encodeRequest('dispatcher.set_duid_state', ['d', 1, 'as1'], 7);
  assert.deepEqual(JSON.parse(text), {
    jsonrpc: '2.0',
    method: 'dispatcher.set_duid_state',
    params: ['d', 1, 'as1'],
    id: 7,
  });
});

test('jsonrpc - omits params when there are none', () => {
  assert.equal(
    encodeRequest('core.version', undefined, 'a'),
    '{"jsonrpc":"2.0","method":"core.version","id":"a"}',
  );
});

test('jsonrpc - refuses method names that are not module.command', () => {
  for (const bad of ['', 'a b', 'x\ny', '1abc', 'dispatcher.list"', 'a'.repeat(200)]) {
    assert.throws(() => encodeRequest(bad, [], 1), TypeError, bad);
  }
  assert.throws(() => encodeRequest('core.version', [], 1.5), TypeError);
});

test('jsonrpc - decodes a real Kamailio result', () => {
  const r = decodeResponse(fixture('reply-reload-ok.jsonrpc'), 2);
  assert.deepEqual(r, { ok: true, value: { result: 'Ok. Dispatcher successfully reloaded.' } });
});

test('jsonrpc - decodes a real Kamailio fault as a successful decode of an error', () => {
  const r = decodeResponse(fixture('fault-ongoing-reload.jsonrpc'), 3);
  assert.deepEqual(r, { ok: true, value: { error: { code: 500, message: 'Ongoing reload' } } });
});

test('jsonrpc - keeps error data', () => {
  const r = decodeResponse(
    '{"jsonrpc":"2.0","error":{"code":-32602,"message":"bad","data":[1]},"id":null}',
    9,
  );
  assert.deepEqual(r, { ok: true, value: { error: { code: -32602, message: 'bad', data: [1] } } });
});

test('jsonrpc - rejects a reply to another request', () => {
  const r = decodeResponse(fixture('reply-reload-ok.jsonrpc'), 3);
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.reason, /id/);
});

test('jsonrpc - rejects what is not a JSON-RPC 2.0 response', () => {
  const cases = [
    '',
    'not json',
    '[]',
    'null',
    '"x"',
    '{"result":1,"id":1}',
    '{"jsonrpc":"1.0","result":1,"id":1}',
    '{"jsonrpc":"2.0","id":1}',
    '{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"x"},"id":1}',
    '{"jsonrpc":"2.0","error":"boom","id":1}',
    '{"jsonrpc":"2.0","error":{"code":"500","message":"x"},"id":1}',
    '{"jsonrpc":"2.0","error":{"code":500},"id":1}',
    '{"jsonrpc":"2.0","result":1,"id":null}',
  ];
  for (const text of cases) assert.equal(decodeResponse(text, 1).ok, false, text);
});

test('jsonrpc - a result of null is a result', () => {
  assert.deepEqual(decodeResponse('{"jsonrpc":"2.0","result":null,"id":1}', 1), {
    ok: true,
    value: { result: null },
  });
});

test('jsonrpc - decode never throws on arbitrary text or JSON', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.jsonValue().map((v) => JSON.stringify(v)),
      ),
      fc.integer(),
      (text, id) => {
        const r = decodeResponse(text, id);
        assert.equal(typeof r.ok, 'boolean');
      },
    ),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(
      fc.record(
        { jsonrpc: fc.constant('2.0'), id: fc.jsonValue(), result: fc.jsonValue(), error: fc.jsonValue() },
        {
          requiredKeys: ['jsonrpc'],
        },
      ),
      (obj) => {
        decodeResponse(JSON.stringify(obj), 1);
      },
    ),
    { numRuns: 2000 },
  );
});
