import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type CallState,
  foldBatch,
  foldCallState,
  formatEndpoint,
  mergeCallStates,
  parseCseq,
  summarizeCall,
  summarizeMessages,
} from '../../../src/capture/call-summary.ts';
import type { CallSummary, CapturedMessage } from '../../../src/capture/model.ts';

const T0 = 1_700_000_000_000_000;
const enc = new TextEncoder();

type Spec = Partial<CapturedMessage> & { at: number };

/** A message of call `c1` from the caller (10.0.0.1:5060) to the proxy (10.0.0.2:5060). */
function msg(spec: Spec): CapturedMessage {
  const { at, ...rest } = spec;
  const m: CapturedMessage = {
    tsUs: T0 + at,
    srcIp: '10.0.0.1',
    srcPort: 5060,
    dstIp: '10.0.0.2',
    dstPort: 5060,
    transport: 'udp',
    captureId: 1,
    callId: 'c1',
    cseq: '1 INVITE',
    fromUser: 'alice',
    toUser: 'bob',
    fromTag: 'ft',
    raw: enc.encode(`message at ${at}`),
    ...rest,
  };
  return m;
}

const req = (at: number, method: string, extra: Partial<CapturedMessage> = {}) =>
  msg({ at, method, cseq: `1 ${method}`, ...extra });
const res = (at: number, status: number, cseq = '1 INVITE', extra: Partial<CapturedMessage> = {}) =>
  msg({ at, status, cseq, srcIp: '10.0.0.2', dstIp: '10.0.0.1', toTag: 'tt', ...extra });

const summary = (messages: CapturedMessage[]): CallSummary => summarizeMessages(messages).summary;

