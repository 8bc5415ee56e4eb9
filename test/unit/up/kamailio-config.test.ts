import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  KAMAILIO_TEMPLATE_PATH,
  type KamailioLbOptionsInput,
  kamailioCommand,
  kamailioConfigDefines,
  kamailioLbOptionsSchema,
  parseKamailioLbOptions,
  renderKamailioConfig,
} from '../../../src/up/kamailio-config.ts';

/**
 * Rendering the load balancer's kamailio.cfg: what the options accept, what they refuse and
 * why, and that no value ever reaches the file unchecked. `kamailio -c` on rendered files is in
 * test/integration/kamailio-lb.test.ts.
 */

const TEMPLATE = readFileSync(KAMAILIO_TEMPLATE_PATH, 'utf8');
const base = { listFile: '/var/lib/switchyard/dispatcher.list' } satisfies KamailioLbOptionsInput;

/** The message for one bad option, or undefined when the options are valid. */
function problem(input: Record<string, unknown>): string | undefined {
  try {
    parseKamailioLbOptions(input as KamailioLbOptionsInput);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The lines rendering adds in front of the template. */
function renderedDefines(text: string): string[] {
  return text.split('\n').filter((l, i) => i < 40 && /^#!(substdef|define) /.test(l));
}

test('kamailio config - defaults render every parameter the template has, before its #!ifndef defaults', () => {
  const text = renderKamailioConfig(base);
  assert.ok(text.startsWith('#!KAMAILIO\n'));
  assert.deepEqual(renderedDefines(text), [
    '#!substdef "!SIP_IP!127.0.0.1!g"',
    '#!substdef "!SIP_PORT!5060!g"',
    '#!substdef "!HTTP_PORT!5071!g"',
    '#!substdef "!RUNDIR!/run/kamailio!g"',
    '#!substdef "!LIST_FILE!/var/lib/switchyard/dispatcher.list!g"',
    '#!substdef "!RELOAD_DELTA!5!g"',
    '#!substdef "!PING_INTERVAL!2!g"',
    '#!substdef "!FR_TIMER_MS!2000!g"',
    '#!substdef "!FR_INV_TIMER_MS!30000!g"',
    '#!substdef "!SET_ID!1!g"',
    '#!substdef "!ALG!9!g"',
  ]);
  // The rest is the template, unchanged.
  assert.ok(text.endsWith(TEMPLATE.slice(TEMPLATE.indexOf('\n') + 1)));
  // Every name rendered is guarded in the template, so the rendered value wins.
  for (const line of renderedDefines(
    renderKamailioConfig({ ...base, hep: { ip: '127.0.0.1' }, listenVip: '10.0.0.100' }),
  )) {
    const name = /^#!(?:substdef "!|define )([A-Z_]+)/.exec(line)?.[1] ?? '';
    assert.ok(TEMPLATE.includes(`#!ifndef ${name}`) || TEMPLATE.includes(`#!ifdef ${name}`), name);
  }
});

test('kamailio config - algorithm, HEP, VIP and IPv6 turn into the right names and values', () => {
  const opts = parseKamailioLbOptions({
    ...base,
    sipIp: '2001:db8::11',
    listenVip: '2001:db8::100',
    algorithm: 'call-load',
    hep: { ip: '2001:db8::5', port: 9061, captureId: 2001 },
    setId: 3,
    reloadDeltaS: 2,
  });
  const lines = kamailioConfigDefines(opts);
  assert.ok(lines.includes('#!substdef "!SIP_IP![2001:db8::11]!g"'));
  assert.ok(lines.includes('#!substdef "!LISTEN_VIP![2001:db8::100]!g"'));
  assert.ok(lines.includes('#!substdef "!HEP_ADDR![2001:db8::5]!g"'));
  assert.ok(lines.includes('#!substdef "!HEP_PORT!9061!g"'));
  assert.ok(lines.includes('#!substdef "!HEP_CAPTURE_ID!2001!g"'));
  assert.ok(lines.includes('#!substdef "!SET_ID!3!g"'));
  assert.ok(lines.includes('#!substdef "!RELOAD_DELTA!2!g"'));
  assert.ok(lines.includes('#!define WITH_CALL_LOAD'));
  assert.ok(!lines.includes('#!define WITH_TRACE_KEEPALIVES'), 'keep-alives are not traced by default');
  const weight = kamailioConfigDefines(parseKamailioLbOptions({ ...base, algorithm: 'relative-weight' }));
  assert.ok(weight.includes('#!substdef "!ALG!11!g"'));
  assert.ok(
    !weight.some((l) => l.includes('WITH_CALL_LOAD') || l.includes('HEP_') || l.includes('LISTEN_VIP')),
  );
  const traced = kamailioConfigDefines(
    parseKamailioLbOptions({ ...base, hep: { ip: '127.0.0.1', traceKeepalives: true } }),
  );
  assert.ok(traced.includes('#!define WITH_TRACE_KEEPALIVES'));
  assert.ok(traced.includes('#!substdef "!HEP_PORT!9060!g"'));
});

test('kamailio config - bad values are refused with the option path and a clear reason', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{}, /listFile: .*expected string/],
    [{ ...base, listFile: 'var/dispatcher.list' }, /listFile: must be an absolute path/],
    [{ ...base, listFile: '/tmp/a b' }, /listFile: must not contain quotes, !/],
    [{ ...base, listFile: '/tmp/a"b' }, /listFile: must not contain quotes/],
    [{ ...base, listFile: '/tmp/a!g' }, /listFile: must not contain/],
    [{ ...base, listFile: '/tmp/a\nmodparam' }, /listFile: must not contain/],
    [{ ...base, listFile: '/srv/SIP_IP/list' }, /listFile: must not contain a template parameter name/],
    [{ ...base, runDir: '/run/kam#ailio' }, /runDir: must not contain/],
    [{ ...base, sipIp: 'lb.example.com' }, /sipIp: must be an IPv4 or IPv6 address literal/],
    [{ ...base, sipIp: '[::1]' }, /sipIp: must be an IPv4 or IPv6 address literal/],
    [{ ...base, sipIp: 'fe80::1%eth0' }, /sipIp: must be an IPv4 or IPv6 address literal/],
    [{ ...base, sipIp: '10.0.0.256' }, /sipIp: must be an IPv4/],
    [{ ...base, sipPort: 0 }, /sipPort: .*>=1/],
    [{ ...base, httpPort: 65536 }, /httpPort: .*<=65535/],
    [{ ...base, sipPort: 5060.5 }, /sipPort: .*int/],
    [{ ...base, reloadDeltaS: 0.5 }, /reloadDeltaS: .*int/],
    [{ ...base, reloadDeltaS: -1 }, /reloadDeltaS: .*>=0/],
    [{ ...base, pingIntervalS: 0 }, /pingIntervalS: .*>=1/],
    [{ ...base, frTimerMs: 50 }, /frTimerMs: .*>=100/],
    [{ ...base, frTimerMs: 5000, frInvTimerMs: 2000 }, /frInvTimerMs: must be at least frTimerMs/],
    [{ ...base, setId: 0 }, /setId: .*>=1/],
    [{ ...base, algorithm: 'round-robin' }, /algorithm: /],
    [{ ...base, listenVip: '127.0.0.1' }, /listenVip: must differ from sipIp/],
    [{ ...base, hep: { ip: '::1' } }, /hep\.ip: must be of the same address family as sipIp \(IPv4\)/],
    [{ ...base, hep: { ip: '127.0.0.1', port: 70000 } }, /hep\.port: /],
    [{ ...base, hep: { ip: '127.0.0.1', captureId: 2 ** 32 } }, /hep\.captureId: /],
    [{ ...base, hep: { port: 9060 } }, /hep\.ip: /],
    [{ ...base, hep: { ip: '127.0.0.1', authKey: 'x' } }, /hep: .*authKey/],
    [{ ...base, extra: 1 }, /extra/],
  ];
  for (const [input, expected] of cases) {
    const message = problem(input);
    assert.ok(message, `accepted ${JSON.stringify(input)}`);
    assert.match(message, expected, JSON.stringify(input));
    assert.throws(
      () => renderKamailioConfig(input as KamailioLbOptionsInput, TEMPLATE),
      /invalid Kamailio options/,
    );
  }
  // Several problems are all listed, one per line.
  const many = problem({ ...base, sipPort: 0, httpPort: 0 }) ?? '';
  assert.match(many, /sipPort: [^\n]+\nhttpPort: /);
});

