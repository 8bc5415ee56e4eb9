import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { decodeHep, type HepPacket } from '../../../src/proto/hep.ts';
import { getHeader, parseSipMessage } from '../../../src/proto/sip-message.ts';
import { SENDER_FIXTURES } from '../../fixtures/hep/build-sender-fixtures.ts';

/**
 * HEP3 as Asterisk 20 res_hep, captagent 6 and heplify 1.x/2.x lay it out. The fixtures are built
 * from the encoders' source (test/fixtures/hep/README.md), not captured from live senders.
 */

const dec = new TextDecoder();
const fixture = (name: keyof typeof SENDER_FIXTURES) =>
  new Uint8Array(readFileSync(new URL(`../../fixtures/hep/${name}`, import.meta.url)));

function decodeOk(buf: Uint8Array): HepPacket {
  const r = decodeHep(buf);
  assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.detail}`);
  return r.value;
}

interface RawChunk {
  vendor: number;
  type: number;
  /** Offset of the chunk header in the packet. */
  at: number;
  value: Uint8Array;
}

/** The chunks of a packet in wire order, walked independently of the decoder. */
function chunks(b: Uint8Array): RawChunk[] {
  const view = Buffer.from(b.buffer, b.byteOffset, b.length);
  const out: RawChunk[] = [];
  for (let at = 6; at < view.readUInt16BE(4); at += view.readUInt16BE(at + 4)) {
    const len = view.readUInt16BE(at + 4);
    out.push({
      vendor: view.readUInt16BE(at),
      type: view.readUInt16BE(at + 2),
      at,
      value: b.subarray(at + 6, at + len),
    });
  }
  return out;
}

/** The chunk types in wire order, `vendor/type` for a vendor chunk: the layout under test. */
const chunkTypes = (b: Uint8Array) =>
  chunks(b).map((c) => (c.vendor === 0 ? `${c.type}` : `${c.vendor}/${c.type}`));

const chunkOf = (b: Uint8Array, type: number) => chunks(b).find((c) => c.vendor === 0 && c.type === type)!;

/** The SIP inside: start line and Call-ID, and it must parse with its exact Content-Length. */
function checkSip(payload: Uint8Array, startLine: string, callId: string): void {
  const text = dec.decode(payload);
  assert.equal(text.split('\r\n')[0], startLine);
  assert.ok(text.endsWith('\r\n\r\n'));
  const sip = parseSipMessage(payload);
  assert.ok(sip.ok, sip.ok ? '' : sip.reason);
  assert.equal(getHeader(sip.value, 'Call-ID'), callId);
}

test('hep senders - the committed fixtures are what the builder writes', () => {
  for (const [name, built] of Object.entries(SENDER_FIXTURES)) {
    const file = fixture(name as keyof typeof SENDER_FIXTURES);
    if (name.includes('compressed')) {
      // zlib's output may change with the zlib version; what must not change is its content.
      const { payload: a, ...restA } = decodeOk(file);
      const { payload: b, ...restB } = decodeOk(new Uint8Array(built));
      assert.deepEqual(restA, restB, name);
      assert.deepEqual(a, b, name);
    } else {
      assert.deepEqual(file, new Uint8Array(built), `${name}: rerun build-sender-fixtures.ts`);
    }
  }
});

test('hep senders - Asterisk 20 res_hep_pjsip, received OPTIONS over IPv4 with capture_password', () => {
  const bytes = fixture('asterisk-20-pjsip-rx-ipv4-authkey.bin');
  // res_hep.c hep_queue_cb: struct hep_generic (1, 2, 7..12), then the addresses, 14, 17, 15.
  assert.deepEqual(chunkTypes(bytes), [
    '1',
    '2',
    '7',
    '8',
    '9',
    '10',
    '11',
    '12',
    '3',
    '4',
    '14',
    '17',
    '15',
  ]);
  const { payload, ...rest } = decodeOk(bytes);
  assert.deepEqual(rest, {
    ipFamily: 4,
    protocol: 17,
    srcIp: '192.0.2.50',
    dstIp: '198.51.100.10',
    srcPort: 5060,
    dstPort: 5060,
    tsSec: 1_714_000_000,
    // pjsip stamps received packets in milliseconds: tv_usec = msec * 1000.
    tsUsec: 123_000,
    protoType: 1,
    // htonl(capture_id): the whole u32, unlike HEPv2's 16-bit capture id.
    captureId: 1234,
    authKey: 'foo',
    compressed: false,
    // uuid_type = call-id (the default): chunk 17 is the message's own Call-ID.
    correlationId: 'hep-fixture-asterisk-rx@192.0.2.50',
    vendorChunks: 0,
    ignoredChunks: 0,
  });
  checkSip(payload, 'OPTIONS sip:asterisk@198.51.100.10:5060 SIP/2.0', 'hep-fixture-asterisk-rx@192.0.2.50');
});

test('hep senders - Asterisk 20 res_hep_pjsip, sent 180 over IPv6, uuid_type = channel, no password', () => {
  const bytes = fixture('asterisk-20-pjsip-tx-ipv6-channel-uuid.bin');
  assert.deepEqual(chunkTypes(bytes), ['1', '2', '7', '8', '9', '10', '11', '12', '5', '6', '17', '15']);
  const { payload, ...rest } = decodeOk(bytes);
  assert.deepEqual(rest, {
    ipFamily: 6,
    protocol: 17,
    srcIp: '2001:db8::10',
    dstIp: '2001:db8::20',
    srcPort: 5060,
    dstPort: 5062,
    tsSec: 1_714_000_001,
    tsUsec: 654_321,
    protoType: 1,
    captureId: 1234,
    compressed: false,
    // With uuid_type = channel, chunk 17 is the channel name, not a Call-ID.
    correlationId: 'PJSIP/alice-00000001',
    vendorChunks: 0,
    ignoredChunks: 0,
  });
  checkSip(payload, 'SIP/2.0 180 Ringing', 'hep-fixture-asterisk-tx-v6@2001:db8::20');
});

test('hep senders - captagent 6 send_hepv3, REGISTER over IPv4', () => {
  const bytes = fixture('captagent-6-ipv4.bin');
  // Same struct hep_generic as Asterisk; no 17 for SIP (captagent sets it for RTCP).
  assert.deepEqual(chunkTypes(bytes), ['1', '2', '7', '8', '9', '10', '11', '12', '3', '4', '14', '15']);
  const { payload, ...rest } = decodeOk(bytes);
  assert.deepEqual(rest, {
    ipFamily: 4,
    protocol: 17,
    srcIp: '10.1.1.5',
    dstIp: '10.1.1.1',
    srcPort: 5060,
    dstPort: 5060,
    tsSec: 1_714_000_002,
    tsUsec: 250_001,
    protoType: 1,
    captureId: 2001,
    authKey: 'myhep',
    compressed: false,
    vendorChunks: 0,
    ignoredChunks: 0,
  });
  checkSip(payload, 'REGISTER sip:pbx.example.com SIP/2.0', 'hep-fixture-captagent@10.1.1.5');
});

test('hep senders - captagent 6 with payload-compression: chunk 16 in a zlib container', () => {
  const bytes = fixture('captagent-6-ipv4-compressed.bin');
  assert.deepEqual(chunkTypes(bytes), ['1', '2', '7', '8', '9', '10', '11', '12', '3', '4', '14', '16']);
  // zlib compress(): a zlib header (78 9c), not gzip's (1f 8b); the decoder takes either.
  assert.deepEqual([...chunkOf(bytes, 16).value.subarray(0, 2)], [0x78, 0x9c]);
  const { payload, ...rest } = decodeOk(bytes);
  assert.equal(rest.compressed, true);
  assert.deepEqual(
    [rest.srcIp, rest.srcPort, rest.dstIp, rest.dstPort],
    ['10.1.1.1', 5060, '10.1.1.5', 5060],
  );
  assert.deepEqual(
    [rest.tsSec, rest.tsUsec, rest.captureId, rest.authKey],
    [1_714_000_002, 251_777, 2001, 'myhep'],
  );
  assert.deepEqual([rest.protocol, rest.protoType, rest.correlationId], [17, 1, undefined]);
  checkSip(payload, 'SIP/2.0 200 OK', 'hep-fixture-captagent@10.1.1.5');
});

test('hep senders - older captagent 6 builds: htons() on the 32-bit capture id is read as sent', () => {
  // transport_hep.c once wrote `capt_id.data = htons(capt_id)` into a u32 chunk; on a
  // little-endian host 2001 then goes out as 07 d1 00 00. Nothing on the wire says so: the
  // decoder reports the value as sent (2001 << 16) and the size check still passes.
  const bytes = fixture('captagent-6-ipv4.bin').slice();
  const { at } = chunkOf(bytes, 12);
  assert.deepEqual([...bytes.subarray(at, at + 10)], [0, 0, 0, 12, 0, 10, 0, 0, 0x07, 0xd1]);
  bytes.set([0x07, 0xd1, 0x00, 0x00], at + 6);
  assert.equal(decodeOk(bytes).captureId, 2001 * 65_536);
});

test('hep senders - heplify 1.x EncodeHEP: payload before VLAN and node name', () => {
  const bytes = fixture('heplify-1-ipv4.bin');
  // publish/marshal.go MarshalTo: addresses straight after 1 and 2; 18 (VLAN) always, even 0.
  assert.deepEqual(chunkTypes(bytes), [
    '1',
    '2',
    '3',
    '4',
    '7',
    '8',
    '9',
    '10',
    '11',
    '12',
    '14',
    '15',
    '18',
    '19',
  ]);
  const { payload, ...rest } = decodeOk(bytes);
  assert.deepEqual(rest, {
    ipFamily: 4,
    protocol: 17,
    srcIp: '203.0.113.5',
    dstIp: '203.0.113.9',
    srcPort: 5060,
    dstPort: 5080,
    tsSec: 1_714_000_003,
    tsUsec: 999_999,
    protoType: 1,
    captureId: 2002,
    authKey: 'myhep',
    compressed: false,
    vlan: 0,
    nodeName: 'edge-1',
    vendorChunks: 0,
    ignoredChunks: 0,
  });
  checkSip(payload, 'BYE sip:bob@203.0.113.9:5080 SIP/2.0', 'hep-fixture-heplify-1@203.0.113.5');
});

test('hep senders - heplify 2.x Encode: SIP over TCP on IPv6 with TCP flags and IP TOS chunks', () => {
  const bytes = fixture('heplify-2-ipv6-tcp.bin');
  // src/hep/encoder.go: 18 always, 0x17 and 0x18 (one byte each) when non-zero, 15 last.
  assert.deepEqual(chunkTypes(bytes), [
    '1',
    '2',
    '5',
    '6',
    '7',
    '8',
    '9',
    '10',
    '11',
    '12',
    '18',
    '23',
    '24',
    '15',
  ]);
  const { payload, ...rest } = decodeOk(bytes);
  assert.deepEqual(rest, {
    ipFamily: 6,
    protocol: 6,
    srcIp: '2001:db8:1::5',
    dstIp: '2001:db8:2::9',
    srcPort: 5060,
    dstPort: 40_001,
    tsSec: 1_714_000_004,
    tsUsec: 5,
    protoType: 1,
    captureId: 2002,
    compressed: false,
    vlan: 42,
    extra: { tcpFlags: 0x18, ipTos: 0x60 },
    vendorChunks: 0,
    ignoredChunks: 0,
  });
  checkSip(payload, 'SIP/2.0 200 OK', 'hep-fixture-heplify-2@2001:db8:2::9');
});

test('hep senders - heplify 2.x payload_zip gzips the whole datagram: not HEP3, dropped as bad-magic', () => {
  // src/transport/sender.go sendToGroup: with payload_zip the gzip stream of the whole packet is
  // written to the socket, so the datagram starts 1f 8b. Pinned so that a change is deliberate.
  const r = decodeHep(gzipSync(fixture('heplify-2-ipv6-tcp.bin')));
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.reason, 'bad-magic');
    assert.match(r.detail, /^starts with 1f8b/);
  }
});
