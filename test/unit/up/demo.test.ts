import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import type { GeneratorStatus } from '../../../src/console/model.ts';
import { findExecutable } from '../../../src/core/executables.ts';
import {
  type CallGeneratorStats,
  checkPrerequisites,
  createSippStatReader,
  DEMO_SCENARIO_DIR,
  demoBackendCommand,
  installPrerequisites,
  manualInstallCommand,
  parseSippStatHeader,
  parseSippStatLine,
} from '../../../src/up/demo.ts';

// Header and one data line as SIPp 3.6.1 (Debian's sip-tester) wrote them with -trace_stat.
const REAL_HEADER =
  'StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);TargetRate;CallRate(P);CallRate(C)' +
  ';IncomingCall(P);IncomingCall(C);OutgoingCall(P);OutgoingCall(C);TotalCallCreated;CurrentCall;Succes' +
  'sfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);FailedCannotSendMessage(P);FailedCannotSen' +
  'dMessage(C);FailedMaxUDPRetrans(P);FailedMaxUDPRetrans(C);FailedTcpConnect(P);FailedTcpConnect(C);Fa' +
  'iledTcpClosed(P);FailedTcpClosed(C);FailedUnexpectedMessage(P);FailedUnexpectedMessage(C);FailedCall' +
  'Rejected(P);FailedCallRejected(C);FailedCmdNotSent(P);FailedCmdNotSent(C);FailedRegexpDoesntMatch(P)' +
  ';FailedRegexpDoesntMatch(C);FailedRegexpShouldntMatch(P);FailedRegexpShouldntMatch(C);FailedRegexpHd' +
  'rNotFound(P);FailedRegexpHdrNotFound(C);FailedOutboundCongestion(P);FailedOutboundCongestion(C);Fail' +
  'edTimeoutOnRecv(P);FailedTimeoutOnRecv(C);FailedTimeoutOnSend(P);FailedTimeoutOnSend(C);FailedTestDo' +
  'esntMatch(P);FailedTestDoesntMatch(C);FailedTestShouldntMatch(P);FailedTestShouldntMatch(C);FailedSt' +
  'rcmpDoesntMatch(P);FailedStrcmpDoesntMatch(C);FailedStrcmpShouldntMatch(P);FailedStrcmpShouldntMatch' +
  '(C);OutOfCallMsgs(P);OutOfCallMsgs(C);DeadCallMsgs(P);DeadCallMsgs(C);Retransmissions(P);Retransmiss' +
  'ions(C);AutoAnswered(P);AutoAnswered(C);Warnings(P);Warnings(C);FatalErrors(P);FatalErrors(C);Watchd' +
  'ogMajor(P);WatchdogMajor(C);WatchdogMinor(P);WatchdogMinor(C);ResponseTime1(P);ResponseTime1(C);Resp' +
  'onseTime1StDev(P);ResponseTime1StDev(C);CallLength(P);CallLength(C);CallLengthStDev(P);CallLengthStD' +
  'ev(C);';
const REAL_LINE =
  '2026-12-01\t12:16:58.076195\t1796127418.076195;2026-12-01\t12:16:59.079565\t1796127419.079565;2026-12-01' +
  '\t12:17:00.082528\t1796127420.082528;00:00:01;00:00:02;2;1.99601;1.49551;0;0;2;3;3;1;2;2;0;0;0;0;0;0;0' +
  ';0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;00:00:00:' +
  '026000;00:00:00:026000;00:00:00:002000;00:00:00:002000;00:00:00:532000;00:00:00:532000;00:00:00:0000' +
  '00;00:00:00:000000;';

/** `line` with its field `at` (0-based) replaced. */
function withField(line: string, at: number, value: string): string {
  const fields = line.split(';');
  fields[at] = value;
  return fields.join(';');
}

// The generator's stats are the console's GeneratorStatus: a compile-time check.
const _sameShape: (s: CallGeneratorStats) => GeneratorStatus = (s) => s;
void _sameShape;

test('sipp stats - reads the counters of a real SIPp 3.6 line by column name', () => {
  const header = parseSippStatHeader(REAL_HEADER);
  assert.ok(header.ok);
  // OutgoingCall(C) is column 12 (1-based), CurrentCall 14, SuccessfulCall(C) 16, FailedCall(C) 18.
  assert.deepEqual(header.value, { created: 11, current: 13, successful: 15, failed: 17 });
  const line = parseSippStatLine(header.value, REAL_LINE);
  assert.deepEqual(line, { ok: true, value: { created: 3, current: 1, successful: 2, failed: 0 } });
});

test('sipp stats - falls back to TotalCallCreated when OutgoingCall(C) is absent', () => {
  const header = parseSippStatHeader('TotalCallCreated;CurrentCall;SuccessfulCall(C);FailedCall(C);');
  assert.deepEqual(header, { ok: true, value: { created: 0, current: 1, successful: 2, failed: 3 } });
});

