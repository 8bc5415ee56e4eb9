import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import type { CapturedMessage } from '../../../src/capture/model.ts';
import {
  getCallId,
  getContacts,
  getContentType,
  getCSeq,
  getDate,
  getFrom,
  getMaxForwards,
  getRequestUri,
  getTo,
  getVias,
  parseCSeqValue,
  parseViaValue,
  type SipCaptureFields,
  sipCaptureFields,
} from '../../../src/proto/sip-fields.ts';
import {
  getHeaderValues,
  isListHeader,
  parseSipMessage,
  type SipMessage,
  splitHeaderValues,
} from '../../../src/proto/sip-message.ts';
import { parseNameAddr, parseUri, type SipUri } from '../../../src/proto/sip-uri.ts';

// sipCaptureFields feeds CapturedMessage: keep the two shapes compatible (type-level check).
const _compatible: Pick<CapturedMessage, keyof SipCaptureFields> = {} as SipCaptureFields;
void _compatible;

const enc = new TextEncoder();

function msgOf(lines: string[], body = ''): SipMessage {
  const r = parseSipMessage(enc.encode(`${lines.join('\r\n')}\r\n\r\n${body}`));
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.value;
}

const BASE = [
  'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1;rport',
  'From: "Alice" <sip:1001@pbx.example.com>;tag=f1',
  'To: <sip:2002@pbx.example.com>',
  'Call-ID: abc123@192.0.2.1',
  'CSeq: 7 INVITE',
  'Max-Forwards: 70',
];

function invite(extra: string[] = [], replace: Record<string, string | null> = {}): SipMessage {
  const lines = BASE.filter((l) => !(l.split(':')[0]! in replace)).concat(
    Object.entries(replace)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => `${k}: ${v}`),
    extra,
  );
  return msgOf(['INVITE sip:2002@pbx.example.com SIP/2.0', ...lines]);
}

function okValue<T>(r: { ok: true; value: T } | { ok: false; reason: string }): T {
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.value;
}

function failReason(r: { ok: true } | { ok: false; reason: string }, re: RegExp): void {
  assert.equal(r.ok, false, 'should fail');
  assert.match(r.ok ? '' : r.reason, re);
}

test('sip headers - splitHeaderValues splits on commas outside quotes and <>', () => {
  assert.deepEqual(splitHeaderValues('a, b ,c'), ['a', 'b', 'c']);
  assert.deepEqual(splitHeaderValues('"Doe, John" <sip:j@h>;q=1, <sip:x@y?a=1,2>'), [
    '"Doe, John" <sip:j@h>;q=1',
    '<sip:x@y?a=1,2>',
  ]);
  assert.deepEqual(splitHeaderValues('"a \\", b" <sip:x>, c'), ['"a \\", b" <sip:x>', 'c']);
  assert.deepEqual(splitHeaderValues('x;;,;,,'), ['x;;', ';', '', '']);
  assert.deepEqual(splitHeaderValues(''), ['']);
});

test('sip headers - getHeaderValues splits list headers only, across repeated lines in order', () => {
  const msg = msgOf([
    'OPTIONS sip:a@b SIP/2.0',
    'Via: SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/TCP h2;branch=z9hG4bK2',
    'v: SIP/2.0/UDP h3;branch=z9hG4bK3',
    'Route: <sip:p1;lr>, <sip:p2;lr>',
    'Route: <sip:p3;lr>',
    'Record-Route: <sip:r1;lr>,<sip:r2;lr>',
    'm: <sip:c1@x>, "Doe, J" <sip:c2@x>',
    'WWW-Authenticate: Digest realm="a", nonce="b"',
    'Authorization: Digest username="u", realm="a"',
    'Date: Sat, 15 Oct 2005 04:44:56 GMT',
    'X-Unknown: ;;,,;;,;',
    'Allow: INVITE, ACK ,BYE',
  ]);
  assert.deepEqual(getHeaderValues(msg, 'via'), [
    'SIP/2.0/UDP h1;branch=z9hG4bK1',
    'SIP/2.0/TCP h2;branch=z9hG4bK2',
    'SIP/2.0/UDP h3;branch=z9hG4bK3',
  ]);
  assert.deepEqual(getHeaderValues(msg, 'Route'), ['<sip:p1;lr>', '<sip:p2;lr>', '<sip:p3;lr>']);
  assert.deepEqual(getHeaderValues(msg, 'Record-Route'), ['<sip:r1;lr>', '<sip:r2;lr>']);
  assert.deepEqual(getHeaderValues(msg, 'Contact'), ['<sip:c1@x>', '"Doe, J" <sip:c2@x>']);
  assert.deepEqual(getHeaderValues(msg, 'WWW-Authenticate'), ['Digest realm="a", nonce="b"']);
  assert.deepEqual(getHeaderValues(msg, 'Authorization'), ['Digest username="u", realm="a"']);
  assert.deepEqual(getHeaderValues(msg, 'Date'), ['Sat, 15 Oct 2005 04:44:56 GMT']);
  assert.deepEqual(getHeaderValues(msg, 'X-Unknown'), [';;,,;;,;']);
  assert.deepEqual(getHeaderValues(msg, 'Allow'), ['INVITE', 'ACK', 'BYE']);
  assert.deepEqual(getHeaderValues(msg, 'Supported'), []);
  assert.equal(isListHeader('v'), true);
  assert.equal(isListHeader('proxy-authorization'), false);
});

