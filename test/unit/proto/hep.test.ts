import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { SwitchyardError } from '../../../src/core/errors.ts';
import {
  decodeHep,
  encodeHep,
  encodeHepChunks,
  formatIp,
  HEP_DROP_REASONS,
  type HepDropReason,
  type HepExtra,
  type HepPacket,
  type HepPacketInput,
  type HepRawChunk,
  type HepResult,
  parseIp,
} from '../../../src/proto/hep.ts';
import { getHeader, parseSipMessage } from '../../../src/proto/sip-message.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const fixture = (name: string) =>
  new Uint8Array(readFileSync(new URL(`../../fixtures/hep/${name}`, import.meta.url)));

function decodeOk(buf: Uint8Array): HepPacket {
  const r = decodeHep(buf);
  assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.detail}`);
  return r.value;
}

/** Every reason seen by expectDrop, to check that each one in HEP_DROP_REASONS is tested. */
const reasonsSeen = new Set<HepDropReason>();

function expectDrop(r: HepResult, reason: HepDropReason, detail?: RegExp): void {
  assert.equal(r.ok, false, 'should be dropped');
  if (r.ok) return;
  assert.equal(r.reason, reason, r.detail);
  if (detail) assert.match(r.detail, detail);
  reasonsSeen.add(r.reason);
}

const chunk = (typeId: number, value: number[] | Uint8Array | string, vendorId = 0): HepRawChunk => ({
  vendorId,
  typeId,
  value: typeof value === 'string' ? enc.encode(value) : Uint8Array.from(value),
});

/** The chunks of a minimal valid IPv4 packet (1, 3, 4, 7, 8, 15), to mutate. */
const minimalChunks = (): HepRawChunk[] => [
  chunk(1, [2]),
  chunk(3, [10, 0, 0, 1]),
  chunk(4, [10, 0, 0, 2]),
  chunk(7, [0x13, 0xc4]),
  chunk(8, [0x13, 0xc5]),
  chunk(15, 'OPTIONS sip:x SIP/2.0\r\n\r\n'),
];

const without = (type: number) => minimalChunks().filter((c) => c.typeId !== type);

const SIP = 'OPTIONS sip:127.0.0.1 SIP/2.0\r\nCall-ID: abc@host\r\nContent-Length: 0\r\n\r\n';

const v4Input: HepPacketInput = {
  srcIp: '192.0.2.10',
  dstIp: '198.51.100.7',
  srcPort: 5060,
  dstPort: 5080,
  tsSec: 1_700_000_000,
  tsUsec: 999_999,
  protocol: 6,
  protoType: 1,
  captureId: 0xfffffffe,
  payload: SIP,
};

test('hep - decodes a real Kamailio 5.6 siptrace OPTIONS (IPv4)', () => {
  const bytes = fixture('kamailio-5.6.3-options-in-ipv4.bin');
  const p = decodeOk(bytes);
  const { payload, ...rest } = p;
  assert.deepEqual(rest, {
    ipFamily: 4,
    protocol: 17,
    srcIp: '127.0.0.1',
    dstIp: '127.0.0.1',
    srcPort: 40169,
    dstPort: 35060,
    tsSec: rest.tsSec,
    tsUsec: rest.tsUsec,
    protoType: 1,
    captureId: 2001,
    compressed: false,
    vendorChunks: 0,
    ignoredChunks: 0,
  });
  assert.ok(rest.tsSec > 1_600_000_000 && rest.tsUsec < 1_000_000);
  // The payload is a view into the datagram, not a copy.
  assert.equal(payload.buffer, bytes.buffer);
  const sip = parseSipMessage(payload);
  assert.ok(sip.ok);
  assert.equal(sip.value.method, 'OPTIONS');
  assert.equal(getHeader(sip.value, 'Call-ID'), 'hep-fixture-plain-v4@switchyard');
});

test('hep - decodes real Kamailio IPv6 packets, with and without auth key', () => {
  const reply = decodeOk(fixture('kamailio-5.6.3-200-out-ipv6.bin'));
  assert.equal(reply.ipFamily, 6);
  assert.equal(reply.srcIp, '::1');
  assert.equal(reply.dstIp, '::1');
  assert.equal(reply.srcPort, 35060);
  assert.equal(reply.authKey, undefined);
  assert.match(dec.decode(reply.payload), /^SIP\/2\.0 200 OK\r\n/);

  const withKey = decodeOk(fixture('kamailio-5.6.3-options-in-ipv6-authkey.bin'));
  assert.equal(withKey.ipFamily, 6);
  assert.equal(withKey.dstPort, 35062);
  assert.equal(withKey.captureId, 2002);
  assert.equal(withKey.authKey, 's3cr3t-key');
  assert.equal(withKey.correlationId, undefined);
  const sip = parseSipMessage(withKey.payload);
  assert.ok(sip.ok);
  assert.equal(getHeader(sip.value, 'Call-ID'), 'hep-fixture-auth-v6@switchyard');
});

test('hep - encodeHep reproduces Kamailio siptrace packets byte for byte', () => {
  for (const name of [
    'kamailio-5.6.3-options-in-ipv4.bin',
    'kamailio-5.6.3-200-out-ipv4.bin',
    'kamailio-5.6.3-200-out-ipv6.bin',
    'kamailio-5.6.3-options-in-ipv6-authkey.bin',
  ]) {
    const bytes = fixture(name);
    const p = decodeOk(bytes);
    const input: HepPacketInput = {
      srcIp: p.srcIp,
      dstIp: p.dstIp,
      srcPort: p.srcPort,
      dstPort: p.dstPort,
      tsSec: p.tsSec,
      tsUsec: p.tsUsec,
      protocol: p.protocol,
      protoType: p.protoType,
      captureId: p.captureId,
      payload: p.payload,
      ...(p.authKey === undefined ? {} : { authKey: p.authKey }),
    };
    assert.deepEqual(encodeHep(input), bytes, name);
  }
});

/** A value for every chunk of {@link HepExtra}, each at the top of its range where it has one. */
const everyExtra: HepExtra = {
  srcMac: '02:00:5e:10:00:01',
  dstMac: 'fe:ff:ff:ff:ff:ff',
  ethernetType: 0x86dd,
  tcpFlags: 0xff,
  ipTos: 0xb8,
  mos: 0xffff,
  rFactor: 93,
  geoLocation: '52.37,4.89',
  jitter: 0xffffffff,
  transactionType: 'call',
  payloadJsonKeys: 'mos,jitter',
  tagsValues: 'région=eu',
  tagType: 2,
  eventType: 1,
  groupId: 'edge-group',
};

test('hep - round-trips IPv4 with every optional chunk', () => {
  const input: HepPacketInput = {
    ...v4Input,
    keepAliveSec: 30,
    authKey: 'k€y',
    correlationId: 'abc@host;leg=b',
    vlan: 4094,
    nodeName: 'kam-1',
    extra: everyExtra,
  };
  const p = decodeOk(encodeHep(input));
  assert.deepEqual(p, {
    ipFamily: 4,
    protocol: 6,
    srcIp: '192.0.2.10',
    dstIp: '198.51.100.7',
    srcPort: 5060,
    dstPort: 5080,
    tsSec: 1_700_000_000,
    tsUsec: 999_999,
    protoType: 1,
    captureId: 0xfffffffe,
    keepAliveSec: 30,
    authKey: 'k€y',
    payload: enc.encode(SIP),
    compressed: false,
    correlationId: 'abc@host;leg=b',
    vlan: 4094,
    nodeName: 'kam-1',
    extra: everyExtra,
    vendorChunks: 0,
    ignoredChunks: 0,
  });
});

test('hep - decodes every generic chunk from 0x14 to 0x29 as the spec types it', () => {
  const p = decodeOk(
    encodeHepChunks([
      ...minimalChunks(),
      chunk(0x14, [0, 0, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]), // uint64, MAC-48 in the low bytes
      chunk(0x15, [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02]), // the bare six bytes, also accepted
      chunk(0x16, [0x08, 0x00]),
      chunk(0x17, [0x12]),
      chunk(0x18, [0x60]),
      chunk(0x20, [0x01, 0xb8]),
      chunk(0x21, [0x00, 0x5d]),
      chunk(0x22, 'geo'),
      chunk(0x23, [0x00, 0x01, 0x00, 0x02]),
      chunk(0x24, 'registration'),
      chunk(0x25, '["a"]'),
      chunk(0x26, 'x=y'),
      chunk(0x27, [0x00, 0x03]),
      chunk(0x28, [0x00, 0x04]),
      chunk(0x29, ''),
    ]),
  );
  assert.deepEqual(p.extra, {
    srcMac: '02:00:5e:10:00:01',
    dstMac: '02:00:5e:10:00:02',
    ethernetType: 0x0800,
    tcpFlags: 0x12,
    ipTos: 0x60,
    mos: 440,
    rFactor: 93,
    geoLocation: 'geo',
    jitter: 65_538,
    transactionType: 'registration',
    payloadJsonKeys: '["a"]',
    tagsValues: 'x=y',
    tagType: 3,
    eventType: 4,
    groupId: '',
  });
  assert.equal(p.ignoredChunks, 0);
  // An eight-byte value whose top bytes are set is an EUI-64, shown whole.
  const eui = decodeOk(encodeHepChunks([...minimalChunks(), chunk(0x14, [1, 2, 3, 4, 5, 6, 7, 8])]));
  assert.equal(eui.extra?.srcMac, '01:02:03:04:05:06:07:08');
  // No such chunk, no extra field: packets without them decode exactly as before.
  assert.equal('extra' in decodeOk(encodeHepChunks(minimalChunks())), false);
});

test('hep - round-trips IPv6 and writes addresses in RFC 5952 form', () => {
  const p = decodeOk(
    encodeHep({ ...v4Input, srcIp: '2001:0DB8:0000:0000:0000:0000:0000:0001', dstIp: '::ffff:192.0.2.1' }),
  );
  assert.equal(p.ipFamily, 6);
  assert.equal(p.srcIp, '2001:db8::1');
  assert.equal(p.dstIp, '::ffff:192.0.2.1');
  assert.equal(dec.decode(p.payload), SIP);
});

test('hep - defaults: protocol UDP, proto type SIP, capture id 0; absent chunks decode as 0', () => {
  const { protocol: _protocol, protoType: _protoType, captureId: _captureId, ...rest } = v4Input;
  const p = decodeOk(encodeHep(rest));
  assert.equal(p.protocol, 17);
  assert.equal(p.protoType, 1);
  assert.equal(p.captureId, 0);
  const bare = decodeOk(encodeHepChunks(minimalChunks()));
  assert.deepEqual([bare.protocol, bare.tsSec, bare.tsUsec, bare.protoType, bare.captureId], [0, 0, 0, 0, 0]);
  assert.equal(bare.srcPort, 5060);
  assert.equal(bare.dstPort, 5061);
});

test('hep - skips and counts vendor chunks, even ones numbered like generic chunks', () => {
  const bytes = encodeHep({
    ...v4Input,
    extraChunks: [chunk(15, 'not the payload', 2), chunk(1, [99], 0x8000), chunk(0x20, [0, 1, 2], 4)],
  });
  const p = decodeOk(bytes);
  assert.equal(p.vendorChunks, 3);
  assert.equal(dec.decode(p.payload), SIP);
  assert.equal(p.ipFamily, 4);
});

test('hep - ignores generic chunks the spec does not define (0, 0x19..0x1f, 0x2a and up), size unchecked', () => {
  const p = decodeOk(
    encodeHepChunks([
      chunk(0, []),
      ...minimalChunks(),
      chunk(0x19, [1, 2, 3]),
      chunk(0x1f, [1]),
      chunk(0x2a, [1, 2, 3, 4, 5]),
      chunk(0xffff, []),
      chunk(0x19, [9]), // twice: unknown chunks are not checked for duplicates either
    ]),
  );
  assert.equal(p.ignoredChunks, 6);
  assert.equal(p.vendorChunks, 0);
  assert.equal(p.extra, undefined);
});

test('hep - accepts an empty payload chunk', () => {
  const p = decodeOk(encodeHep({ ...v4Input, payload: '' }));
  assert.equal(p.payload.length, 0);
});

test('hep - inflates compressed payloads (zlib and gzip) under a size limit', () => {
  const fromEncoder = decodeOk(encodeHep({ ...v4Input, compress: true }));
  assert.equal(fromEncoder.compressed, true);
  assert.equal(dec.decode(fromEncoder.payload), SIP);

  const gz = encodeHepChunks([...without(15), chunk(16, gzipSync(SIP))]);
  assert.equal(dec.decode(decodeOk(gz).payload), SIP);

  const bomb = encodeHepChunks([...without(15), chunk(16, deflateSync(new Uint8Array(1_000_000)))]);
  assert.ok(bomb.length < 2000);
  expectDrop(decodeHep(bomb), 'too-large', /65535/);
  expectDrop(decodeHep(gz, { maxInflatedBytes: 10 }), 'too-large');
  expectDrop(decodeHep(gz, { maxInflatedBytes: 0 }), 'too-large', /refused/);
  assert.ok(decodeHep(bomb, { maxInflatedBytes: 1_000_000 }).ok);
});

test('hep - drops bad compressed payloads', () => {
  const raw = encodeHepChunks([...without(15), chunk(16, deflateRawSync(SIP))]);
  expectDrop(decodeHep(raw), 'bad-compression');
  expectDrop(decodeHep(encodeHepChunks([...without(15), chunk(16, 'plain text')])), 'bad-compression');
  const cut = deflateSync(SIP).subarray(0, 10);
  expectDrop(decodeHep(encodeHepChunks([...without(15), chunk(16, cut)])), 'bad-compression');
});

test('hep - truncated: shorter than the header or than the total length', () => {
  expectDrop(decodeHep(new Uint8Array(0)), 'truncated');
  expectDrop(decodeHep(enc.encode('HEP')), 'truncated');
  expectDrop(decodeHep(enc.encode('HEP3\x00')), 'truncated');
  const full = encodeHep(v4Input);
  expectDrop(decodeHep(full.subarray(0, full.length - 1)), 'truncated', /only/);
  expectDrop(decodeHep('HEP3' as unknown as Uint8Array), 'truncated', /not bytes/);
});

test('hep - too-large: input over maxBytes', () => {
  const full = encodeHep(v4Input);
  expectDrop(decodeHep(full, { maxBytes: full.length - 1 }), 'too-large');
  assert.ok(decodeHep(full, { maxBytes: full.length }).ok);
  expectDrop(decodeHep(new Uint8Array(70_000)), 'too-large');
});

test('hep - bad-magic and unsupported-version', () => {
  expectDrop(decodeHep(enc.encode('HEP2\x00\x06')), 'bad-magic');
  expectDrop(decodeHep(enc.encode('INVITE sip:x SIP/2.0\r\n\r\n')), 'bad-magic', /^starts with 494e56495445/);
  expectDrop(decodeHep(enc.encode('X')), 'bad-magic');
  // HEPv2 (Kamailio hep_version 2): version 2, header length 16, AF_INET, UDP, ports...
  const v2 = Uint8Array.from([2, 16, 2, 17, 0x13, 0xc4, 0x13, 0xc4, 127, 0, 0, 1, 127, 0, 0, 2]);
  expectDrop(decodeHep(v2), 'unsupported-version', /HEPv2/);
  expectDrop(decodeHep(Uint8Array.from([1, 40, 10, 17])), 'unsupported-version', /HEPv1/);
});

test('hep - length-mismatch: total length below the header, or trailing bytes', () => {
  expectDrop(decodeHep(enc.encode('HEP3\x00\x05')), 'length-mismatch');
  const full = encodeHep(v4Input);
  const longer = new Uint8Array(full.length + 1);
  longer.set(full);
  expectDrop(decodeHep(longer), 'length-mismatch', /1 bytes after/);
});

test('hep - chunk-too-short and chunk-overrun', () => {
  const good = encodeHepChunks(minimalChunks());
  const shortLen = good.slice();
  shortLen[6 + 5] = 5; // first chunk's length: 5 < 6
  expectDrop(decodeHep(shortLen), 'chunk-too-short');

  const overrun = good.slice();
  overrun[6 + 4] = 0xff; // first chunk's length far past the end
  expectDrop(decodeHep(overrun), 'chunk-overrun');

  // Three stray bytes after the last chunk, counted in the total length.
  const stray = new Uint8Array(good.length + 3);
  stray.set(good);
  stray[4] = stray.length >> 8;
  stray[5] = stray.length & 0xff;
  expectDrop(decodeHep(stray), 'chunk-overrun', /less than a chunk header/);
});

test('hep - bad-chunk-size for every fixed-size generic chunk up to 19', () => {
  const sizes: Array<[number, number]> = [
    [1, 1],
    [2, 1],
    [3, 4],
    [4, 4],
    [5, 16],
    [6, 16],
    [7, 2],
    [8, 2],
    [9, 4],
    [10, 4],
    [11, 1],
    [12, 4],
    [13, 2],
    [18, 2],
  ];
  for (const [type, size] of sizes) {
    for (const wrong of [size - 1, size + 1]) {
      const chunks = [
        ...minimalChunks().filter((c) => c.typeId !== type),
        chunk(type, new Uint8Array(wrong)),
      ];
      expectDrop(decodeHep(encodeHepChunks(chunks)), 'bad-chunk-size', new RegExp(`chunk ${type} `));
    }
  }
});

test('hep - a metadata chunk past 19 of the wrong size or repeated is ignored, and the SIP kept', () => {
  const sizes: Array<[number, number]> = [
    [0x16, 2],
    [0x17, 1],
    [0x18, 1],
    [0x20, 2],
    [0x21, 2],
    [0x23, 4],
    [0x27, 2],
    [0x28, 2],
  ];
  const wrongSized: HepRawChunk[] = [];
  for (const [type, size] of sizes)
    for (const wrong of [size - 1, size + 1]) wrongSized.push(chunk(type, new Uint8Array(wrong)));
  // MACs: eight bytes (the spec's uint64) or six (a bare MAC-48), nothing else.
  for (const wrong of [0, 5, 7, 9, 16])
    for (const type of [0x14, 0x15]) wrongSized.push(chunk(type, new Uint8Array(wrong)));
  for (const extra of wrongSized) {
    const res = decodeHep(encodeHepChunks([...minimalChunks(), extra]));
    assert.ok(res.ok, JSON.stringify(res));
    assert.equal(res.value.ignoredChunks, 1);
    assert.equal(res.value.extra, undefined, 'nothing decoded from a chunk of the wrong size');
  }
  // Repeated: the first one counts, the second is ignored.
  const twice = decodeHep(
    encodeHepChunks([...minimalChunks(), chunk(0x24, 'call'), chunk(0x24, 'registration')]),
  );
  assert.ok(twice.ok);
  assert.equal(twice.value.extra?.transactionType, 'call');
  assert.equal(twice.value.ignoredChunks, 1);
});

test('hep - duplicate-chunk', () => {
  expectDrop(
    decodeHep(encodeHepChunks([...minimalChunks(), chunk(7, [0, 1])])),
    'duplicate-chunk',
    /chunk 7/,
  );
  expectDrop(decodeHep(encodeHepChunks([...minimalChunks(), chunk(15, 'again')])), 'duplicate-chunk');
  expectDrop(
    decodeHep(encodeHepChunks([...minimalChunks(), chunk(16, deflateSync(SIP))])),
    'duplicate-chunk',
    /15.*16/,
  );
});

test('hep - missing-chunk for each required chunk', () => {
  for (const type of [1, 3, 4, 7, 8, 15]) {
    expectDrop(decodeHep(encodeHepChunks(without(type))), 'missing-chunk', new RegExp(`\\(${type}`));
  }
  expectDrop(decodeHep(encodeHepChunks([])), 'missing-chunk');
});

test('hep - bad-family: unknown family, or addresses of the other family', () => {
  const withFamily = (af: number) => [chunk(1, [af]), ...without(1)];
  expectDrop(decodeHep(encodeHepChunks(withFamily(3))), 'bad-family', /family 3/);
  // IPv6 family, IPv4 addresses.
  expectDrop(decodeHep(encodeHepChunks(withFamily(10))), 'bad-family', /IPv6 family with IPv4/);
  // IPv4 family with an extra IPv6 address chunk.
  expectDrop(
    decodeHep(encodeHepChunks([...minimalChunks(), chunk(5, new Uint8Array(16))])),
    'bad-family',
    /IPv4 family with IPv6/,
  );
});

test('hep - every drop reason is exercised by the tests above', () => {
  assert.deepEqual([...reasonsSeen].sort(), [...HEP_DROP_REASONS].sort());
});

test('hep - formatIp follows RFC 5952', () => {
  const v6 = (text: string) => formatIp(parseIp(text)!);
  assert.equal(v6('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1'); // §4.2.3: first of equal runs
  assert.equal(v6('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1'); // §4.2.2: one zero group stays
  assert.equal(v6('2001:0:0:1:0:0:0:1'), '2001:0:0:1::1'); // §4.2.3: the longest run
  assert.equal(v6('2001:DB8::AbCd'), '2001:db8::abcd'); // §4.3: lower case
  assert.equal(v6('::'), '::');
  assert.equal(v6('::1'), '::1');
  assert.equal(v6('1::'), '1::');
  assert.equal(v6('::ffff:10.1.2.3'), '::ffff:10.1.2.3'); // §5: IPv4-mapped
  assert.equal(v6('1:2:3:4:5:6:7.8.9.10'), '1:2:3:4:5:6:708:90a');
  assert.equal(formatIp(Uint8Array.of(0, 255, 10, 1)), '0.255.10.1');
});

test('hep - parseIp rejects what is not an IP address', () => {
  for (const bad of [
    '',
    'localhost',
    '1.2.3',
    '256.1.1.1',
    '01.2.3.4',
    'fe80::1%eth0',
    '[::1]',
    ':::',
    '1::2::3',
  ]) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

test('hep - formatIp agrees with the WHATWG URL serialiser for IPv6 (not IPv4-mapped)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
      (groups) => {
        fc.pre(!(groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff));
        const text = groups.map((g) => g.toString(16)).join(':');
        const bytes = parseIp(text)!;
        assert.equal(`[${formatIp(bytes)}]`, new URL(`http://[${text}]/`).hostname);
        assert.deepEqual(parseIp(formatIp(bytes)), bytes);
      },
    ),
  );
});

