import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { SwitchyardError } from '../../../src/core/errors.ts';
import { decodeHep, encodeHep, encodeHepChunks } from '../../../src/proto/hep.ts';
import { createHepStreamFramer, type HepStreamFramer } from '../../../src/proto/hep-stream.ts';

const enc = new TextEncoder();
const fixture = (name: string) =>
  new Uint8Array(readFileSync(new URL(`../../fixtures/hep/${name}`, import.meta.url)));

const packet = (callId: string, payloadBytes = 0) =>
  encodeHep({
    srcIp: '10.0.0.1',
    dstIp: '10.0.0.2',
    srcPort: 5060,
    dstPort: 5060,
    tsSec: 1_700_000_000,
    tsUsec: 0,
    protocol: 6,
    payload: `OPTIONS sip:x SIP/2.0\r\nCall-ID: ${callId}\r\n\r\n${'x'.repeat(payloadBytes)}`,
  });

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
};

/** Feeds `bytes` cut at `cuts` (offsets, any order), collecting frames until an error. */
function feedCut(framer: HepStreamFramer, bytes: Uint8Array, cuts: number[]) {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const frames: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    const r = framer.feed(bytes.subarray(prev, p));
    frames.push(...r.frames);
    if (r.error) return { frames, error: r.error };
    prev = p;
  }
  return { frames, error: undefined };
}

test('hep stream - many frames in one chunk come out as views, in order', () => {
  const a = packet('a');
  const b = fixture('kamailio-5.6.3-options-in-ipv4.bin');
  const c = packet('c', 1000);
  const chunk = concat(a, b, c);
  const framer = createHepStreamFramer();
  const { frames, error } = framer.feed(chunk);
  assert.equal(error, undefined);
  assert.deepEqual(frames, [a, b, c]);
  for (const f of frames) assert.equal(f.buffer, chunk.buffer);
  assert.equal(framer.pendingBytes(), 0);
  assert.ok(frames.every((f) => decodeHep(f).ok));
});

test('hep stream - a header split across chunks, one byte at a time', () => {
  const a = packet('split');
  const framer = createHepStreamFramer();
  for (let i = 0; i < a.length - 1; i++) {
    const r = framer.feed(a.subarray(i, i + 1));
    assert.deepEqual(r, { frames: [], error: undefined });
    assert.equal(framer.pendingBytes(), i + 1);
  }
  const last = framer.feed(a.subarray(a.length - 1));
  assert.deepEqual(last.frames, [a]);
  assert.notEqual(last.frames[0]!.buffer, a.buffer);
  assert.equal(framer.pendingBytes(), 0);
});

test('hep stream - a large frame across many chunks, with the next frame behind it', () => {
  const big = packet('big', 60_000);
  const next = packet('next');
  const all = concat(big, next);
  const framer = createHepStreamFramer();
  const frames: Uint8Array[] = [];
  for (let off = 0; off < all.length; off += 1460) {
    const r = framer.feed(all.subarray(off, off + 1460));
    assert.equal(r.error, undefined);
    frames.push(...r.frames);
    assert.ok(framer.pendingBytes() < big.length);
  }
  assert.deepEqual(frames, [big, next]);
});

test('hep stream - an empty chunk changes nothing; a 6-byte frame is a frame', () => {
  const framer = createHepStreamFramer();
  assert.deepEqual(framer.feed(new Uint8Array(0)), { frames: [], error: undefined });
  const headerOnly = encodeHepChunks([]);
  assert.equal(headerOnly.length, 6);
  assert.deepEqual(framer.feed(headerOnly).frames, [headerOnly]);
  framer.feed(headerOnly.subarray(0, 3));
  assert.deepEqual(framer.feed(headerOnly.subarray(3)).frames, [headerOnly]);
});

test('hep stream - garbage is reported at the first wrong byte and stops the framer', () => {
  const framer = createHepStreamFramer();
  const r = framer.feed(enc.encode('G'));
  assert.deepEqual(r.frames, []);
  assert.equal(r.error?.reason, 'bad-magic');
  assert.match(r.error?.detail ?? '', /47$/);
  assert.equal(framer.pendingBytes(), 0);
  // Sticky: a valid frame afterwards is not accepted.
  assert.deepEqual(framer.feed(packet('late')), { frames: [], error: r.error });
  assert.equal(framer.error(), r.error);
});

test('hep stream - frames before garbage are returned with the error', () => {
  const a = packet('a');
  const framer = createHepStreamFramer();
  const r = framer.feed(concat(a, enc.encode('INVITE sip:x SIP/2.0\r\n')));
  assert.deepEqual(r.frames, [a]);
  assert.equal(r.error?.reason, 'bad-magic');
  assert.match(r.error?.detail ?? '', /494e56495445/);
});