test('sip fields - Call-ID: required, single, no spaces', () => {
  assert.equal(okValue(getCallId(invite())), 'abc123@192.0.2.1');
  assert.equal(okValue(getCallId(invite(['i: x@y'], { 'Call-ID': null }))), 'x@y');
  failReason(getCallId(invite([], { 'Call-ID': null })), /missing Call-ID/);
  failReason(getCallId(invite(['Call-ID: other'])), /conflicting Call-ID/);
  assert.equal(okValue(getCallId(invite(['i: abc123@192.0.2.1']))), 'abc123@192.0.2.1');
  failReason(getCallId(invite([], { 'Call-ID': 'a b' })), /bad Call-ID/);
  assert.equal(okValue(getCallId(invite([], { 'Call-ID': 'ZjE2YTQ=@h#1' }))), 'ZjE2YTQ=@h#1');
});

test('sip fields - CSeq: number below 2**31, token method, matching the request', () => {
  assert.deepEqual(okValue(getCSeq(invite())), { seq: 7, method: 'INVITE' });
  assert.deepEqual(okValue(parseCSeqValue('0009\r\n  INVITE')), { seq: 9, method: 'INVITE' });
  assert.deepEqual(okValue(parseCSeqValue(' 2147483647 BYE ')), { seq: 2 ** 31 - 1, method: 'BYE' });
  assert.deepEqual(okValue(parseCSeqValue('000000000000001 ACK')), { seq: 1, method: 'ACK' });
  failReason(parseCSeqValue('2147483648 BYE'), /too large/);
  failReason(parseCSeqValue('36893488147419103232 REGISTER'), /too large/);
  failReason(parseCSeqValue('fhdjkgfhdkjhgkj'), /bad CSeq/);
  failReason(parseCSeqValue('1 INV(ITE'), /method/);
  failReason(parseCSeqValue('-1 INVITE'), /bad CSeq/);
  failReason(getCSeq(invite([], { CSeq: '7 BYE' })), /does not match request method INVITE/);
  failReason(getCSeq(invite([], { CSeq: '7 invite' })), /does not match/);
  failReason(getCSeq(invite([], { CSeq: null })), /missing CSeq/);
  failReason(getCSeq(invite(['CSeq: 8 INVITE'])), /conflicting CSeq/);
  const resp = msgOf(['SIP/2.0 200 OK', ...BASE.map((l) => l.replace('7 INVITE', '7 BYE'))]);
  assert.deepEqual(okValue(getCSeq(resp)), { seq: 7, method: 'BYE' });
});

test('sip fields - From/To: name-addr, user, tag', () => {
  const from = okValue(getFrom(invite()));
  assert.equal(from.displayName, 'Alice');
  assert.equal((from.uri as SipUri).user, '1001');
  assert.equal(from.tag, 'f1');
  const to = okValue(getTo(invite()));
  assert.equal(to.tag, undefined);
  assert.equal((to.uri as SipUri).host, 'pbx.example.com');
  assert.equal(okValue(getTo(invite([], { To: 'sip:2002@[2001:db8::2];tag=t9' }))).tag, 't9');
  failReason(getFrom(invite([], { From: null })), /missing From/);
  failReason(getTo(invite([], { To: '"unterminated <sip:a@b>' })), /bad To: unterminated/);
  failReason(getFrom(invite(['f: <sip:other@h>;tag=2'])), /conflicting From/);
  assert.equal(okValue(getFrom(invite([], { From: '<sip:a@b>;tag=' + 'x' }))).tag, 'x');
});

