import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseAmiUrl } from '../../../src/agent/ami-url.ts';
import {
  AGENT_SECRET_PATHS,
  type AgentConfig,
  agentConfigSchema,
  agentStopBudgetMs,
  CORE_STOP_NOW_TIMEOUT_MS,
} from '../../../src/agent/config.ts';
import { sipHostPort, templateVariables } from '../../../src/agent/template-vars.ts';
import {
  type ConfigResult,
  formatConfigProblems,
  loadConfig,
  redactConfig,
  redactUrlPasswords,
} from '../../../src/core/config/index.ts';

const load = (env: Record<string, string>, flags?: Record<string, unknown>) =>
  loadConfig({
    schema: agentConfigSchema,
    env,
    secretPaths: AGENT_SECRET_PATHS,
    ...(flags === undefined ? {} : { flags }),
  });

function expectOk(res: ConfigResult<AgentConfig>): Readonly<AgentConfig> {
  if (!res.ok) assert.fail(`unexpected problems:\n${formatConfigProblems(res.problems)}`);
  return res.config;
}

function problemsOf(res: ConfigResult<AgentConfig>): string {
  if (res.ok) assert.fail('expected config problems');
  return formatConfigProblems(res.problems);
}

const SIP = { SWITCHYARD_SIP_URI: 'sip:10.0.0.21:5060' };

test('agent config - only sipUri is required; the rest has defaults', () => {
  const c = expectOk(load(SIP));
  assert.equal(c.setId, 1);
  assert.equal(c.leaseTtlMs, 3000);
  assert.deepEqual(c.health, {
    optionsIntervalMs: 1000,
    optionsTimeoutMs: 500,
    failuresToDown: 3,
    successesToUp: 2,
    amiDownGraceMs: 3000,
  });
  assert.deepEqual(c.restart, {
    initialBackoffMs: 500,
    maxBackoffMs: 30_000,
    crashLoopRestarts: 5,
    crashLoopWindowMs: 300_000,
    unhealthyRestartAfterMs: 30_000,
  });
  assert.equal(c.readiness.timeoutMs, 120_000);
  assert.deepEqual(c.drain, { deadlineMs: 25_000, progressIntervalMs: 1000 });
  assert.equal(c.stop.graceMs, 5000);
  assert.deepEqual(c.admin, { host: '127.0.0.1', port: 9402 });
  assert.deepEqual(c.hooks, {});
  assert.deepEqual(c.templates, []);
  assert.equal(c.ami, undefined);
  assert.match(c.nodeId, /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/);
  assert.match(problemsOf(load({})), /sipUri/);
});

test('agent config - unknown keys are refused at every level', () => {
  assert.match(
    problemsOf(load(SIP, { health: { optionsIntervalMS: 5 } })),
    /health\.optionsIntervalMS: unknown key/,
  );
  const file = agentConfigSchema.safeParse({
    sipUri: 'sip:a',
    hooks: { up: { command: ['x'], shell: true } },
  });
  assert.equal(file.success, false);
  const phase = agentConfigSchema.safeParse({ sipUri: 'sip:a', hooks: { ready: { command: ['x'] } } });
  assert.equal(phase.success, false, 'hooks are keyed by phase names');
});

test('agent config - lease TTLs below etcd 2 s rounding and inverted ranges are refused', () => {
  assert.match(problemsOf(load({ ...SIP, SWITCHYARD_LEASE_TTL_MS: '1000' })), /leaseTtlMs/);
  assert.match(
    problemsOf(
      load({
        ...SIP,
        SWITCHYARD_RESTART__INITIAL_BACKOFF_MS: '5000',
        SWITCHYARD_RESTART__MAX_BACKOFF_MS: '1000',
      }),
    ),
    /restart\.initialBackoffMs/,
  );
  assert.match(
    problemsOf(load({ ...SIP, SWITCHYARD_HEALTH__OPTIONS_TIMEOUT_MS: '2000' })),
    /optionsTimeoutMs/,
  );
  assert.match(
    problemsOf(load({ ...SIP, SWITCHYARD_RTP__START: '20000', SWITCHYARD_RTP__END: '10000' })),
    /rtp\.end/,
  );
});

