import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { type Browser, chromium, type Page } from 'playwright-core';
import type { ClusterModel } from '../../src/console/model.ts';
import { requireBinaries } from '../harness/daemon.ts';
import { startUp, type UpInstance } from '../harness/up.ts';
import { waitFor } from '../harness/wait.ts';

/**
 * The newcomer's path, in a real browser: `switchyard up` in demo mode (real Kamailio, sipp
 * backends under agents, capture, console), Debian's Chromium driven by playwright-core.
 * The cluster page shows the nodes live; draining a node from the page moves new calls away
 * with none failing; a call's ladder opens. Also the CLI over the API (`status`,
 * `drain --wait`) against the same instance.
 *
 * With SCREENSHOT_DIR=DIR (npm run screenshots), each page is saved there as PNG.
 */

const CHROMIUM = '/usr/bin/chromium';
const BIN = resolve(import.meta.dirname, '../../bin/switchyard.js');
const SHOTS = process.env['SCREENSHOT_DIR'];
const run = promisify(execFile);

async function api<T>(up: UpInstance, path: string): Promise<T> {
  const res = await fetch(`${up.consoleUrl}${path}`, {
    headers: { authorization: `Bearer ${up.readToken}` },
  });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return (await res.json()) as T;
}

async function shot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: resolve(SHOTS, `${name}.png`), fullPage: true });
}

const text = async (page: Page, testId: string) =>
  ((await page.getByTestId(testId).textContent()) ?? '').trim();

describe('console in a browser against switchyard up (demo)', { timeout: 180_000 }, () => {
  let up: UpInstance;
  let browser: Browser;
  let page: Page;

  before(async () => {
    requireBinaries('kamailio', 'sipp', 'chromium');
    up = await startUp({ callsPerSecond: 4, callDurationMs: 3000 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // Root in CI: Chromium's sandbox needs an unprivileged user.
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  });

  after(async () => {
    await browser?.close();
    await up?.dispose();
  });

  test('console - the sign-in link opens the cluster page with every demo node, live', async () => {
    await page.goto(up.loginUrl);
    assert.equal(new URL(page.url()).pathname, '/');
    for (const id of ['demo-1', 'demo-2', 'demo-3']) await page.getByTestId(`node-row-${id}`).waitFor();
    await waitFor(async () => (await text(page, 'live-status')) === 'live', {
      timeoutMs: 10_000,
      what: 'the event stream to connect',
    });
    // Calls spread over the nodes: every node shows calls at some point, without a reload.
    const seen = new Set<string>();
    await waitFor(
      async () => {
        for (const id of ['demo-1', 'demo-2', 'demo-3']) {
          const n = Number(await text(page, `node-calls-${id}`));
          if (n > 0) seen.add(id);
        }
        return seen.size === 3;
      },
      { timeoutMs: 20_000, what: 'calls on every node (live updates)' },
    );
    await shot(page, 'cluster');
  });

  test('console - draining a node from the page moves new calls away and none fail', async () => {
    const failedBefore = (await api<ClusterModel>(up, '/api/v1/cluster')).generator?.failed ?? 0;
    await page.getByTestId('drain-demo-2').click();
    await waitFor(async () => /drain/.test(await text(page, 'node-state-demo-2')), {
      timeoutMs: 10_000,
      what: 'the node state to change on the page',
    });
    await page.getByTestId('drain-progress-demo-2').waitFor();
    await waitFor(async () => (await text(page, 'node-calls-demo-2')) === '0', {
      timeoutMs: 15_000,
      what: "the drained node's calls to reach 0 on the page",
    });
    await shot(page, 'cluster-draining');
    // New calls keep flowing to the others.
    const placed = (await api<ClusterModel>(up, '/api/v1/cluster')).generator?.attempted ?? 0;
    await waitFor(
      async () => ((await api<ClusterModel>(up, '/api/v1/cluster')).generator?.attempted ?? 0) > placed + 4,
      {
        timeoutMs: 10_000,
        what: 'more demo calls',
      },
    );
    const now = await api<ClusterModel>(up, '/api/v1/cluster');
    const node2 = now.nodes.find((n) => n.id === 'demo-2');
    assert.equal(node2?.calls, 0, 'no new calls on the drained node');
    assert.equal(node2?.drain?.state, 'done');
    // Why a call failed, if one did: SIPp's own words, from up's log.
    const why = () =>
      `failed before the drain: ${failedBefore}\n${readFileSync(resolve(up.dataDir, 'up.log'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('demo-caller'))
        .slice(-20)
        .join('\n')}`;
    assert.equal(now.generator?.failed, failedBefore, `no demo call failed during the drain; ${why()}`);
    await page.getByTestId('undrain-demo-2').click();
    await waitFor(async () => (await text(page, 'node-state-demo-2')) === 'in rotation', {
      timeoutMs: 10_000,
      what: 'demo-2 back in rotation',
    });
  });

  test("console - a call's page shows its ladder, and the events page the operator's actions", async () => {
    await page.goto(`${up.consoleUrl}/calls?status=answered`);
    const first = page.locator('[data-testid^="call-row-"]').first();
    await first.waitFor();
    await shot(page, 'calls');
    await first.click();
    await page.getByTestId('ladder').locator('svg').waitFor();
    const ladder = (await page.getByTestId('ladder').innerHTML()) ?? '';
    for (const label of ['INVITE', '200 OK', 'ACK'])
      assert.ok(ladder.includes(label), `ladder shows ${label}`);
    await shot(page, 'call');
    await page.goto(`${up.consoleUrl}/events`);
    await page.getByTestId('event-row').first().waitFor();
    const events = await page.getByTestId('event-row').allTextContents();
    assert.ok(
      events.some((e) => e.includes('operator.drain') && e.includes('admin')),
      'drain by admin logged',
    );
    await shot(page, 'events');
  });

  test('cli - status and drain --wait over the console API', async () => {
    const flags = ['--api', up.consoleUrl, '--token-file', resolve(up.dataDir, 'console/admin.token')];
    const status = await run(process.execPath, [BIN, 'status', ...flags]);
    for (const id of ['demo-1', 'demo-2', 'demo-3'])
      assert.match(status.stdout, new RegExp(`^${id}\\s`, 'm'));
    const drain = await run(process.execPath, [
      BIN,
      'drain',
      'demo-3',
      '--wait',
      '--timeout',
      '30s',
      ...flags,
    ]);
    assert.match(drain.stdout, /demo-3: drained, 0 calls/);
    assert.match(drain.stderr, /draining demo-3 \[#+\] 0 calls left/);
    await run(process.execPath, [BIN, 'undrain', 'demo-3', ...flags]);
    // Read-only tokens cannot change anything.
    const denied = await run(process.execPath, [
      BIN,
      'drain',
      'demo-1',
      '--api',
      up.consoleUrl,
      '--token-file',
      resolve(up.dataDir, 'console/read.token'),
    ]).catch((err: { code: number; stderr: string }) => err);
    assert.equal((denied as { code: number }).code, 1);
    assert.match((denied as { stderr: string }).stderr, /read-only/);
  });

  test('up - Ctrl-C stops everything cleanly', async () => {
    const { code, ms } = await up.stop();
    assert.equal(code, 0, up.output().slice(-2000));
    assert.ok(ms < 30_000, `stopped in ${ms} ms`);
    assert.match(up.output(), /stopped\./);
  });
});