test('hep - encodeHep throws SY_ERR_INVALID_ARGUMENT on programmer errors', () => {
  const bad: Array<Partial<HepPacketInput>> = [
    { srcIp: 'example.com' },
    { dstIp: '::1' }, // mixed families
    { srcPort: 65_536 },
    { dstPort: -1 },
    { tsSec: 2 ** 32 },
    { tsUsec: 1.5 },
    { protocol: 256 },
    { captureId: Number.NaN },
    { vlan: 70_000 },
    { payload: new Uint8Array(65_500) },
    { extraChunks: [{ vendorId: 65_536, typeId: 1, value: new Uint8Array(0) }] },
    { extra: { tcpFlags: 256 } },
    { extra: { jitter: -1 } },
    { extra: { mos: 1.5 } },
    { extra: { srcMac: '02:00:5e:10:00' } },
    { extra: { dstMac: 'zz:00:5e:10:00:01' } },
  ];
  for (const patch of bad) {
    assert.throws(
      () => encodeHep({ ...v4Input, ...patch }),
      (err: unknown) => SwitchyardError.is(err) && err.code === 'SY_ERR_INVALID_ARGUMENT',
      JSON.stringify(Object.keys(patch)),
    );
  }
});

// --- properties -------------------------------------------------------------------------------