test('agent config - commands are argv arrays; structured keys come from the environment as JSON', () => {
  const c = expectOk(
    load({
      ...SIP,
      SWITCHYARD_COMMAND: 'asterisk,-f,-U,asterisk',
      SWITCHYARD_HOOKS: '{"up":{"command":["/bin/notify","up, now"]}}',
      SWITCHYARD_TEMPLATES: '[{"source":"/t/a.conf","target":"/etc/asterisk/a.conf","mode":"0640"}]',
    }),
  );
  assert.deepEqual(c.command, ['asterisk', '-f', '-U', 'asterisk']);
  assert.deepEqual(c.hooks.up, { command: ['/bin/notify', 'up, now'], timeoutMs: 10_000 });
  assert.deepEqual(c.templates, [{ source: '/t/a.conf', target: '/etc/asterisk/a.conf', mode: '0640' }]);
  assert.equal(agentConfigSchema.safeParse({ sipUri: 'sip:a', command: [] }).success, false);
  assert.equal(agentConfigSchema.safeParse({ sipUri: 'sip:a', command: ['', 'x'] }).success, false);
  assert.equal(agentConfigSchema.safeParse({ sipUri: 'sip:a', command: ['a\u0000b'] }).success, false);
  // YAML reads 0640 as the decimal 640: modes are strings so that cannot happen silently.
  assert.equal(
    agentConfigSchema.safeParse({ sipUri: 'sip:a', templates: [{ source: 'a', target: 'b', mode: 640 }] })
      .success,
    false,
  );
  assert.equal(
    agentConfigSchema.safeParse({
      sipUri: 'sip:a',
      templates: [
        { source: 'a', target: 'same' },
        { source: 'b', target: 'same' },
      ],
    }).success,
    false,
  );
});

test('agent config - the variables switchyard passes to hooks are not unknown keys', () => {
  const c = expectOk(load({ ...SIP, SWITCHYARD_PHASE: 'up', SWITCHYARD_PREVIOUS_PHASE: 'warm-up' }));
  assert.equal(c.sipUri, SIP.SWITCHYARD_SIP_URI);
});

test('agent config - the AMI URL is validated and its password never printed', () => {
  const c = expectOk(load({ ...SIP, SWITCHYARD_AMI: 'ami://admin:s3cr%40t@127.0.0.1:5038' }));
  const printed = JSON.stringify(redactConfig(c, AGENT_SECRET_PATHS));
  assert.doesNotMatch(printed, /s3cr/);
  assert.match(printed, /ami:\/\/admin:\[redacted\]@127\.0\.0\.1:5038/);

  for (const [url, why] of [
    ['http://admin:hunter2@127.0.0.1:5038', /scheme/],
    ['ami://admin@127.0.0.1', /no password/],
    ['ami://:hunter2@127.0.0.1', /no user/],
    ['ami://admin:hunter2%0D%0AAction:%20Command@127.0.0.1', /control characters/],
    ['ami://admin:hunter 2@127.0.0.1', /percent-encoded/],
    ['ami://admin:hunter2@127.0.0.1:5038/x', /no path/],
  ] as const) {
    const text = problemsOf(load({ ...SIP, SWITCHYARD_AMI: url }));
    assert.match(text, why, url);
    assert.doesNotMatch(text, /hunter/, `the password is not echoed for ${url}`);
  }
});

test('agent config - parseAmiUrl decodes user and password and defaults the port', () => {
  const res = parseAmiUrl('ami://sw%20yard:p%40ss%3Aw@[::1]');
  assert.ok(res.ok);
  assert.deepEqual(res.value, {
    host: '::1',
    port: 5038,
    username: 'sw yard',
    password: 'p@ss:w',
    display: 'ami://sw%20yard:[redacted]@[::1]',
  });
});