test('sipp stats - a header without the counters is rejected with the missing names', () => {
  const header = parseSippStatHeader('StartTime;CurrentCall;');
  assert.equal(header.ok, false);
  assert.match(header.ok ? '' : header.reason, /OutgoingCall\(C\).*SuccessfulCall\(C\).*FailedCall\(C\)/);
});

test('sipp stats - malformed data lines are failures, not exceptions', () => {
  const header = parseSippStatHeader(REAL_HEADER);
  assert.ok(header.ok);
  for (const bad of ['', 'garbage', '1;2;3', withField(REAL_LINE, 13, 'x'), 'x'.repeat(20_000)]) {
    const result = parseSippStatLine(header.value, bad);
    assert.equal(result.ok, false, JSON.stringify(bad.slice(0, 40)));
  }
  // A negative or fractional counter is not a count.
  const cols = { created: 0, current: 1, successful: 2, failed: 3 };
  assert.equal(parseSippStatLine(cols, '1;-1;0;0;').ok, false);
  assert.equal(parseSippStatLine(cols, '1;1.5;0;0;').ok, false);
  assert.deepEqual(parseSippStatLine(cols, '7;1;5;1;'), {
    ok: true,
    value: { created: 7, current: 1, successful: 5, failed: 1 },
  });
});

test('sipp stats reader - follows a stream in any chunking and skips bad lines', () => {
  const stream = `${REAL_HEADER}\n${REAL_LINE}\nnot a stats line\n${REAL_LINE}\r\n\n`;
  for (const size of [1, 7, 100, stream.length]) {
    const reader = createSippStatReader();
    const counters = [];
    const rejected = [];
    for (let i = 0; i < stream.length; i += size) {
      const out = reader.push(stream.slice(i, i + size));
      counters.push(...out.counters);
      rejected.push(...out.rejected);
    }
    assert.equal(counters.length, 2, `chunk size ${size}`);
    assert.deepEqual(counters[1], { created: 3, current: 1, successful: 2, failed: 0 });
    assert.equal(rejected.length, 1, `chunk size ${size}`);
  }
});

test('sipp stats reader - data before the header is rejected; an overlong line is dropped whole', () => {
  const reader = createSippStatReader();
  assert.deepEqual(reader.push(`${REAL_LINE}\n`).counters, []);
  reader.push(`${REAL_HEADER}\n`);
  const long = reader.push('9'.repeat(40_000));
  assert.deepEqual(long.rejected, ['line too long']);
  // The rest of the overlong line, then a good one.
  const after = reader.push(`${'9'.repeat(1000)};\n${REAL_LINE}\n`);
  assert.deepEqual(after.rejected, []);
  assert.deepEqual(after.counters, [{ created: 3, current: 1, successful: 2, failed: 0 }]);
});

test('sipp stats reader - never throws, whatever arrives (fuzz)', () => {
  const pieces = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.constantFrom(REAL_HEADER, REAL_LINE, '\n', ';', '\r\n', '0;0;0;0;', 'CurrentCall'),
    fc.string({ unit: fc.constantFrom('0', '1', ';', '\n', '-', '.', 'C', '\t'), maxLength: 300 }),
  );
  fc.assert(
    fc.property(fc.array(pieces, { maxLength: 30 }), (chunks) => {
      const reader = createSippStatReader();
      for (const chunk of chunks) {
        const out = reader.push(chunk);
        for (const c of out.counters)
          for (const n of [c.created, c.current, c.successful, c.failed])
            assert.ok(Number.isSafeInteger(n) && n >= 0);
      }
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 500 }), (line) => {
      parseSippStatHeader(line);
      parseSippStatLine({ created: 0, current: 1, successful: 2, failed: 3 }, line);
    }),
  );
});

function fakeBinDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'sy-demo-bin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function writeExecutable(path: string, text: string): void {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

test('prerequisites - finds programs on the given PATH first, then in the system dirs', (t) => {
  const bin = fakeBinDir(t);
  const sbin = join(bin, 'sbin');
  mkdirSync(sbin);
  writeExecutable(join(bin, 'sipp'), '#!/bin/sh\n');
  writeExecutable(join(sbin, 'kamailio'), '#!/bin/sh\n');
  const status = checkPrerequisites({
    needs: ['kamailio', 'sipp'],
    pathEnv: `relative/dir:${bin}`,
    systemDirs: [sbin],
  });
  assert.deepEqual(status, {
    found: [
      { name: 'kamailio', path: join(sbin, 'kamailio') },
      { name: 'sipp', path: join(bin, 'sipp') },
    ],
    missing: [],
  });
});

test('prerequisites - a non-executable file or a directory does not count', (t) => {
  const bin = fakeBinDir(t);
  writeFileSync(join(bin, 'sipp'), 'not executable');
  mkdirSync(join(bin, 'kamailio'));
  const status = checkPrerequisites({ needs: ['kamailio', 'sipp'], pathEnv: bin, systemDirs: [] });
  assert.deepEqual(status, { found: [], missing: ['kamailio', 'sipp'] });
});

