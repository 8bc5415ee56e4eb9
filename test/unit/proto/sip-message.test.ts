import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { SwitchyardError } from '../../../src/core/errors.ts';
import {
  buildOptionsRequest,
  canonicalHeaderName,
  getHeader,
  getHeaders,
  parseCSeq,
  parseSipMessage,
  type SipMessage,
  topVia,
} from '../../../src/proto/sip-message.ts';

const enc = new TextEncoder();
const bytes = (text: string) => enc.encode(text);
const fixture = (name: string) =>
  new Uint8Array(readFileSync(new URL(`../../fixtures/sip/${name}`, import.meta.url)));

function parseOk(input: Uint8Array | string): SipMessage {
  const r = parseSipMessage(typeof input === 'string' ? bytes(input) : input);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.value;
}

function parseFail(input: string, reason?: RegExp): void {
  const r = parseSipMessage(bytes(input));
  assert.equal(r.ok, false, `should fail: ${JSON.stringify(input)}`);
  if (reason) assert.match(r.ok ? '' : r.reason, reason);
}

const OPTIONS_REQUEST = [
  'OPTIONS sip:127.0.0.2:5060 SIP/2.0',
  'Via: SIP/2.0/UDP 127.0.0.1:40000;rport;branch=z9hG4bKabc',
  'Max-Forwards: 70',
  'From: <sip:switchyard@127.0.0.1>;tag=1',
  'To: <sip:127.0.0.2:5060>',
  'Call-ID: x@127.0.0.1',
  'CSeq: 1 OPTIONS',
  'Content-Length: 0',
  '',
  '',
].join('\r\n');

test('sip message - parses a real SIPp 200 OK to our OPTIONS', () => {
  const msg = parseOk(fixture('sipp-uas-200-options.txt'));
  assert.equal(msg.kind, 'response');
  assert.equal(msg.status, 200);
  assert.equal(msg.reason, 'OK');
  assert.equal(msg.method, undefined);
  assert.equal(getHeader(msg, 'cseq'), '1 OPTIONS');
  assert.equal(topVia(msg)?.params.get('branch'), 'z9hG4bKcapture24');
  assert.equal(msg.body.length, 0);
});

test('sip message - parses real Kamailio replies (200 Keepalive, 503)', () => {
  const keepalive = parseOk(fixture('kamailio-200-keepalive.txt'));
  assert.equal(keepalive.status, 200);
  assert.equal(keepalive.reason, 'Keepalive');
  const via = topVia(keepalive)!;
  assert.equal(via.params.get('rport'), '44207');
  assert.equal(via.params.get('received'), '127.0.0.1');
  assert.equal(via.sentBy, '127.0.0.1:44207');
  assert.equal(via.protocol, 'SIP/2.0/UDP');
  const busy = parseOk(fixture('kamailio-503-no-destination.txt'));
  assert.equal(busy.status, 503);
  assert.equal(busy.reason, 'No destination');
  assert.equal(getHeader(busy, 'server'), 'kamailio (5.6.3 (x86_64/linux))');
});

test('sip message - parses a real Asterisk 20 503 to OPTIONS', () => {
  const msg = parseOk(fixture('asterisk-20-503-options.txt'));
  assert.equal(msg.status, 503);
  assert.equal(msg.reason, 'Unavailable');
  assert.equal(
    getHeader(msg, 'Allow'),
    'INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE',
  );
  assert.equal(msg.headers.length, 10);
});

test('sip message - frames an SDP body by Content-Length in bytes (real Asterisk 200 OK)', () => {
  const raw = fixture('asterisk-20-200-invite-sdp.txt');
  const msg = parseOk(raw);
  assert.equal(getHeader(msg, 'Content-Length'), '188');
  assert.equal(msg.body.length, 188);
  assert.match(new TextDecoder().decode(msg.body), /^v=0\r\n[\s\S]*a=sendrecv\r\n$/);
  assert.equal(getHeader(msg, 'Content-Type'), 'application/sdp');
});

test('sip message - parses a real SIPp INVITE whose Content-Length has extra spaces', () => {
  const msg = parseOk(fixture('asterisk-20-invite-from-sipp.txt'));
  assert.equal(msg.kind, 'request');
  assert.equal(msg.method, 'INVITE');
  assert.equal(msg.requestUri, 'sip:long@127.0.0.1:5070');
  assert.equal(getHeader(msg, 'Content-Length'), '129');
  assert.equal(msg.body.length, 129);
});

