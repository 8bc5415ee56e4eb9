import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { callText, ladderSvg, messageLabel, safeMessageText } from '../../../src/capture/ladder.ts';
import type { StoredMessage } from '../../../src/capture/model.ts';

function msg(
  id: number,
  tsUs: number,
  from: string,
  to: string,
  first: string,
  extra: Partial<StoredMessage> = {},
): StoredMessage {
  const [srcIp, srcPort] = from.split(':');
  const [dstIp, dstPort] = to.split(':');
  const status = /^SIP\/2\.0 (\d{3})/.exec(first)?.[1];
  return {
    id,
    tsUs,
    srcIp: srcIp ?? '',
    srcPort: Number(srcPort),
    dstIp: dstIp ?? '',
    dstPort: Number(dstPort),
    transport: 'udp',
    captureId: 1,
    callId: 'c1',
    cseq: '1 INVITE',
    fromUser: 'a',
    toUser: 'b',
    ...(status === undefined ? { method: first.split(' ')[0] ?? '' } : { status: Number(status) }),
    raw: Buffer.from(`${first}\r\nCall-ID: c1\r\n\r\n`),
    ...extra,
  };
}

const call = [
  msg(1, 1_000_000, '10.0.0.1:5060', '10.0.0.2:5060', 'INVITE sip:b@x SIP/2.0'),
  msg(2, 1_010_000, '10.0.0.2:5060', '10.0.0.3:5080', 'INVITE sip:b@x SIP/2.0'),
  msg(3, 1_200_000, '10.0.0.3:5080', '10.0.0.2:5060', 'SIP/2.0 200 OK'),
  msg(4, 1_210_000, '10.0.0.2:5060', '10.0.0.1:5060', 'SIP/2.0 200 OK'),
];

test('ladder - one column per endpoint in order of appearance, one arrow per message, event in time order', () => {
  const svg = ladderSvg(call, [{ tsUs: 1_100_000, kind: 'node.state', subject: 'pbx2', detail: {} }]);
  const headers = [...svg.matchAll(/font-weight="bold">([^<]+)</g)].map((m) => m[1]);
  assert.deepEqual(headers, ['10.0.0.1:5060', '10.0.0.2:5060', '10.0.0.3:5080']);
  assert.equal((svg.match(/class="message"/g) ?? []).length, 4);
  const order = [...svg.matchAll(/class="(message|event)"/g)].map((m) => m[1]);
  assert.deepEqual(order, ['message', 'message', 'event', 'message', 'message']);
  assert.match(svg, /node\.state pbx2/);
  assert.match(svg, /\+0\.210 s/);
});

test('ladder - events outside the call are left out', () => {
  const svg = ladderSvg(call, [{ tsUs: 5_000_000, kind: 'node.gone', subject: 'x', detail: {} }]);
  assert.doesNotMatch(svg, /node\.gone/);
});

test('ladder - labels: method, status with reason, and the CSeq method when it is not the INVITE', () => {
  assert.equal(messageLabel(call[0] as StoredMessage), 'INVITE');
  assert.equal(messageLabel(call[2] as StoredMessage), '200 OK');
  const byeOk = msg(5, 2_000_000, '10.0.0.1:5060', '10.0.0.2:5060', 'SIP/2.0 200 OK', { cseq: '2 BYE' });
  assert.equal(messageLabel(byeOk), '200 OK (BYE)');
});

test('ladder - captured text cannot inject markup into the SVG (fuzz)', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), fc.string({ maxLength: 30 }), (reason, subject) => {
      const m = msg(1, 1, '10.0.0.1:1', '10.0.0.2:2', `SIP/2.0 499 ${reason.replace(/[\r\n]/g, '')}`);
      const svg = ladderSvg([m, { ...m, id: 2, tsUs: 3 }], [{ tsUs: 2, kind: 'k', subject, detail: {} }]);
      // Every '<' in the output starts one of our own elements.
      for (const tag of svg.matchAll(/<(\/?)([A-Za-z]*)/g)) {
        assert.ok(
          ['svg', 'defs', 'marker', 'path', 'rect', 'text', 'line', 'g'].includes(tag[2] ?? ''),
          tag[0],
        );
      }
    }),
    { numRuns: 500 },
  );
});

test('text export - messages and events in time order; terminal control characters neutralised', () => {
  const evil = msg(9, 1_300_000, '10.0.0.1:5060', '10.0.0.2:5060', 'MESSAGE sip:b@x SIP/2.0', {
    raw: Buffer.from('MESSAGE sip:b@x SIP/2.0\r\nSubject: \u001b[2J\u001b]0;pwned\u0007\r\n\r\n'),
  });
  const text = callText(
    [...call, evil],
    [{ tsUs: 1_100_000, kind: 'intent.set', subject: 'pbx2', detail: { drain: true } }],
  );
  assert.ok(text.indexOf('=== ') > text.indexOf('10.0.0.3:5080 capture'), 'event after the second INVITE');
  assert.ok(!text.includes('\u001b'), 'no ESC reaches the terminal');
  assert.match(text, /\\x1b\[2J/);
  assert.equal(safeMessageText('a\r\nb\tc\u0000'), 'a\nb\tc\\x00');
});

test('ladder - control characters in a reason phrase or an event never reach the SVG or the terminal', () => {
  const m = msg(1, 1, '10.0.0.1:1', '10.0.0.2:2', 'SIP/2.0 499 Bad\u0007\u009b2J');
  const svg = ladderSvg([m], [{ tsUs: 1, kind: 'k\u001b]0;x', subject: 's', detail: { note: '\u009b31m' } }]);
  // Lines end with LF; nothing else below U+0020 (nor C1) may appear.
  assert.doesNotMatch(svg, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  const text = callText([m], [{ tsUs: 1, kind: 'k\u001b]0;x', subject: 's', detail: { note: '\u009b31m' } }]);
  assert.doesNotMatch(text, /[\u001b\u009b\u0007]/);
});