test('sip fields - Via list: transport, sent-by with IPv6 and port, branch, received, rport', () => {
  const msg = msgOf([
    'SIP/2.0 200 OK',
    'Via: SIP/2.0/udp [2001:db8::1]:5062;branch=z9hG4bKv6;received=2001:db8::99;rport=40000',
    'Via: SIP / 2.0 / TLS proxy.example.com : 5061 ; branch = z9hG4bKp ; maddr=239.255.255.1 ; ttl=16,SIP/2.0/WSS df7jal23ls0d.invalid;rport;branch=z9hG4bKw',
  ]);
  const vias = okValue(getVias(msg));
  assert.equal(vias.length, 3);
  assert.deepEqual(
    { ...vias[0], params: undefined },
    {
      protocol: 'SIP',
      version: '2.0',
      transport: 'UDP',
      host: '2001:db8::1',
      hostType: 'ipv6',
      port: 5062,
      branch: 'z9hG4bKv6',
      received: '2001:db8::99',
      rport: 40000,
      params: undefined,
    },
  );
  assert.equal(vias[1]!.transport, 'TLS');
  assert.equal(vias[1]!.port, 5061);
  assert.equal(vias[1]!.params.get('ttl'), '16');
  assert.equal(vias[1]!.rport, undefined);
  assert.equal(vias[2]!.rport, true);
  assert.equal(vias[2]!.transport, 'WSS');
  assert.deepEqual(okValue(getVias(msgOf(['OPTIONS sip:a@b SIP/2.0']))), []);
  failReason(parseViaValue('SIP/2.0/UDP 192.0.2.15;;'), /empty header parameter/);
  failReason(parseViaValue('SIP/2.0 192.0.2.15'), /bad Via/);
  failReason(parseViaValue('SIP/2.0/UDP'), /bad Via/);
  failReason(parseViaValue('SIP/2.0/UDP h:99999'), /sent-by/);
  failReason(parseViaValue('SIP/2.0/UDP [zz::1]'), /sent-by/);
  failReason(parseViaValue('SIP/2.0/UDP h;branch'), /branch/);
  failReason(parseViaValue('SIP/2.0/UDP h;received=host.example'), /received/);
  failReason(parseViaValue('SIP/2.0/UDP h;rport=x'), /rport/);
  failReason(parseViaValue('SIP/2.0/UDP h junk'), /unexpected/);
  failReason(getVias(msgOf(['OPTIONS sip:a@b SIP/2.0', 'Via: SIP/2.0/UDP h,,SIP/2.0/UDP i'])), /empty Via/);
});

test('sip fields - Max-Forwards, Content-Type, Date, Contact, Request-URI', () => {
  assert.equal(okValue(getMaxForwards(invite())), 70);
  assert.equal(okValue(getMaxForwards(invite([], { 'Max-Forwards': '0068' }))), 68);
  assert.equal(okValue(getMaxForwards(invite([], { 'Max-Forwards': null }))), undefined);
  failReason(getMaxForwards(invite([], { 'Max-Forwards': '256' })), /out of range/);
  failReason(getMaxForwards(invite([], { 'Max-Forwards': '7a' })), /bad Max-Forwards/);
  failReason(getMaxForwards(invite(['Max-Forwards: 5'])), /conflicting/);

  const ct = okValue(getContentType(invite(['c: Multipart/Mixed ; boundary="7a9c" ;charset=utf-8'])));
  assert.deepEqual(ct, {
    mediaType: 'multipart/mixed',
    type: 'multipart',
    subtype: 'mixed',
    params: new Map([
      ['boundary', '7a9c'],
      ['charset', 'utf-8'],
    ]),
  });
  assert.equal(okValue(getContentType(invite())), undefined);
  failReason(getContentType(invite(['Content-Type: application'])), /bad Content-Type/);
  failReason(getContentType(invite(['Content-Type: a/b;;'])), /parameters/);

  assert.equal(
    okValue(getDate(invite(['Date: Sat, 15 Oct 2005 04:44:56 GMT'])))?.toISOString(),
    '2005-10-15T04:44:56.000Z',
  );
  assert.equal(okValue(getDate(invite())), undefined);
  failReason(getDate(invite(['Date: Fri, 01 Jan 2010 16:00:00 EST'])), /not GMT/);
  failReason(getDate(invite(['Date: Fri, 01 Jan 2010 16:00:00 UTC'])), /not GMT/);
  failReason(getDate(invite(['Date: Fri, 31 Feb 2010 16:00:00 GMT'])), /bad Date/);
  failReason(getDate(invite(['Date: Fry, 01 Jan 2010 16:00:00 GMT'])), /bad Date/);
  failReason(getDate(invite(['Date: yesterday'])), /bad Date/);

  assert.equal(okValue(getContacts(invite(['Contact: *']))), '*');
  const contacts = okValue(
    getContacts(invite(['Contact: <sip:a@h>;expires=60, "B, C" <sip:b@h>', 'm: sip:c@h;q=0.5'])),
  );
  assert.ok(Array.isArray(contacts));
  assert.deepEqual(
    contacts.map((c) => [
      (c.uri as SipUri).user,
      c.displayName,
      c.params.get('expires') ?? c.params.get('q'),
    ]),
    [
      ['a', undefined, '60'],
      ['b', 'B, C', undefined],
      ['c', undefined, '0.5'],
    ],
  );
  assert.deepEqual(okValue(getContacts(invite())), []);
  failReason(getContacts(invite(['Contact: sip:a@h?x=1'])), /bad Contact/);

  assert.equal((okValue(getRequestUri(invite())) as SipUri).user, '2002');
  failReason(getRequestUri(msgOf(['SIP/2.0 200 OK'])), /not a request/);
  failReason(getRequestUri(msgOf(['INVITE sip:u@h?Route=x SIP/2.0'])), /headers in the Request-URI/);
  failReason(getRequestUri(msgOf(['INVITE sip:u@h:99999 SIP/2.0'])), /bad Request-URI/);
});

