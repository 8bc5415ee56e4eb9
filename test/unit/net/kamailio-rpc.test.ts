import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { SwitchyardError } from '../../../src/core/errors.ts';
import { createKamailioRpc } from '../../../src/net/kamailio-rpc.ts';
import type { DispatcherRuntimeState } from '../../../src/net/kamailio-rpc-types.ts';
import { freeTcpPort } from '../../harness/ports.ts';

/**
 * The client's error mapping and argument checks, against an HTTP server that replays reply
 * bodies captured from a real Kamailio 5.6.3 (test/fixtures/kamailio/*.jsonrpc) with the same
 * HTTP status line Kamailio used. The same paths run against the real daemon in
 * test/integration/kamailio-rpc.test.ts.
 */

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../fixtures/kamailio/${name}`, import.meta.url), 'utf8'));

type Reply = { status: number; statusText?: string; body: string } | 'hang';
let respond: (req: { method: string; params: unknown; id: unknown }) => Reply = () => ({
  status: 200,
  body: '',
});
let requests = 0;
let connections = 0;
let server: Server;
let url: string;
const hanging = new Set<ServerResponse>();

function replay(name: string, status = 200, statusText?: string): (req: { id: unknown }) => Reply {
  return (req) => ({
    status,
    ...(statusText ? { statusText } : {}),
    body: JSON.stringify({ ...fixture(name), id: req.id }),
  });
}

const isCode = (code: string, retryable?: boolean) => (err: unknown) =>
  SwitchyardError.is(err) && err.code === code && (retryable === undefined || err.retryable === retryable);

before(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text += chunk;
    });
    req.on('end', () => {
      requests++;
      const parsed = JSON.parse(text);
      const reply = respond(parsed);
      if (reply === 'hang') {
        hanging.add(res);
        return;
      }
      res.writeHead(reply.status, reply.statusText ?? '', { 'content-type': 'application/json' });
      res.end(reply.body);
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/RPC`;
});