test('kamailio config - an arbitrary string never reaches a config line unless it is a safe value', () => {
  const stringFields = ['sipIp', 'listenVip', 'listFile', 'runDir'] as const;
  fc.assert(
    fc.property(
      fc.constantFrom(...stringFields),
      fc
        .oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('"', '!', '\n', '#', '\\', ' '))
        .map((s) => `/x${s}`),
      fc.string({ unit: 'grapheme-ascii' }),
      (field, pathLike, any) => {
        for (const value of [pathLike, any]) {
          const input = { ...base, [field]: value } as KamailioLbOptionsInput;
          const parsed = kamailioLbOptionsSchema.safeParse(input);
          if (!parsed.success) {
            assert.throws(() => renderKamailioConfig(input, TEMPLATE));
            continue;
          }
          // Accepted: every line it produced is a well-formed substdef of safe characters.
          for (const line of kamailioConfigDefines(parsed.data)) {
            assert.match(line, /^(#!substdef "![A-Z_]+![A-Za-z0-9._/:[\]+,@=%~-]+!g"|#!define [A-Z_]+)$/);
          }
        }
      },
    ),
    { numRuns: 2000 },
  );
});

test('kamailio config - kamailioCommand runs Kamailio in the foreground without a shell', () => {
  assert.deepEqual(kamailioCommand({ cfgPath: '/etc/switchyard/kamailio.cfg' }), {
    command: 'kamailio',
    args: ['-DD', '-E', '-f', '/etc/switchyard/kamailio.cfg', '-m', '64', '-M', '8'],
  });
  assert.deepEqual(
    kamailioCommand({
      bin: '/usr/sbin/kamailio',
      cfgPath: '/a b/k.cfg',
      sharedMemoryMb: 128,
      privateMemoryMb: 16,
    }),
    { command: '/usr/sbin/kamailio', args: ['-DD', '-E', '-f', '/a b/k.cfg', '-m', '128', '-M', '16'] },
  );
  assert.throws(() => kamailioCommand({ cfgPath: '' }), /cfgPath/);
  assert.throws(() => kamailioCommand({ cfgPath: '/k.cfg', sharedMemoryMb: 1.5 }), /sharedMemoryMb/);
});