test('hep stream - garbage inside a split header is caught before the header is complete', () => {
  const framer = createHepStreamFramer();
  assert.equal(framer.feed(enc.encode('HE')).error, undefined);
  assert.equal(framer.pendingBytes(), 2);
  assert.equal(framer.feed(enc.encode('P2')).error?.reason, 'bad-magic');
  assert.equal(framer.pendingBytes(), 0);
});

test('hep stream - HEPv2 over TCP is garbage', () => {
  const v2 = Uint8Array.from([2, 16, 2, 6, 0x13, 0xc4, 0x13, 0xc4, 127, 0, 0, 1, 127, 0, 0, 2]);
  assert.equal(createHepStreamFramer().feed(v2).error?.reason, 'bad-magic');
});

test('hep stream - bad-length and too-large', () => {
  assert.equal(createHepStreamFramer().feed(enc.encode('HEP3\x00\x05')).error?.reason, 'bad-length');
  const split = createHepStreamFramer();
  split.feed(enc.encode('HEP3\x00'));
  assert.equal(split.feed(Uint8Array.of(0)).error?.reason, 'bad-length');

  const small = createHepStreamFramer({ maxFrameBytes: 100 });
  const r = small.feed(packet('too big for 100'));
  assert.equal(r.error?.reason, 'too-large');
  assert.match(r.error?.detail ?? '', /> 100/);
  const exact = packet('x');
  assert.deepEqual(createHepStreamFramer({ maxFrameBytes: exact.length }).feed(exact).frames, [exact]);
});

test('hep stream - pendingBytes shows a stalled half frame', () => {
  const framer = createHepStreamFramer();
  // A header claiming 65535 bytes, then 10 bytes of body: only what arrived is held.
  framer.feed(Uint8Array.from([0x48, 0x45, 0x50, 0x33, 0xff, 0xff, 0, 0, 0, 1]));
  framer.feed(new Uint8Array(10));
  assert.equal(framer.pendingBytes(), 20);
});

test('hep stream - maxFrameBytes out of range is a programmer error', () => {
  for (const maxFrameBytes of [0, 5, 65_536, 1.5, Number.NaN]) {
    assert.throws(
      () => createHepStreamFramer({ maxFrameBytes }),
      (err: unknown) => SwitchyardError.is(err) && err.code === 'SY_ERR_INVALID_ARGUMENT',
    );
  }
});

test('hep stream - property: the same frames whatever the chunking', () => {
  const frameArb = fc
    .tuple(fc.string({ maxLength: 20 }), fc.integer({ min: 0, max: 3000 }))
    .map(([id, n]) => packet(id, n));
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.boolean(),
      (frames, cuts, trailingHalf) => {
        const extra = trailingHalf ? packet('half').subarray(0, 9) : new Uint8Array(0);
        const stream = concat(...frames, extra);
        const framer = createHepStreamFramer();
        const got = feedCut(framer, stream, cuts);
        assert.equal(got.error, undefined);
        assert.deepEqual(got.frames, frames);
        assert.equal(framer.pendingBytes(), extra.length);
      },
    ),
    { numRuns: 300 },
  );
});

test('hep stream - property: arbitrary bytes never throw, and pending stays under maxFrameBytes', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 400 }),
        fc.uint8Array({ maxLength: 400 }).map((tail) => concat(enc.encode('HEP3'), tail)),
        fc
          .array(fc.uint8Array({ maxLength: 30 }), { maxLength: 10 })
          .map((parts) =>
            concat(...parts.flatMap((p) => [enc.encode('HEP3'), Uint8Array.of(0, 6 + p.length), p])),
          ),
      ),
      fc.array(fc.nat(), { maxLength: 20 }),
      fc.integer({ min: 6, max: 200 }),
      (bytes, cuts, maxFrameBytes) => {
        const framer = createHepStreamFramer({ maxFrameBytes });
        const got = feedCut(framer, bytes, cuts);
        assert.ok(framer.pendingBytes() < maxFrameBytes);
        for (const f of got.frames) {
          assert.ok(f.length >= 6 && f.length <= maxFrameBytes);
          assert.deepEqual([...f.subarray(0, 4)], [0x48, 0x45, 0x50, 0x33]);
          assert.equal((f[4]! << 8) | f[5]!, f.length);
        }
        if (got.error) assert.ok(['bad-magic', 'bad-length', 'too-large'].includes(got.error.reason));
      },
    ),
    { numRuns: 1000 },
  );
});