after(async () => {
  for (const res of hanging) res.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test('kamailio rpc - listDispatchers parses a replayed real list', async () => {
  respond = replay('dispatcher-list-mixed.jsonrpc');
  const rpc = createKamailioRpc({ url });
  const list = await rpc.listDispatchers();
  assert.equal(list.length, 5);
  assert.deepEqual(list.map((d) => d.attrs.duid).sort(), ['as-4.x_y', 'as1', 'as2', 'as3', undefined].sort());
  await rpc.close();
});

test('kamailio rpc - "No Destination Sets" is an empty list', async () => {
  respond = replay('fault-no-destination-sets.jsonrpc', 500, 'No Destination Sets');
  const rpc = createKamailioRpc({ url });
  assert.deepEqual(await rpc.listDispatchers(), []);
  await rpc.close();
});

test('kamailio rpc - "Ongoing reload" is a retryable RELOAD_BUSY', async () => {
  respond = replay('fault-ongoing-reload.jsonrpc', 500, 'Ongoing reload');
  const rpc = createKamailioRpc({ url });
  await assert.rejects(rpc.reload(), isCode('SY_ERR_KAMAILIO_RELOAD_BUSY', true));
  await rpc.close();
});

test('kamailio rpc - other faults are SY_ERR_KAMAILIO_RPC with code and message in details', async () => {
  respond = replay('fault-state-update-failed.jsonrpc', 500, 'State Update Failed');
  const rpc = createKamailioRpc({ url });
  await assert.rejects(rpc.setDuidState('d', 1, 'nobody'), (err: unknown) => {
    assert.ok(isCode('SY_ERR_KAMAILIO_RPC', false)(err));
    assert.deepEqual((err as SwitchyardError).details, {
      method: 'dispatcher.set_duid_state',
      code: 500,
      message: 'State Update Failed',
    });
    return true;
  });
  await rpc.close();
});

test('kamailio rpc - a reply that is not JSON-RPC is SY_ERR_KAMAILIO_RPC with the HTTP status', async () => {
  respond = () => ({ status: 404, statusText: 'Not Found', body: 'not found\n' });
  const rpc = createKamailioRpc({ url });
  await assert.rejects(rpc.call('core.version'), (err: unknown) => {
    assert.ok(isCode('SY_ERR_KAMAILIO_RPC', false)(err));
    assert.equal((err as SwitchyardError & { details: { httpStatus: number } }).details.httpStatus, 404);
    return true;
  });
  respond = (req) => ({
    status: 200,
    body: JSON.stringify({ jsonrpc: '2.0', result: 'x', id: Number(req.id) + 1 }),
  });
  await assert.rejects(rpc.call('core.version'), isCode('SY_ERR_KAMAILIO_RPC'));
  respond = (req) => ({
    status: 200,
    body: JSON.stringify({ jsonrpc: '2.0', result: { RECORDS: 'x' }, id: req.id }),
  });
  await assert.rejects(rpc.listDispatchers(), /unexpected result/);
  await rpc.close();
});

test('kamailio rpc - no answer within timeoutMs is a retryable UNREACHABLE', async () => {
  respond = () => 'hang';
  const rpc = createKamailioRpc({ url, timeoutMs: 200 });
  const t0 = performance.now();
  await assert.rejects(rpc.call('core.version'), isCode('SY_ERR_KAMAILIO_UNREACHABLE', true));
  const elapsed = performance.now() - t0;
  assert.ok(elapsed >= 190 && elapsed < 1000, `elapsed ${elapsed}`);
  await rpc.close();
});

test('kamailio rpc - connection refused is a retryable UNREACHABLE, at once', async () => {
  const port = await freeTcpPort();
  const rpc = createKamailioRpc({ url: `http://127.0.0.1:${port}/RPC` });
  const t0 = performance.now();
  await assert.rejects(rpc.reload(), (err: unknown) => {
    assert.ok(isCode('SY_ERR_KAMAILIO_UNREACHABLE', true)(err));
    assert.equal((err as SwitchyardError & { details: { code: string } }).details.code, 'ECONNREFUSED');
    return true;
  });
  assert.ok(performance.now() - t0 < 500);
  await rpc.close();
});

test('kamailio rpc - invalid arguments are refused before anything is sent', async () => {
  respond = replay('reply-set-duid-state-ok.jsonrpc');
  const rpc = createKamailioRpc({ url });
  const sentBefore = requests;
  const bad: Array<[string, number, string]> = [
    ['x', 1, 'as1'],
    ['D', 1, 'as1'],
    ['d\n', 1, 'as1'],
    ['d', 1.5, 'as1'],
    ['d', -1, 'as1'],
    ['d', Number.NaN, 'as1'],
    ['d', 2 ** 31, 'as1'],
    ['d', 1, ''],
    ['d', 1, '-as1'],
    ['d', 1, 'as 1'],
    ['d', 1, 'as1;x=1'],
    ['d', 1, 'a'.repeat(64)],
    ['d', 1, 'é'],
  ];
  for (const [state, setId, duid] of bad) {
    await assert.rejects(
      rpc.setDuidState(state as DispatcherRuntimeState, setId, duid),
      isCode('SY_ERR_INVALID_ARGUMENT'),
      JSON.stringify([state, setId, duid]),
    );
  }
  await assert.rejects(rpc.call('bad method'), isCode('SY_ERR_INVALID_ARGUMENT'));
  assert.equal(requests, sentBefore, 'nothing reached the server');
  let seen: unknown;
  respond = (req) => {
    seen = req.params;
    return replay('reply-set-duid-state-ok.jsonrpc')(req);
  };
  await rpc.setDuidState('ip', 7, 'as-4.x_y');
  assert.deepEqual(seen, ['ip', 7, 'as-4.x_y']);
  await rpc.close();
});

test('kamailio rpc - keeps the connection alive between calls', async () => {
  respond = replay('reply-core-version.jsonrpc');
  const rpc = createKamailioRpc({ url });
  const before = connections;
  for (let i = 0; i < 5; i++) assert.equal(await rpc.call('core.version'), 'kamailio 5.6.3 (x86_64/linux) ');
  // Node's fetch pools connections per origin: at most one new one for five calls.
  assert.ok(connections - before <= 1, `${connections - before} connections`);
  assert.ok(connections >= 1);
  await rpc.close();
});

test('kamailio rpc - close() aborts calls in flight and refuses new ones', async () => {
  respond = () => 'hang';
  const rpc = createKamailioRpc({ url, timeoutMs: 5000 });
  const inFlight = rpc.call('core.version');
  await new Promise((resolve) => setTimeout(resolve, 50));
  await rpc.close();
  await assert.rejects(inFlight, isCode('SY_ERR_CLOSED'));
  await assert.rejects(rpc.call('core.version'), isCode('SY_ERR_CLOSED'));
});

test('kamailio rpc - refuses a bad url or timeout', () => {
  assert.throws(() => createKamailioRpc({ url: 'not a url' }), isCode('SY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => createKamailioRpc({ url: 'ftp://127.0.0.1/RPC' }), isCode('SY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => createKamailioRpc({ url, timeoutMs: 0 }), isCode('SY_ERR_INVALID_ARGUMENT'));
});
