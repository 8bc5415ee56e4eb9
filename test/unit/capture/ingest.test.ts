import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DROP_REASONS, ingestHep } from '../../../src/capture/ingest.ts';
import { encodeHep, type HepPacketInput } from '../../../src/proto/hep.ts';

const INVITE = [
  'INVITE sip:100@10.0.0.5 SIP/2.0',
  'Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKabc',
  'From: "Alice" <sip:+4930123@example.com>;tag=a1',
  'To: <sip:100@example.com>',
  'Call-ID: leg-b@10.0.0.9',
  'CSeq: 1 INVITE',
  'X-CID: leg-a@10.0.0.1',
  'Content-Length: 0',
  '',
  '',
].join('\r\n');

function hep(over: Partial<HepPacketInput> = {}): Uint8Array {
  return encodeHep({
    srcIp: '10.0.0.9',
    dstIp: '10.0.0.5',
    srcPort: 5060,
    dstPort: 5080,
    tsSec: 1_700_000_000,
    tsUsec: 123_456,
    captureId: 42,
    payload: INVITE,
    ...over,
  });
}

const NOW = 1_800_000_000_000_000;

test('ingest - a HEP3 SIP packet becomes a CapturedMessage with envelope and SIP facts', () => {
  const res = ingestHep(hep({ correlationId: 'corr-1' }), { correlationHeader: 'X-CID' }, NOW);
  assert.ok(res.ok, JSON.stringify(res));
  const m = res.message;
  assert.equal(m.tsUs, 1_700_000_000_123_456);
  assert.equal(m.srcIp, '10.0.0.9');
  assert.equal(m.dstPort, 5080);
  assert.equal(m.transport, 'udp');
  assert.equal(m.captureId, 42);
  assert.equal(m.callId, 'leg-b@10.0.0.9');
  assert.equal(m.method, 'INVITE');
  assert.equal(m.cseq, '1 INVITE');
  assert.equal(m.fromUser, '+4930123');
  assert.equal(m.toUser, '100');
  assert.equal(m.fromTag, 'a1');
  assert.equal(m.xCorrelation, 'leg-a@10.0.0.1');
  assert.equal(m.correlationId, 'corr-1');
  assert.equal(Buffer.from(m.raw).toString(), INVITE);
});

test('ingest - the stored bytes are a copy, not a view into the received packet', () => {
  const packet = hep();
  const res = ingestHep(packet, {}, NOW);
  assert.ok(res.ok);
  packet.fill(0);
  assert.equal(Buffer.from(res.message.raw).toString(), INVITE);
});

test('ingest - without a HEP timestamp the receive time is used; TCP and TLS transports are named', () => {
  const res = ingestHep(hep({ tsSec: 0, tsUsec: 0, protocol: 6 }), {}, NOW);
  assert.ok(res.ok);
  assert.equal(res.message.tsUs, NOW);
  assert.equal(res.message.transport, 'tcp');
  const tls = ingestHep(hep({ protocol: 22 }), {}, NOW);
  assert.ok(tls.ok);
  assert.equal(tls.message.transport, 'tls');
});

test('ingest - auth key: required when configured, wrong or missing ones are dropped as auth', () => {
  assert.ok(ingestHep(hep({ authKey: 's3cret' }), { authKey: 's3cret' }, NOW).ok);
  assert.deepEqual(pick(ingestHep(hep(), { authKey: 's3cret' }, NOW)), {
    reason: 'auth',
    detail: 'no auth key',
  });
  assert.deepEqual(pick(ingestHep(hep({ authKey: 'guess' }), { authKey: 's3cret' }, NOW)), {
    reason: 'auth',
    detail: 'wrong auth key',
  });
  // Without a configured key, a sender's key is accepted (it may be meant for another hop).
  assert.ok(ingestHep(hep({ authKey: 'whatever' }), {}, NOW).ok);
});

test('ingest - non-SIP HEP, unparseable SIP and SIP without a Call-ID are dropped by reason', () => {
  assert.equal(pick(ingestHep(hep({ protoType: 5 }), {}, NOW)).reason, 'not-sip');
  assert.equal(pick(ingestHep(hep({ payload: 'not sip at all\r\n\r\n' }), {}, NOW)).reason, 'sip-parse');
  assert.equal(
    pick(ingestHep(hep({ payload: INVITE.replace(/Call-ID:.*\r\n/, '') }), {}, NOW)).reason,
    'sip-fields',
  );
  assert.equal(pick(ingestHep(Buffer.from('HEP3'), {}, NOW)).reason, 'truncated');
});

test('ingest - OPTIONS keep-alives and their answers are dropped unless kept', () => {
  const options = INVITE.replace('INVITE sip:', 'OPTIONS sip:').replace('CSeq: 1 INVITE', 'CSeq: 1 OPTIONS');
  const answer = options.replace(/^OPTIONS [^\r]*/, 'SIP/2.0 200 OK');
  assert.equal(pick(ingestHep(hep({ payload: options }), {}, NOW)).reason, 'keepalive');
  assert.equal(pick(ingestHep(hep({ payload: answer }), {}, NOW)).reason, 'keepalive');
  assert.ok(ingestHep(hep({ payload: options }), { keepKeepalives: true }, NOW).ok);
});

test('ingest - never throws, and every failure reason is a known metric label (fuzz)', () => {
  const valid = hep();
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })).map(([at, b]) => {
          const mutated = Uint8Array.from(valid);
          mutated[at] = b;
          return mutated;
        }),
        fc.nat(valid.length).map((n) => valid.subarray(0, n)),
      ),
      (bytes) => {
        const res = ingestHep(bytes, {}, NOW);
        if (!res.ok) assert.ok((DROP_REASONS as readonly string[]).includes(res.reason), res.reason);
      },
    ),
    { numRuns: 3000 },
  );
});

function pick(res: ReturnType<typeof ingestHep>): { reason: string; detail: string } {
  assert.ok(!res.ok, 'expected a drop');
  return { reason: res.reason, detail: res.detail };
}
