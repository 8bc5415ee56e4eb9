import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { SwitchyardError } from '../../../src/core/errors.ts';
import {
  type AmiMessage,
  type AmiParseItem,
  type AmiParserOptions,
  createAmiParser,
  getField,
  getFields,
  messageKind,
  serializeAction,
} from '../../../src/proto/ami.ts';

/**
 * What Asterisk put on the wire in a transcript of test/fixtures/ami/ (README there): the
 * received lines without the capture's timestamps and notes, with Asterisk's CRLF restored.
 */
function wireFrom(name: string, eol = '\r\n'): string {
  const text = readFileSync(new URL(`../../fixtures/ami/${name}`, import.meta.url), 'utf8');
  const lines: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\d{2}:\d{2}:\d{2}\.\d{3} ?/, '');
    if (line.startsWith('>>> ') || /^\(.*\)$/.test(line) || raw === '') continue;
    lines.push(line);
  }
  return lines.map((l) => l + eol).join('');
}

const parseAll = (input: Uint8Array | string, opts?: AmiParserOptions): AmiParseItem[] =>
  createAmiParser(opts).feed(input);

const messages = (items: AmiParseItem[]): AmiMessage[] =>
  items.flatMap((i) => (i.type === 'message' ? [i.message] : []));

function expectItem<K extends AmiParseItem['type']>(
  item: AmiParseItem | undefined,
  type: K,
): Extract<AmiParseItem, { type: K }> {
  assert.equal(item?.type, type);
  return item as Extract<AmiParseItem, { type: K }>;
}

const isInvalidArgument = (err: unknown) => SwitchyardError.is(err) && err.code === 'SY_ERR_INVALID_ARGUMENT';

test('ami - parses a real Asterisk 20 login session', () => {
  const items = parseAll(wireFrom('idle-login.txt'));
  assert.deepEqual(items[0], {
    type: 'banner',
    banner: { text: 'Asterisk Call Manager/9.0.0', version: '9.0.0' },
  });
  const msgs = messages(items);
  assert.deepEqual(
    msgs.map((m) => getField(m, 'Event') ?? `Response ${getField(m, 'ActionID')}`),
    [
      'Response login',
      'FullyBooted',
      'SuccessfulAuth',
      'Response CoreStatus-1',
      'Response CoreShowChannels-2',
      'CoreShowChannelsComplete',
    ],
  );
  assert.deepEqual(msgs[0]!.fields, [
    ['Response', 'Success'],
    ['ActionID', 'login'],
    ['Message', 'Authentication accepted'],
  ]);
  assert.equal(getField(msgs[3]!, 'CoreCurrentCalls'), '0');
  assert.equal(getField(msgs[5]!, 'ListItems'), '0');
  assert.equal(items.filter((i) => i.type === 'dropped').length, 0);
});

test('ami - keeps values exactly: empty ones and leading spaces of their own', () => {
  const msgs = messages(parseAll(wireFrom('stop-now-monitor.txt')));
  const newchannel = msgs.find((m) => getField(m, 'Event') === 'Newchannel')!;
  assert.equal(getField(newchannel, 'AccountCode'), '');
  assert.equal(getField(newchannel, 'ConnectedLineNum'), '<unknown>');
  const loss = msgs.find((m) => getField(m, 'Variable') === 'RTPAUDIOQOSLOSS')!;
  assert.match(getField(loss, 'Value')!, /^ {2}minrxlost=000\.000000;/);
  const hangup = msgs.find((m) => getField(m, 'Event') === 'Hangup')!;
  assert.equal(getField(hangup, 'Cause'), '16');
  assert.equal(getField(hangup, 'Cause-txt'), 'Normal Clearing');
  assert.equal(getField(msgs.at(-1)!, 'Event'), 'Shutdown');
});

test('ami - LF-only line ends give the same messages as CRLF', () => {
  for (const name of ['idle-login.txt', 'stop-now-monitor.txt', 'graceful-new-session.txt']) {
    assert.deepEqual(parseAll(wireFrom(name, '\n')), parseAll(wireFrom(name)), name);
  }
});