describe('call summary', () => {
  it('summary - an answered call: status, setup delay, duration, endpoints, capture ids', () => {
    const s = summary([
      req(0, 'INVITE'),
      res(1_000, 100),
      res(30_000, 180),
      res(2_000_000, 200),
      req(2_010_000, 'ACK', { toTag: 'tt' }),
      msg({ at: 62_000_000, method: 'BYE', cseq: '2 BYE', toTag: 'tt', captureId: 2 }),
      res(62_010_000, 200, '2 BYE'),
    ]);
    assert.deepEqual(s, {
      callId: 'c1',
      firstTsUs: T0,
      lastTsUs: T0 + 62_010_000,
      method: 'INVITE',
      fromUser: 'alice',
      toUser: 'bob',
      finalStatus: 200,
      status: 'answered',
      setupDelayUs: 30_000,
      durationUs: 60_000_000,
      endpoints: ['10.0.0.1:5060', '10.0.0.2:5060'],
      captureIds: [1, 2],
      messageCount: 7,
      correlation: [],
    });
  });

  it('summary - setup delay counts from the INVITE to the first 18x, or to the 2xx without one', () => {
    assert.equal(summary([req(0, 'INVITE'), res(10, 100), res(500, 183), res(900, 180)]).setupDelayUs, 500);
    assert.equal(summary([req(0, 'INVITE'), res(10, 100), res(700, 200)]).setupDelayUs, 700);
    assert.equal(summary([req(0, 'INVITE'), res(10, 100)]).setupDelayUs, undefined);
  });

  it('status - final responses map to busy, cancelled and failed', () => {
    const final = (code: number) => summary([req(0, 'INVITE'), res(100, 180), res(200, code)]);
    assert.equal(final(486).status, 'busy');
    assert.equal(final(600).status, 'busy');
    assert.equal(final(487).status, 'cancelled');
    assert.equal(final(404).status, 'failed');
    assert.equal(final(503).status, 'failed');
    assert.equal(final(603).status, 'failed');
    assert.equal(final(503).finalStatus, 503);
    assert.equal(final(486).durationUs, undefined);
  });

  it('status - ringing with provisional responses only, unknown with none', () => {
    assert.equal(summary([req(0, 'INVITE'), res(10, 100), res(20, 180)]).status, 'ringing');
    assert.equal(summary([req(0, 'INVITE')]).status, 'unknown');
    assert.equal(summary([req(0, 'INVITE')]).finalStatus, undefined);
  });

  it('status - a CANCEL makes the call cancelled before its 487 arrives; a 200 crossing it wins', () => {
    assert.equal(summary([req(0, 'INVITE'), res(10, 180), req(50, 'CANCEL')]).status, 'cancelled');
    const crossed = summary([req(0, 'INVITE'), res(10, 180), req(50, 'CANCEL'), res(51, 200)]);
    assert.equal(crossed.status, 'answered');
    assert.equal(crossed.finalStatus, 200);
  });

  it('status - the latest INVITE transaction decides: 407 then 200 answered, 407 then 486 busy', () => {
    const challenged = [req(0, 'INVITE'), res(10, 407), req(20, 'ACK', { toTag: 'tt' })];
    const answered = summary([
      ...challenged,
      msg({ at: 30, method: 'INVITE', cseq: '2 INVITE' }),
      res(90, 200, '2 INVITE'),
    ]);
    assert.equal(answered.status, 'answered');
    assert.equal(answered.finalStatus, 200);
    assert.equal(answered.setupDelayUs, 90, 'post-dial delay from the first INVITE, challenge included');
    const busy = summary([
      ...challenged,
      msg({ at: 30, method: 'INVITE', cseq: '2 INVITE' }),
      res(90, 486, '2 INVITE'),
    ]);
    assert.equal(busy.status, 'busy');
    assert.equal(busy.finalStatus, 486);
  });

  it('status - a failed re-INVITE does not undo an answer', () => {
    const s = summary([
      req(0, 'INVITE'),
      res(10, 200),
      msg({ at: 1000, method: 'INVITE', cseq: '2 INVITE', toTag: 'tt' }),
      res(1010, 491, '2 INVITE'),
    ]);
    assert.equal(s.status, 'answered');
    assert.equal(s.finalStatus, 200);
    assert.equal(s.method, 'INVITE');
  });

  it('summary - a REGISTER transaction: method REGISTER, final status from the latest response', () => {
    const reg = (at: number, cseq: number) =>
      msg({ at, method: 'REGISTER', cseq: `${cseq} REGISTER`, toUser: 'alice' });
    const s = summary([reg(0, 1), res(10, 401, '1 REGISTER'), reg(20, 2), res(30, 200, '2 REGISTER')]);
    assert.equal(s.method, 'REGISTER');
    assert.equal(s.finalStatus, 200);
    assert.equal(s.status, 'answered');
    assert.equal(s.setupDelayUs, undefined);
    const refused = summary([reg(0, 1), res(10, 401, '1 REGISTER'), reg(20, 2), res(30, 403, '2 REGISTER')]);
    assert.equal(refused.status, 'failed');
    assert.equal(refused.finalStatus, 403);
    assert.equal(
      summary([msg({ at: 0, method: 'MESSAGE', cseq: '1 MESSAGE' }), res(5, 202, '1 MESSAGE')]).method,
      'MESSAGE',
    );
  });

  it('summary - only responses seen: the method comes from their CSeq', () => {
    const s = summary([res(0, 180), res(10, 200)]);
    assert.equal(s.method, 'INVITE');
    assert.equal(s.status, 'answered');
  });

  it('retransmissions - change the message count and nothing else', () => {
    const once = [
      req(0, 'INVITE'),
      res(10, 100),
      res(300, 180),
      res(900, 200),
      req(910, 'ACK', { toTag: 'tt' }),
    ];
    const again = [
      ...once,
      req(500_000, 'INVITE'), // T1 retransmission
      res(500_100, 180),
      res(1_500_000, 200),
      msg({ ...once[0], at: 0, captureId: 1 }), // the same packet reported twice
    ];
    const a = summary(once);
    const b = summary(again);
    assert.equal(b.messageCount, a.messageCount + 4);
    assert.deepEqual({ ...b, messageCount: 0, lastTsUs: 0 }, { ...a, messageCount: 0, lastTsUs: 0 });
  });

  it('correlation - HEP correlation id and X-CID are keys; the call’s own Call-ID is not', () => {
    const s = summary([
      req(0, 'INVITE', { correlationId: 'c1', xCorrelation: 'a-leg@x' }),
      res(10, 180, '1 INVITE', { correlationId: 'hep-7' }),
      res(20, 200, '1 INVITE', { xCorrelation: 'a-leg@x' }),
    ]);
    assert.deepEqual(s.correlation, ['a-leg@x', 'hep-7']);
  });

  it('endpoints - IPv6 addresses are bracketed', () => {
    assert.equal(formatEndpoint('2001:db8::1', 5060), '[2001:db8::1]:5060');
    assert.equal(formatEndpoint('192.0.2.1', 5080), '192.0.2.1:5080');
    const s = summary([req(0, 'INVITE', { srcIp: '2001:db8::1', dstIp: '::1', dstPort: 5070 })]);
    assert.deepEqual(s.endpoints, ['[2001:db8::1]:5060', '[::1]:5070']);
  });

  it('cseq - parses number and method, tolerates junk', () => {
    assert.deepEqual(parseCseq('1 INVITE'), [1, 'INVITE']);
    assert.deepEqual(parseCseq('  314159   REGISTER '), [314159, 'REGISTER']);
    assert.deepEqual(parseCseq('INVITE'), [0, '']);
    assert.deepEqual(parseCseq(''), [0, '']);
  });

  it('incremental - a late 180 and an early BYE in other batches give the same summary', () => {
    const all = [
      req(0, 'INVITE'),
      res(40, 180),
      res(100, 200),
      msg({ at: 5000, method: 'BYE', cseq: '2 BYE', toTag: 'tt' }),
    ];
    let state = foldCallState(undefined, [all[3] as CapturedMessage]);
    state = foldCallState(state, [all[0] as CapturedMessage]);
    state = foldCallState(state, [all[2] as CapturedMessage, all[1] as CapturedMessage]);
    assert.deepEqual(summarizeCall(state), summary(all));
    assert.equal(summarizeCall(state).setupDelayUs, 40);
    assert.equal(summarizeCall(state).durationUs, 4900);
  });

  it('fold - refuses messages of another call, and nothing at all', () => {
    assert.throws(
      () => foldCallState(undefined, [req(0, 'INVITE'), req(1, 'INVITE', { callId: 'c2' })]),
      RangeError,
    );
    assert.throws(() => foldCallState(undefined, []), RangeError);
    const s = foldCallState(undefined, [req(0, 'INVITE')]);
    assert.deepEqual(foldCallState(s, []), s);
    assert.throws(
      () => mergeCallStates(s, foldCallState(undefined, [req(0, 'INVITE', { callId: 'c2' })])),
      RangeError,
    );
  });

  it('fold - does not modify the state it is given', () => {
    const s = foldCallState(undefined, [req(0, 'INVITE')]);
    const copy = structuredClone(s);
    foldCallState(s, [res(10, 200), req(20, 'BYE', { toTag: 'tt', srcIp: '10.9.9.9' })]);
    assert.deepEqual(s, copy);
  });
});

