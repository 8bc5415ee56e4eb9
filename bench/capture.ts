/**
 * npm run bench:capture — the HEP capture server into SQLite, on this 2-core machine.
 *
 * 1. Ingest: a replay generator sends HEP3 over UDP (calls of 7 SIP messages: INVITE, 100,
 *    180, 200, ACK, BYE, 200, each with its own Call-ID) at increasing rates for RUN_S seconds
 *    to `switchyard capture` running as its own process. A rate is sustained when every message
 *    sent is stored (kernel socket drops, queue overload and store failures all count as loss).
 *    Each rate runs REPEATS times; the result is the highest rate with zero loss in every repeat.
 *    Then one run of SUSTAIN_S seconds (default 40) at that rate, so that the store grows past
 *    a million messages while it runs: whether the rate holds as the file grows.
 * 2. Time to queryable: under a steady 10,000 messages/s, marker calls are sent one by one and
 *    the store is polled (read-only, as the CLI reads it) until each is found.
 * 3. Queries on 1,000,000 stored messages: one call (summary + its messages) by Call-ID, and a
 *    search by number, by status and by time.
 * 4. Bytes stored per message (database file and WAL over messages).
 *
 * Writes bench/results/capture.json and the `capture` block of docs/benchmarks.md.
 * Usage: node bench/capture.ts [--seconds S] (default 10) [--repeats N] (default 3)
 *        [--rates 10000,20000,...] [--queries N] (default 1000) [--only ingest]
 * BENCH_SERVER_NODE_FLAGS (e.g. --cpu-prof) is passed to the server's node, for profiling.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { CapturedMessage, CaptureStore } from '../src/capture/model.ts';
import { openCaptureStore } from '../src/capture/open-store.ts';
import { encodeHep } from '../src/proto/hep.ts';
import { freeTcpPort, freeUdpPort } from '../test/harness/ports.ts';
import { sleep } from '../test/harness/wait.ts';
import { replaceBlock, type Summary, summarize } from './stats.ts';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
};
const RUN_S = Number(arg('--seconds', '10'));
const REPEATS = Number(arg('--repeats', '3'));
const RATES = arg('--rates', '10000,20000,30000,40000,50000,60000').split(',').map(Number);
const QUERIES = Number(arg('--queries', '1000'));
/** One long run at the best rate: the store grows past a million messages while it runs. */
const SUSTAIN_S = Number(arg('--sustain-seconds', '40'));
const FILL_MESSAGES = 1_000_000;
const MAIN = resolve(import.meta.dirname, '../src/cli/main.ts');

// ---- a call's 7 messages, with a fixed-width Call-ID to patch in place --------------------------

const CALL_ID_WIDTH = 12;
const CALL_ID_MARK = 'X'.repeat(CALL_ID_WIDTH);

function sip(first: string, cseq: string, toTag: boolean, body = ''): string {
  return [
    first,
    'Via: SIP/2.0/UDP 10.1.0.10:5060;branch=z9hG4bK-bench-1;rport',
    'Max-Forwards: 70',
    'From: "Bench Caller" <sip:+4930555000@10.1.0.10>;tag=from-bench',
    `To: <sip:+4930999111@10.1.0.20>${toTag ? ';tag=to-bench' : ''}`,
    `Call-ID: ${CALL_ID_MARK}@bench.switchyard`,
    `CSeq: ${cseq}`,
    'Contact: <sip:+4930555000@10.1.0.10:5060>',
    'User-Agent: switchyard-bench',
    body ? 'Content-Type: application/sdp' : '',
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ]
    .filter((l, i, all) => l !== '' || i >= all.length - 2)
    .join('\r\n');
}

const SDP =
  'v=0\r\no=- 1 1 IN IP4 10.1.0.10\r\ns=-\r\nc=IN IP4 10.1.0.10\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n';
const CALL: Array<[string, boolean]> = [
  [sip('INVITE sip:+4930999111@10.1.0.20 SIP/2.0', '1 INVITE', false, SDP), true],
  [sip('SIP/2.0 100 Trying', '1 INVITE', false), false],
  [sip('SIP/2.0 180 Ringing', '1 INVITE', true), false],
  [sip('SIP/2.0 200 OK', '1 INVITE', true, SDP), false],
  [sip('ACK sip:+4930999111@10.1.0.20 SIP/2.0', '1 ACK', true), true],
  [sip('BYE sip:+4930999111@10.1.0.20 SIP/2.0', '2 BYE', true), true],
  [sip('SIP/2.0 200 OK', '2 BYE', true), false],
];

interface Template {
  bytes: Buffer;
  callIdAt: number;
  tsAt: number;
}