test('ami - looks keys up in any case and keeps repeated keys in order', () => {
  const [msg] = messages(
    parseAll(
      'Response: Success\r\nActionID: c1\r\nMessage: Command output follows\r\nOutput: 1 active channel\r\n' +
        'output: 1 active call\r\nOutput: 8 calls processed\r\n\r\n',
      { expectBanner: false },
    ),
  );
  assert.equal(getField(msg!, 'actionid'), 'c1');
  assert.equal(getField(msg!, 'MESSAGE'), 'Command output follows');
  assert.deepEqual(getFields(msg!, 'Output'), ['1 active channel', '1 active call', '8 calls processed']);
  assert.equal(getField(msg!, 'Missing'), undefined);
  assert.deepEqual(getFields(msg!, 'Missing'), []);
});

test('ami - tells responses, events and actions by their first key', () => {
  const kinds = messages(
    parseAll('Response: Error\r\n\r\nevent: X\r\n\r\nAction: Ping\r\n\r\nFoo: bar\r\nEvent: Y\r\n\r\n', {
      expectBanner: false,
    }),
  ).map(messageKind);
  assert.deepEqual(kinds, ['response', 'event', 'action', 'unknown']);
});

test('ami - accepts a value without the space after the colon', () => {
  const [msg] = messages(parseAll('Event:Hangup\r\nCause:16\r\n\r\n', { expectBanner: false }));
  assert.deepEqual(msg!.fields, [
    ['Event', 'Hangup'],
    ['Cause', '16'],
  ]);
});

test('ami - drops a frame with a line that is not Key: Value and resynchronises at the empty line', () => {
  // Asterisk 13's Command answer: raw CLI text inside the frame.
  const legacy =
    'Response: Follows\r\nPrivilege: Command\r\nraw CLI output without a key\r\n--END COMMAND--\r\n\r\n';
  const parser = createAmiParser();
  const items = parser.feed(`Asterisk Call Manager/9.0.0\r\n${legacy}Event: FullyBooted\r\n\r\n`);
  assert.equal(items.length, 3);
  const dropped = expectItem(items[1], 'dropped');
  assert.equal(dropped.reason, 'malformed-line');
  assert.equal(dropped.bytes, legacy.length);
  assert.match(dropped.sample, /^Response: Follows\\r\\nPrivilege/);
  assert.equal(getField(expectItem(items[2], 'message').message, 'Event'), 'FullyBooted');
  assert.deepEqual(parser.stats(), { messages: 1, dropped: 1, droppedBytes: legacy.length });
});

test('ami - drops oversized frames whole, keeps memory bounded and parses the next frame', () => {
  const parser = createAmiParser({ expectBanner: false, maxFrameBytes: 1024 });
  const big = `Event: Big\r\nValue: ${'x'.repeat(5000)}\r\n\r\n`;
  const items: AmiParseItem[] = [];
  // One byte at a time: the held bytes must never exceed the limit.
  for (const ch of big) {
    items.push(...parser.feed(ch));
    assert.ok(parser.pendingBytes() <= 1024);
  }
  items.push(...parser.feed('Event: Small\r\n\r\n'));
  assert.deepEqual(
    items.map((i) => (i.type === 'dropped' ? `${i.reason} ${i.bytes}` : i.type)),
    [`oversized ${big.length}`, 'message'],
  );
  assert.equal(parser.stats().dropped, 1);
});

test('ami - drops frames with too many lines', () => {
  const lines = Array.from({ length: 6 }, (_, i) => `K${i}: v\r\n`).join('');
  const items = parseAll(`${lines}\r\nEvent: Ok\r\n\r\n`, { expectBanner: false, maxLines: 5 });
  assert.deepEqual(
    items.map((i) => (i.type === 'dropped' ? i.reason : i.type)),
    ['too-many-lines', 'message'],
  );
});

test('ami - reports a banner that is not Asterisk, and a first line too long to be one', () => {
  assert.deepEqual(parseAll('HTTP/1.1 400 Bad Request\r\n')[0], {
    type: 'banner',
    banner: { text: 'HTTP/1.1 400 Bad Request', version: undefined },
  });
  const items = parseAll(`${'A'.repeat(3000)}\r\nEvent: After\r\n\r\n`);
  assert.equal(expectItem(items[0], 'dropped').reason, 'banner-too-long');
  expectItem(items[1], 'message');
});

test('ami - ignores empty lines between frames', () => {
  const items = parseAll('Asterisk Call Manager/9.0.0\r\n\r\n\r\nEvent: A\r\n\r\n\r\n\nEvent: B\r\n\r\n');
  assert.deepEqual(
    items.map((i) => i.type),
    ['banner', 'message', 'message'],
  );
});