test('sip message - canonicalises compact and lower-case header names', () => {
  const msg = parseOk(
    [
      'INVITE sip:bob@example.com SIP/2.0',
      'v: SIP/2.0/UDP host;branch=z9hG4bK1',
      'f: <sip:a@b>;tag=1',
      't: <sip:bob@example.com>',
      'i: abc',
      'CSEQ: 2 INVITE',
      'm: <sip:a@host>',
      'c: application/sdp',
      'k: timer',
      's: hello',
      'e: gzip',
      'www-authenticate: Digest realm="x"',
      'x-backend: 127.0.0.2',
      'l: 0',
      '',
      '',
    ].join('\r\n'),
  );
  assert.deepEqual(
    msg.headers.map(([n]) => n),
    [
      'Via',
      'From',
      'To',
      'Call-ID',
      'CSeq',
      'Contact',
      'Content-Type',
      'Supported',
      'Subject',
      'Content-Encoding',
      'WWW-Authenticate',
      'X-Backend',
      'Content-Length',
    ],
  );
  assert.equal(getHeader(msg, 'call-id'), 'abc');
  assert.equal(getHeader(msg, 'i'), 'abc');
  assert.equal(getHeader(msg, 'X-BACKEND'), '127.0.0.2');
  assert.equal(getHeader(msg, 'Route'), undefined);
});

test('sip message - header name canonical forms', () => {
  const cases: Array<[string, string]> = [
    ['call-id', 'Call-ID'],
    ['CSEQ', 'CSeq'],
    ['max-forwards', 'Max-Forwards'],
    ['v', 'Via'],
    ['L', 'Content-Length'],
    ['record-route', 'Record-Route'],
    ['__proto__', '__proto__'],
    ['constructor', 'Constructor'],
    ['p-asserted-identity', 'P-Asserted-Identity'],
  ];
  for (const [input, want] of cases) assert.equal(canonicalHeaderName(input), want);
});

test('sip message - joins folded header lines with one space', () => {
  const msg = parseOk(
    "OPTIONS sip:a SIP/2.0\r\nSubject: I know you're there,\r\n   pick up the phone\r\n\tand talk to me!\r\nVia: SIP/2.0/UDP h\r\n\r\n",
  );
  assert.equal(getHeader(msg, 'Subject'), "I know you're there, pick up the phone and talk to me!");
});

test('sip message - keeps repeated headers in order', () => {
  const msg = parseOk(
    'OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\r\n\r\n',
  );
  assert.deepEqual(getHeaders(msg, 'v'), ['SIP/2.0/UDP a;branch=z9hG4bK1', 'SIP/2.0/UDP b;branch=z9hG4bK2']);
  assert.equal(topVia(msg)?.params.get('branch'), 'z9hG4bK1');
});

test('sip message - topVia takes the first of comma-joined Via values', () => {
  const msg = parseOk(
    'SIP/2.0 200 OK\r\nVia: SIP / 2.0 / UDP [::1]:5060 ;BRANCH=z9hG4bKx;rport, SIP/2.0/TCP b\r\n\r\n',
  );
  const via = topVia(msg)!;
  assert.equal(via.protocol, 'SIP/2.0/UDP');
  assert.equal(via.sentBy, '[::1]:5060');
  assert.equal(via.params.get('branch'), 'z9hG4bKx');
  assert.equal(via.params.get('rport'), '');
  assert.equal(topVia(parseOk('SIP/2.0 200 OK\r\nVia: garbage\r\n\r\n')), undefined);
  assert.equal(topVia(parseOk('SIP/2.0 200 OK\r\n\r\n')), undefined);
});

test('sip message - body is exactly Content-Length bytes, extra bytes are ignored', () => {
  const body = 'héllo'; // 6 bytes in UTF-8, 5 characters
  const msg = parseOk(`MESSAGE sip:a SIP/2.0\r\nContent-Length: 6\r\n\r\n${body}TRAILING`);
  assert.equal(new TextDecoder().decode(msg.body), body);
  const none = parseOk('MESSAGE sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\nignored');
  assert.equal(none.body.length, 0);
});

test('sip message - without Content-Length the body is the rest of the datagram', () => {
  assert.equal(new TextDecoder().decode(parseOk('MESSAGE sip:a SIP/2.0\r\nVia: x\r\n\r\nabc').body), 'abc');
});

test('sip message - a body shorter than Content-Length fails', () => {
  parseFail('MESSAGE sip:a SIP/2.0\r\nContent-Length: 10\r\n\r\nabc', /Content-Length says 10/);
});

test('sip message - bad or conflicting Content-Length fails', () => {
  parseFail('MESSAGE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n', /Content-Length/);
  parseFail('MESSAGE sip:a SIP/2.0\r\nContent-Length: 1x\r\n\r\nab', /Content-Length/);
  parseFail('MESSAGE sip:a SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n', /Content-Length/);
  parseFail('MESSAGE sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab', /conflicting/);
  parseOk('MESSAGE sip:a SIP/2.0\r\nContent-Length: 2\r\nl: 2\r\n\r\nab');
});