const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6().filter((a) => parseIp(a) !== undefined);
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const text = fc.string({ maxLength: 40, unit: 'grapheme' });
const hex2 = (b: number) => b.toString(16).padStart(2, '0');
/** A MAC as the decoder writes it: six bytes, or eight whose top two are not both zero. */
const mac = fc.oneof(
  fc.uint8Array({ minLength: 6, maxLength: 6 }),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).filter((b) => b[0] !== 0 || b[1] !== 0),
);
const extraArb: fc.Arbitrary<HepExtra> = fc.record(
  {
    srcMac: mac.map((b) => Array.from(b, hex2).join(':')),
    dstMac: mac.map((b) => Array.from(b, hex2).join(':')),
    ethernetType: u16,
    tcpFlags: fc.integer({ min: 0, max: 255 }),
    ipTos: fc.integer({ min: 0, max: 255 }),
    mos: u16,
    rFactor: u16,
    geoLocation: text,
    jitter: u32,
    transactionType: text,
    payloadJsonKeys: text,
    tagsValues: text,
    tagType: u16,
    eventType: u16,
    groupId: text,
  },
  { requiredKeys: [] },
);

const inputArb: fc.Arbitrary<HepPacketInput> = fc
  .record({
    v6: fc.boolean(),
    v4pair: fc.tuple(ipv4, ipv4),
    v6pair: fc.tuple(ipv6, ipv6),
    srcPort: u16,
    dstPort: u16,
    tsSec: u32,
    tsUsec: u32,
    protocol: optional(fc.integer({ min: 0, max: 255 })),
    protoType: optional(fc.integer({ min: 0, max: 255 })),
    captureId: optional(u32),
    keepAliveSec: optional(u16),
    authKey: optional(text),
    correlationId: optional(text),
    vlan: optional(u16),
    nodeName: optional(text),
    extra: optional(extraArb),
    payload: fc.uint8Array({ maxLength: 2000 }),
    compress: fc.boolean(),
    vendorChunks: fc.array(
      fc.record({
        vendorId: fc.integer({ min: 1, max: 0xffff }),
        typeId: u16,
        value: fc.uint8Array({ maxLength: 30 }),
      }),
      { maxLength: 3 },
    ),
  })
  .map((r) => {
    const [srcIp, dstIp] = r.v6 ? r.v6pair : r.v4pair;
    const input: HepPacketInput = {
      srcIp,
      dstIp,
      srcPort: r.srcPort,
      dstPort: r.dstPort,
      tsSec: r.tsSec,
      tsUsec: r.tsUsec,
      payload: r.payload,
      compress: r.compress,
      extraChunks: r.vendorChunks,
    };
    for (const key of ['protocol', 'protoType', 'captureId', 'keepAliveSec', 'vlan'] as const) {
      if (r[key] !== undefined) input[key] = r[key];
    }
    for (const key of ['authKey', 'correlationId', 'nodeName'] as const) {
      if (r[key] !== undefined) input[key] = r[key];
    }
    if (r.extra !== undefined) input.extra = r.extra;
    return input;
  });

