import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createSilentLogger } from '../../../src/core/logger.ts';
import {
  createCountsReader,
  labCallerCommand,
  MAX_COUNTS_LINE_CHARS,
  parseCountsHeader,
  parseCountsLine,
} from '../../../src/lab/caller.ts';

// Recorded from SIPp 3.6.1 (Debian's sip-tester) running deploy/demo/demo-caller.xml with
// `-trace_counts -fd 1` against demo backends on loopback: the file demo-caller_<pid>_counts.csv.
const HEADER =
  'CurrentTime;ElapsedTime;0_INVITE_Sent;0_INVITE_Retrans;0_INVITE_Timeout;1_100_Recv;1_100_Retrans;1_1' +
  '00_Timeout;1_100_Unexp;2_180_Recv;2_180_Retrans;2_180_Timeout;2_180_Unexp;3_200_Recv;3_200_Retrans;3' +
  '_200_Timeout;3_200_Unexp;4_ACK_Sent;4_ACK_Retrans;5_Pause_Sessions;5_Pause_Unexp;6_BYE_Sent;6_BYE_Re' +
  'trans;6_BYE_Timeout;7_200_Recv;7_200_Retrans;7_200_Timeout;7_200_Unexp;';

/** 6 calls at 3 calls/s, 1 s each, all fine (-m 6). */
const CLEAN = [
  '2026-12-01\t13:07:49.275109\t1796130469.275109;00:00:00:001000;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;',
  '2026-12-01\t13:07:50.279020\t1796130470.279020;00:00:01:004000;2;0;0;2;0;0;0;2;0;0;0;2;0;0;0;2;0;2;0;0;0;0;0;0;0;0;',
  '2026-12-01\t13:07:51.282528\t1796130471.282528;00:00:02:008000;6;0;0;6;0;0;0;6;0;0;0;5;0;0;0;5;0;5;0;2;0;0;2;0;0;0;',
  '2026-12-01\t13:07:52.287057\t1796130472.287057;00:00:03:012000;6;0;0;6;0;0;0;6;0;0;0;6;0;0;0;6;0;6;0;5;0;0;5;0;0;0;',
  '2026-12-01\t13:07:52.312024\t1796130472.312024;00:00:03:037000;6;0;0;6;0;0;0;6;0;0;0;6;0;0;0;6;0;6;0;6;0;0;6;0;0;0;',
  '2026-12-01\t13:07:52.312129\t1796130472.312129;00:00:03:038000;6;0;0;6;0;0;0;6;0;0;0;6;0;0;0;6;0;6;0;6;0;0;6;0;0;0;',
];

/** 4 calls to a UAS answering 503: each counted on 1_100_Unexp. */
const REJECTED = [
  '2026-12-01\t13:04:19.484453\t1796130259.484453;00:00:00:000000;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;',
  '2026-12-01\t13:04:20.487324\t1796130260.487324;00:00:01:003000;2;0;0;0;0;0;2;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;',
  '2026-12-01\t13:04:20.820025\t1796130260.820025;00:00:01:336000;4;0;0;0;0;0;4;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;',
  '2026-12-01\t13:04:20.820134\t1796130260.820134;00:00:01:336000;4;0;0;0;0;0;4;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;',
];

/** 3 calls/s, 3 s calls, the backend SIGKILLed at 4.2 s, SIGUSR1 at 6.2 s (a subset of the lines). */
const KILLED = [
  '2026-12-01\t13:05:13.389175\t1796130313.389175;00:00:00:001000;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;',
  '2026-12-01\t13:05:16.398620\t1796130316.398620;00:00:03:010000;9;0;0;9;0;0;0;9;0;0;0;8;0;0;0;8;0;8;0;0;0;0;0;0;0;0;',
  '2026-12-01\t13:05:17.403302\t1796130317.403302;00:00:04:015000;12;0;0;12;0;0;0;12;0;0;0;11;0;0;0;11;0;11;0;2;0;0;2;0;0;0;',
  '2026-12-01\t13:05:18.407058\t1796130318.407058;00:00:05:018000;15;1;0;12;0;0;0;12;0;0;0;12;0;0;0;12;0;12;0;5;1;0;3;0;0;0;',
  '2026-12-01\t13:05:19.410750\t1796130319.410750;00:00:06:022000;18;5;0;12;0;0;0;12;0;0;0;12;0;0;0;12;0;12;0;8;5;0;3;0;0;0;',
  '2026-12-01\t13:05:48.527141\t1796130348.527141;00:00:35:139000;18;30;0;12;0;0;0;12;0;0;0;12;0;0;0;12;0;12;0;12;81;0;3;0;0;0;',
  '2026-12-01\t13:05:49.531146\t1796130349.531146;00:00:36:143000;18;30;1;12;0;0;0;12;0;0;0;12;0;0;0;12;0;12;0;12;81;1;3;0;0;0;',
  '2026-12-01\t13:05:50.534413\t1796130350.534413;00:00:37:146000;18;30;4;12;0;0;0;12;0;0;0;12;0;0;0;12;0;12;0;12;81;4;3;0;0;0;',
  '2026-12-01\t13:05:51.960616\t1796130351.960616;00:00:38:572000;18;30;6;12;0;0;0;12;0;0;0;12;0;0;0;12;0;12;0;12;81;9;3;0;0;0;',
  '2026-12-01\t13:05:51.960730\t1796130351.960730;00:00:38:572000;18;30;6;12;0;0;0;12;0;0;0;12;0;0;0;12;0;12;0;12;81;9;3;0;0;0;',
];

