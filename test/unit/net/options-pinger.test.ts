import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { SwitchyardError } from '../../../src/core/errors.ts';
import { createOptionsPinger, type OptionsPinger, parseProbeUri } from '../../../src/net/options-pinger.ts';
import {
  buildOptionsRequest,
  getHeader,
  getHeaders,
  parseSipMessage,
  type SipMessage,
  topVia,
} from '../../../src/proto/sip-message.ts';
import { loopbackHost } from '../../harness/ports.ts';

/**
 * A tiny fake UDP responder: `behave` decides, per received request, what to send back. Real
 * SIPp and Kamailio peers are in test/integration/options-pinger.test.ts.
 */
interface Responder {
  uri: string;
  received: SipMessage[];
  behave: (req: SipMessage, n: number, rinfo: RemoteInfo, sock: Socket) => void;
  close(): Promise<void>;
}

async function startResponder(): Promise<Responder> {
  const host = loopbackHost();
  const sock = createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, host, () => resolve()));
  const r: Responder = {
    uri: `sip:${host}:${sock.address().port}`,
    received: [],
    behave: () => {},
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
  sock.on('message', (buf, rinfo) => {
    const parsed = parseSipMessage(buf);
    assert.ok(parsed.ok, 'the pinger sends valid SIP');
    r.received.push(parsed.value);
    r.behave(parsed.value, r.received.length, rinfo, sock);
  });
  return r;
}