/** HEP packets of one call, with where to write the Call-ID digits and the timestamp. */
function templates(): Template[] {
  return CALL.map(([text, fromCaller]) => {
    const bytes = Buffer.from(
      encodeHep({
        srcIp: fromCaller ? '10.1.0.10' : '10.1.0.20',
        dstIp: fromCaller ? '10.1.0.20' : '10.1.0.10',
        srcPort: 5060,
        dstPort: 5060,
        tsSec: 0x7fff_fffe,
        tsUsec: 0x7fff_fffe,
        captureId: 1,
        payload: text,
      }),
    );
    return {
      bytes,
      callIdAt: bytes.indexOf(CALL_ID_MARK),
      tsAt: bytes.indexOf(Buffer.from([0x7f, 0xff, 0xff, 0xfe])),
    };
  });
}

function stamp(t: Template, callNo: number, runTag: string, nowUs: number): Buffer {
  t.bytes.write(
    `${runTag}${String(callNo).padStart(CALL_ID_WIDTH - runTag.length, '0')}`,
    t.callIdAt,
    'latin1',
  );
  t.bytes.writeUInt32BE(Math.floor(nowUs / 1e6), t.tsAt);
  t.bytes.writeUInt32BE(nowUs % 1e6, t.tsAt + 10); // chunk 10 follows chunk 9 (4 bytes + 6 header)
  return t.bytes;
}

// ---- the server under test ----------------------------------------------------------------------

interface Server {
  child: ChildProcess;
  hepPort: number;
  adminUrl: string;
  storeSpec: string;
  dir: string;
}

async function startServer(): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'sy-bench-capture-'));
  const hepPort = await freeUdpPort('127.0.0.1');
  const adminPort = await freeTcpPort('127.0.0.1');
  const storeSpec = `sqlite:${join(dir, 'capture.db')}`;
  const child = spawn(
    process.execPath,
    [
      ...(process.env['BENCH_SERVER_NODE_FLAGS'] ?? '').split(' ').filter(Boolean),
      MAIN,
      'capture',
      '--listen',
      `udp://127.0.0.1:${hepPort}`,
      '--store',
      storeSpec,
      '--admin-port',
      String(adminPort),
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } },
  );
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  for (let i = 0; i < 100; i++) {
    if ((await fetch(`${adminUrl}/readyz`).catch(() => undefined))?.ok)
      return { child, hepPort, adminUrl, storeSpec, dir };
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error('capture server did not become ready');
}

async function stopServer(s: Server): Promise<void> {
  s.child.kill('SIGTERM');
  await new Promise((r) => s.child.once('exit', r));
  rmSync(s.dir, { recursive: true, force: true });
}

async function counters(
  adminUrl: string,
): Promise<{ stored: number; received: number; dropped: number; queued: number }> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const sum = (re: RegExp) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
  return {
    stored: sum(/^switchyard_capture_messages_stored_total (\S+)$/gm),
    received: sum(/^switchyard_capture_packets_received_total\{[^}]*\} (\S+)$/gm),
    dropped: sum(/^switchyard_capture_dropped_total\{reason="(?!keepalive)[^"]*"\} (\S+)$/gm),
    queued: sum(/^switchyard_capture_queue_messages (\S+)$/gm),
  };
}

/** Sends `rate` messages/s for `seconds`, paced every 2 ms; returns how many were sent. */
async function replay(
  port: number,
  rate: number,
  seconds: number,
  runTag: string,
  firstCall = 0,
): Promise<number> {
  const sock = createSocket({ type: 'udp4', sendBufferSize: 4 * 1024 * 1024 });
  const t = templates();
  let sent = 0;
  let call = firstCall;
  let inCall = 0;
  const start = performance.now();
  const total = rate * seconds;
  await new Promise<void>((done) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
      const nowUs = Date.now() * 1000;
      while (sent < due) {
        sock.send(stamp(t[inCall] as Template, call, runTag, nowUs), port, '127.0.0.1');
        sent++;
        inCall++;
        if (inCall === t.length) {
          inCall = 0;
          call++;
        }
      }
      if (sent >= total) done();
      else setTimeout(tick, 2);
    };
    tick();
  });
  await new Promise<void>((r) => sock.close(() => r()));
  return sent;
}

type IngestRow = {
  rate: number;
  run: number;
  seconds: number;
  sent: number;
  stored: number;
  lost: number;
  drainMs: number;
};

