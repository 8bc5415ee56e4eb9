import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { SwitchyardError } from '../../../src/core/errors.ts';
import { decodeHep } from '../../../src/proto/hep.ts';
import {
  PCAP_LINKTYPE_ETHERNET,
  PCAP_MAX_UDP_PAYLOAD_V4,
  PCAP_MAX_UDP_PAYLOAD_V6,
  type PcapMessage,
  type PcapTransport,
  pcapFile,
} from '../../../src/proto/pcap.ts';
import { getHeader, parseSipMessage } from '../../../src/proto/sip-message.ts';

const run = promisify(execFile);
const TSHARK = '/usr/bin/tshark';
const enc = new TextEncoder();

const sipDir = new URL('../../fixtures/sip/', import.meta.url);
const hepDir = new URL('../../fixtures/hep/', import.meta.url);

interface Expected {
  callId: string;
  method: string;
  status: string;
}

function expectedOf(raw: Uint8Array): Expected {
  const m = parseSipMessage(raw);
  assert.ok(m.ok, m.ok ? '' : m.reason);
  return {
    callId: getHeader(m.value, 'Call-ID') ?? '',
    method: m.value.method ?? '',
    status: m.value.status === undefined ? '' : String(m.value.status),
  };
}

/** Every SIP fixture, plus the SIP inside every HEP fixture, over a mix of families and transports. */
function sampleMessages(): PcapMessage[] {
  const raws = [
    ...readdirSync(sipDir)
      .filter((f) => f.endsWith('.txt'))
      .map((f) => new Uint8Array(readFileSync(new URL(f, sipDir)))),
    ...readdirSync(hepDir)
      .filter((f) => f.endsWith('.bin'))
      .map((f) => {
        const r = decodeHep(new Uint8Array(readFileSync(new URL(f, hepDir))));
        assert.ok(r.ok);
        return r.value.payload;
      }),
  ];
  const transports: PcapTransport[] = ['udp', 'tcp', 'tls', 'ws', 'wss', 'sctp'];
  const ports = [5060, 5061, 5080, 35060, 443];
  return raws.map((raw, i) => {
    const v6 = i % 3 === 2;
    return {
      tsUs: 1_700_000_000_000_000 + i * 12_345,
      srcIp: v6 ? `2001:db8::${i + 1}` : `192.0.2.${i + 1}`,
      dstIp: v6 ? '2001:db8::ff' : '198.51.100.1',
      srcPort: ports[i % ports.length]!,
      dstPort: ports[(i + 2) % ports.length]!,
      transport: transports[i % transports.length]!,
      raw,
    };
  });
}