// ---- properties -------------------------------------------------------------------------------

const METHODS = ['INVITE', 'ACK', 'BYE', 'CANCEL', 'REGISTER', 'OPTIONS', 'MESSAGE'];
const CODES = [100, 180, 183, 200, 202, 401, 407, 481, 486, 487, 491, 500, 600, 603];

/** Messages of one call with few distinct values, so that timestamps and contents collide. */
const arbMessage = (callId: fc.Arbitrary<string>) =>
  fc
    .record({
      callId,
      at: fc.integer({ min: 0, max: 12 }),
      request: fc.boolean(),
      method: fc.constantFrom(...METHODS),
      code: fc.constantFrom(...CODES),
      cseq: fc.integer({ min: 1, max: 3 }),
      cseqMethod: fc.constantFrom('INVITE', 'INVITE', 'BYE', 'CANCEL', 'REGISTER'),
      toTag: fc.boolean(),
      fromUser: fc.constantFrom('alice', 'bob', ''),
      toUser: fc.constantFrom('bob', 'carol', '800'),
      src: fc.constantFrom('10.0.0.1', '10.0.0.2', '2001:db8::5'),
      dst: fc.constantFrom('10.0.0.1', '10.0.0.3'),
      port: fc.constantFrom(5060, 5080),
      captureId: fc.integer({ min: 1, max: 3 }),
      correlationId: fc.option(fc.constantFrom('k1', 'k2', 'c1'), { nil: undefined }),
      xCorrelation: fc.option(fc.constantFrom('k2', 'k3'), { nil: undefined }),
      size: fc.integer({ min: 0, max: 40 }),
    })
    .map((r): CapturedMessage => {
      const m: CapturedMessage = {
        tsUs: T0 + r.at * 1000,
        srcIp: r.src,
        srcPort: r.port,
        dstIp: r.dst,
        dstPort: 5060,
        transport: 'udp',
        captureId: r.captureId,
        callId: r.callId,
        cseq: `${r.cseq} ${r.request ? r.method : r.cseqMethod}`,
        fromUser: r.fromUser,
        toUser: r.toUser,
        raw: new Uint8Array(r.size),
      };
      if (r.request) m.method = r.method;
      else m.status = r.code;
      if (r.toTag) m.toTag = 'tt';
      if (r.correlationId !== undefined) m.correlationId = r.correlationId;
      if (r.xCorrelation !== undefined) m.xCorrelation = r.xCorrelation;
      return m;
    });