test('sip message - skips CRLFs before the start line, fails on a keepalive', () => {
  assert.equal(parseOk(`\r\n\r\n${OPTIONS_REQUEST}`).method, 'OPTIONS');
  parseFail('\r\n\r\n', /empty/);
  parseFail('', /empty/);
});

test('sip message - accepts bare LF line endings', () => {
  const msg = parseOk('SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP h;branch=z9hG4bKq\nContent-Length: 2\n\nok');
  assert.equal(msg.status, 180);
  assert.equal(new TextDecoder().decode(msg.body), 'ok');
});

test('sip message - reason phrase may be empty or UTF-8', () => {
  assert.equal(parseOk('SIP/2.0 200\r\n\r\n').reason, '');
  assert.equal(parseOk('SIP/2.0 200 \r\n\r\n').reason, '');
  assert.equal(parseOk('SIP/2.0 486 Occupé ici\r\n\r\n').reason, 'Occupé ici');
});

test('sip message - rejects bad start lines and header lines', () => {
  parseFail('SIP/7.0 200 OK\r\n\r\n', /start line/);
  parseFail('SIP/2.0 99 Low\r\n\r\n', /start line/);
  parseFail('SIP/2.0 700 High\r\n\r\n', /start line/);
  parseFail('OPTIONS  sip:a SIP/2.0\r\n\r\n', /start line/);
  parseFail('OPTIONS sip:a SIP/3.0\r\n\r\n', /start line/);
  parseFail('OPTIONS sip:a\r\n\r\n', /start line/);
  parseFail('OPT(IONS sip:a SIP/2.0\r\n\r\n', /start line/);
  parseFail('OPTIONS sip:a SIP/2.0\r\nno colon here\r\n\r\n', /header line/);
  parseFail('OPTIONS sip:a SIP/2.0\r\nBad Name: x\r\n\r\n', /header line/);
  parseFail('OPTIONS sip:a SIP/2.0\r\n folded first\r\n\r\n', /continuation/);
  parseFail('OPTIONS sip:a SIP/2.0\r\nVia: a\rb\r\n\r\n', /bare CR/);
  parseFail('OPTIONS sip:a SIP/2.0\r\nVia: a\0b\r\n\r\n', /NUL/);
  parseFail('OPTIONS sip:a SIP/2.0\r\nVia: a\r\n', /empty line/);
});

test('sip message - accepts lower-case version and whitespace before the colon', () => {
  const msg = parseOk('options sip:a sip/2.0\r\nVia   : SIP/2.0/UDP h\r\nSubject:\r\n\r\n');
  assert.equal(msg.method, 'options');
  assert.equal(getHeader(msg, 'via'), 'SIP/2.0/UDP h');
  assert.equal(getHeader(msg, 'subject'), '');
});

test('sip message - enforces size and header-count limits', () => {
  parseFail(`OPTIONS sip:a SIP/2.0\r\n${'X: y\r\n'.repeat(300)}\r\n`, /more than 256 headers/);
  const big = bytes(`MESSAGE sip:a SIP/2.0\r\n\r\n${'x'.repeat(70_000)}`);
  assert.equal(parseSipMessage(big).ok, false);
  assert.equal(parseSipMessage(big, { maxBytes: 100_000 }).ok, true);
});

test('sip message - parseCSeq', () => {
  assert.deepEqual(parseCSeq('1 OPTIONS'), { seq: 1, method: 'OPTIONS' });
  assert.deepEqual(parseCSeq(' 42\tINVITE '), { seq: 42, method: 'INVITE' });
  assert.equal(parseCSeq('OPTIONS'), undefined);
  assert.equal(parseCSeq('4294967296 OPTIONS'), undefined);
  assert.equal(parseCSeq(undefined), undefined);
});

const OPTIONS_PARAMS = {
  targetUri: 'sip:127.0.0.2:5060',
  localAddress: '127.0.0.1',
  localPort: 40000,
  branch: 'z9hG4bKfixture',
  callId: 'fixture@127.0.0.1',
  fromTag: 'ft1',
  cseq: 1,
  userAgent: 'switchyard',
};

test('sip message - buildOptionsRequest matches the stored request byte for byte', () => {
  const want = readFileSync(
    new URL('../../fixtures/sip/options-request-switchyard.txt', import.meta.url),
    'utf8',
  );
  assert.equal(buildOptionsRequest({ ...OPTIONS_PARAMS, targetUri: 'sip:127.79.1.2:5060' }), want);
});