/** One replay against a fresh server; counts what was stored once the queue has drained. */
async function ingestRun(rate: number, run: number, seconds: number): Promise<IngestRow> {
  const server = await startServer();
  try {
    const sent = await replay(server.hepPort, rate, seconds, `r${run}`);
    const sentAt = Date.now();
    let c = await counters(server.adminUrl);
    // Wait for the queue to drain (or stop moving).
    for (let last = -1; c.stored + c.dropped < c.received || c.queued > 0; ) {
      await sleep(200);
      c = await counters(server.adminUrl);
      if (c.stored === last && c.queued === 0) break;
      last = c.stored;
      if (Date.now() - sentAt > 120_000) break;
    }
    const lost = sent - c.stored;
    console.log(
      `ingest ${rate}/s for ${seconds} s, run ${run}: sent ${sent}, stored ${c.stored}, lost ${lost} (kernel ${sent - c.received}, counted ${c.dropped})`,
    );
    return { rate, run, seconds, sent, stored: c.stored, lost, drainMs: Date.now() - sentAt };
  } finally {
    await stopServer(server);
  }
}

async function measureIngest(): Promise<{ rows: IngestRow[]; best: number; sustained?: IngestRow }> {
  const rows: IngestRow[] = [];
  let best = 0;
  for (const rate of RATES) {
    let clean = true;
    for (let run = 1; run <= REPEATS && clean; run++) {
      const row = await ingestRun(rate, run, RUN_S);
      rows.push(row);
      clean = row.lost === 0;
    }
    if (!clean) break;
    best = rate;
  }
  if (best === 0 || SUSTAIN_S <= 0) return { rows, best };
  const sustained = await ingestRun(best, 1, SUSTAIN_S);
  return { rows, best, sustained };
}

async function measureQueryable(): Promise<number[]> {
  const server = await startServer();
  const reader = await openCaptureStore(server.storeSpec, { readOnly: true }).catch(async () => {
    await sleep(500);
    return openCaptureStore(server.storeSpec, { readOnly: true });
  });
  const samples: number[] = [];
  const marker = createSocket('udp4');
  try {
    const background = replay(server.hepPort, 10_000, 25, 'bg');
    await sleep(1000);
    for (let i = 0; i < 100; i++) {
      const callId = `marker-${i}@bench`;
      const packet = encodeHep({
        srcIp: '10.1.0.30',
        dstIp: '10.1.0.20',
        srcPort: 5060,
        dstPort: 5060,
        tsSec: Math.floor(Date.now() / 1000),
        tsUsec: 0,
        payload: CALL[0]?.[0].replace(`${CALL_ID_MARK}@bench.switchyard`, callId) ?? '',
      });
      const t0 = performance.now();
      marker.send(packet, server.hepPort, '127.0.0.1');
      while ((await reader.getCall(callId)) === undefined) {
        if (performance.now() - t0 > 10_000) throw new Error(`${callId} never became queryable`);
        await sleep(2);
      }
      samples.push(performance.now() - t0);
      await sleep(150);
    }
    await background;
  } finally {
    marker.close();
    await reader.close();
    await stopServer(server);
  }
  return samples;
}