test('sip fields - sipCaptureFields for a request and a response', () => {
  assert.deepEqual(okValue(sipCaptureFields(invite(['X-CID: leg-a-1']), { correlationHeader: 'x-cid' })), {
    callId: 'abc123@192.0.2.1',
    method: 'INVITE',
    cseq: '7 INVITE',
    fromUser: '1001',
    toUser: '2002',
    fromTag: 'f1',
    xCorrelation: 'leg-a-1',
  });
  const resp = msgOf([
    'SIP/2.0 486 Busy Here',
    'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa1',
    'f: <tel:+1-555-0100>;tag=a',
    't: sip:%32002@[2001:db8::5];tag=b',
    'i: c@d',
    'CSeq: 0009 INVITE',
  ]);
  assert.deepEqual(okValue(sipCaptureFields(resp, { correlationHeader: 'X-CID' })), {
    callId: 'c@d',
    status: 486,
    cseq: '9 INVITE',
    fromUser: '+1-555-0100',
    toUser: '%32002',
    fromTag: 'a',
    toTag: 'b',
  });
  const unusual = okValue(
    sipCaptureFields(invite([], { From: '<http://example.com>;tag=z', To: 'sip:example.com' })),
  );
  assert.equal(unusual.fromUser, '');
  assert.equal(unusual.toUser, '');
  failReason(sipCaptureFields(invite([], { 'Call-ID': null })), /missing Call-ID/);
  failReason(sipCaptureFields(invite([], { CSeq: 'x' })), /bad CSeq/);
  failReason(sipCaptureFields(invite([], { From: null })), /missing From/);
  failReason(sipCaptureFields(invite([], { To: 'Bell, A <sip:a@b>' })), /bad To/);
  assert.equal(
    okValue(sipCaptureFields(invite(['X-CID:  ']), { correlationHeader: 'X-CID' })).xCorrelation,
    undefined,
  );
});

test('sip message - a NUL is accepted only as a quoted-pair in a quoted string (RFC 4475 §3.1.1.2)', () => {
  const parse = (text: string) => parseSipMessage(enc.encode(`OPTIONS sip:a@b SIP/2.0\r\n${text}\r\n\r\n`));
  const good = parse('To: "x\\\0y" <sip:a@b>');
  assert.ok(good.ok);
  assert.equal(okValue(getTo(good.value)).displayName, 'x\0y');
  assert.ok(parse('To: "folded\r\n \\\0" <sip:a@b>').ok);
  failReason(parse('To: "x\0y" <sip:a@b>'), /NUL/);
  failReason(parse('To: x\\\0y <sip:a@b>'), /NUL/);
  failReason(parse('To: "x"\r\nFrom: \\\0'), /NUL/);
  failReason(parseSipMessage(enc.encode('OPTIONS sip:a"\\\0"@b SIP/2.0\r\n\r\n')), /NUL/);
});