function reply(
  req: SipMessage,
  status: number,
  reason: string,
  over: { cseq?: string; via?: string } = {},
): string {
  return [
    `SIP/2.0 ${status} ${reason}`,
    ...getHeaders(req, 'Via').map((v) => `Via: ${over.via ?? v}`),
    `From: ${getHeader(req, 'From')}`,
    `To: ${getHeader(req, 'To')};tag=fake`,
    `Call-ID: ${getHeader(req, 'Call-ID')}`,
    `CSeq: ${over.cseq ?? getHeader(req, 'CSeq')}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

const answer = (sock: Socket, rinfo: RemoteInfo, text: string | Uint8Array) =>
  sock.send(text, rinfo.port, rinfo.address);

let pinger: OptionsPinger;
let responder: Responder;

before(async () => {
  pinger = await createOptionsPinger();
  responder = await startResponder();
});

after(async () => {
  await pinger.close();
  await responder.close();
});

function fresh(): void {
  responder.received.length = 0;
}

test('options pinger - a 200 means up, with status and RTT', async () => {
  fresh();
  responder.behave = (req, _n, rinfo, sock) => answer(sock, rinfo, reply(req, 200, 'OK'));
  const result = await pinger.probe(responder.uri, { timeoutMs: 1000 });
  assert.equal(result.up, true);
  assert.equal(result.status, 200);
  assert.equal(result.reason, 'OK');
  assert.ok(result.rttMs !== undefined && result.rttMs >= 0 && result.rttMs < 500, String(result.rttMs));
  const req = responder.received[0]!;
  assert.equal(req.method, 'OPTIONS');
  assert.equal(req.requestUri, responder.uri);
  const via = topVia(req)!;
  assert.match(via.params.get('branch') ?? '', /^z9hG4bK[0-9a-f]{20}$/);
  assert.equal(via.params.get('rport'), '');
  assert.equal(via.sentBy, `127.0.0.1:${pinger.address.port}`);
  assert.equal(getHeader(req, 'Content-Length'), '0');
});

test('options pinger - a 503 means down, with its status and reason', async () => {
  fresh();
  responder.behave = (req, _n, rinfo, sock) => answer(sock, rinfo, reply(req, 503, 'Service Unavailable'));
  const result = await pinger.probe(responder.uri, { timeoutMs: 1000 });
  assert.deepEqual(
    { ...result, rttMs: undefined },
    {
      up: false,
      status: 503,
      reason: 'Service Unavailable',
      rttMs: undefined,
    },
  );
});

test('options pinger - no answer times out after Timer E retransmissions', async () => {
  fresh();
  responder.behave = () => {};
  const before = pinger.stats();
  const t0 = performance.now();
  const result = await pinger.probe(responder.uri, { timeoutMs: 1700 });
  const elapsed = performance.now() - t0;
  assert.deepEqual(result, { up: false, reason: 'timeout' });
  assert.ok(elapsed >= 1650 && elapsed < 2200, `elapsed ${elapsed}`);
  // Sent at 0, 500 (T1) and 1500 ms (2·T1); the next (3500 ms) would come after the deadline.
  assert.equal(responder.received.length, 3);
  const branches = new Set(responder.received.map((m) => topVia(m)?.params.get('branch')));
  assert.equal(branches.size, 1, 'retransmissions reuse the branch');
  assert.equal(new Set(responder.received.map((m) => getHeader(m, 'Call-ID'))).size, 1);
  assert.equal(pinger.stats().retransmissions - before.retransmissions, 2);
});

test('options pinger - a 200 to the retransmission counts', async () => {
  fresh();
  responder.behave = (req, n, rinfo, sock) => {
    if (n >= 2) answer(sock, rinfo, reply(req, 200, 'OK'));
  };
  const result = await pinger.probe(responder.uri, { timeoutMs: 2000 });
  assert.equal(result.up, true);
  assert.equal(responder.received.length, 2);
  assert.ok(result.rttMs! >= 480 && result.rttMs! < 1000, `rtt ${result.rttMs}`);
});

test('options pinger - provisional responses are ignored and slow retransmissions to T2', async () => {
  fresh();
  responder.behave = (req, _n, rinfo, sock) => answer(sock, rinfo, reply(req, 100, 'Trying'));
  const result = await pinger.probe(responder.uri, { timeoutMs: 1700 });
  assert.deepEqual(result, { up: false, reason: 'timeout' });
  assert.equal(responder.received.length, 1, 'after a 1xx the next retransmission is T2 (4 s) away');

  fresh();
  responder.behave = (req, _n, rinfo, sock) => {
    answer(sock, rinfo, reply(req, 100, 'Trying'));
    setTimeout(() => answer(sock, rinfo, reply(req, 200, 'OK')), 50);
  };
  assert.equal((await pinger.probe(responder.uri, { timeoutMs: 1000 })).up, true);
});

test('options pinger - garbage datagrams are counted and dropped, probing goes on', async () => {
  fresh();
  const before = pinger.stats();
  responder.behave = (req, _n, rinfo, sock) => {
    answer(sock, rinfo, new Uint8Array([0, 1, 2, 3, 255]));
    answer(sock, rinfo, 'SIP/2.0 200 OK\r\nContent-Length: 99\r\n\r\n');
    answer(sock, rinfo, 'OPTIONS sip:x SIP/2.0\r\n\r\n');
    answer(sock, rinfo, '\r\n\r\n');
    setTimeout(() => answer(sock, rinfo, reply(req, 200, 'OK')), 20);
  };
  const result = await pinger.probe(responder.uri, { timeoutMs: 1000 });
  assert.equal(result.up, true);
  assert.equal(pinger.stats().garbage - before.garbage, 4);
});

test('options pinger - responses with a foreign branch or CSeq method do not match', async () => {
  fresh();
  const before = pinger.stats();
  responder.behave = (req, _n, rinfo, sock) => {
    answer(sock, rinfo, reply(req, 200, 'OK', { via: 'SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKother' }));
    answer(sock, rinfo, reply(req, 200, 'OK', { cseq: '1 INVITE' }));
  };
  const result = await pinger.probe(responder.uri, { timeoutMs: 400 });
  assert.deepEqual(result, { up: false, reason: 'timeout' });
  assert.equal(pinger.stats().unmatched - before.unmatched, 2);
});

test('options pinger - concurrent probes are told apart by branch', async () => {
  const other = await startResponder();
  try {
    fresh();
    responder.behave = (req, _n, rinfo, sock) =>
      setTimeout(() => answer(sock, rinfo, reply(req, 200, 'OK')), 30);
    other.behave = (req, _n, rinfo, sock) => answer(sock, rinfo, reply(req, 486, 'Busy Here'));
    const [a, b, c] = await Promise.all([
      pinger.probe(responder.uri, { timeoutMs: 1000 }),
      pinger.probe(other.uri, { timeoutMs: 1000 }),
      pinger.probe(responder.uri, { timeoutMs: 1000 }),
    ]);
    assert.deepEqual([a.status, b.status, c.status], [200, 486, 200]);
  } finally {
    await other.close();
  }
});

test('options pinger - resolves hostnames with dns.lookup', async () => {
  // `localhost` comes from /etc/hosts (no network); the responder must then be on 127.0.0.1.
  const sock = createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
  sock.on('message', (buf, rinfo) => {
    const parsed = parseSipMessage(buf);
    if (parsed.ok) answer(sock, rinfo, reply(parsed.value, 200, 'OK'));
  });
  try {
    const r = await pinger.probe(`sip:localhost:${sock.address().port}`, { timeoutMs: 1000 });
    assert.equal(r.up, true, JSON.stringify(r));
  } finally {
    await new Promise<void>((resolve) => sock.close(() => resolve()));
  }
});

test('options pinger - parses probe URIs', () => {
  assert.deepEqual(parseProbeUri('sip:127.0.0.2'), { host: '127.0.0.2', port: 5060 });
  assert.deepEqual(parseProbeUri('sip:as1@10.0.0.1:5070;transport=udp'), { host: '10.0.0.1', port: 5070 });
  assert.deepEqual(parseProbeUri('sip:[::1]:5062'), { host: '::1', port: 5062 });
  assert.deepEqual(parseProbeUri('SIP:node-1.example.com'), { host: 'node-1.example.com', port: 5060 });
  for (const bad of [
    'sips:a',
    'sip:a:0',
    'sip:a:99999',
    'sip:a;transport=tcp',
    'sip:[zz]',
    'http://a',
    'sip:a b',
    '',
  ]) {
    assert.equal(typeof parseProbeUri(bad), 'string', bad);
  }
});

test('options pinger - every URI parseProbeUri accepts can be put on the wire', () => {
  // Pure: no probe is sent (random hosts must not be resolved or contacted).
  const uriLike = fc
    .tuple(
      fc.constantFrom('sip:', 'SIP:', 'sips:', ''),
      fc.option(fc.string({ maxLength: 10 }).map((u) => `${u}@`)),
      fc.oneof(
        fc.domain(),
        fc.ipV4(),
        fc.ipV6().map((a) => `[${a}]`),
        fc.string({ maxLength: 12 }),
      ),
      fc.option(fc.integer({ min: -1, max: 70_000 }).map((p) => `:${p}`)),
      fc.array(
        fc.string({ maxLength: 12 }).map((p) => `;${p}`),
        { maxLength: 3 },
      ),
    )
    .map(
      ([scheme, user, host, port, params]) => `${scheme}${user ?? ''}${host}${port ?? ''}${params.join('')}`,
    );
  fc.assert(
    fc.property(fc.oneof(uriLike, fc.string()), (uri) => {
      const target = parseProbeUri(uri);
      if (typeof target === 'string') return;
      const text = buildOptionsRequest({
        targetUri: uri,
        localAddress: '127.0.0.1',
        localPort: 5060,
        branch: 'z9hG4bKx',
        callId: 'c@h',
        fromTag: 't',
        cseq: 1,
      });
      assert.ok(parseSipMessage(new TextEncoder().encode(text)).ok);
      assert.ok(target.port >= 1 && target.port <= 65535);
    }),
    { numRuns: 3000 },
  );
});

test('options pinger - a bad URI or an IPv6 target on an IPv4 socket is down, not an exception', async () => {
  assert.deepEqual(Object.keys(await pinger.probe('sip:a;transport=tcp')), ['up', 'reason']);
  const v6 = await pinger.probe('sip:[::1]:5060', { timeoutMs: 100 });
  assert.equal(v6.up, false);
  assert.match(v6.reason ?? '', /IPv6 target/);
});

test('options pinger - refuses a timeout beyond Timer F', async () => {
  await assert.rejects(pinger.probe(responder.uri, { timeoutMs: 40_000 }), /timeoutMs/);
});

test('options pinger - close() ends pending probes, later probes are refused', async () => {
  const own = await createOptionsPinger({ bindAddress: '127.0.0.1' });
  responder.behave = () => {};
  const pending = own.probe(responder.uri, { timeoutMs: 5000 });
  await new Promise((resolve) => setTimeout(resolve, 20));
  const t0 = performance.now();
  await own.close();
  assert.deepEqual(await pending, { up: false, reason: 'closed' });
  assert.ok(performance.now() - t0 < 200);
  await assert.rejects(
    own.probe(responder.uri),
    (err: unknown) => SwitchyardError.is(err) && err.code === 'SY_ERR_CLOSED',
  );
  await own.close();
});

test('options pinger - refuses a bind address that is not an IP', async () => {
  await assert.rejects(createOptionsPinger({ bindAddress: 'localhost' }), /bindAddress/);
});