test('prerequisites - the default system dirs include /usr/sbin, where Debian puts kamailio', () => {
  // Real lookup without any PATH: this machine has Debian's kamailio and sip-tester installed.
  assert.equal(findExecutable('kamailio'), '/usr/sbin/kamailio');
  assert.equal(findExecutable('sipp'), '/usr/bin/sipp');
});

test('prerequisites - not root: returns the exact command for the user to run', async () => {
  const outcome = await installPrerequisites(['kamailio', 'sipp'], { isRoot: false });
  assert.deepEqual(outcome, {
    kind: 'manual',
    reason: 'not-root',
    command: ['sudo', 'apt-get', 'install', '-y', 'kamailio', 'sip-tester'],
    commandLine: 'sudo apt-get install -y kamailio sip-tester',
  });
  assert.deepEqual(manualInstallCommand(['sipp']), ['sudo', 'apt-get', 'install', '-y', 'sip-tester']);
  assert.deepEqual(await installPrerequisites([], { isRoot: false }), { kind: 'nothing-to-do' });
});

test('prerequisites - root without apt-get: the manual command too', async () => {
  const outcome = await installPrerequisites(['sipp'], { isRoot: true, pathEnv: '', systemDirs: [] });
  assert.equal(outcome.kind, 'manual');
  assert.equal(outcome.kind === 'manual' && outcome.reason, 'no-apt-get');
});

test('prerequisites - root with apt-get: installs, runs update only when packages are unknown', async (t) => {
  const bin = fakeBinDir(t);
  const calls = join(bin, 'calls.log');
  // A stand-in apt-get: logs its argv and DEBIAN_FRONTEND; "install" fails like a fresh
  // container without package lists until "update" has run.
  writeExecutable(
    join(bin, 'apt-get'),
    [
      '#!/bin/sh',
      `echo "$DEBIAN_FRONTEND $*" >> '${calls}'`,
      `if [ "$1" = update ]; then touch '${bin}/updated'; echo 'Reading package lists... Done'; exit 0; fi`,
      `if [ ! -e '${bin}/updated' ]; then echo 'E: Unable to locate package sip-tester' >&2; exit 100; fi`,
      'echo "Setting up $4 ..."',
      'exit 0',
      '',
    ].join('\n'),
  );
  const progress: string[] = [];
  const outcome = await installPrerequisites(['sipp', 'kamailio'], {
    isRoot: true,
    pathEnv: bin,
    systemDirs: [],
    onProgress: (line) => progress.push(line),
  });
  assert.deepEqual(outcome, { kind: 'installed', packages: ['sip-tester', 'kamailio'] });
  assert.deepEqual(readFileSync(calls, 'utf8').trim().split('\n'), [
    'noninteractive install -y --no-install-recommends sip-tester kamailio',
    'noninteractive update',
    'noninteractive install -y --no-install-recommends sip-tester kamailio',
  ]);
  assert.ok(progress.includes('E: Unable to locate package sip-tester'));
  assert.ok(progress.includes('Setting up sip-tester ...'));
});

test('prerequisites - a failure that is not about package lists is reported, no update', async (t) => {
  const bin = fakeBinDir(t);
  writeExecutable(join(bin, 'apt-get'), "#!/bin/sh\necho 'E: Could not get lock' >&2\nexit 100\n");
  const outcome = await installPrerequisites(['kamailio'], { isRoot: true, pathEnv: bin, systemDirs: [] });
  assert.equal(outcome.kind, 'failed');
  assert.match(outcome.kind === 'failed' ? outcome.reason : '', /exited with 100: E: Could not get lock/);
});

test('demo backend - the argv runs the packaged scenario on the given address, no shell', () => {
  const argv = demoBackendCommand({ sippBin: '/usr/bin/sipp', name: 'demo-1', ip: '127.0.0.1', port: 5080 });
  assert.deepEqual(argv, [
    '/usr/bin/sipp',
    '-sf',
    join(DEMO_SCENARIO_DIR, 'demo-backend.xml'),
    '-key',
    'backend',
    'demo-1',
    '-i',
    '127.0.0.1',
    '-p',
    '5080',
    '-bind_local',
    '-mi',
    '127.0.0.1',
    '-ci',
    '127.0.0.1',
    '-nostdin',
  ]);
  assert.ok(readFileSync(argv[2]!, 'utf8').includes('DEMO BACKEND'));
});

test('demo backend - a name that could break the header, or a bad address, is refused', () => {
  const base = { sippBin: 'sipp', name: 'ok', ip: '127.0.0.1', port: 5060 };
  for (const bad of [{ name: 'a b' }, { name: 'a\r\nX: y' }, { name: '' }, { ip: 'localhost' }, { port: 0 }])
    assert.throws(() => demoBackendCommand({ ...base, ...bad }), /SY_ERR|bad|IPv4|port/);
});