test('sip message - the start line needs a Request-URI with a scheme and version SIP/2.0', () => {
  failReason(parseSipMessage(enc.encode('INVITE <sip:a@b> SIP/2.0\r\n\r\n')), /bad start line/);
  failReason(parseSipMessage(enc.encode('INVITE a@b SIP/2.0\r\n\r\n')), /bad start line/);
  failReason(parseSipMessage(enc.encode('OPTIONS sip:a@b SIP/7.0\r\n\r\n')), /unsupported version SIP\/7\.0/);
  failReason(parseSipMessage(enc.encode('SIP/3.0 200 OK\r\n\r\n')), /unsupported version SIP\/3\.0/);
  assert.equal(
    okValue(parseSipMessage(enc.encode('OPTIONS urn:service:sos SIP/2.0\r\n\r\n'))).requestUri,
    'urn:service:sos',
  );
});

test('sip fields - long adversarial values are parsed in linear time', () => {
  const n = 60_000;
  const inputs = [
    `tel:+${'1'.repeat(n)}x`,
    `sip:${'a-'.repeat(n / 2)}.`,
    `"${'\\"'.repeat(n / 2)}`,
    `${'a '.repeat(n / 2)}<`,
    `<sip:a@b>${';a=b'.repeat(n / 4)} x`,
    `SIP/2.0/UDP ${'h'.repeat(n)}:`,
    `${'1'.repeat(n)} ${'A'.repeat(n)} x`,
  ];
  const started = performance.now();
  for (const s of inputs) {
    parseNameAddr(s);
    parseUri(s);
    parseViaValue(s);
    parseCSeqValue(s);
    splitHeaderValues(s);
  }
  // Quadratic backtracking would take minutes here; linear parsing takes milliseconds.
  assert.ok(performance.now() - started < 2000, `took ${performance.now() - started} ms`);
});

// ---- properties ------------------------------------------------------------------------

test('sip headers - splitting never loses a character other than separators and their spaces', () => {
  const listish = fc.string({
    unit: fc.constantFrom(',', '"', '<', '>', '\\', ' ', '\t', ';', '=', 'a', 'b', '@', ':'),
    maxLength: 40,
  });
  fc.assert(
    fc.property(listish, (value) => {
      const parts = splitHeaderValues(value);
      const squash = (s: string) => s.replace(/[ \t]/g, '');
      assert.equal(squash(parts.join(',')), squash(value));
      for (const p of parts)
        assert.equal(p, p.trim().length === p.length ? p : p.replace(/^[ \t]+|[ \t]+$/g, ''));
      if (!/["<\\]/.test(value))
        assert.deepEqual(
          parts,
          value.split(',').map((p) => p.replace(/^[ \t]+|[ \t]+$/g, '')),
        );
    }),
    { numRuns: 3000 },
  );
});

const TORTURE = new URL('../../fixtures/sip/rfc4475/', import.meta.url);
const seeds = readdirSync(TORTURE)
  .sort()
  .map((f) => Array.from(readFileSync(new URL(f, TORTURE))));

test('sip fields - no accessor throws on mutated torture messages', () => {
  const mutation = fc.record({
    seed: fc.nat(seeds.length - 1),
    edits: fc.array(
      fc.record({
        at: fc.nat(),
        del: fc.nat(6),
        insert: fc.oneof(
          fc.uint8Array({ maxLength: 6 }),
          fc.constantFrom(
            ...['<', '>', '"', '\\', ',', ';', ':', '@', '[', ']', '%', ' ', '\r\n ', '='].map((s) => [
              ...enc.encode(s),
            ]),
          ),
        ),
      }),
      { maxLength: 6 },
    ),
  });
  fc.assert(
    fc.property(mutation, ({ seed, edits }) => {
      const buf = [...seeds[seed]!];
      for (const e of edits) buf.splice(buf.length === 0 ? 0 : e.at % buf.length, e.del, ...e.insert);
      const r = parseSipMessage(new Uint8Array(buf));
      if (!r.ok) return;
      const m = r.value;
      for (const res of [
        getCallId(m),
        getCSeq(m),
        getFrom(m),
        getTo(m),
        getVias(m),
        getMaxForwards(m),
        getContentType(m),
        getContacts(m),
        getDate(m),
        getRequestUri(m),
        sipCaptureFields(m, { correlationHeader: 'X-CID' }),
      ]) {
        assert.equal(typeof res.ok, 'boolean');
      }
    }),
    { numRuns: 3000 },
  );
});