function layout() {
  const h = parseCountsHeader(HEADER);
  assert.ok(h.ok, h.ok ? '' : h.reason);
  return h.value;
}

function last(lines: string[]) {
  const decoded = parseCountsLine(layout(), lines.at(-1)!);
  assert.ok(decoded.ok, decoded.ok ? '' : decoded.reason);
  return decoded.value;
}

test('caller counts - the header of the demo caller scenario gives the right fields', () => {
  const l = layout();
  // Field 0 is CurrentTime, 1 ElapsedTime, then 0_INVITE_Sent.
  assert.equal(l.attempted, 2);
  assert.equal(l.answered, 13); // 3_200_Recv
  assert.equal(l.completed, 24); // 7_200_Recv
  // 0_INVITE_Timeout, 1_100_Timeout/Unexp, 2_180_Timeout/Unexp, 3_200_Timeout/Unexp
  assert.deepEqual(l.failedNew, [4, 7, 8, 11, 12, 15, 16]);
  // 5_Pause_Unexp, 6_BYE_Timeout, 7_200_Timeout/Unexp
  assert.deepEqual(l.lostEstablished, [20, 23, 26, 27]);
});

test('caller counts - a clean run: every call answered and completed', () => {
  assert.deepEqual(last(CLEAN), {
    attempted: 6,
    answered: 6,
    failedNew: 0,
    completed: 6,
    lostEstablished: 0,
    inProgress: 0,
  });
  const mid = parseCountsLine(layout(), CLEAN[2]!);
  assert.ok(mid.ok);
  assert.deepEqual(mid.value, {
    attempted: 6,
    answered: 5,
    failedNew: 0,
    completed: 2,
    lostEstablished: 0,
    inProgress: 4,
  });
});

test('caller counts - a 503 to the INVITE is a failed new call', () => {
  assert.deepEqual(last(REJECTED), {
    attempted: 4,
    answered: 0,
    failedNew: 4,
    completed: 0,
    lostEstablished: 0,
    inProgress: 0,
  });
});

test('caller counts - a killed backend: BYE timeouts are lost calls, INVITE timeouts failed new calls', () => {
  // 2 s after the kill nothing has timed out yet: the calls up and the new INVITEs are in progress.
  const early = parseCountsLine(layout(), KILLED[4]!);
  assert.ok(early.ok);
  assert.deepEqual(early.value, {
    attempted: 18,
    answered: 12,
    failedNew: 0,
    completed: 3,
    lostEstablished: 0,
    inProgress: 15,
  });
  // About 31 s later SIPp's retransmissions gave up on every one of them.
  assert.deepEqual(last(KILLED), {
    attempted: 18,
    answered: 12,
    failedNew: 6,
    completed: 3,
    lostEstablished: 9,
    inProgress: 0,
  });
});

test('caller counts - the streaming reader takes any chunking and keeps the latest line', () => {
  const text = [HEADER, ...KILLED].join('\n') + '\n';
  const whole = createCountsReader().push(text);
  assert.deepEqual(whole.rejected, []);
  assert.equal(whole.counts.length, KILLED.length);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: text.length - 1 }), { maxLength: 20 }), (cuts) => {
      const reader = createCountsReader();
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const all = [];
      let from = 0;
      for (const at of [...points, text.length]) {
        const out = reader.push(text.slice(from, at));
        assert.deepEqual(out.rejected, []);
        all.push(...out.counts);
        from = at;
      }
      assert.deepEqual(all, whole.counts);
    }),
  );
});

test('caller counts - resync drops the partial line after a jump in the file', () => {
  const reader = createCountsReader();
  reader.push(`${HEADER}\n`);
  reader.resync();
  // We landed in the middle of a line: its tail is dropped, the next whole line decodes.
  const out = reader.push(`${KILLED[3]!.slice(40)}\n${KILLED.at(-1)!}\n`);
  assert.deepEqual(out.rejected, []);
  assert.equal(out.counts.length, 1);
  assert.equal(out.counts[0]!.lostEstablished, 9);
});

