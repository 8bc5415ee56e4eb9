import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  formatHeaderParams,
  formatNameAddr,
  formatUri,
  type NameAddr,
  parseHeaderParams,
  parseNameAddr,
  parseSipUri,
  parseTelUri,
  parseUri,
  quoteString,
  type SipUri,
  type TelUri,
  type Uri,
  unescapeUriPart,
  uriUser,
} from '../../../src/proto/sip-uri.ts';

function uriOk(text: string): Uri {
  const r = parseUri(text);
  assert.ok(r.ok, r.ok ? '' : `${text}: ${r.reason}`);
  return r.value;
}

function sipOk(text: string): SipUri {
  const r = parseSipUri(text);
  assert.ok(r.ok, r.ok ? '' : `${text}: ${r.reason}`);
  return r.value;
}

function naOk(text: string): NameAddr {
  const r = parseNameAddr(text);
  assert.ok(r.ok, r.ok ? '' : `${text}: ${r.reason}`);
  return r.value;
}

function uriFail(text: string, reason?: RegExp): void {
  const r = parseUri(text);
  assert.equal(r.ok, false, `should fail: ${JSON.stringify(text)}`);
  if (reason) assert.match(r.ok ? '' : r.reason, reason);
}

function naFail(text: string, reason?: RegExp): void {
  const r = parseNameAddr(text);
  assert.equal(r.ok, false, `should fail: ${JSON.stringify(text)}`);
  if (reason) assert.match(r.ok ? '' : r.reason, reason);
}

test('sip uri - parses user, password, host, port, parameters and headers', () => {
  const u = sipOk(
    'sips:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=project%20x&priority=urgent',
  );
  assert.equal(u.scheme, 'sips');
  assert.equal(u.user, 'alice');
  assert.equal(u.userRaw, 'alice');
  assert.equal(u.password, 'secret');
  assert.equal(u.host, 'atlanta.example.com');
  assert.equal(u.hostType, 'hostname');
  assert.equal(u.port, 5061);
  assert.deepEqual(
    u.params,
    new Map([
      ['transport', 'tcp'],
      ['lr', ''],
    ]),
  );
  assert.deepEqual(u.headers, [
    ['subject', 'project x'],
    ['priority', 'urgent'],
  ]);
});

test('sip uri - host forms: IPv4, IPv6 reference, hostname; scheme case-insensitive', () => {
  const v4 = sipOk('SIP:192.0.2.4:5060');
  assert.deepEqual(
    [v4.scheme, v4.host, v4.hostType, v4.port, v4.user],
    ['sip', '192.0.2.4', 'ipv4', 5060, undefined],
  );
  const v6 = sipOk('sip:bob@[2001:db8::9:1]:5070;transport=udp');
  assert.deepEqual([v6.host, v6.hostType, v6.port], ['2001:db8::9:1', 'ipv6', 5070]);
  assert.equal(sipOk('sip:[::ffff:192.0.2.1]').host, '::ffff:192.0.2.1');
  assert.equal(sipOk('sip:example.com.').host, 'example.com.');
  assert.equal(sipOk('sip:_sip._udp.example.com').hostType, 'hostname');
  assert.equal(formatUri(v6), 'sip:bob@[2001:db8::9:1]:5070;transport=udp');
});

