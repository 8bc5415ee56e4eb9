import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { createEmbeddedStore } from '../../../src/registry/embedded-store.ts';
import { KeyKind, keyFor } from '../../../src/registry/keys.ts';
import { createRegistry } from '../../../src/registry/registry.ts';
import type { RegistryView } from '../../../src/registry/view.ts';

const logger = createSilentLogger();
const startedAt = '2026-11-22T00:00:00.000Z';
const node = (id: string, port = 5060) => ({
  id,
  uri: `sip:127.0.0.1:${port}`,
  state: 'ready' as const,
  startedAt,
});

async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 3000,
) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An embedded store reached through a symlink the test can point elsewhere (an outage). */
async function setup(t: TestContext, storeOpts: { pollIntervalMs?: number } = {}) {
  const base = mkdtempSync(join(tmpdir(), 'switchyard-reg-unit-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const real = join(base, 'real');
  mkdirSync(real);
  const link = join(base, 'reg');
  symlinkSync(real, link);
  const point = (target: string) => {
    symlinkSync(target, `${link}.tmp`);
    renameSync(`${link}.tmp`, link);
  };
  const store = await createEmbeddedStore({ path: join(link, 'r.db'), logger, ...storeOpts });
  /** The store notices the swap at its next file identity check (every 100 ms). */
  const noticed = () =>
    waitFor('store notices the outage', () =>
      store.ping().then(
        () => false,
        () => true,
      ),
    );
  t.after(() => store.close());
  const reg = createRegistry(store, { logger });
  t.after(() => reg.close());
  return {
    store,
    reg,
    realPath: join(real, 'r.db'),
    outage: async () => {
      point(join(base, 'nowhere'));
      await noticed();
    },
    restore: () => point(real),
  };
}

test('registry - refuses invalid input as programmer errors', async (t) => {
  const { reg, store } = await setup(t);
  assert.throws(() => createRegistry(store, { logger, prefix: 'no-slash' }), {
    code: 'SY_ERR_INVALID_ARGUMENT',
  });
  assert.throws(() => createRegistry(store, { logger, prefix: '/trailing/' }), {
    code: 'SY_ERR_INVALID_ARGUMENT',
  });
  await assert.rejects(reg.announce({ ...node('as1'), uri: 'sip:1.2.3.4;weight=100' }, { ttlMs: 1000 }), {
    code: 'SY_ERR_INVALID_ARGUMENT',
  });
  await assert.rejects(reg.announce(node('a;b'), { ttlMs: 1000 }), { code: 'SY_ERR_INVALID_ARGUMENT' });
  await assert.rejects(reg.announce(node('as1'), { ttlMs: 0 }), { code: 'SY_ERR_INVALID_ARGUMENT' });
  await assert.rejects(
    reg.announce(
      {
        ...node('as1'),
        stats: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, 'v'.repeat(90)])),
      },
      { ttlMs: 1000 },
    ),
    { code: 'SY_ERR_INVALID_ARGUMENT' },
    'a record too large to decode is refused before writing',
  );
  await assert.rejects(reg.putStatic({ id: 'x y', uri: 'sip:a' }), { code: 'SY_ERR_INVALID_ARGUMENT' });
  await assert.rejects(reg.getIntent('../etc'), { code: 'SY_ERR_INVALID_ARGUMENT' });
  assert.deepEqual((await store.list('/')).entries, [], 'nothing was written');
});

test('registry - one announcement per node id; update validates and keeps the id', async (t) => {
  const { reg } = await setup(t);
  const a = await reg.announce(node('as1'), { ttlMs: 1000 });
  await assert.rejects(reg.announce(node('as1'), { ttlMs: 1000 }), { code: 'SY_ERR_INVALID_ARGUMENT' });
  await assert.rejects(a.update({ id: 'as2' }), { code: 'SY_ERR_INVALID_ARGUMENT' });
  await assert.rejects(a.update({ weight: 1000 }), { code: 'SY_ERR_INVALID_ARGUMENT' });
  await a.update({ state: 'draining' });
  assert.equal(a.current().state, 'draining');
  await a.withdraw();
  await assert.rejects(a.update({ state: 'ready' }), { code: 'SY_ERR_CLOSED' });
  // Withdrawn: the id can be announced again.
  const again = await reg.announce(node('as1'), { ttlMs: 1000 });
  again.release();
});

test('registry - announce during an outage keeps trying until aborted, leaving nothing behind', async (t) => {
  const { reg, store, outage, restore } = await setup(t);
  await outage();
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error('gave up')), 300);
  await assert.rejects(reg.announce(node('as1'), { ttlMs: 1000, signal: ac.signal }), /gave up/);
  restore();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await store.get(keyFor(reg.prefix, KeyKind.node, 'as1')), undefined);
  // Without a signal it waits for the registry to come back.
  await outage();
  const pending = reg.announce(node('as2'), { ttlMs: 1000 });
  await new Promise((r) => setTimeout(r, 250));
  restore();
  const a = await pending;
  assert.ok(await store.get(keyFor(reg.prefix, KeyKind.node, 'as2')));
  await a.withdraw();
});

test('registry - a disconnect keeps the last view untouched (fail-static is the caller call)', async (t) => {
  const { reg, outage, restore } = await setup(t);
  const a = await reg.announce(node('as1'), { ttlMs: 5000 });
  t.after(() => a.withdraw().catch(() => undefined));
  const connection: boolean[] = [];
  const views: RegistryView[] = [];
  const w = await reg.watchView((v) => views.push(v), { onConnection: (c) => connection.push(c) });
  const before = w.current();
  assert.equal(before.nodes.size, 1);
  await outage();
  await waitFor('disconnected', () => connection.includes(false));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(w.current(), before, 'same view object while away');
  assert.equal(views.length, 0);
  restore();
  await waitFor('connected again', () => connection.at(-1) === true);
  await a.update({ calls: 5 });
  await waitFor('change after recovery', () => w.current().nodes.get('as1')?.calls === 5);
});

test('registry - a view that fell behind trimmed history is re-read whole, atomically', async (t) => {
  const { reg, store, outage, restore, realPath } = await setup(t, {});
  await reg.putStatic({ id: 's1', uri: 'sip:10.0.0.1' });
  const views: RegistryView[] = [];
  const connection: boolean[] = [];
  const w = await reg.watchView((v) => views.push(v), { onConnection: (c) => connection.push(c) });
  assert.ok(w.current().statics.has('s1'));
  await outage();
  await waitFor('disconnected', () => connection.includes(false));
  // Meanwhile another process changes things and the history it would need is trimmed.
  const other = await createEmbeddedStore({ path: realPath, logger, historyLimit: 2 });
  try {
    const otherReg = createRegistry(other, { logger });
    await otherReg.putStatic({ id: 's2', uri: 'sip:10.0.0.2' });
    await otherReg.removeStatic('s1');
    for (let i = 0; i < 3; i++) await otherReg.setIntent('s2', { weight: 10 + i });
    await otherReg.close();
  } finally {
    await other.close();
  }
  restore();
  await waitFor('re-read view', () => w.current().statics.has('s2') && !w.current().statics.has('s1'));
  assert.equal(w.current().intents.get('s2')?.weight, 12);
  // Never a half-applied state: every view either has s1 without s2 or s2 without s1.
  for (const v of views) assert.notEqual(v.statics.has('s1'), v.statics.has('s2'));
  await store.put(
    keyFor(reg.prefix, KeyKind.static, 's3'),
    JSON.stringify({ id: 's3', uri: 'sip:a', addedAt: startedAt }),
  );
  await waitFor('watching again', () => w.current().statics.has('s3'));
});