test('hep - property: decode(encode(x)) gives x back', () => {
  fc.assert(
    fc.property(inputArb, (input) => {
      const p = decodeOk(encodeHep(input));
      assert.equal(p.ipFamily, input.srcIp.includes(':') ? 6 : 4);
      assert.deepEqual(parseIp(p.srcIp), parseIp(input.srcIp));
      assert.deepEqual(parseIp(p.dstIp), parseIp(input.dstIp));
      if (p.ipFamily === 4) assert.equal(p.srcIp, input.srcIp);
      assert.equal(formatIp(parseIp(p.dstIp)!), p.dstIp); // already canonical
      assert.deepEqual(
        [p.srcPort, p.dstPort, p.tsSec, p.tsUsec, p.protocol, p.protoType, p.captureId],
        [
          input.srcPort,
          input.dstPort,
          input.tsSec,
          input.tsUsec,
          input.protocol ?? 17,
          input.protoType ?? 1,
          input.captureId ?? 0,
        ],
      );
      assert.equal(p.keepAliveSec, input.keepAliveSec);
      assert.equal(p.authKey, input.authKey);
      assert.equal(p.correlationId, input.correlationId);
      assert.equal(p.vlan, input.vlan);
      assert.equal(p.nodeName, input.nodeName);
      // An empty `extra` writes no chunk, so it decodes as absent. (Spread: fast-check may build
      // the record without a prototype.)
      const extra =
        input.extra !== undefined && Object.keys(input.extra).length > 0 ? { ...input.extra } : undefined;
      assert.deepEqual(p.extra, extra);
      assert.deepEqual(p.payload, input.payload);
      assert.equal(p.compressed, input.compress);
      assert.equal(p.vendorChunks, input.extraChunks?.length ?? 0);
    }),
    { numRuns: 300 },
  );
});