async function measureQueries(): Promise<{
  one: number[];
  byNumber: number[];
  byStatus: number[];
  byTime: number[];
  bytesPerMessage: number;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'sy-bench-query-'));
  const spec = `sqlite:${join(dir, 'capture.db')}`;
  let store: CaptureStore | undefined;
  try {
    store = await openCaptureStore(spec);
    // One call in ten is busy (3 messages), the others answered (7): enough calls for FILL_MESSAGES.
    const calls = Math.ceil(FILL_MESSAGES / (0.9 * CALL.length + 0.1 * 3));
    const t0us = Date.now() * 1000 - calls * 10_000; // one call every 10 ms, ending now
    const numbers = 5000;
    let batch: CapturedMessage[] = [];
    for (let c = 0; c < calls; c++) {
      const callId = `fill-${c}@bench`;
      const ts = t0us + c * 10_000;
      const failed = c % 10 === 0;
      const texts = failed
        ? [CALL[0], CALL[1], [CALL[1]?.[0].replace('100 Trying', '486 Busy Here') ?? '', false]]
        : CALL;
      texts.forEach((entry, k) => {
        const [text, fromCaller] = entry as [string, boolean];
        const first = text.slice(0, text.indexOf('\r\n'));
        const status = /^SIP\/2\.0 (\d{3})/.exec(first)?.[1];
        const msg: CapturedMessage = {
          tsUs: ts + k * 1000,
          srcIp: fromCaller ? '10.1.0.10' : '10.1.0.20',
          srcPort: 5060,
          dstIp: fromCaller ? '10.1.0.20' : '10.1.0.10',
          dstPort: 5060,
          transport: 'udp',
          captureId: 1,
          callId,
          cseq: k >= 5 ? '2 BYE' : k === 4 ? '1 ACK' : '1 INVITE',
          fromUser: `+49305${String(c % numbers).padStart(6, '0')}`,
          toUser: '+4930999111',
          raw: Buffer.from(text.replace(`${CALL_ID_MARK}@bench.switchyard`, callId)),
        };
        if (status === undefined) msg.method = first.split(' ')[0] ?? 'INVITE';
        else msg.status = Number(status);
        batch.push(msg);
      });
      if (batch.length >= 5000) {
        await store.insertBatch(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await store.insertBatch(batch);
    const stats = await store.stats();
    console.log(`filled ${stats.messages} messages in ${stats.calls} calls`);
    const files = ['capture.db', 'capture.db-wal'].map((f) => {
      try {
        return statSync(join(dir, f)).size;
      } catch {
        return 0;
      }
    });
    const bytesPerMessage = Math.round(files.reduce((a, b) => a + b, 0) / stats.messages);
    const time = async (fn: () => Promise<unknown>) => {
      const t = performance.now();
      await fn();
      return performance.now() - t;
    };
    const s = store;
    const one: number[] = [];
    const byNumber: number[] = [];
    const byStatus: number[] = [];
    const byTime: number[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const id = `fill-${Math.floor(Math.random() * calls)}@bench`;
      one.push(
        await time(async () => {
          await s.getCall(id);
          await s.messagesOf([id]);
        }),
      );
    }
    for (let i = 0; i < Math.min(QUERIES, 300); i++) {
      const n = `+49305${String(Math.floor(Math.random() * numbers)).padStart(6, '0')}`;
      byNumber.push(await time(() => s.searchCalls({ number: n, limit: 50 })));
      byStatus.push(await time(() => s.searchCalls({ status: 'busy', limit: 50 })));
      const since = t0us + Math.floor(Math.random() * calls) * 10_000;
      byTime.push(
        await time(() => s.searchCalls({ sinceUs: since, untilUs: since + 60_000_000, limit: 100 })),
      );
    }
    return { one, byNumber, byStatus, byTime, bytesPerMessage };
  } finally {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  console.log(`bench capture: rates ${RATES.join(', ')} msg/s, ${RUN_S} s x ${REPEATS} each`);
  const ingest = await measureIngest();
  if (process.argv.includes('--only')) return;
  const queryable = await measureQueryable();
  const q = await measureQueries();
  const results: Record<string, Summary> = {
    'message sent -> queryable, under 10,000 msg/s (ms)': summarize(queryable),
    '1M messages: one call by Call-ID, summary + messages (ms)': summarize(q.one),
    '1M messages: search by number (ms)': summarize(q.byNumber),
    '1M messages: search by status (ms)': summarize(q.byStatus),
    '1M messages: search by time window (ms)': summarize(q.byTime),
  };
  const meta = {
    date: new Date().toISOString(),
    seconds: RUN_S,
    repeats: REPEATS,
    rates: RATES,
    sustainedZeroLoss: ingest.best,
    longRun: ingest.sustained ?? null,
    bytesPerMessage: q.bytesPerMessage,
  };
  await writeFile(
    new URL('./results/capture.json', import.meta.url),
    `${JSON.stringify({ meta, ingest: ingest.rows, results }, null, 2)}\n`,
  );
  const table = [
    `Run ${meta.date.slice(0, 16)}Z on the 2-core dev machine; \`switchyard capture\` as its own process, SQLite store; the generator on the same machine.`,
    '',
    `**Highest rate with zero loss in all ${REPEATS} runs of ${RUN_S} s: ${ingest.best.toLocaleString('en')} SIP messages/s.** ${
      ingest.sustained
        ? `Held for ${SUSTAIN_S} s (${ingest.sustained.sent.toLocaleString('en')} messages into one store): ${ingest.sustained.lost === 0 ? 'zero loss' : `${ingest.sustained.lost.toLocaleString('en')} lost (${((100 * ingest.sustained.lost) / ingest.sustained.sent).toFixed(1)} %)`}.`
        : ''
    } Stored: ${q.bytesPerMessage} bytes per message (database and WAL over messages, 1M messages of 7-message calls).`,
    '',
    '| rate (msg/s) | run | sent | stored | lost | drained after (ms) |',
    '| --- | --- | --- | --- | --- | --- |',
    ...ingest.rows.map(
      (r) => `| ${r.rate} | ${r.run} | ${r.sent} | ${r.stored} | ${r.lost} | ${r.drainMs} |`,
    ),
    '',
    '| measurement | n | p50 | p90 | p99 | max |',
    '| --- | --- | --- | --- | --- | --- |',
    ...Object.entries(results).map(
      ([name, s]) => `| ${name} | ${s.n} | ${s.p50} | ${s.p90} | ${s.p99} | ${s.max} |`,
    ),
  ].join('\n');
  const docUrl = new URL('../docs/benchmarks.md', import.meta.url);
  const doc = await readFile(docUrl, 'utf8');
  await writeFile(docUrl, replaceBlock(doc, 'capture', table));
  console.log(table);
}

await main();