const oneCall = fc.array(arbMessage(fc.constant('c1')), { minLength: 1, maxLength: 30 });

/** Cuts `xs` at the given points into consecutive non-empty batches. */
function split<T>(xs: T[], cuts: number[]): T[][] {
  const points = [...new Set(cuts.map((c) => c % xs.length))].filter((c) => c > 0).sort((a, b) => a - b);
  const out: T[][] = [];
  let from = 0;
  for (const p of points) {
    out.push(xs.slice(from, p));
    from = p;
  }
  out.push(xs.slice(from));
  return out;
}

function foldInBatches(batches: CapturedMessage[][]): CallState {
  let state: CallState | undefined;
  for (const b of batches) state = foldCallState(state, b);
  return state as CallState;
}

describe('call summary properties', () => {
  it('property - folding in one batch equals folding in any split into batches', () => {
    fc.assert(
      fc.property(oneCall, fc.array(fc.nat(), { maxLength: 10 }), (messages, cuts) => {
        assert.deepEqual(foldInBatches(split(messages, cuts)), foldCallState(undefined, messages));
      }),
      { numRuns: 300 },
    );
  });

  it('property - arrival order does not matter, equal timestamps included', () => {
    fc.assert(
      fc.property(
        oneCall.chain((ms) =>
          fc.tuple(fc.constant(ms), fc.shuffledSubarray(ms, { minLength: ms.length, maxLength: ms.length })),
        ),
        ([messages, shuffled]) => {
          assert.deepEqual(foldCallState(undefined, shuffled), foldCallState(undefined, messages));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property - merging batch states is commutative and associative', () => {
    fc.assert(
      fc.property(oneCall, oneCall, oneCall, (a, b, c) => {
        const [sa, sb, sc] = [a, b, c].map((x) => foldCallState(undefined, x)) as [
          CallState,
          CallState,
          CallState,
        ];
        assert.deepEqual(mergeCallStates(sa, sb), mergeCallStates(sb, sa));
        assert.deepEqual(
          mergeCallStates(mergeCallStates(sa, sb), sc),
          mergeCallStates(sa, mergeCallStates(sb, sc)),
        );
        assert.deepEqual(
          mergeCallStates(mergeCallStates(sa, sb), sc),
          foldCallState(undefined, [...a, ...b, ...c]),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('property - retransmitted messages only add to the message count (and bytes)', () => {
    fc.assert(
      fc.property(oneCall, fc.array(fc.nat()), (messages, picks) => {
        const dups = picks.map((p) => messages[p % messages.length] as CapturedMessage);
        const base = summarizeCall(foldCallState(undefined, messages));
        const withDups = summarizeCall(foldCallState(undefined, [...messages, ...dups]));
        assert.deepEqual({ ...withDups, messageCount: base.messageCount }, base);
        assert.equal(withDups.messageCount, base.messageCount + dups.length);
      }),
      { numRuns: 200 },
    );
  });

  it('property - foldBatch over a mixed batch equals folding each call alone', () => {
    fc.assert(
      fc.property(
        fc.array(arbMessage(fc.constantFrom('c1', 'c2', 'c3')), { minLength: 1, maxLength: 60 }),
        (messages) => {
          const states = foldBatch(messages);
          assert.deepEqual([...states.keys()], [...new Set(messages.map((m) => m.callId))]);
          for (const [id, state] of states) {
            assert.deepEqual(
              state,
              foldCallState(
                undefined,
                messages.filter((m) => m.callId === id),
              ),
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('property - a summary is well formed', () => {
    fc.assert(
      fc.property(oneCall, (messages) => {
        const s = summarizeCall(foldCallState(undefined, messages));
        assert.ok(s.firstTsUs <= s.lastTsUs);
        assert.equal(s.messageCount, messages.length);
        assert.ok(s.setupDelayUs === undefined || s.setupDelayUs >= 0);
        assert.ok(s.durationUs === undefined || s.durationUs >= 0);
        assert.deepEqual(s.endpoints, [...new Set(s.endpoints)].sort());
        assert.ok(!s.correlation.includes('c1'));
        if (s.status === 'answered') assert.ok((s.finalStatus ?? 0) >= 200 && (s.finalStatus ?? 0) < 300);
        // JSON round trip: what the stores persist.
        const state = foldCallState(undefined, messages);
        assert.deepEqual(JSON.parse(JSON.stringify(state)), state);
      }),
      { numRuns: 200 },
    );
  });
});