const isValidDrop = (r: HepResult) =>
  r.ok || (HEP_DROP_REASONS.includes(r.reason) && typeof r.detail === 'string');

test('hep - property: decoding arbitrary bytes never throws', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        // Bytes that start like HEP3, so that the chunk walker gets exercised.
        fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.boolean()).map(([tail, fixLength]) => {
          const b = new Uint8Array(6 + tail.length);
          b.set(enc.encode('HEP3'));
          b.set(tail, 6);
          if (fixLength) {
            b[4] = b.length >> 8;
            b[5] = b.length & 0xff;
          }
          return b;
        }),
      ),
      (bytes) => {
        assert.ok(isValidDrop(decodeHep(bytes)));
      },
    ),
    { numRuns: 2000 },
  );
});

test('hep - property: decoding mutated valid packets never throws', () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), byte: fc.constant(0) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  );
  fc.assert(
    fc.property(
      inputArb,
      fc.array(mutation, { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      (input, mutations, fixLength) => {
        let b = encodeHep(input);
        for (const m of mutations) {
          const at = m.at % (b.length + 1);
          if (m.kind === 'set' && at < b.length) b[at] = m.byte;
          else if (m.kind === 'cut') b = b.subarray(0, at);
          else if (m.kind === 'insert')
            b = Uint8Array.from([...b.subarray(0, at), m.byte, ...b.subarray(at)]);
        }
        if (fixLength && b.length >= 6 && b.length <= 0xffff) {
          b[4] = b.length >> 8;
          b[5] = b.length & 0xff;
        }
        const r = decodeHep(b);
        assert.ok(isValidDrop(r));
        if (r.ok) assert.ok(r.value.payload.length <= 0xffff);
      },
    ),
    { numRuns: 1000 },
  );
});