test('ami - keeps an unfinished line across feeds even when the caller reuses its buffer', () => {
  const parser = createAmiParser({ expectBanner: false });
  const buf = Buffer.from('Event: Hang');
  assert.deepEqual(parser.feed(buf), []);
  buf.write('XXXXXXXXXXX');
  const [item] = parser.feed('up\r\n\r\n');
  assert.equal(getField(expectItem(item, 'message').message, 'Event'), 'Hangup');
});

test('ami - refuses bad parser limits', () => {
  assert.throws(() => createAmiParser({ maxFrameBytes: 0 }), isInvalidArgument);
  assert.throws(() => createAmiParser({ maxLines: 1.5 }), isInvalidArgument);
});

test('ami - serialises an action with CRLF, ActionID second, repeated keys for arrays', () => {
  assert.equal(
    serializeAction('Originate', 'sy-7', {
      Channel: 'Local/100@default',
      Timeout: 30000,
      Variable: ['A=1', 'B=2'],
    }),
    'Action: Originate\r\nActionID: sy-7\r\nChannel: Local/100@default\r\nTimeout: 30000\r\n' +
      'Variable: A=1\r\nVariable: B=2\r\n\r\n',
  );
  assert.equal(serializeAction('Ping', 'p1'), 'Action: Ping\r\nActionID: p1\r\n\r\n');
  assert.equal(
    serializeAction('Command', 'c1', [['Command', 'core show channels count']]),
    'Action: Command\r\nActionID: c1\r\nCommand: core show channels count\r\n\r\n',
  );
});

test('ami - refuses anything that could inject a line or an action, without echoing the value', () => {
  const secret = 'hunter2\r\n\r\nAction: Command\r\nCommand: core stop now';
  assert.throws(
    () => serializeAction('Login', 'l1', { Username: 'u', Secret: secret }),
    (err: unknown) => isInvalidArgument(err) && !(err as Error).message.includes('hunter2'),
  );
  const bad: Array<() => string> = [
    () => serializeAction('Ping\r\nAction: Command', 'x'),
    () => serializeAction('', 'x'),
    () => serializeAction('Ping', 'x\n'),
    () => serializeAction('Ping', ''),
    () => serializeAction('Ping', 'x', { 'Bad\nKey': 'v' }),
    () => serializeAction('Ping', 'x', { 'Key:': 'v' }),
    () => serializeAction('Ping', 'x', { 'Two words': 'v' }),
    () => serializeAction('Ping', 'x', { Value: 'a\rb' }),
    () => serializeAction('Ping', 'x', { Value: 'a\0b' }),
    () => serializeAction('Ping', 'x', { ActionID: 'other' }),
    () => serializeAction('Ping', 'x', { action: 'Command' }),
    () => serializeAction('Ping', 'x', { Value: 'v'.repeat(2000) }),
    () => serializeAction('Ping', 'x', { Value: Number.NaN }),
    () => serializeAction('Ping', 'x', { Value: { toString: () => 'x' } } as never),
  ];
  for (const f of bad) assert.throws(f, isInvalidArgument, f.toString());
});

// --- properties --------------------------------------------------------------------------------

/** Cuts `bytes` at the given points (any order, any duplicates). */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const p of at) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

function feedChunks(
  chunks: Uint8Array[],
  opts: AmiParserOptions,
): { items: AmiParseItem[]; maxPending: number } {
  const parser = createAmiParser(opts);
  const items: AmiParseItem[] = [];
  let maxPending = 0;
  for (const c of chunks) {
    items.push(...parser.feed(c));
    maxPending = Math.max(maxPending, parser.pendingBytes());
  }
  return { items, maxPending };
}

/** Bytes that look like AMI often enough to reach every branch: keys, colons, CR, LF, noise. */
const amiishBytes = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('\r\n', '\n', '\r\n\r\n', ': ', ':', 'Event', ' ', '\r') },
      { weight: 4, arbitrary: fc.constantFrom('Event: Hangup\r\n', 'Uniqueid: 1.2\r\n', 'K:v\n', 'A: \r\n') },
      { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
      // Longer than the 96-byte limit used below: oversized frames and over-long banners.
      { weight: 1, arbitrary: fc.string({ minLength: 60, maxLength: 150 }) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }) },
    ),
    { maxLength: 120 },
  )
  .map((parts) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));