test('caller counts - malformed lines are rejected with a reason, never thrown', () => {
  const reader = createCountsReader();
  const before = reader.push('garbage;1;2\n');
  assert.deepEqual(before.rejected, ['data line before the header']);
  reader.push(`${HEADER}\n`);
  const bad = [
    '2026-12-01\t13:07:52;00:00:03:038000;6;0;x;6',
    '2026-12-01\t13:07:52;00:00:03:038000;-1;0;0;6;0;0;0;6;0;0;0;6;0;0;0;6;0;6;0;6;0;0;6;0;0;0;',
    '',
    ';;;;',
  ];
  const out = reader.push(`${bad.join('\n')}\n`);
  assert.equal(out.counts.length, 0);
  assert.equal(out.rejected.length, 3); // the empty line is skipped
  assert.ok(!parseCountsHeader('CurrentTime;ElapsedTime;0_INVITE_Sent;').ok, 'no answer column');
  assert.ok(!parseCountsHeader('CurrentTime;ElapsedTime;0_INVITE_Sent;1_200_Recv;').ok, 'no BYE');
  assert.ok(!parseCountsHeader('CurrentTime;ElapsedTime;0_IN VITE_Sent;').ok);
  assert.ok(!parseCountsHeader('StartTime;LastResetTime').ok, 'a -trace_stat header is not a counts header');
});

test('caller counts - an overlong line is dropped and the reader recovers', () => {
  const reader = createCountsReader();
  reader.push(`${HEADER}\n`);
  const first = reader.push('x'.repeat(MAX_COUNTS_LINE_CHARS + 1));
  assert.deepEqual(first.rejected, ['line too long']);
  const rest = reader.push(`yyy\n${CLEAN.at(-1)!}\n`);
  assert.deepEqual(rest.rejected, []);
  assert.equal(rest.counts[0]!.completed, 6);
});

test('caller counts - arbitrary text never throws and never yields negative or non-integer counts', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.string(),
          fc.constantFrom(HEADER, ...CLEAN, ...KILLED, '\n', ';', '\t'),
          fc
            .array(fc.oneof(fc.nat(), fc.constant(-1), fc.constant(1e20)), { maxLength: 30 })
            .map((a) => a.join(';')),
        ),
        { maxLength: 12 },
      ),
      (chunks) => {
        const reader = createCountsReader();
        for (const chunk of chunks) {
          const out = reader.push(chunk);
          for (const c of out.counts) {
            for (const v of Object.values(c)) assert.ok(Number.isSafeInteger(v) && v >= 0);
            assert.ok(c.inProgress <= c.attempted);
          }
        }
      },
    ),
  );
  fc.assert(
    fc.property(fc.string(), (line) => {
      parseCountsHeader(line);
      parseCountsLine(layout(), line);
    }),
  );
});

test('caller command - runs SIPp inside the prefix with the counts file and a bounded recv timeout', () => {
  const argv = labCallerCommand({
    sippBin: '/usr/bin/sipp',
    prefix: ['ip', 'netns', 'exec', 'sylab-caller'],
    target: '10.213.0.100:5060',
    localIp: '10.213.0.50',
    localPort: 5060,
    ratePerSecond: 5,
    callDurationMs: 30_000,
    maxConcurrent: 500,
    workDir: '/tmp/x',
    logger: createSilentLogger(),
    setprivBin: '/usr/bin/setpriv',
  });
  assert.deepEqual(argv.slice(0, 8), [
    'ip',
    'netns',
    'exec',
    'sylab-caller',
    '/usr/bin/setpriv',
    '--pdeathsig',
    'SIGTERM',
    '/usr/bin/sipp',
  ]);
  const at = (flag: string) => argv[argv.indexOf(flag) + 1];
  assert.equal(argv[10], '10.213.0.100:5060');
  assert.equal(at('-recv_timeout'), '32000');
  assert.equal(at('-fd'), '1');
  assert.ok(argv.includes('-trace_counts'));
  assert.equal(at('-d'), '30000');
  assert.equal(at('-l'), '500');
  assert.ok(
    !argv.some((a) => a === '-nr' || a === '-max_retrans'),
    'SIPp keeps its own retransmission timers',
  );
  const base = {
    sippBin: 'sipp',
    prefix: [],
    target: '127.0.0.1:5060',
    localIp: '127.0.0.2',
    localPort: 5060,
    ratePerSecond: 1,
    callDurationMs: 1000,
    maxConcurrent: 10,
    workDir: '/tmp/x',
    logger: createSilentLogger(),
  };
  assert.throws(() => labCallerCommand({ ...base, target: 'example.com:5060' }), /SY_ERR|target/);
  assert.throws(() => labCallerCommand({ ...base, localIp: '127.0.0.2; rm -rf /' }));
  assert.throws(() => labCallerCommand({ ...base, ratePerSecond: 0 }));
  assert.throws(() => labCallerCommand({ ...base, prefix: [''] }));
});