test('agent config - every AMI URL that validates has its password hidden by redactUrlPasswords', () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 30 }),
      fc.string({ minLength: 1, maxLength: 30 }),
      (user, pass) => {
        const url = `ami://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:5038`;
        const res = parseAmiUrl(url);
        if (!res.ok) return; // control characters
        assert.equal(res.value.password, pass);
        const hidden = `ami://${encodeURIComponent(user)}:[redacted]@127.0.0.1:5038`;
        assert.equal(redactUrlPasswords(url), hidden);
        assert.equal(res.value.display, hidden);
      },
    ),
  );
});

test('agent config - template variables: names checked, built-ins protected, values secret', () => {
  const c = expectOk(load({ ...SIP, SWITCHYARD_TEMPLATE_VARS: '{"trunkPassword":"hunter2"}' }));
  assert.deepEqual(c.templateVars, { trunkPassword: 'hunter2' });
  assert.doesNotMatch(JSON.stringify(redactConfig(c, AGENT_SECRET_PATHS)), /hunter2/);
  assert.match(problemsOf(load({ ...SIP, SWITCHYARD_TEMPLATE_VARS: '{"sipHost":"x"}' })), /built-in/);
  assert.match(problemsOf(load({ ...SIP, SWITCHYARD_TEMPLATE_VARS: '{"a":"x\\ny"}' })), /newline/);
  assert.match(
    problemsOf(load({ ...SIP, SWITCHYARD_TEMPLATE_VARS: '{"no-dash":"x"}' })),
    /templateVars\.no-dash: Invalid key/,
  );
  // Broken JSON is reported without quoting it: it may hold a secret.
  const broken = problemsOf(load({ ...SIP, SWITCHYARD_TEMPLATE_VARS: '{"trunkPassword":"hunter2"' }));
  assert.match(broken, /expected JSON/);
  assert.doesNotMatch(broken, /hunter2/);
});

test('agent config - built-in template variables come from the config', () => {
  const c = expectOk(
    load({ SWITCHYARD_SIP_URI: 'sip:[2001:db8::5]:5070;transport=tcp', SWITCHYARD_NODE_ID: 'as1' }),
  );
  const vars = templateVariables(c);
  assert.equal(vars['sipHost'], '[2001:db8::5]');
  assert.equal(vars['sipPort'], '5070');
  assert.equal(vars['announceAddress'], '2001:db8::5');
  assert.equal(vars['nodeId'], 'as1');
  assert.equal(vars['rtpStart'], '10000');
  assert.equal(vars['rtpEnd'], '20000');
  assert.equal(vars['dataDir'], '/var/lib/asterisk');
  assert.deepEqual(sipHostPort('sips:pbx@host.example'), { host: 'host.example', port: 5061 });
  assert.deepEqual(sipHostPort('sip:10.0.0.1'), { host: '10.0.0.1', port: 5060 });
});

test('agent config - the CLI waits out a whole drain and stop before giving up on SIGTERM', () => {
  // The default drain (25 s) was once cut short by a fixed 15 s stop timeout: exit 1, service left running.
  const defaults = agentConfigSchema.parse({ sipUri: 'sip:127.0.0.1:5060' });
  const needed = defaults.drain.deadlineMs + CORE_STOP_NOW_TIMEOUT_MS + defaults.stop.graceMs;
  assert.ok(agentStopBudgetMs(defaults) > needed, `${agentStopBudgetMs(defaults)} <= ${needed}`);
  // What docs/reference/agent.md says of the defaults.
  assert.equal(agentStopBudgetMs(defaults), 44_000);
  // The hooks the stop waits for count in full.
  const hooked = agentConfigSchema.parse({
    sipUri: 'sip:127.0.0.1:5060',
    hooks: { stopped: { command: ['true'], timeoutMs: 60_000 }, draining: { command: ['true'] } },
  });
  assert.equal(agentStopBudgetMs(hooked) - agentStopBudgetMs(defaults), 70_000);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 86_400_000 }),
      fc.integer({ min: 0, max: 600_000 }),
      (deadlineMs, graceMs) => {
        const budget = agentStopBudgetMs({
          ...defaults,
          drain: { ...defaults.drain, deadlineMs },
          stop: { ...defaults.stop, graceMs },
        });
        return budget > deadlineMs + CORE_STOP_NOW_TIMEOUT_MS + graceMs;
      },
    ),
  );
});