test('ami - any input gives the same items however it is cut into chunks, and never throws', () => {
  fc.assert(
    fc.property(
      fc.oneof(amiishBytes, fc.uint8Array({ maxLength: 600 })),
      fc.array(fc.nat(), { maxLength: 20 }),
      fc.boolean(),
      (bytes, points, expectBanner) => {
        const opts = { expectBanner, maxFrameBytes: 96, maxLines: 4 };
        const whole = feedChunks([bytes], opts);
        const chunked = feedChunks(cut(bytes, points), opts);
        assert.deepEqual(chunked.items, whole.items);
        assert.ok(chunked.maxPending <= 96);
        // Everything dropped is accounted for, byte for byte, within the input.
        const droppedBytes = whole.items.reduce((n, i) => n + (i.type === 'dropped' ? i.bytes : 0), 0);
        assert.ok(droppedBytes <= bytes.length);
      },
    ),
    { numRuns: 3000 },
  );
});

const key = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,15}$/);
/** Values as Asterisk writes them: any text without CR or LF (leading spaces included). */
const value = fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, ''));
const frame = fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 8 });

function wire(frames: Array<Array<[string, string]>>, eol: string): Buffer {
  return Buffer.from(frames.map((f) => f.map(([k, v]) => `${k}: ${v}${eol}`).join('') + eol).join(''));
}

test('ami - well-formed streams parse to exactly their messages, CRLF or LF, in any chunking', () => {
  fc.assert(
    fc.property(
      fc.array(frame, { maxLength: 12 }),
      fc.constantFrom('\r\n', '\n'),
      fc.array(fc.nat(), { maxLength: 30 }),
      (frames, eol, points) => {
        const bytes = Buffer.concat([Buffer.from(`Asterisk Call Manager/9.0.0${eol}`), wire(frames, eol)]);
        const { items } = feedChunks(cut(bytes, points), {});
        assert.deepEqual(items[0], {
          type: 'banner',
          banner: { text: 'Asterisk Call Manager/9.0.0', version: '9.0.0' },
        });
        // A value's own trailing CRs cannot be told from a line end; the generator has none.
        assert.deepEqual(
          messages(items).map((m) => m.fields),
          frames,
        );
      },
    ),
    { numRuns: 1000 },
  );
});

test('ami - oversized frames among good ones are dropped and counted, the good ones all arrive', () => {
  const maxFrameBytes = 256;
  const oversized = fc
    .tuple(key, fc.integer({ min: maxFrameBytes, max: 3 * maxFrameBytes }))
    .map(([k, n]): Array<[string, string]> => [[k, 'y'.repeat(n)]]);
  const good = frame.filter((f) => wire([f], '\r\n').length <= maxFrameBytes);
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          good.map((f) => ({ f, big: false })),
          oversized.map((f) => ({ f, big: true })),
        ),
        {
          maxLength: 10,
        },
      ),
      fc.array(fc.nat(), { maxLength: 30 }),
      (frames, points) => {
        const bytes = wire(
          frames.map((x) => x.f),
          '\r\n',
        );
        const parser = createAmiParser({ expectBanner: false, maxFrameBytes });
        const items: AmiParseItem[] = [];
        for (const c of cut(bytes, points)) {
          items.push(...parser.feed(c));
          assert.ok(parser.pendingBytes() <= maxFrameBytes);
        }
        assert.deepEqual(
          messages(items).map((m) => m.fields),
          frames.filter((x) => !x.big).map((x) => x.f),
        );
        const bigCount = frames.filter((x) => x.big).length;
        assert.equal(parser.stats().dropped, bigCount);
        assert.ok(items.every((i) => i.type !== 'dropped' || i.reason === 'oversized'));
      },
    ),
    { numRuns: 500 },
  );
});

test('ami - any action built from safe parts parses back to the same fields', () => {
  fc.assert(
    fc.property(
      fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,20}$/),
      fc.stringMatching(/^[!-9;-~]{1,20}$/),
      fc.array(
        fc.tuple(
          key.filter((k) => !['action', 'actionid'].includes(k.toLowerCase())),
          value,
        ),
        { maxLength: 8 },
      ),
      (name, id, fields) => {
        const [msg] = messages(parseAll(serializeAction(name, id, fields), { expectBanner: false }));
        assert.deepEqual(msg!.fields, [['Action', name], ['ActionID', id], ...fields]);
        assert.equal(messageKind(msg!), 'action');
      },
    ),
    { numRuns: 1000 },
  );
});