async function tshark(file: string, args: string[]): Promise<string[][]> {
  if (!existsSync(TSHARK)) {
    assert.fail(`tshark not found at ${TSHARK}: install Debian's tshark package (this test does not skip)`);
  }
  const { stdout } = await run(TSHARK, ['-r', file, ...args], {
    timeout: 30_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.split('\t'));
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-pcap-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('pcap - tshark reads every message back as SIP with its Call-ID, method or status', async (t) => {
  const messages = sampleMessages();
  assert.ok(messages.length >= 10);
  const file = join(await tempDir(t), 'capture.pcap');
  await writeFile(file, pcapFile(messages));
  const rows = await tshark(file, [
    '-o',
    'ip.check_checksum:TRUE',
    '-o',
    'udp.check_checksum:TRUE',
    '-Y',
    'sip',
    '-T',
    'fields',
    '-e',
    'frame.number',
    '-e',
    'sip.Call-ID',
    '-e',
    'sip.Method',
    '-e',
    'sip.Status-Code',
    '-e',
    'udp.checksum.status',
    '-e',
    'ip.checksum.status',
    '-e',
    'frame.time_epoch',
  ]);
  assert.equal(rows.length, messages.length, `tshark saw ${rows.length} SIP frames of ${messages.length}`);
  rows.forEach((row, i) => {
    const m = messages[i]!;
    const want = expectedOf(m.raw);
    const [frameNo, callId, method, status, udpSum, ipSum, epoch] = row;
    assert.equal(frameNo, String(i + 1));
    assert.deepEqual({ callId, method, status }, want, `frame ${i + 1}`);
    assert.equal(udpSum, '1', `frame ${i + 1}: UDP checksum status (1 = good)`);
    if (!m.srcIp.includes(':')) assert.equal(ipSum, '1', `frame ${i + 1}: IPv4 header checksum`);
    const wantEpoch = `${Math.floor(m.tsUs / 1e6)}.${String(m.tsUs % 1e6).padStart(6, '0')}000`;
    assert.equal(epoch, wantEpoch, `frame ${i + 1}: timestamp`);
  });
});

test('pcap - addresses and ports are as given, whatever the transport', async (t) => {
  const messages = sampleMessages().slice(0, 6);
  const file = join(await tempDir(t), 'addresses.pcap');
  await writeFile(file, pcapFile(messages));
  const rows = await tshark(file, [
    '-T',
    'fields',
    '-e',
    'ip.src',
    '-e',
    'ipv6.src',
    '-e',
    'udp.srcport',
    '-e',
    'ip.dst',
    '-e',
    'ipv6.dst',
    '-e',
    'udp.dstport',
  ]);
  assert.deepEqual(
    rows.map(([ip4s, ip6s, sport, ip4d, ip6d, dport]) => [
      ip4s || ip6s,
      Number(sport),
      ip4d || ip6d,
      Number(dport),
    ]),
    messages.map((m) => [m.srcIp, m.srcPort, m.dstIp, m.dstPort]),
  );
});

test('pcap - oversized payloads are truncated to one UDP datagram and the file stays valid', async (t) => {
  const big = (n: number) => {
    const head = enc.encode(`MESSAGE sip:b@y SIP/2.0\r\nCall-ID: big-${n}@x\r\nContent-Length: ${n}\r\n\r\n`);
    const out = new Uint8Array(head.length + n).fill(0x61);
    out.set(head);
    return out;
  };
  const messages: PcapMessage[] = [
    {
      tsUs: 1,
      srcIp: '10.0.0.1',
      srcPort: 5060,
      dstIp: '10.0.0.2',
      dstPort: 5060,
      transport: 'tcp',
      raw: big(70_000),
    },
    { tsUs: 2, srcIp: '::1', srcPort: 5060, dstIp: '::2', dstPort: 5060, transport: 'tcp', raw: big(70_000) },
    {
      tsUs: 3,
      srcIp: '10.0.0.1',
      srcPort: 5060,
      dstIp: '10.0.0.2',
      dstPort: 5060,
      transport: 'udp',
      raw: big(10),
    },
  ];
  const bytes = pcapFile(messages);
  const file = join(await tempDir(t), 'big.pcap');
  await writeFile(file, bytes);
  const rows = await tshark(file, [
    '-T',
    'fields',
    '-e',
    'frame.len',
    '-e',
    'udp.length',
    '-e',
    'sip.Call-ID',
  ]);
  assert.deepEqual(
    rows.map(([len, udpLen]) => [Number(len), Number(udpLen)]),
    [
      [14 + 20 + 8 + PCAP_MAX_UDP_PAYLOAD_V4, 8 + PCAP_MAX_UDP_PAYLOAD_V4],
      [14 + 40 + 8 + PCAP_MAX_UDP_PAYLOAD_V6, 8 + PCAP_MAX_UDP_PAYLOAD_V6],
      [14 + 20 + 8 + messages[2]!.raw.length, 8 + messages[2]!.raw.length],
    ],
  );
  assert.equal(rows[2]![2], 'big-10@x');
});

test('pcap - global and record headers', () => {
  const raw = enc.encode('OPTIONS sip:x SIP/2.0\r\nCall-ID: h@x\r\n\r\n');
  const bytes = pcapFile([
    {
      tsUs: 1_700_000_001_250_000,
      srcIp: '10.0.0.1',
      srcPort: 1,
      dstIp: '10.0.0.2',
      dstPort: 2,
      transport: 'udp',
      raw,
    },
  ]);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(view.getUint32(0, true), 0xa1b2c3d4);
  assert.deepEqual([view.getUint16(4, true), view.getUint16(6, true)], [2, 4]);
  assert.equal(view.getUint32(20, true), PCAP_LINKTYPE_ETHERNET);
  assert.deepEqual([view.getUint32(24, true), view.getUint32(28, true)], [1_700_000_001, 250_000]);
  const frameLen = 14 + 20 + 8 + raw.length;
  assert.deepEqual([view.getUint32(32, true), view.getUint32(36, true)], [frameLen, frameLen]);
  assert.equal(bytes.length, 24 + 16 + frameLen);
  assert.equal(pcapFile([]).length, 24);
});

test('pcap - invalid input is a programmer error', () => {
  const ok: PcapMessage = {
    tsUs: 0,
    srcIp: '10.0.0.1',
    srcPort: 5060,
    dstIp: '10.0.0.2',
    dstPort: 5060,
    transport: 'udp',
    raw: new Uint8Array(0),
  };
  for (const patch of [
    { srcIp: 'host' },
    { dstIp: '::1' },
    { srcPort: 70_000 },
    { dstPort: 1.5 },
    { tsUs: -1 },
    { tsUs: Number.NaN },
  ]) {
    assert.throws(
      () => pcapFile([{ ...ok, ...patch }]),
      (err: unknown) => SwitchyardError.is(err) && err.code === 'SY_ERR_INVALID_ARGUMENT',
      JSON.stringify(patch),
    );
  }
});