test('sip uri - user part: escapes decoded once, raw kept, ; and ? allowed (RFC 4475 §3.1.1.3, §3.1.1.9)', () => {
  const semi = sipOk('sip:user;par=u%40example.net@example.com');
  assert.equal(semi.user, 'user;par=u@example.net');
  assert.equal(semi.userRaw, 'user;par=u%40example.net');
  assert.equal(semi.host, 'example.com');
  assert.equal(semi.params.size, 0);
  const esc = sipOk('sip:sips%3Auser%40example.com@example.net');
  assert.equal(esc.user, 'sips:user@example.com');
  assert.equal(sipOk('sip:null-%00-null@example.com').user, 'null-\0-null');
  assert.equal(sipOk('sip:%C3%A9t%C3%A9@h').user, 'été');
  const weird = sipOk(
    "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
  );
  assert.equal(weird.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
  assert.equal(weird.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
  assert.equal(weird.host, 'example.com');
});

test('sip uri - parameters are unescaped once, not recursively (RFC 4475 §3.1.1.3)', () => {
  const u = sipOk('sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31');
  assert.equal(u.user, 'caller');
  assert.deepEqual(
    u.params,
    new Map([
      ['lr', ''],
      ['name', 'value%41'],
    ]),
  );
});

test('sip uri - rejects malformed URIs', () => {
  uriFail('sip:', /empty/);
  uriFail('sip:@example.com', /user/);
  uriFail('sip:user@', /host/);
  uriFail('sip:user@host:', /port/);
  uriFail('sip:host:70000', /port/);
  uriFail('sip:host:5060x', /port/);
  uriFail('sip:999.1.1.1', /IPv4/);
  uriFail('sip:[2001:db8::zz]', /IPv6/);
  uriFail('sip:[::1', /IPv6/);
  uriFail('sip:user@example.com; lr', /whitespace/);
  uriFail('sip:a b@example.com', /whitespace/);
  uriFail('sip:us%zzer@example.com', /user/);
  uriFail('sip:host;;lr', /empty URI parameter/);
  uriFail('sip:host;a=b=c', /parameter/);
  uriFail('sip:host?', /header/);
  uriFail('sip:-bad-.example.com', /host/);
  uriFail('<sip:user@example.com>', /scheme/);
  uriFail('example.com', /scheme/);
  assert.equal(parseSipUri('tel:+1').ok, false);
  assert.equal(parseTelUri('sip:a@b').ok, false);
});

test('sip uri - tel URIs (RFC 3966)', () => {
  const global = uriOk('tel:+1-201-555-0123;ext=42') as TelUri;
  assert.equal(global.kind, 'tel');
  assert.equal(global.number, '+1-201-555-0123');
  assert.deepEqual(global.params, new Map([['ext', '42']]));
  const local = uriOk('TEL:7042;phone-context=example.com') as TelUri;
  assert.equal(local.number, '7042');
  assert.equal(local.params.get('phone-context'), 'example.com');
  assert.equal(uriUser(local), '7042');
  uriFail('tel:', /number/);
  uriFail('tel:+', /number/);
  uriFail('tel:abc xyz', /whitespace/);
  uriFail('tel:+1;=2', /tel parameter/);
  uriFail('tel:+1;ext=', /tel parameter/);
  assert.equal(formatUri(global), 'tel:+1-201-555-0123;ext=42');
});

test('sip uri - other schemes are kept opaque (RFC 4475 §3.3.2-3.3.4)', () => {
  assert.deepEqual(uriOk('soap.beep://192.0.2.103:3002'), {
    kind: 'absolute',
    scheme: 'soap.beep',
    opaque: '//192.0.2.103:3002',
  });
  assert.deepEqual(uriOk('isbn:2983792873'), { kind: 'absolute', scheme: 'isbn', opaque: '2983792873' });
  assert.equal(uriOk('nobodyKnowsThisScheme:totallyopaquecontent').kind, 'absolute');
  assert.equal(uriUser(uriOk('http://www.example.com')), undefined);
  uriFail('http:', /http/);
  uriFail('http:a b', /http/);
});

test('sip uri - formatUri escapes what must be escaped and keeps a consistent raw user', () => {
  const u = sipOk('sip:%75se%72@example.com');
  assert.equal(formatUri(u), 'sip:%75se%72@example.com');
  assert.equal(formatUri({ ...u, user: 'other' }), 'sip:other@example.com');
  const built: SipUri = {
    kind: 'sip',
    scheme: 'sip',
    user: 'a b@c',
    password: 'p:w',
    host: 'h',
    hostType: 'hostname',
    params: new Map([['x;y', 'a=b']]),
    headers: [['h&', 'v=1']],
  };
  assert.equal(formatUri(built), 'sip:a%20b%40c:p%3Aw@h;x%3By=a%3Db?h%26=v%3D1');
  assert.equal(unescapeUriPart('%zz'), undefined);
  assert.equal(unescapeUriPart('plain'), 'plain');
});

test('name-addr - quoted display names with escapes, tokens, no LWS before < (RFC 4475 §3.1.1.1, .2, .6)', () => {
  const a = naOk('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8');
  assert.equal(a.displayName, 'J Rosenberg \\"');
  assert.equal(a.angle, true);
  assert.equal((a.uri as SipUri).user, 'jdrosen');
  assert.deepEqual(a.params, new Map([['tag', '98asjd8']]));
  const tokens = naOk("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=_token~1'+`*%!-.");
  assert.equal(tokens.displayName, "token1~` token2'+_ token3*%!.-");
  assert.equal(tokens.params.get('tag'), "_token~1'+`*%!-.");
  assert.equal(naOk('caller<sip:caller@example.com>;tag=323').displayName, 'caller');
  assert.equal(
    naOk('"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F" <sip:x@example.com>').displayName,
    'BEL:\x07 NUL:\x00 DEL:\x7F',
  );
  assert.equal(naOk('"" <sip:x@h>').displayName, '');
  assert.equal(naOk('<sip:x@h>').displayName, undefined);
});

test('name-addr - a bare addr-spec gives every ;param to the header (RFC 3261 §20.10)', () => {
  const bare = naOk('sip:+19725552222@gw1.example.net;unknownparam');
  assert.equal(bare.angle, false);
  assert.equal((bare.uri as SipUri).params.size, 0);
  assert.deepEqual(bare.params, new Map([['unknownparam', '']]));
  const angled = naOk('<sip:+19725552222@gw1.example.net;unknownparam>');
  assert.deepEqual((angled.uri as SipUri).params, new Map([['unknownparam', '']]));
  assert.equal(angled.params.size, 0);
  const to = naOk('sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n');
  assert.equal((to.uri as SipUri).host, 'chair-dnrc.example.com');
  assert.equal(to.params.get('tag'), '1918181833n');
  const phone = naOk('sip:+16505552222@ss1.example.net;user=phone');
  assert.equal(phone.params.get('user'), 'phone');
});

test('name-addr - header parameter values: token, quoted string, IPv6; flags', () => {
  const na = naOk(
    '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33;received=[2001:db8::1];x="a;b,c"',
  );
  assert.equal(na.displayName, 'Quoted string ""');
  assert.deepEqual(
    na.params,
    new Map([
      ['newparam', 'newvalue'],
      ['secondparam', ''],
      ['q', '0.33'],
      ['received', '[2001:db8::1]'],
      ['x', 'a;b,c'],
    ]),
  );
  const utf8 = naOk('<sip:m@example.com>;fromParam\'\'~+*_!.-%="работающий";tag=1');
  assert.equal(utf8.params.get("fromparam''~+*_!.-%"), 'работающий');
  assert.deepEqual(parseHeaderParams(' ;A=1;a=2'), { ok: true, value: new Map([['a', '1']]) });
});

test('name-addr - rejects what RFC 4475 calls malformed', () => {
  naFail('"Mr. J. User <sip:j.user@example.com>', /unterminated quoted/);
  naFail('Bell, Alexander <sip:a.g.bell@example.com>;tag=43', /neither quoted nor tokens/);
  naFail('"Watson, Thomas" < sip:t.watson@example.org >', /whitespace inside <URI>/);
  naFail('sip:user@example.com?Route=%3Csip:sip.example.com%3E', /enclosed in <>/);
  naFail('"Joe" <sip:joe@example.org>;;;;', /empty header parameter/);
  naFail('<sip:joe@example.org', /unterminated/);
  naFail('"Joe" sip:joe@example.org', /expected <URI>/);
  naFail('<sip:a@b> junk', /unexpected/);
  naFail('<sip:a@b>;tag=', /empty value/);
  naFail('<sip:a@b>;x="unterminated', /unterminated/);
  naFail('<sip:a@b>;x=[zz]', /IPv6/);
  naFail('', /empty/);
  naFail('   ', /empty/);
  naFail('"bad \\\r\n pair" <sip:a@b>', /quoted-pair/);
  naFail('<>', /scheme/);
});

test('name-addr - formatNameAddr quotes display names and uses <> when needed', () => {
  const na: NameAddr = {
    displayName: 'A "B" \\ C\r\nD\0',
    uri: sipOk('sip:a@b;lr'),
    angle: false,
    params: new Map([
      ['tag', 'x1'],
      ['q', ''],
      ['v', 'two words'],
      ['h', '[::1]'],
    ]),
  };
  const text = formatNameAddr(na);
  assert.equal(text, '"A \\"B\\" \\\\ C  D\\\0" <sip:a@b;lr>;tag=x1;q;v="two words";h=[::1]');
  assert.equal(parseNameAddr(text).ok, true);
  assert.equal(formatNameAddr(naOk('sip:a@b')), 'sip:a@b');
  assert.equal(formatNameAddr(naOk('tel:+1;ext=2')), 'tel:+1;ext=2');
  assert.equal(
    formatNameAddr({ uri: uriOk('tel:+1;ext=2'), angle: false, params: new Map() }),
    '<tel:+1;ext=2>',
  );
  assert.equal(quoteString('a\tb'), '"a\tb"');
  assert.equal(formatHeaderParams(new Map()), '');
});

// ---- properties ------------------------------------------------------------------------

const wellFormed = (s: string) => s.isWellFormed();
const anyText = (min = 0) => fc.string({ unit: 'binary', minLength: min, maxLength: 12 }).filter(wellFormed);
const hostArb = fc.oneof(
  fc.domain().map((host) => ({ host, hostType: 'hostname' as const })),
  fc.ipV4().map((host) => ({ host, hostType: 'ipv4' as const })),
  fc.ipV6().map((host) => ({ host, hostType: 'ipv6' as const })),
);
const lowerNames = fc
  .uniqueArray(fc.tuple(anyText(1), anyText()), { maxLength: 4, selector: ([n]) => n.toLowerCase() })
  .map((pairs) => new Map(pairs.map(([n, v]) => [n.toLowerCase(), v])));

const sipUriArb: fc.Arbitrary<SipUri> = fc
  .record({
    scheme: fc.constantFrom('sip' as const, 'sips' as const),
    user: fc.option(anyText(1), { nil: undefined }),
    password: fc.option(anyText(), { nil: undefined }),
    host: hostArb,
    port: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
    params: lowerNames,
    headers: fc.array(fc.tuple(anyText(1), anyText()), { maxLength: 3 }),
  })
  .map((r) => {
    const uri: SipUri = { kind: 'sip', scheme: r.scheme, ...r.host, params: r.params, headers: r.headers };
    if (r.port !== undefined) uri.port = r.port;
    if (r.user !== undefined) {
      uri.user = r.user;
      if (r.password !== undefined) uri.password = r.password;
    }
    return uri;
  });

const telUriArb: fc.Arbitrary<TelUri> = fc
  .record({
    number: fc.oneof(
      fc.stringMatching(/^\+[0-9]{1,3}(-?[0-9]{1,4}){0,4}$/),
      fc.stringMatching(/^[0-9A-F*#]{1,8}$/),
    ),
    params: fc
      .uniqueArray(fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,8}$/), anyText()), {
        maxLength: 3,
        selector: ([n]) => n,
      })
      .map((p) => new Map(p)),
  })
  .map((r) => ({ kind: 'tel', scheme: 'tel', number: r.number, params: r.params }));

const absoluteArb: fc.Arbitrary<Uri> = fc
  .record({
    scheme: fc.stringMatching(/^[a-z][a-z0-9+.-]{0,8}$/).filter((s) => !['sip', 'sips', 'tel'].includes(s)),
    opaque: fc.stringMatching(/^[!#-;=?-~]{1,20}$/),
  })
  .map((r) => ({ kind: 'absolute', ...r }));

const uriArb = fc.oneof(sipUriArb, telUriArb, absoluteArb);

function withoutRaw(uri: Uri): Uri {
  if (uri.kind !== 'sip') return uri;
  const { userRaw: _raw, ...rest } = uri;
  return rest;
}

test('sip uri - parse(format(uri)) round-trips any generated URI', () => {
  fc.assert(
    fc.property(uriArb, (uri) => {
      const text = formatUri(uri);
      const back = parseUri(text);
      assert.ok(back.ok, `${text}: ${back.ok ? '' : back.reason}`);
      assert.deepEqual(withoutRaw(back.value), uri);
      assert.equal(formatUri(back.value), text);
    }),
    { numRuns: 2000 },
  );
});

const tokenArb = fc.stringMatching(/^[a-z0-9.!%*_+`'~-]{1,10}$/);
const nameAddrArb: fc.Arbitrary<NameAddr> = fc
  .record({
    displayName: fc.option(
      anyText().filter((s) => !/[\r\n]/.test(s)),
      { nil: undefined },
    ),
    uri: uriArb,
    angle: fc.boolean(),
    params: fc
      .uniqueArray(
        fc.tuple(
          tokenArb,
          fc.oneof(
            fc.constant(''),
            tokenArb,
            fc.ipV6().map((a) => `[${a}]`),
            anyText(1).filter((s) => !/[\r\n]/.test(s)),
          ),
        ),
        { maxLength: 4, selector: ([n]) => n },
      )
      .map((p) => new Map(p)),
  })
  .map((r) => {
    const na: NameAddr = { uri: r.uri, angle: r.angle, params: r.params };
    if (r.displayName !== undefined) na.displayName = r.displayName;
    if (na.displayName !== undefined || /[;?,]/.test(formatUri(na.uri))) na.angle = true;
    return na;
  });

test('name-addr - parse(format(x)) round-trips any generated name-addr', () => {
  fc.assert(
    fc.property(nameAddrArb, (na) => {
      const text = formatNameAddr(na);
      const back = parseNameAddr(text);
      assert.ok(back.ok, `${JSON.stringify(text)}: ${back.ok ? '' : back.reason}`);
      assert.deepEqual({ ...back.value, uri: withoutRaw(back.value.uri) }, na);
      assert.equal(formatNameAddr(back.value), text);
    }),
    { numRuns: 2000 },
  );
});

const sipish = fc.string({
  unit: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...'sip:tel@[]<>";,?=&%\\/ \t\r\n.-+*_~!'.split('')) },
    { weight: 3, arbitrary: fc.constantFrom('a', 'Z', '0', '9', 'f', '%4', '::', 'sip:', 'sips:', 'tel:+1') },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 1 }) },
  ),
  maxLength: 60,
});

test('sip uri - no parser throws on arbitrary strings', () => {
  fc.assert(
    fc.property(fc.oneof(sipish, fc.string({ unit: 'binary', maxLength: 80 })), (s) => {
      for (const r of [
        parseUri(s),
        parseSipUri(s),
        parseTelUri(s),
        parseUri(`sip:${s}`),
        parseNameAddr(s),
        parseNameAddr(`<sip:${s}>`),
        parseHeaderParams(s),
      ]) {
        assert.equal(typeof r.ok, 'boolean');
        if (!r.ok) assert.equal(typeof r.reason, 'string');
      }
      unescapeUriPart(s);
      const na = parseNameAddr(s);
      if (na.ok) assert.equal(parseNameAddr(formatNameAddr(na.value)).ok, true);
    }),
    { numRuns: 4000 },
  );
  // Non-strings from untyped callers are a fail, not a crash.
  for (const bad of [undefined, null, 42, {}] as unknown as string[]) {
    assert.equal(parseUri(bad).ok, false);
    assert.equal(parseSipUri(bad).ok, false);
    assert.equal(parseTelUri(bad).ok, false);
    assert.equal(parseNameAddr(bad).ok, false);
  }
});
