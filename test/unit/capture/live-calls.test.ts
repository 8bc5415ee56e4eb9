import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createCaptureCallSource,
  createLiveCallsPoller,
  normalizeLiveEndpoint,
} from '../../../src/capture/live-calls.ts';
import type { LiveCallCount, LiveCallsQuery } from '../../../src/capture/model.ts';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { waitFor } from '../../harness/wait.ts';
import { captureLogger } from '../agent/helpers.ts';

/** The poller against a fake store (the stores themselves: capture-store-conformance). */

const count = (channels: number, calls = channels, ringing = 0): LiveCallCount => ({
  channels,
  calls,
  ringing,
});

function fakeStore() {
  const counts = new Map<string, LiveCallCount>();
  const queries: LiveCallsQuery[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let delayMs = 0;
  let failWith: Error | undefined;
  return {
    counts,
    queries,
    maxInFlight: () => maxInFlight,
    setDelay(ms: number) {
      delayMs = ms;
    },
    fail(err: Error | undefined) {
      failWith = err;
    },
    async liveCalls(q: LiveCallsQuery): Promise<Map<string, LiveCallCount>> {
      queries.push(q);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        if (failWith) throw failWith;
        const out = new Map<string, LiveCallCount>();
        for (const e of q.endpoints ?? counts.keys()) {
          const c = counts.get(e);
          if (c) out.set(e, c);
        }
        return out;
      } finally {
        inFlight--;
      }
    },
  };
}

test('live calls - a source counts its endpoint, from now minus the window, and notifies changes only', async (t) => {
  const store = fakeStore();
  store.counts.set('192.0.2.5:5060', count(2, 1));
  const nowMs = 1_750_000_000_000;
  const source = createCaptureCallSource({
    store,
    endpoint: '192.0.2.5:5060',
    pollIntervalMs: 5,
    windowMs: 60_000,
    logger: createSilentLogger(),
    now: () => nowMs,
  });
  t.after(() => source.close());
  assert.equal(source.kind, 'capture');
  assert.equal(source.calls(), undefined, 'not counted before the first poll');
  let changes = 0;
  source.onChange(() => changes++);
  await waitFor(() => source.calls() !== undefined, { what: 'first count' });
  assert.deepEqual(source.calls(), { calls: 1, channels: 2 });
  assert.deepEqual(store.queries[0], { sinceUs: (nowMs - 60_000) * 1000, endpoints: ['192.0.2.5:5060'] });
  const polls = store.queries.length;
  await waitFor(() => store.queries.length >= polls + 3, { what: 'more polls' });
  assert.equal(changes, 1, 'an unchanged count notifies nobody');
  store.counts.delete('192.0.2.5:5060');
  await waitFor(() => changes === 2, { what: 'change to zero' });
  assert.deepEqual(source.calls(), { calls: 0, channels: 0 });
});

test('live calls - one query per poll for many endpoints, never two in flight; IPv6 normalized', async (t) => {
  const store = fakeStore();
  store.setDelay(20);
  store.counts.set('[2001:db8::5]:5060', count(3));
  store.counts.set('192.0.2.6:5080', count(1));
  const poller = createLiveCallsPoller({ store, pollIntervalMs: 1, logger: createSilentLogger() });
  t.after(() => poller.close());
  const a = poller.sourceFor('[2001:DB8:0:0::5]:5060');
  const b = poller.sourceFor('192.0.2.6:5080');
  const b2 = poller.sourceFor('192.0.2.6:5080');
  assert.equal(a.endpoint, '[2001:db8::5]:5060');
  await waitFor(() => a.calls() !== undefined && b.calls() !== undefined, { what: 'both counted' });
  // Callers of pollNow during a poll share it.
  await Promise.all([poller.pollNow(), poller.pollNow(), poller.pollNow()]);
  assert.equal(store.maxInFlight(), 1);
  const last = store.queries.at(-1);
  assert.deepEqual([...(last?.endpoints ?? [])].sort(), ['192.0.2.6:5080', '[2001:db8::5]:5060']);
  assert.deepEqual(a.calls(), { calls: 3, channels: 3 });
  assert.deepEqual(b2.calls(), { calls: 1, channels: 1 });
  // One source of a shared endpoint closing leaves the other counting.
  b.close();
  assert.equal(b.calls(), undefined);
  await poller.pollNow();
  assert.ok(store.queries.at(-1)?.endpoints?.includes('192.0.2.6:5080'));
  b2.close();
  a.close();
  await poller.pollNow();
  const n = store.queries.length;
  await poller.pollNow();
  assert.equal(store.queries.length, n, 'no endpoints: no query');
});

test('live calls - a failing store is logged once, the last count kept; never counted stays undefined', async (t) => {
  const store = fakeStore();
  store.counts.set('192.0.2.7:5060', count(4));
  const { logger, lines } = captureLogger();
  const poller = createLiveCallsPoller({ store, pollIntervalMs: 2, logger });
  t.after(() => poller.close());
  const known = poller.sourceFor('192.0.2.7:5060');
  await waitFor(() => known.calls() !== undefined, { what: 'first count' });
  store.fail(new Error('database is away'));
  const late = poller.sourceFor('192.0.2.8:5060');
  const n = store.queries.length;
  await waitFor(() => store.queries.length >= n + 5, { what: 'failing polls' });
  assert.deepEqual(known.calls(), { calls: 4, channels: 4 }, 'last count kept');
  assert.equal(late.calls(), undefined, 'never counted');
  const warned = lines.filter(
    (l) => l.msg === 'live calls from capture unavailable; keeping the last counts',
  );
  assert.equal(warned.length, 1);
  store.fail(undefined);
  await waitFor(() => late.calls() !== undefined, { what: 'count after recovery' });
  assert.deepEqual(late.calls(), { calls: 0, channels: 0 });
  assert.equal(lines.filter((l) => l.msg === 'live calls from capture available again').length, 1);
});

test('live calls - close stops polling, and an answer in flight is ignored', async () => {
  const store = fakeStore();
  store.setDelay(30);
  store.counts.set('192.0.2.9:5060', count(1));
  const source = createCaptureCallSource({
    store,
    endpoint: '192.0.2.9:5060',
    pollIntervalMs: 1,
    logger: createSilentLogger(),
  });
  await waitFor(() => store.queries.length === 1, { what: 'first query sent' });
  source.close();
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(store.queries.length, 1, 'no poll after close');
  assert.equal(source.calls(), undefined);
});

test('live calls - endpoints must be ip:port (IPv6 in brackets)', () => {
  assert.equal(normalizeLiveEndpoint(' 10.0.0.2:5060 '), '10.0.0.2:5060');
  assert.equal(normalizeLiveEndpoint('[::FFFF:10.0.0.2]:5060'), '[::ffff:10.0.0.2]:5060');
  for (const bad of [
    '10.0.0.2',
    'pbx.example:5060',
    '2001:db8::1:5060',
    '[2001:db8::1]',
    '10.0.0.2:70000',
    '',
  ]) {
    assert.throws(() => normalizeLiveEndpoint(bad), { code: 'SY_ERR_INVALID_ARGUMENT' }, bad);
  }
  assert.throws(
    () => createLiveCallsPoller({ store: fakeStore(), pollIntervalMs: 0, logger: createSilentLogger() }),
    { code: 'SY_ERR_INVALID_ARGUMENT' },
  );
});
