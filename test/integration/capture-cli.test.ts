import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CallSummary } from '../../src/capture/model.ts';
import { encodeHep } from '../../src/proto/hep.ts';
import { waitFor } from '../harness/wait.ts';

/**
 * `switchyard capture` as an operator runs it: the CLI in a child process on ephemeral loopback
 * ports, fed hand-made HEP (a call answered, one failed, older ones), then `calls` and `trace`
 * reading the same SQLite store, and the capture's own /readyz. Needs no SIP daemon.
 */

const MAIN = resolve(import.meta.dirname, '../../src/cli/main.ts');
const CALLER = '127.0.0.11';
const PROXY = '127.0.0.12';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir: string;
let store: string;
let capture: ChildProcess | undefined;
let captureLog = '';
let adminUrl: string;
let captureExit: Promise<number | null>;
/** Base time of the recent calls: a minute ago, whole second. */
const t0 = Math.floor(Date.now() / 1000) - 60;

/** Nothing from the developer's environment but PATH: SWITCHYARD_* would change the config. */
function env(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, ...extra };
}

function run(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { cwd: dir, env: env(extraEnv), timeout: 30_000, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        done({ code, stdout, stderr });
      },
    );
  });
}

async function ok(args: string[]): Promise<string> {
  const r = await run(args);
  assert.equal(r.code, 0, `switchyard ${args.join(' ')} failed:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

interface SipLine {
  /** Request line, or a status line's code and reason. */
  start: string;
  callId: string;
  cseq: string;
  from: string;
  to: string;
  toTag?: string;
  /** Milliseconds after `baseSec`. */
  atMs: number;
  baseSec: number;
  /** Sent by the caller (to the proxy) or the other way. */
  fromCaller: boolean;
}

function hep(m: SipLine): Uint8Array {
  const payload = [
    m.start,
    `Via: SIP/2.0/UDP ${CALLER}:5060;branch=z9hG4bK-${m.cseq.replace(' ', '-')}`,
    `From: <sip:${m.from}@example.com>;tag=caller`,
    `To: <sip:${m.to}@example.com>${m.toTag === undefined ? '' : `;tag=${m.toTag}`}`,
    `Call-ID: ${m.callId}`,
    `CSeq: ${m.cseq}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const [src, dst] = m.fromCaller ? [CALLER, PROXY] : [PROXY, CALLER];
  return encodeHep({
    srcIp: src,
    dstIp: dst,
    srcPort: 5060,
    dstPort: 5060,
    tsSec: m.baseSec + Math.floor(m.atMs / 1000),
    tsUsec: (m.atMs % 1000) * 1000,
    captureId: 42,
    payload,
  });
}

/** The messages of one INVITE transaction and what follows it, as [start line, ms, from caller]. */
function call(
  callId: string,
  from: string,
  to: string,
  baseSec: number,
  flow: Array<[string, number, boolean]>,
): Uint8Array[] {
  return flow.map(([start, atMs, fromCaller]) => {
    const method = /^[A-Z]+ /.test(start) && !start.startsWith('SIP/') ? (start.split(' ')[0] as string) : '';
    const isBye = method === 'BYE' || start.endsWith('#bye');
    const line = start.replace('#bye', '');
    const cseq = isBye ? '2 BYE' : method === 'ACK' ? '1 ACK' : '1 INVITE';
    const toTag = line.startsWith('INVITE') || line.startsWith('SIP/2.0 100') ? undefined : 'callee';
    return hep({
      start: line,
      callId,
      cseq,
      from,
      to,
      atMs,
      baseSec,
      fromCaller,
      ...(toTag === undefined ? {} : { toTag }),
    });
  });
}

const invite = (to: string) => `INVITE sip:${to}@example.com SIP/2.0`;
const ack = (to: string) => `ACK sip:${to}@example.com SIP/2.0`;
const bye = (to: string) => `BYE sip:${to}@example.com SIP/2.0`;

const ANSWERED = call('cli-answered@test', '4930123', '4930999', t0, [
  [invite('4930999'), 0, true],
  ['SIP/2.0 100 Trying', 10, false],
  ['SIP/2.0 180 Ringing', 50, false],
  ['SIP/2.0 200 OK', 200, false],
  [ack('4930999'), 210, true],
  [bye('4930999'), 2200, true],
  ['SIP/2.0 200 OK#bye', 2210, false],
]);
const FAILED = call('cli-failed@test', '555', '4930777', t0 + 5, [
  [invite('4930777'), 0, true],
  ['SIP/2.0 100 Trying', 10, false],
  ['SIP/2.0 503 Service Unavailable', 30, false],
  [ack('4930777'), 40, true],
]);
const simple = (callId: string, baseSec: number) =>
  call(callId, '111', '222', baseSec, [
    [invite('222'), 0, true],
    ['SIP/2.0 200 OK', 100, false],
    [ack('222'), 110, true],
  ]);
/** Inside the default `calls` window (1 h), outside `--since 5m`. */
const HALF_HOUR = simple('cli-half-hour@test', t0 - 30 * 60);
/** Outside both. */
const TWO_HOURS = simple('cli-two-hours@test', t0 - 2 * 3600);
const TOTAL = ANSWERED.length + FAILED.length + HALF_HOUR.length + TWO_HOURS.length;

async function readyz(): Promise<{ status: string; checks: Record<string, unknown> }> {
  return (await (await fetch(`${adminUrl}/readyz`)).json()) as {
    status: string;
    checks: Record<string, unknown>;
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sy-capture-cli-'));
  store = `sqlite:${join(dir, 'capture.db')}`;
  const child = spawn(
    process.execPath,
    [
      MAIN,
      'capture',
      '--listen',
      'udp://127.0.0.1:0,tcp://127.0.0.1:0',
      '--store',
      store,
      '--admin-port',
      '0',
    ],
    { cwd: dir, env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  capture = child;
  captureExit = new Promise((r) => child.once('exit', (code) => r(code)));
  child.stdout?.on('data', (b: Buffer) => {
    captureLog += b.toString('utf8');
  });
  child.stderr?.on('data', (b: Buffer) => {
    captureLog += b.toString('utf8');
  });
  // The JSON log line says where it listens (every port was 0: no port race with other tests).
  const started = await waitFor(
    () =>
      captureLog
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map(
          (l) =>
            JSON.parse(l) as {
              msg: string;
              admin?: string;
              listen?: Array<{ transport: string; port: number }>;
            },
        )
        .find((l) => l.msg === 'capture started'),
    { what: `switchyard capture to start (log so far: ${captureLog})`, timeoutMs: 20_000 },
  );
  adminUrl = started.admin ?? assert.fail('admin URL in the log');
  const udpPort = started.listen?.find((l) => l.transport === 'udp')?.port ?? 0;
  const tcpPort = started.listen?.find((l) => l.transport === 'tcp')?.port ?? 0;

  // The failed call over UDP, the rest over one TCP stream.
  const udp = createSocket('udp4');
  for (const p of FAILED)
    await new Promise<void>((r, j) => udp.send(p, udpPort, '127.0.0.1', (e) => (e ? j(e) : r())));
  udp.close();
  const tcp = connect(tcpPort, '127.0.0.1');
  await new Promise((r) => tcp.once('connect', r));
  await new Promise<void>((r) =>
    tcp.end(Buffer.concat([...ANSWERED, ...HALF_HOUR, ...TWO_HOURS]), () => r()),
  );
  await waitFor(async () => (await readyz()).checks['messages'] === TOTAL, {
    what: `${TOTAL} messages stored`,
    timeoutMs: 10_000,
  });
});

after(async () => {
  if (capture?.exitCode === null && capture.signalCode === null) capture.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('switchyard capture, calls and trace', () => {
  it('/readyz of the capture says what the store keeps', async () => {
    const r = await readyz();
    assert.equal(r.status, 'ok');
    assert.equal(r.checks['store'], 'sqlite');
    assert.equal(r.checks['calls'], 4);
    assert.ok(typeof r.checks['bytes'] === 'number' && r.checks['bytes'] > 0);
    assert.equal(r.checks['oldest'], new Date((t0 - 2 * 3600) * 1000).toISOString());
    assert.equal(r.checks['newest'], new Date((t0 + 5) * 1000 + 40).toISOString());
    // The default policy: 168 h, 10 GiB; no run yet (the first is a minute after the start).
    assert.deepEqual(r.checks['retention'], { maxAgeMs: 168 * 3_600_000, maxBytes: 10 * 1024 ** 3 });
  });

  it('calls --json lists the last hour, newest first, with status and timings', async () => {
    const calls = JSON.parse(await ok(['calls', '--store', store, '--json'])) as CallSummary[];
    assert.deepEqual(
      calls.map((c) => c.callId),
      ['cli-failed@test', 'cli-answered@test', 'cli-half-hour@test'],
    );
    const answered = calls[1];
    assert.equal(answered?.status, 'answered');
    assert.equal(answered?.finalStatus, 200);
    assert.equal(answered?.fromUser, '4930123');
    assert.equal(answered?.toUser, '4930999');
    assert.equal(answered?.setupDelayUs, 50_000, 'INVITE to 180');
    assert.equal(answered?.durationUs, 2_000_000, '200 to BYE');
    assert.equal(answered?.messageCount, 7);
    assert.deepEqual(answered?.captureIds, [42]);
    assert.deepEqual(answered?.endpoints.sort(), [`${CALLER}:5060`, `${PROXY}:5060`]);
  });

  it('calls --number, --since and --status filter', async () => {
    const byNumber = JSON.parse(
      await ok(['calls', '--store', store, '--number', '4930123', '--json']),
    ) as CallSummary[];
    assert.deepEqual(
      byNumber.map((c) => c.callId),
      ['cli-answered@test'],
    );
    // The called number matches too.
    const byCalled = JSON.parse(
      await ok(['calls', '--store', store, '--number', '4930777', '--json']),
    ) as CallSummary[];
    assert.deepEqual(
      byCalled.map((c) => c.callId),
      ['cli-failed@test'],
    );

    const table = await ok(['calls', '--store', store, '--since', '5m']);
    const [head, ...rows] = table.trimEnd().split('\n');
    assert.match(head ?? '', /started\s+from\s+to\s+status\s+code\s+setup\s+duration\s+msgs\s+call-id/);
    assert.equal(rows.length, 2, table);
    assert.match(rows[0] ?? '', /555\s+4930777\s+failed\s+503\s+-\s+-\s+4\s+cli-failed@test/);
    assert.match(
      rows[1] ?? '',
      /4930123\s+4930999\s+answered\s+200\s+50 ms\s+2\.0 s\s+7\s+cli-answered@test/,
    );

    const failed = JSON.parse(
      await ok(['calls', '--store', store, '--status', 'failed', '--json']),
    ) as CallSummary[];
    assert.deepEqual(
      failed.map((c) => [c.callId, c.status, c.finalStatus]),
      [['cli-failed@test', 'failed', 503]],
    );
    const bad = await run(['calls', '--store', store, '--status', 'lost']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid --status "lost"/);
  });

  it('trace draws the ladder in the terminal by default', async () => {
    const out = await ok(['trace', 'cli-answered@test', '--store', store]);
    const [head, ...lines] = out.trimEnd().split('\n');
    assert.equal(head, 'cli-answered@test: 4930123 -> 4930999, answered 200, 7 messages');
    const arrow = (at: string, from: string, to: string, label: string) =>
      new RegExp(
        `^\\s+\\+${at.replace('.', '\\.')}\\s+${from}:5060\\s+->\\s+${to}:5060\\s+${label.replace(/[()]/g, '\\$&')}$`,
      );
    assert.equal(lines.length, 7);
    assert.match(lines[0] ?? '', arrow('0.000', CALLER, PROXY, 'INVITE'));
    assert.match(lines[2] ?? '', arrow('0.050', PROXY, CALLER, '180 (INVITE)'));
    assert.match(lines[3] ?? '', arrow('0.200', PROXY, CALLER, '200 (INVITE)'));
    assert.match(lines[5] ?? '', arrow('2.200', CALLER, PROXY, 'BYE'));
    assert.match(lines[6] ?? '', arrow('2.210', PROXY, CALLER, '200 (BYE)'));
  });

  it('trace --text prints every message as captured; --svg writes the ladder', async () => {
    const text = await ok(['trace', 'cli-failed@test', '--store', store, '--text']);
    assert.match(text, /INVITE sip:4930777@example\.com SIP\/2\.0/);
    assert.match(text, /SIP\/2\.0 503 Service Unavailable/);
    assert.equal((text.match(/Call-ID: cli-failed@test/g) ?? []).length, 4);

    const file = join(dir, 'ladder.svg');
    const r = await run(['trace', 'cli-answered@test', '--store', store, '--svg', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '', 'the file only: no ladder on stdout');
    assert.match(r.stderr, /wrote the ladder of 7 messages to/);
    const svg = readFileSync(file, 'utf8');
    assert.match(svg, /^<svg /);
    assert.equal((svg.match(/class="message"/g) ?? []).length, 7);
    assert.ok(svg.includes(`${CALLER}:5060`) && svg.includes(`${PROXY}:5060`));
  });

  it('stops on SIGTERM with exit 0', async () => {
    capture?.kill('SIGTERM');
    assert.equal(await captureExit, 0, captureLog);
    assert.match(captureLog, /"msg":"capture stopped"/);
  });
});

describe('switchyard capture configuration', () => {
  it('--print-config redacts the store password and the auth key', async () => {
    const r = await run(
      ['capture', '--print-config', '--store', 'postgres://capture:pg-pass-123@db.example:5432/capture'],
      { SWITCHYARD_AUTH_KEY: 'hep-key-456' },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^store: postgres:\/\/capture:\[redacted\]@db\.example:5432\/capture$/m);
    assert.match(r.stdout, /^authKey: "\[redacted\]"$/m);
    assert.ok(!r.stdout.includes('pg-pass-123') && !r.stderr.includes('pg-pass-123'));
    assert.ok(!r.stdout.includes('hep-key-456') && !r.stderr.includes('hep-key-456'));
    assert.match(r.stdout, /^listen: udp:\/\/127\.0\.0\.1:9060,tcp:\/\/127\.0\.0\.1:9060$/m);
  });

  it('a bad --listen exits 2 with the expected form, before opening anything', async () => {
    for (const listen of ['udp://127.0.0.1', 'tcp://127.0.0.1:70000']) {
      const r = await run(['capture', '--listen', listen, '--store', `sqlite:${join(dir, 'never.db')}`]);
      assert.equal(r.code, 2, `${listen}: ${r.stderr}`);
      assert.match(r.stderr, /listen: comma-separated udp:\/\/host:port or tcp:\/\/host:port/);
    }
    assert.throws(() => readFileSync(join(dir, 'never.db')), /ENOENT/);
  });
});
