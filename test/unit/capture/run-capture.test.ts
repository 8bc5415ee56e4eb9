import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { captureConfigSchema } from '../../../src/capture/config.ts';
import { runCapture } from '../../../src/capture/index.ts';
import { createSilentLogger } from '../../../src/core/logger.ts';
import { encodeHep } from '../../../src/proto/hep.ts';

/**
 * The capture role as `switchyard capture` runs it (runCapture): its retention timer applying
 * the configured policy, and /readyz saying what the store keeps.
 */

const logger = createSilentLogger();
const HOUR_S = 3600;
const BIG_BODY_BYTES = 32 * 1024;

function hepMessage(callId: string, tsSec: number, bodyBytes = 0): Uint8Array {
  const body = 'x'.repeat(bodyBytes);
  return encodeHep({
    srcIp: '127.0.0.1',
    dstIp: '127.0.0.2',
    srcPort: 5060,
    dstPort: 5060,
    tsSec,
    tsUsec: 0,
    captureId: 4,
    payload: [
      'MESSAGE sip:bob@example.com SIP/2.0',
      'Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1',
      'From: <sip:alice@example.com>;tag=x',
      'To: <sip:bob@example.com>',
      `Call-ID: ${callId}`,
      'CSeq: 1 MESSAGE',
      `Content-Length: ${body.length}`,
      '',
      body,
    ].join('\r\n'),
  });
}

/** Sends over TCP (no kernel drops, whatever the packet size) and waits for the peer to close. */
async function tcpSend(port: number, packets: Uint8Array[]): Promise<void> {
  const sock = connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  await new Promise<void>((r) => sock.end(Buffer.concat(packets), () => r()));
  await new Promise((r) => sock.once('close', r));
}

interface Readyz {
  status: string;
  checks: {
    store: string;
    messages: number;
    calls: number;
    bytes: number;
    oldest?: string;
    newest?: string;
    queued: number;
    retention: {
      maxAgeMs?: number;
      maxBytes?: number;
      lastRun?: string;
      lastRemovedMessages?: number;
      lastRemovedCalls?: number;
      lastError?: string;
    };
  };
}

async function until<T>(check: () => Promise<T | undefined | false>, what: string, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('capture role - the retention timer removes by age (fractional hours) and by size (MiB); /readyz shows what is kept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-capture-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const capture = await runCapture(
    captureConfigSchema.parse({
      listen: 'tcp://127.0.0.1:0',
      store: `sqlite:${join(dir, 'capture.db')}`,
      admin: { port: 0 },
      batch: { maxDelayMs: 10 },
      // 1.1 h: 66 minutes, a value whose conversion to ms is not an integer in floating point.
      retention: { maxAgeHours: 1.1, maxSizeMb: 1, intervalMs: 1000 },
    }),
    { logger },
  );
  t.after(() => capture.stop());
  const port = capture.server.addresses[0]?.port ?? assert.fail('a TCP listener');
  const adminUrl = capture.adminUrl ?? assert.fail('an admin server');
  const readyz = async () => (await (await fetch(`${adminUrl}/readyz`)).json()) as Readyz;
  const now = Math.floor(Date.now() / 1000);

  const empty = await readyz();
  assert.equal(empty.status, 'ok');
  assert.equal(empty.checks.messages, 0);
  assert.equal(empty.checks.oldest, undefined);
  // The configured policy, converted: 1.1 h in ms, 1 MiB in bytes.
  assert.deepEqual(empty.checks.retention, { maxAgeMs: 3_960_000, maxBytes: 1_048_576 });

  // By age: 72 minutes old goes, 60 minutes old stays (in minutes or seconds, both would go).
  await tcpSend(port, [hepMessage('too-old', now - 72 * 60), hepMessage('old-but-kept', now - HOUR_S)]);
  await until(async () => {
    const r = await readyz();
    return r.checks.retention.lastRun !== undefined && r.checks.messages === 1 && r;
  }, 'a retention run that removed the 72-minute-old message');
  assert.equal(await capture.store.getCall('too-old'), undefined);
  assert.ok(await capture.store.getCall('old-but-kept'));
  const afterAge = await readyz();
  assert.equal(afterAge.checks.retention.lastError, undefined);
  assert.equal(afterAge.checks.calls, 1);
  assert.equal(afterAge.checks.oldest, new Date((now - HOUR_S) * 1000).toISOString());
  assert.equal(afterAge.checks.newest, afterAge.checks.oldest);
  assert.ok(afterAge.checks.bytes > 0);

  // By size: 40 calls of 32 KiB each (1.25 MiB), a second apart, oldest first.
  const big = Array.from({ length: 40 }, (_, i) => hepMessage(`big-${i}`, now - 60 + i, BIG_BODY_BYTES));
  await tcpSend(port, big);
  await until(async () => {
    await capture.server.flush();
    return (await capture.store.getCall('big-39')) !== undefined;
  }, 'the 40 calls stored');
  const trimmed = await until(async () => {
    const r = await readyz();
    return r.checks.calls < 41 && r.checks.bytes <= 1_048_576 && r;
  }, 'a retention run that brought the store under 1 MiB');
  const callBytes = (await capture.store.messagesOf(['big-39']))[0]?.raw.byteLength ?? 0;
  assert.ok(callBytes > BIG_BODY_BYTES);
  // Whole calls go, oldest first, only as many as needed: in MiB, not in MB (10^6 bytes).
  assert.ok(trimmed.checks.bytes > 1_048_576 - callBytes, `${trimmed.checks.bytes} bytes kept`);
  assert.equal(await capture.store.getCall('old-but-kept'), undefined, 'the oldest call went first');
  assert.ok(await capture.store.getCall('big-39'), 'the newest call stays');
  assert.equal(trimmed.checks.newest, new Date((now - 21) * 1000).toISOString());
  const kept = await capture.store.searchCalls({ limit: 100 });
  const oldestKept = Math.min(...kept.map((c) => c.firstTsUs));
  assert.equal(trimmed.checks.oldest, new Date(oldestKept / 1000).toISOString());
  assert.equal(trimmed.checks.retention.lastError, undefined);
});