test('sip message - buildOptionsRequest output parses back', () => {
  const msg = parseOk(buildOptionsRequest({ ...OPTIONS_PARAMS, localAddress: '::1', cseq: 7 }));
  assert.equal(msg.method, 'OPTIONS');
  assert.equal(msg.requestUri, 'sip:127.0.0.2:5060');
  const via = topVia(msg)!;
  assert.equal(via.sentBy, '[::1]:40000');
  assert.equal(via.params.get('branch'), 'z9hG4bKfixture');
  assert.equal(via.params.get('rport'), '');
  assert.equal(getHeader(msg, 'Max-Forwards'), '70');
  assert.equal(getHeader(msg, 'From'), '<sip:switchyard@[::1]>;tag=ft1');
  assert.equal(getHeader(msg, 'To'), '<sip:127.0.0.2:5060>');
  assert.equal(getHeader(msg, 'Call-ID'), 'fixture@127.0.0.1');
  assert.deepEqual(parseCSeq(getHeader(msg, 'CSeq')), { seq: 7, method: 'OPTIONS' });
  assert.equal(getHeader(msg, 'Contact'), '<sip:switchyard@[::1]:40000>');
  assert.equal(getHeader(msg, 'Content-Length'), '0');
});

test('sip message - buildOptionsRequest refuses anything that could inject', () => {
  const bad: Array<Partial<typeof OPTIONS_PARAMS>> = [
    { targetUri: 'sip:a\r\nX: y' },
    { targetUri: 'http://a' },
    { targetUri: 'sip:<a>' },
    { localAddress: 'a b' },
    { localAddress: 'host\r\n' },
    { localAddress: '' },
    { localPort: 0 },
    { localPort: 70000 },
    { branch: 'abc' },
    { branch: 'z9hG4bK' },
    { branch: 'z9hG4bKa;b' },
    { callId: 'a b' },
    { callId: 'a\nb' },
    { fromTag: 't;x' },
    { cseq: -1 },
    { cseq: 2 ** 31 },
    { cseq: 1.5 },
    { userAgent: 'a\r\nb' },
  ];
  for (const override of bad) {
    assert.throws(
      () => buildOptionsRequest({ ...OPTIONS_PARAMS, ...override }),
      (err: unknown) => SwitchyardError.is(err) && err.code === 'SY_ERR_INVALID_ARGUMENT',
      JSON.stringify(override),
    );
  }
});

test('sip message - never throws on arbitrary bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), (buf) => {
      assert.equal(typeof parseSipMessage(buf).ok, 'boolean');
    }),
    { numRuns: 3000 },
  );
});

test('sip message - never throws on mutated real messages', () => {
  const seeds = [
    bytes(OPTIONS_REQUEST),
    fixture('asterisk-20-200-invite-sdp.txt'),
    fixture('kamailio-200-keepalive.txt'),
    fixture('asterisk-20-invite-from-sipp.txt'),
  ];
  const mutation = fc.record({
    seed: fc.nat(seeds.length - 1),
    edits: fc.array(
      fc.record({
        at: fc.nat(),
        del: fc.nat(8),
        insert: fc.oneof(
          fc.uint8Array({ maxLength: 8 }),
          fc.constantFrom(
            ...['\r\n', '\n', ':', ' ', '\t', ';', ',', '\r\n\r\n', 'Content-Length: 9\r\n'].map(bytes),
          ),
        ),
      }),
      { maxLength: 6 },
    ),
  });
  fc.assert(
    fc.property(mutation, ({ seed, edits }) => {
      const buf = Array.from(seeds[seed]!);
      for (const e of edits) {
        const at = buf.length === 0 ? 0 : e.at % buf.length;
        buf.splice(at, e.del, ...e.insert);
      }
      const r = parseSipMessage(new Uint8Array(buf));
      if (r.ok) {
        topVia(r.value);
        parseCSeq(getHeader(r.value, 'CSeq'));
        assert.ok(r.value.body.length <= buf.length);
      }
    }),
    { numRuns: 3000 },
  );
});

test('sip message - build then parse round-trips any valid parameters', () => {
  const token = fc.stringMatching(/^[A-Za-z0-9.!%*_+`'~-]{1,20}$/);
  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
  fc.assert(
    fc.property(
      fc.record({
        targetUri: fc.tuple(ipv4, fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `sip:${h}:${p}`),
        localAddress: ipv4,
        localPort: fc.integer({ min: 1, max: 65535 }),
        branch: token.map((t) => `z9hG4bK${t}`),
        callId: fc.tuple(token, token).map(([a, b]) => `${a}@${b}`),
        fromTag: token,
        cseq: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      }),
      (p) => {
        const msg = parseOk(buildOptionsRequest(p));
        assert.equal(msg.requestUri, p.targetUri);
        assert.equal(topVia(msg)?.params.get('branch'), p.branch);
        assert.equal(getHeader(msg, 'Call-ID'), p.callId);
        assert.deepEqual(parseCSeq(getHeader(msg, 'CSeq')), { seq: p.cseq, method: 'OPTIONS' });
      },
    ),
    { numRuns: 500 },
  );
});
