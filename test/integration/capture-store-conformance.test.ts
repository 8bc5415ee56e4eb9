import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { foldCallState, summarizeCall } from '../../src/capture/call-summary.ts';
import type { CallSummary, CapturedMessage, CaptureStore, StoredMessage } from '../../src/capture/model.ts';
import { openCaptureStore } from '../../src/capture/open-store.ts';
import { type PostgresServer, startPostgres } from '../harness/postgres.ts';

/**
 * One suite, run against both capture stores: SQLite (node:sqlite) and a private PostgreSQL
 * (test/harness/postgres.ts). Every test gets a store of its own (a new file, a new database),
 * so stats and retention see only what the test wrote. Backend differences are confined to
 * `Backend`.
 */

interface Backend {
  readonly name: string;
  /** The spec of a new, empty store. */
  freshSpec(): Promise<string>;
  close(): Promise<void>;
}

async function sqliteBackend(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-capture-'));
  let n = 0;
  return {
    name: 'sqlite',
    async freshSpec() {
      return `sqlite:${join(dir, `store-${++n}.db`)}`;
    },
    async close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function postgresBackend(): Promise<Backend> {
  const server: PostgresServer = await startPostgres();
  return {
    name: 'postgres',
    freshSpec: () => server.createDatabase(),
    close: () => server.stop(),
  };
}

// ---- messages ---------------------------------------------------------------------------------

const T0 = 1_750_000_000_000_000;
const S = 1_000_000;
const enc = new TextEncoder();

interface Leg {
  callId: string;
  from?: string;
  to?: string;
  /** Caller's address; the proxy is 10.0.0.1:5060. */
  caller?: string;
  callerPort?: number;
  captureId?: number;
  correlationId?: string;
  xCorrelation?: string;
}

function message(
  leg: Leg,
  at: number,
  what: { method?: string; status?: number; cseq?: string },
): CapturedMessage {
  const request = what.method !== undefined;
  const caller = leg.caller ?? '192.0.2.10';
  const callerPort = leg.callerPort ?? 5060;
  const cseq = what.cseq ?? `1 ${what.method ?? 'INVITE'}`;
  const line = request
    ? `${what.method} sip:${leg.to ?? 'bob'}@10.0.0.1 SIP/2.0`
    : `SIP/2.0 ${what.status} Reason`;
  const m: CapturedMessage = {
    tsUs: T0 + at,
    srcIp: request ? caller : '10.0.0.1',
    srcPort: request ? callerPort : 5060,
    dstIp: request ? '10.0.0.1' : caller,
    dstPort: request ? 5060 : callerPort,
    transport: 'udp',
    captureId: leg.captureId ?? 1,
    callId: leg.callId,
    cseq,
    fromUser: leg.from ?? 'alice',
    toUser: leg.to ?? 'bob',
    fromTag: 'ft',
    raw: enc.encode(`${line}\r\nCall-ID: ${leg.callId}\r\nCSeq: ${cseq}\r\n\r\n`),
  };
  if (what.method !== undefined) m.method = what.method;
  if (what.status !== undefined) m.status = what.status;
  if (what.method !== 'INVITE') m.toTag = 'tt';
  if (leg.correlationId !== undefined) m.correlationId = leg.correlationId;
  if (leg.xCorrelation !== undefined) m.xCorrelation = leg.xCorrelation;
  return m;
}

type Outcome = 'answered' | 'busy' | 'cancelled' | 'failed' | 'ringing';

/** The messages of one INVITE call starting at `at` (µs after T0). */
function call(leg: Leg, at: number, outcome: Outcome = 'answered'): CapturedMessage[] {
  const out = [message(leg, at, { method: 'INVITE' }), message(leg, at + 1000, { status: 100 })];
  out.push(message(leg, at + 50_000, { status: 180 }));
  if (outcome === 'answered') {
    out.push(message(leg, at + 2 * S, { status: 200 }));
    out.push(message(leg, at + 2 * S + 10_000, { method: 'ACK' }));
    out.push(message(leg, at + 30 * S, { method: 'BYE', cseq: '2 BYE' }));
    out.push(message(leg, at + 30 * S + 5000, { status: 200, cseq: '2 BYE' }));
  } else if (outcome === 'busy') {
    out.push(message(leg, at + S, { status: 486 }));
  } else if (outcome === 'failed') {
    out.push(message(leg, at + S, { status: 503 }));
  } else if (outcome === 'cancelled') {
    out.push(message(leg, at + 3 * S, { method: 'CANCEL' }));
    out.push(message(leg, at + 3 * S + 100, { status: 487 }));
  }
  return out;
}

const byTime = (ms: CapturedMessage[]) => [...ms].sort((a, b) => a.tsUs - b.tsUs);
const ids = (calls: CallSummary[]) => calls.map((c) => c.callId);
const totalBytes = (ms: CapturedMessage[]) => ms.reduce((n, m) => n + m.raw.byteLength, 0);
const withoutId = ({ id: _id, ...m }: StoredMessage) => m;

// ---- the suite --------------------------------------------------------------------------------

function conformance(name: string, make: () => Promise<Backend>): void {
  describe(`capture store conformance (${name})`, () => {
    let b: Backend;
    before(async () => {
      b = await make();
    });
    after(async () => {
      await b?.close();
    });

    async function fresh(t: TestContext): Promise<CaptureStore> {
      const store = await openCaptureStore(await b.freshSpec());
      t.after(() => store.close());
      return store;
    }

    it('store - a call inserted over several batches is summarized as a whole', async (t) => {
      const s = await fresh(t);
      assert.equal(s.kind, name);
      const msgs = call({ callId: 'a1@x', from: '1001', to: '2002', captureId: 7 }, 0);
      await s.insertBatch(msgs.slice(0, 3));
      assert.equal((await s.getCall('a1@x'))?.status, 'ringing');
      await s.insertBatch(msgs.slice(3, 5));
      await s.insertBatch(msgs.slice(5));
      const summary = await s.getCall('a1@x');
      assert.deepEqual(summary, {
        callId: 'a1@x',
        firstTsUs: T0,
        lastTsUs: T0 + 30 * S + 5000,
        method: 'INVITE',
        fromUser: '1001',
        toUser: '2002',
        finalStatus: 200,
        status: 'answered',
        setupDelayUs: 50_000,
        durationUs: 28 * S,
        endpoints: ['10.0.0.1:5060', '192.0.2.10:5060'],
        captureIds: [7],
        messageCount: 7,
        correlation: [],
      });
      assert.deepEqual(summary, summarizeCall(foldCallState(undefined, msgs)));
      assert.equal(await s.getCall('nope'), undefined);
      assert.deepEqual(await s.searchCalls({}), [summary]);
    });

    it('search - newest first, limit, since and until (both inclusive)', async (t) => {
      const s = await fresh(t);
      const batch: CapturedMessage[] = [];
      for (let i = 0; i < 6; i++) batch.push(...call({ callId: `t${i}` }, i * 10 * S, 'busy'));
      await s.insertBatch(byTime(batch));
      assert.deepEqual(ids(await s.searchCalls({})), ['t5', 't4', 't3', 't2', 't1', 't0']);
      assert.deepEqual(ids(await s.searchCalls({ limit: 2 })), ['t5', 't4']);
      assert.deepEqual(ids(await s.searchCalls({ sinceUs: T0 + 20 * S })), ['t5', 't4', 't3', 't2']);
      assert.deepEqual(ids(await s.searchCalls({ untilUs: T0 + 20 * S })), ['t2', 't1', 't0']);
      assert.deepEqual(ids(await s.searchCalls({ sinceUs: T0 + 10 * S, untilUs: T0 + 30 * S, limit: 2 })), [
        't3',
        't2',
      ]);
      assert.deepEqual(ids(await s.searchCalls({ sinceUs: T0 + 10 * S + 1, untilUs: T0 + 20 * S - 1 })), []);
      assert.equal(
        (await s.searchCalls({ limit: 100_000 })).length,
        6,
        'a huge limit is capped, not refused',
      );
    });

    it('search - number matches the From or To user exactly', async (t) => {
      const s = await fresh(t);
      await s.insertBatch([
        ...call({ callId: 'n1', from: 'alice', to: '800' }, 0),
        ...call({ callId: 'n2', from: '800', to: 'carol' }, S),
        ...call({ callId: 'n3', from: 'carol', to: '8001' }, 2 * S),
        ...call({ callId: 'n4', from: '800', to: '800' }, 3 * S, 'busy'),
      ]);
      assert.deepEqual(ids(await s.searchCalls({ number: '800' })), ['n4', 'n2', 'n1']);
      assert.deepEqual(ids(await s.searchCalls({ number: '800', limit: 2 })), ['n4', 'n2']);
      assert.deepEqual(ids(await s.searchCalls({ number: '80' })), []);
      assert.deepEqual(ids(await s.searchCalls({ number: 'carol' })), ['n3', 'n2']);
      assert.deepEqual(ids(await s.searchCalls({ number: '800', status: 'busy' })), ['n4']);
      assert.deepEqual(ids(await s.searchCalls({ number: '800', sinceUs: T0 + 1 })), ['n4', 'n2']);
    });

    it('search - status selects exactly the calls with that outcome', async (t) => {
      const s = await fresh(t);
      const outcomes: Outcome[] = ['answered', 'busy', 'cancelled', 'failed', 'ringing', 'answered'];
      await s.insertBatch(outcomes.flatMap((o, i) => call({ callId: `s${i}` }, i * S, o)));
      await s.insertBatch([message({ callId: 's6' }, 7 * S, { method: 'INVITE' })]);
      assert.deepEqual(ids(await s.searchCalls({ status: 'answered' })), ['s5', 's0']);
      assert.deepEqual(ids(await s.searchCalls({ status: 'busy' })), ['s1']);
      assert.deepEqual(ids(await s.searchCalls({ status: 'cancelled' })), ['s2']);
      assert.deepEqual(ids(await s.searchCalls({ status: 'failed' })), ['s3']);
      assert.deepEqual(ids(await s.searchCalls({ status: 'ringing' })), ['s4']);
      assert.deepEqual(ids(await s.searchCalls({ status: 'unknown' })), ['s6']);
      assert.deepEqual(ids(await s.searchCalls({ status: 'answered', limit: 1 })), ['s5']);
    });

    it('search - endpoint matches ip:port or host, IPv6 included, with other filters', async (t) => {
      const s = await fresh(t);
      await s.insertBatch([
        ...call({ callId: 'e1', caller: '198.51.100.7', callerPort: 5070 }, 0),
        ...call({ callId: 'e2', caller: '198.51.100.7', callerPort: 5080 }, S, 'busy'),
        ...call({ callId: 'e3', caller: '2001:db8::7', callerPort: 5060, from: 'v6' }, 2 * S),
      ]);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '198.51.100.7:5070' })), ['e1']);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '198.51.100.7' })), ['e2', 'e1']);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '10.0.0.1:5060' })), ['e3', 'e2', 'e1']);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '[2001:db8::7]:5060' })), ['e3']);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '2001:db8::7' })), ['e3']);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '[2001:db8::7]' })), ['e3']);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '198.51.100' })), []);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '198.51.100.7', status: 'busy' })), ['e2']);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '10.0.0.1', sinceUs: T0 + 1, untilUs: T0 + S })), [
        'e2',
      ]);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '10.0.0.1', number: 'v6' })), ['e3']);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '198.51.100.7', number: 'v6' })), []);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '10.0.0.1', limit: 1 })), ['e3']);
    });

    it('search - an endpoint search still finds a call whose first message came in a later batch', async (t) => {
      const s = await fresh(t);
      const msgs = call({ callId: 'late', caller: '203.0.113.5' }, 10 * S);
      await s.insertBatch(msgs.slice(2)); // 180 onwards first: first_ts moves back later
      await s.insertBatch(msgs.slice(0, 2));
      assert.equal((await s.getCall('late'))?.firstTsUs, T0 + 10 * S);
      assert.deepEqual(ids(await s.searchCalls({ endpoint: '203.0.113.5', untilUs: T0 + 10 * S })), ['late']);
      assert.deepEqual(
        ids(await s.searchCalls({ endpoint: '203.0.113.5:5060', sinceUs: T0 + 10 * S + 1 })),
        [],
      );
    });

    it('search - refuses bad queries with SY_ERR_INVALID_ARGUMENT', async (t) => {
      const s = await fresh(t);
      for (const q of [
        { limit: 0 },
        { limit: 1.5 },
        { sinceUs: Number.NaN },
        { status: 'gone' },
        { endpoint: ' ' },
      ]) {
        await assert.rejects(
          s.searchCalls(q as never),
          { code: 'SY_ERR_INVALID_ARGUMENT' },
          JSON.stringify(q),
        );
      }
    });

    it('messagesOf - messages of several calls in time order, ties by id, every field kept', async (t) => {
      const s = await fresh(t);
      const a = call({ callId: 'm-a', correlationId: 'hep-1' }, 0);
      const c = call({ callId: 'm-c', xCorrelation: 'm-a' }, 500);
      // Equal timestamps: a retransmitted INVITE in the same batch, and one in a later batch.
      const dup = { ...(a[0] as CapturedMessage), captureId: 2 };
      await s.insertBatch([...a, ...c.slice(0, 3), dup]);
      await s.insertBatch([...c.slice(3), { ...dup, captureId: 3 }]);
      const got = await s.messagesOf(['m-a', 'm-c', 'absent']);
      assert.equal(got.length, a.length + c.length + 2);
      for (let i = 1; i < got.length; i++) {
        const [p, q] = [got[i - 1] as StoredMessage, got[i] as StoredMessage];
        assert.ok(p.tsUs < q.tsUs || (p.tsUs === q.tsUs && p.id < q.id), `order at ${i}`);
      }
      assert.deepEqual(
        got.filter((m) => m.tsUs === T0).map((m) => m.captureId),
        [1, 2, 3],
        'same time: in insertion order',
      );
      const expected = byTime([...a, ...c, dup, { ...dup, captureId: 3 }]);
      assert.deepEqual(
        got.map(withoutId).sort((x, y) => x.tsUs - y.tsUs || x.captureId - y.captureId),
        expected.sort((x, y) => x.tsUs - y.tsUs || x.captureId - y.captureId),
      );
      assert.ok(got.every((m) => Number.isSafeInteger(m.id) && m.raw instanceof Uint8Array));
      assert.deepEqual(await s.messagesOf([]), []);
      assert.deepEqual(ids(await s.searchCalls({})), ['m-c', 'm-a']);
    });

    it('relatedCallIds - legs linked by X-CID, by HEP correlation id, not by a leg’s own Call-ID', async (t) => {
      const s = await fresh(t);
      await s.insertBatch([
        ...call({ callId: 'A-leg' }, 0),
        ...call({ callId: 'B-leg', xCorrelation: 'A-leg' }, 100), // B2BUA: X-CID names the A leg
        ...call({ callId: 'C-leg', correlationId: 'corr-9' }, 200),
        ...call({ callId: 'D-leg', correlationId: 'corr-9' }, 300),
        ...call({ callId: 'E-leg', correlationId: 'E-leg' }, 400), // Asterisk res_hep: its own Call-ID
        ...call({ callId: 'F-leg', xCorrelation: 'A-leg' }, 500),
      ]);
      assert.deepEqual(await s.relatedCallIds('A-leg'), ['B-leg', 'F-leg']);
      assert.deepEqual(await s.relatedCallIds('B-leg'), ['A-leg', 'F-leg']);
      assert.deepEqual(await s.relatedCallIds('C-leg'), ['D-leg']);
      assert.deepEqual(await s.relatedCallIds('E-leg'), []);
      assert.deepEqual((await s.getCall('E-leg'))?.correlation, []);
      assert.deepEqual((await s.getCall('B-leg'))?.correlation, ['A-leg']);
      assert.deepEqual(await s.relatedCallIds('unknown'), []);
      // A key learned in a later batch links too.
      await s.insertBatch([
        message({ callId: 'E-leg', xCorrelation: 'corr-9' }, 400 + S, { method: 'INFO', cseq: '3 INFO' }),
      ]);
      assert.deepEqual(await s.relatedCallIds('E-leg'), ['C-leg', 'D-leg']);
    });

    it('events - between two times inclusive, in time order, detail kept', async (t) => {
      const s = await fresh(t);
      await s.recordEvent({
        tsUs: T0 + 30,
        kind: 'node.state',
        subject: 'as2',
        detail: { from: 'ready', to: 'draining' },
      });
      await s.recordEvent({ tsUs: T0 + 10, kind: 'dispatcher.reload', subject: 'lb1', detail: {} });
      await s.recordEvent({
        tsUs: T0 + 20,
        kind: 'intent.set',
        subject: 'as1',
        detail: { drain: true, n: 2, ü: 'ñ' },
      });
      await s.recordEvent({
        tsUs: T0 + 20,
        kind: 'node.phase',
        subject: 'as1',
        detail: { nested: { a: [1, null] } },
      });
      await s.recordEvent({ tsUs: T0 + 40, kind: 'node.state', subject: 'as3', detail: {} });
      const got = await s.eventsBetween(T0 + 10, T0 + 30);
      assert.deepEqual(got, [
        { tsUs: T0 + 10, kind: 'dispatcher.reload', subject: 'lb1', detail: {} },
        { tsUs: T0 + 20, kind: 'intent.set', subject: 'as1', detail: { drain: true, n: 2, ü: 'ñ' } },
        { tsUs: T0 + 20, kind: 'node.phase', subject: 'as1', detail: { nested: { a: [1, null] } } },
        { tsUs: T0 + 30, kind: 'node.state', subject: 'as2', detail: { from: 'ready', to: 'draining' } },
      ]);
      assert.deepEqual(await s.eventsBetween(T0 + 41, T0 + 50), []);
    });

    it('retention - by age: ended calls go whole, a call still going keeps its summary and newer messages', async (t) => {
      const s = await fresh(t);
      const old1 = call({ callId: 'old-1' }, 0); // ends at 30 s
      const old2 = call({ callId: 'old-2' }, S, 'busy'); // ends at 2 s
      const going = call({ callId: 'going' }, 50 * S); // 50 s .. 80 s
      const fresh1 = call({ callId: 'fresh-1' }, 100 * S, 'failed');
      await s.insertBatch(byTime([...old1, ...old2, ...going, ...fresh1]));
      await s.recordEvent({ tsUs: T0 + 10 * S, kind: 'old', subject: 'x', detail: {} });
      await s.recordEvent({ tsUs: T0 + 100 * S, kind: 'new', subject: 'x', detail: {} });
      const before = await s.stats();
      assert.equal(before.messages, old1.length + old2.length + going.length + fresh1.length);
      assert.deepEqual(before.retention, {});
      assert.equal(before.lastRetention, undefined);

      // Cutoff at 60 s: old-1 and old-2 ended before it, `going` straddles it.
      const nowUs = T0 + 160 * S;
      const removed = await s.applyRetention({ maxAgeMs: 100_000 }, nowUs);
      const goingOld = going.filter((m) => m.tsUs < T0 + 60 * S);
      assert.equal(removed, old1.length + old2.length + goingOld.length);
      assert.equal(await s.getCall('old-1'), undefined);
      assert.equal(await s.getCall('old-2'), undefined);
      assert.deepEqual(await s.messagesOf(['old-1', 'old-2']), []);
      const kept = await s.getCall('going');
      assert.equal(kept?.status, 'answered');
      assert.equal(kept?.firstTsUs, T0 + 50 * S, 'the summary still describes the whole call');
      assert.equal(kept?.messageCount, going.length - goingOld.length);
      assert.deepEqual(
        (await s.messagesOf(['going'])).map(withoutId),
        going.filter((m) => m.tsUs >= T0 + 60 * S),
      );
      assert.deepEqual(ids(await s.searchCalls({})), ['fresh-1', 'going']);
      assert.deepEqual(
        (await s.eventsBetween(0, Number.MAX_SAFE_INTEGER)).map((e) => e.kind),
        ['new'],
      );

      const after = await s.stats();
      const keptMessages = [...going.filter((m) => m.tsUs >= T0 + 60 * S), ...fresh1];
      assert.equal(after.messages, keptMessages.length);
      assert.equal(after.calls, 2);
      assert.equal(after.bytes, totalBytes(keptMessages));
      assert.equal(after.oldestTsUs, Math.min(...keptMessages.map((m) => m.tsUs)));
      assert.equal(after.newestTsUs, Math.max(...keptMessages.map((m) => m.tsUs)));
      assert.deepEqual(after.retention, { maxAgeMs: 100_000 });
      assert.deepEqual(after.lastRetention, { atUs: nowUs, removedMessages: removed, removedCalls: 2 });

      // Idempotent; and calls arriving for a removed Call-ID start afresh.
      assert.equal(await s.applyRetention({ maxAgeMs: 100_000 }, nowUs), 0);
      await s.insertBatch([message({ callId: 'old-1' }, 150 * S, { method: 'BYE', cseq: '2 BYE' })]);
      assert.equal((await s.getCall('old-1'))?.messageCount, 1);
    });

    it('retention - by size: oldest calls go first until the bytes fit', async (t) => {
      const s = await fresh(t);
      const calls = Array.from({ length: 10 }, (_, i) => call({ callId: `z${i}` }, i * S, 'busy'));
      // Newer calls arrive first: age is the call's first message, not insertion order.
      for (const c of [...calls].reverse()) await s.insertBatch(c);
      const sizes = calls.map(totalBytes);
      const total = sizes.reduce((x, y) => x + y, 0);
      assert.equal((await s.stats()).bytes, total);
      // Keep at most the bytes of the newest 4 calls, minus one: the 4th newest must go too.
      const limit = sizes.slice(6).reduce((x, y) => x + y, 0) - 1;
      const removed = await s.applyRetention({ maxBytes: limit }, T0);
      assert.equal(removed, calls.slice(0, 7).flat().length);
      assert.deepEqual(ids(await s.searchCalls({})), ['z9', 'z8', 'z7']);
      const st = await s.stats();
      assert.equal(
        st.bytes,
        sizes.slice(7).reduce((x, y) => x + y, 0),
      );
      assert.ok(st.bytes <= limit);
      assert.equal(st.calls, 3);
      assert.equal(st.messages, calls.slice(7).flat().length);
      assert.equal(st.oldestTsUs, T0 + 7 * S);
      assert.deepEqual(st.retention, { maxBytes: limit });
      assert.equal(st.lastRetention?.removedCalls, 7);
      // Under the limit: nothing to do. Zero: everything goes.
      assert.equal(await s.applyRetention({ maxBytes: limit }, T0), 0);
      assert.equal(
        await s.applyRetention({ maxBytes: 0, maxAgeMs: 1_000_000_000 }, T0),
        calls.slice(7).flat().length,
      );
      const empty = await s.stats();
      assert.equal(empty.messages, 0);
      assert.equal(empty.bytes, 0);
      assert.equal(empty.oldestTsUs, undefined);
      assert.deepEqual(empty.retention, { maxAgeMs: 1_000_000_000, maxBytes: 0 });
      await assert.rejects(s.applyRetention({ maxBytes: -1 }, T0), { code: 'SY_ERR_INVALID_ARGUMENT' });
    });

    it('insertBatch - a batch larger than one statement’s parameter limit', async (t) => {
      const s = await fresh(t);
      // 6,000 messages x 19 columns = 114,000 values: over SQLite's 32,766 and PostgreSQL's
      // 65,535 bind parameters.
      const batch: CapturedMessage[] = [];
      for (let i = 0; i < 1500; i++)
        batch.push(...call({ callId: `big-${i}`, from: `u${i % 37}` }, i * 1000, 'busy'));
      assert.equal(batch.length, 6000);
      await s.insertBatch(byTime(batch));
      const st = await s.stats();
      assert.equal(st.messages, 6000);
      assert.equal(st.calls, 1500);
      assert.equal(st.bytes, totalBytes(batch));
      assert.equal((await s.getCall('big-777'))?.status, 'busy');
      assert.equal((await s.messagesOf(['big-0', 'big-1499'])).length, 8);
      assert.equal((await s.searchCalls({ number: 'u5', limit: 1000 })).length, 41);
    });

    it('raw - unicode and binary bytes are kept byte-exact; NUL in a text field becomes U+FFFD', async (t) => {
      const s = await fresh(t);
      const binary = Uint8Array.from({ length: 512 }, (_, i) => i % 256);
      const unicode = enc.encode('INVITE sip:jürgen@bücher.example SIP/2.0\r\nSubject: 日本語 ☎️ 𝄞\r\n\r\n');
      const invalidUtf8 = Uint8Array.from([0xc3, 0x28, 0xff, 0xfe, 0x00, 0xed, 0xa0, 0x80]);
      const base = message({ callId: 'ü-☎-𝄞', from: 'Jürgen', to: '日本' }, 0, { method: 'INVITE' });
      const sub = binary.subarray(10, 20); // a view into a larger buffer
      const batch = [
        { ...base, raw: binary },
        { ...base, tsUs: base.tsUs + 1, raw: unicode },
        { ...base, tsUs: base.tsUs + 2, raw: invalidUtf8 },
        { ...base, tsUs: base.tsUs + 3, raw: new Uint8Array(0) },
        { ...base, tsUs: base.tsUs + 4, raw: sub },
        {
          ...base,
          tsUs: base.tsUs + 5,
          raw: enc.encode('x'),
          toUser: 'nul\u0000here',
          xCorrelation: 'quote"back\\slash\'',
        },
      ];
      await s.insertBatch(batch);
      const got = await s.messagesOf(['ü-☎-𝄞']);
      assert.equal(got.length, batch.length);
      for (let i = 0; i < batch.length; i++) {
        const raw = got[i]?.raw as Uint8Array;
        assert.equal(
          Buffer.compare(Buffer.from(raw), Buffer.from((batch[i] as CapturedMessage).raw)),
          0,
          `raw ${i}`,
        );
        assert.equal(raw.byteLength, (batch[i] as CapturedMessage).raw.byteLength);
      }
      assert.equal(got[0]?.fromUser, 'Jürgen');
      assert.equal(got[5]?.toUser, 'nul\ufffdhere');
      assert.equal(got[5]?.xCorrelation, 'quote"back\\slash\'');
      const summary = await s.getCall('ü-☎-𝄞');
      assert.equal(summary?.toUser, '日本');
      assert.deepEqual(ids(await s.searchCalls({ number: 'Jürgen' })), ['ü-☎-𝄞']);
      assert.equal((await s.stats()).bytes, totalBytes(batch));
    });

    it('insertBatch - concurrent batches touching the same calls merge into the same summaries', async (t) => {
      const s = await fresh(t);
      const all: CapturedMessage[] = [];
      for (let i = 0; i < 40; i++) {
        const outcome: Outcome = (['answered', 'busy', 'cancelled', 'failed'] as const)[i % 4] as Outcome;
        all.push(
          ...call(
            { callId: `cc-${i}`, captureId: 1 + (i % 3), caller: `198.51.100.${i}` },
            i * 1000,
            outcome,
          ),
        );
      }
      // Deal the messages round-robin into 8 batches, so that every batch touches most calls,
      // and insert them all at once (PostgreSQL: 8 transactions on 4 connections).
      const batches: CapturedMessage[][] = Array.from({ length: 8 }, () => []);
      all.forEach((m, i) => {
        batches[i % 8]?.push(m);
      });
      await Promise.all(batches.map((batch) => s.insertBatch(batch)));
      await Promise.all([
        s.insertBatch(all.filter((m) => m.method === 'INVITE')), // retransmitted INVITEs
        s.recordEvent({ tsUs: T0, kind: 'k', subject: 's', detail: {} }),
      ]);
      const invites = all.filter((m) => m.method === 'INVITE');
      const st = await s.stats();
      assert.equal(st.messages, all.length + invites.length);
      assert.equal(st.calls, 40);
      for (let i = 0; i < 40; i++) {
        const id = `cc-${i}`;
        const expected = summarizeCall(
          foldCallState(
            undefined,
            [...all, ...invites].filter((m) => m.callId === id),
          ),
        );
        assert.deepEqual(await s.getCall(id), expected, id);
      }
      assert.equal((await s.searchCalls({ endpoint: '198.51.100.3' }))[0]?.callId, 'cc-3');
    });

    it('insertBatch - refuses bad messages before writing anything', async (t) => {
      const s = await fresh(t);
      const good = message({ callId: 'v1' }, 0, { method: 'INVITE' });
      const bad = [
        { ...good, callId: '' },
        { ...good, tsUs: 1.5 },
        { ...good, raw: 'text' },
        { ...good, srcPort: 70_000 },
        { ...good, status: 42 },
      ];
      for (const m of bad) {
        await assert.rejects(s.insertBatch([good, m as CapturedMessage]), {
          code: 'SY_ERR_INVALID_ARGUMENT',
        });
      }
      await s.insertBatch([]);
      assert.equal((await s.stats()).messages, 0);
      assert.equal(await s.getCall('v1'), undefined);
    });

    // ---- live calls ------------------------------------------------------------------------

    /** An answered call whose BYE has not come yet: INVITE, 100, 180, 200, ACK. */
    const upCall = (leg: Leg, at: number) => call(leg, at, 'answered').slice(0, 5);
    const hangUp = (leg: Leg, at: number) => call(leg, at, 'answered').slice(5);
    const PROXY = '10.0.0.1:5060';

    it('liveCalls - answered without BYE and ringing are live; ended, failed, busy, cancelled are not', async (t) => {
      const s = await fresh(t);
      const up = { callId: 'live-up', caller: '192.0.2.21' };
      const ringing = { callId: 'live-ring', caller: '192.0.2.22' };
      await s.insertBatch([
        ...upCall(up, 0),
        ...call(ringing, S, 'ringing'),
        ...call({ callId: 'live-done', caller: '192.0.2.23' }, 2 * S, 'answered'),
        ...call({ callId: 'live-busy' }, 3 * S, 'busy'),
        ...call({ callId: 'live-failed' }, 4 * S, 'failed'),
        ...call({ callId: 'live-cancelled' }, 5 * S, 'cancelled'),
        // A REGISTER answered 200 is `answered` too, but no call.
        message({ callId: 'live-reg' }, 6 * S, { method: 'REGISTER', cseq: '1 REGISTER' }),
        message({ callId: 'live-reg' }, 6 * S + 1000, { status: 200, cseq: '1 REGISTER' }),
      ]);
      const live = await s.liveCalls({ sinceUs: T0 });
      assert.deepEqual(
        new Map([...live].sort(([a], [b]) => (a < b ? -1 : 1))),
        new Map([
          [PROXY, { channels: 2, calls: 2, ringing: 1 }],
          ['192.0.2.21:5060', { channels: 1, calls: 1, ringing: 0 }],
          ['192.0.2.22:5060', { channels: 1, calls: 1, ringing: 1 }],
        ]),
      );
      // The ringing call is answered, the answered one hangs up (later batches).
      await s.insertBatch([message(ringing, 10 * S, { status: 200 })]);
      await s.insertBatch(hangUp(up, 0));
      const after = await s.liveCalls({ sinceUs: T0 });
      assert.deepEqual(after.get(PROXY), { channels: 1, calls: 1, ringing: 0 });
      assert.equal(after.has('192.0.2.21:5060'), false);
      assert.deepEqual(after.get('192.0.2.22:5060'), { channels: 1, calls: 1, ringing: 0 });
      // A CANCEL ends a ringing call even before its 487.
      await s.insertBatch(call({ callId: 'live-ring2' }, 20 * S, 'ringing'));
      assert.equal((await s.liveCalls({ sinceUs: T0 })).get(PROXY)?.channels, 2);
      await s.insertBatch([message({ callId: 'live-ring2' }, 21 * S, { method: 'CANCEL' })]);
      assert.equal((await s.liveCalls({ sinceUs: T0 })).get(PROXY)?.channels, 1);
    });

    it('liveCalls - sinceUs window, endpoint filter with zeros, IPv6, legs of one call counted once', async (t) => {
      const spec = await b.freshSpec();
      const s = await openCaptureStore(spec);
      t.after(() => s.close());
      const aLeg = { callId: 'a-leg', caller: '2001:db8::10', callerPort: 5062 };
      await s.insertBatch([
        ...upCall({ callId: 'old', caller: '192.0.2.30' }, 0),
        ...upCall(aLeg, 100 * S),
        // The B-leg names the A-leg's Call-ID in X-CID: two channels, one call.
        ...upCall({ callId: 'b-leg', caller: '192.0.2.31', xCorrelation: 'a-leg' }, 101 * S),
      ]);
      const all = await s.liveCalls({ sinceUs: T0 });
      assert.deepEqual(all.get(PROXY), { channels: 3, calls: 2, ringing: 0 });
      const recent = await s.liveCalls({ sinceUs: T0 + 100 * S });
      assert.deepEqual(recent.get(PROXY), { channels: 2, calls: 1, ringing: 0 });
      assert.equal(recent.has('192.0.2.30:5060'), false);
      assert.deepEqual(await s.liveCalls({ sinceUs: T0 + 101 * S + 1 }), new Map());

      const v6 = '[2001:db8::10]:5062';
      const filtered = await s.liveCalls({ sinceUs: T0, endpoints: [v6, '198.51.100.9:5060', v6] });
      assert.deepEqual(
        filtered,
        new Map([
          [v6, { channels: 1, calls: 1, ringing: 0 }],
          ['198.51.100.9:5060', { channels: 0, calls: 0, ringing: 0 }],
        ]),
      );
      // A bare host is not an endpoint here.
      assert.equal(
        (await s.liveCalls({ sinceUs: T0, endpoints: ['2001:db8::10'] })).get('2001:db8::10')?.channels,
        0,
      );

      // A read-only handle (the console's, the capture role's) answers the same.
      const reader = await openCaptureStore(spec, { readOnly: true });
      t.after(() => reader.close());
      assert.deepEqual(await reader.liveCalls({ sinceUs: T0 }), all);

      for (const bad of [
        { sinceUs: 1.5 },
        { sinceUs: T0, endpoints: [''] },
        { sinceUs: T0, endpoints: 'x' },
      ]) {
        await assert.rejects(s.liveCalls(bad as never), { code: 'SY_ERR_INVALID_ARGUMENT' });
      }
    });

    it('store - a second handle reads what the first wrote; a read-only one refuses writes', async (t) => {
      const spec = await b.freshSpec();
      const writer = await openCaptureStore(spec);
      t.after(() => writer.close());
      await writer.insertBatch(call({ callId: 'shared' }, 0));
      const reader = await openCaptureStore(spec, { readOnly: true });
      t.after(() => reader.close());
      assert.equal((await reader.getCall('shared'))?.status, 'answered');
      await assert.rejects(reader.insertBatch(call({ callId: 'x' }, 0)), { code: 'SY_ERR_INVALID_ARGUMENT' });
      // Opening the same schema again is a no-op.
      const again = await openCaptureStore(spec);
      assert.equal((await again.stats()).calls, 1);
      await again.close();
      await assert.rejects(again.getCall('shared'), { code: 'SY_ERR_CLOSED' });
    });
  });
}

conformance('sqlite', sqliteBackend);
conformance('postgres', postgresBackend);
