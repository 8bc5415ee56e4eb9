import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { type EtcdCluster, startEtcd } from '../harness/etcd.ts';
import { freeTcpPort } from '../harness/ports.ts';

/**
 * The real `switchyard` CLI as an operator runs it: a child process (process.execPath is Node 24
 * when tests run through npm/npx), an embedded registry in a temp dir, and nothing from the
 * developer's environment but PATH.
 */
const MAIN = resolve(import.meta.dirname, '../../src/cli/main.ts');
let etcd: EtcdCluster | undefined;
after(async () => {
  await etcd?.stop();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let sandboxes = 0;

interface Sandbox {
  dir: string;
  run(args: string[], env?: Record<string, string>): Promise<Run>;
  json(args: string[]): Promise<Record<string, unknown>>;
}

/** A temp dir and an empty registry: embedded in the dir, or a fresh prefix on a real etcd. */
function sandbox(t: { after(fn: () => void): void }, registry?: string): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'sy-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const baseEnv = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: dir,
    SWITCHYARD_REGISTRY: registry ?? `embedded:${dir}/registry.db`,
    SWITCHYARD_REGISTRY_PREFIX: `/cli-${process.pid}-${++sandboxes}`,
  };
  const run = (args: string[], env: Record<string, string> = {}) =>
    new Promise<Run>((done) => {
      execFile(
        process.execPath,
        [MAIN, ...args],
        { cwd: dir, env: { ...baseEnv, ...env }, timeout: 30_000, encoding: 'utf8' },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
          done({ code, stdout, stderr });
        },
      );
    });
  return {
    dir,
    run,
    async json(args) {
      const res = await run([...args, '--json']);
      assert.equal(res.code, 0, `switchyard ${args.join(' ')} failed:\n${res.stderr}${res.stdout}`);
      return JSON.parse(res.stdout) as Record<string, unknown>;
    },
  };
}

interface NodeRowJson {
  id: string;
  source: string;
  effective: string;
  weight: number;
  weightOverridden: boolean;
  uri: string;
  setId: number;
}

test('cli - --help and --version exit 0', async (t) => {
  const sb = sandbox(t);
  const help = await sb.run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: switchyard/);
  assert.match(help.stdout, /drain \[options\] <id>/);
  const version = await sb.run(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^\d+\.\d+\.\d+/);
});

for (const backend of ['embedded', 'etcd'] as const)
  test(`cli - node add, nodes and node remove round trip (${backend})`, async (t) => {
    if (backend === 'etcd') etcd ??= await startEtcd({ members: 1 });
    const sb = sandbox(t, backend === 'etcd' ? etcd?.spec : undefined);
    const added = await sb.json([
      'node',
      'add',
      'pbx1',
      '--uri',
      'sip:10.0.0.5:5060',
      '--set',
      '2',
      '--weight',
      '30',
    ]);
    assert.equal(added['replaced'], false);
    const human = await sb.run(['node', 'add', 'pbx2', '--uri', 'sip:pbx2.example.com:5080;transport=tcp']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      /added static node pbx2 -> sip:pbx2\.example\.com:5080;transport=tcp \(set 1\)/,
    );

    const listed = await sb.json(['nodes']);
    const nodes = listed['nodes'] as NodeRowJson[];
    assert.deepEqual(
      nodes.map((n) => [n.id, n.setId, n.source, n.effective, n.weight]),
      [
        ['pbx2', 1, 'static', 'in-rotation', 10],
        ['pbx1', 2, 'static', 'in-rotation', 30],
      ],
    );

    const table = await sb.run(['nodes']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^ID\s+SET\s+URI\s+STATE\s+EFFECTIVE\s+WEIGHT\s+CALLS\s+SOURCE\s+AGE$/m);
    assert.match(
      table.stdout,
      /^pbx1\s+2\s+sip:10\.0\.0\.5:5060\s+-\s+in rotation\s+30\s+-\s+static\s+\d+s$/m,
    );
    assert.match(table.stdout, /No dispatcher has reported\./);

    const replaced = await sb.json(['node', 'add', 'pbx1', '--uri', 'sip:10.0.0.6:5060', '--set', '2']);
    assert.equal(replaced['replaced'], true);

    const removed = await sb.json(['node', 'remove', 'pbx1']);
    assert.equal(removed['removed'], true);
    const again = await sb.run(['node', 'remove', 'pbx1']);
    assert.equal(again.code, 0);
    assert.match(again.stderr, /^warning: no static node pbx1; nothing removed$/m);
    const after = await sb.json(['nodes']);
    assert.deepEqual(
      (after['nodes'] as NodeRowJson[]).map((n) => n.id),
      ['pbx2'],
    );
  });

test('cli - drain, undrain, disable, enable and weight change what the dispatcher does', async (t) => {
  const sb = sandbox(t);
  await sb.json(['node', 'add', 'as1', '--uri', 'sip:127.0.0.2:5060']);
  const effective = async () => {
    const nodes = (await sb.json(['nodes']))['nodes'] as NodeRowJson[];
    const row = nodes.find((n) => n.id === 'as1');
    assert.ok(row);
    return row;
  };

  const drained = await sb.json(['drain', 'as1', '--reason', 'kernel update', '--by', 'alice']);
  assert.equal(drained['known'], true);
  assert.equal(drained['effective'], 'drained');
  assert.deepEqual((drained['intent'] as Record<string, unknown>)['reason'], 'kernel update');
  assert.equal((await effective()).effective, 'drained');

  const human = await sb.run(['disable', 'as1']);
  assert.equal(human.code, 0, human.stderr);
  assert.equal(human.stdout, 'as1: disabled, drained; effective: disabled\n');

  await sb.json(['undrain', 'as1']);
  assert.equal((await effective()).effective, 'disabled', 'disable still holds after undrain');
  await sb.json(['enable', 'as1']);
  assert.equal((await effective()).effective, 'in-rotation');

  await sb.json(['weight', 'as1', '75']);
  let row = await effective();
  assert.equal(row.weight, 75);
  assert.equal(row.weightOverridden, true);
  const table = await sb.run(['nodes']);
  assert.match(table.stdout, /^as1\s.*\s75\*\s/m);
  assert.match(table.stdout, /weight set by an operator/);

  await sb.json(['weight', 'as1', 'clear']);
  row = await effective();
  assert.equal(row.weight, 10);
  assert.equal(row.weightOverridden, false);
});

test('cli - an intent for an unknown node is stored with a warning', async (t) => {
  const sb = sandbox(t);
  const res = await sb.run(['drain', 'future-node', '--json']);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /^warning: no node future-node in the registry \(yet\)/m);
  const out = JSON.parse(res.stdout) as Record<string, unknown>;
  assert.equal(out['known'], false);
  const listed = await sb.json(['nodes']);
  assert.deepEqual(
    (listed['orphanIntents'] as { id: string; drain: boolean }[]).map((i) => [i.id, i.drain]),
    [['future-node', true]],
  );
  const table = await sb.run(['nodes']);
  assert.match(table.stdout, /Intents for nodes not in the registry/);
  assert.match(table.stdout, /^ {2}future-node: drain by operator/m);
});

test('cli - bad input exits 2 with a clear message, before touching the registry', async (t) => {
  const sb = sandbox(t);
  // A registry that cannot exist: any attempt to open it would fail with exit 1, not 2.
  const env = { SWITCHYARD_REGISTRY: 'etcd://127.0.0.1:1' };
  const cases: [string[], RegExp][] = [
    [['drain', 'bad id'], /^error: invalid node id "bad id"/m],
    [['drain', 'a;b'], /^error: invalid node id "a;b"/m],
    [['node', 'add', 'x', '--uri', 'sip:10.0.0.1:5060;lr'], /^error: invalid --uri: not a plain SIP URI/m],
    [['node', 'add', 'x', '--uri', 'sip:10.0.0.1 5060'], /^error: invalid --uri: not a plain SIP URI/m],
    [['node', 'add', 'x', '--uri', 'sip:h', '--weight', '101'], /^error: invalid --weight: .*<=100/m],
    [
      ['node', 'add', 'x', '--uri', 'sip:h', '--set', 'one'],
      /^error: invalid --set: expected an integer, got "one"/m,
    ],
    [['node', 'add', 'x'], /required option '--uri <sip-uri>' not specified/],
    [['weight', 'x', '0'], /^error: invalid weight 0: must be an integer from 1 to 100, or "clear"/m],
    [['weight', 'x', '101'], /^error: invalid weight 101/m],
    [['weight', 'x', 'heavy'], /^error: invalid weight: expected an integer, got "heavy"/m],
    [['drain', 'x', '--reason', 'line\nbreak'], /^error: invalid --reason: no control characters/m],
    [['drian', 'x'], /unknown command 'drian'[\s\S]*Did you mean drain\?/],
    [['nodes', '--registry', ''], /^config error: registry: .* \(from flags\)$/m],
  ];
  for (const [args, message] of cases) {
    const res = await sb.run(args, env);
    assert.equal(res.code, 2, `switchyard ${args.join(' ')}: ${res.stderr}`);
    assert.match(res.stderr, message, `switchyard ${args.join(' ')}`);
    assert.equal(res.stdout, '', `switchyard ${args.join(' ')} prints nothing on stdout`);
  }
  const several = await sb.run(['node', 'add', 'a b', '--uri', 'x', '--weight', '0'], env);
  assert.equal(several.code, 2);
  assert.equal(several.stderr.trimEnd().split('\n').length, 3, `every problem at once:\n${several.stderr}`);
  const json = await sb.run(['weight', 'x', '500', '--json'], env);
  assert.equal(json.code, 2);
  assert.equal(
    (JSON.parse(json.stdout) as { error: { code: string } }).error.code,
    'SY_ERR_INVALID_ARGUMENT',
  );
});

test('cli - an unreachable registry is a runtime error, exit 1', async (t) => {
  const sb = sandbox(t);
  const port = await freeTcpPort();
  const res = await sb.run([
    'nodes',
    '--registry',
    `etcd://127.0.0.1:${port}`,
    '--call-timeout-ms',
    '300',
    '--json',
  ]);
  assert.equal(res.code, 1, res.stderr);
  assert.match(res.stderr, /^error: SY_ERR_REGISTRY_/m);
  assert.equal((JSON.parse(res.stdout) as { ok: boolean }).ok, false);
});

test('cli - dispatcher --print-config applies file < env < flags and redacts passwords', async (t) => {
  const sb = sandbox(t);
  const file = join(sb.dir, 'dispatcher.yaml');
  writeFileSync(
    file,
    'reloadDeltaMs: 1000\nverifyIntervalMs: 3000\nname: from-file\nmassRemoval:\n  maxFraction: 0.3\n',
  );
  const res = await sb.run(
    [
      'dispatcher',
      '--config',
      file,
      '--reload-delta-ms',
      '3000',
      '--set',
      '1',
      '--set',
      '4',
      '--print-config',
    ],
    {
      SWITCHYARD_RELOAD_DELTA_MS: '2000',
      SWITCHYARD_VERIFY_INTERVAL_MS: '4000',
      SWITCHYARD_MASS_REMOVAL__ALWAYS_ALLOW: '2',
      SWITCHYARD_REGISTRY: 'etcd://root:hunter2@10.0.0.1:2379,10.0.0.2:2379',
    },
  );
  assert.equal(res.code, 0, res.stderr);
  const out = res.stdout;
  assert.match(out, /^reloadDeltaMs: 3000$/m, 'flags beat env and file');
  assert.match(out, /^verifyIntervalMs: 4000$/m, 'env beats file');
  assert.match(out, /^name: from-file$/m, 'file beats defaults');
  assert.match(out, /^ {2}maxFraction: 0\.3$/m);
  assert.match(out, /^ {2}alwaysAllow: 2$/m, 'nested keys merge across sources');
  assert.match(out, /^sets:\n {2}- 1\n {2}- 4$/m);
  assert.match(out, /^registry: etcd:\/\/root:\[redacted\]@10\.0\.0\.1:2379,10\.0\.0\.2:2379$/m);
  assert.doesNotMatch(out, /hunter2/);
  assert.match(out, /^ {2}host: 127\.0\.0\.1$/m, 'admin binds loopback by default');
});

test('cli - agent --print-config applies file < env < flags, keeps the command, redacts the AMI password', async (t) => {
  const sb = sandbox(t);
  const file = join(sb.dir, 'agent.yaml');
  writeFileSync(
    file,
    'nodeId: from-file\nsetId: 7\nhealth:\n  failuresToDown: 5\ndrain:\n  deadlineMs: 9000\ntemplateVars:\n  trunkSecret: s3cret-trunk\n',
  );
  const res = await sb.run(
    [
      'agent',
      '--config',
      file,
      '--sip-uri',
      'sip:10.0.0.21:5060',
      '--set',
      '3',
      '--ami',
      'ami://admin:hunter2@127.0.0.1:5038',
      '--max-calls',
      '40',
      '--print-config',
      '--',
      'asterisk',
      '-f',
    ],
    {
      SWITCHYARD_NODE_ID: 'from-env',
      SWITCHYARD_DRAIN__DEADLINE_MS: '12000',
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    },
  );
  assert.equal(res.code, 0, res.stderr);
  const out = res.stdout;
  assert.match(out, /^nodeId: from-env$/m, 'env beats file');
  assert.match(out, /^setId: 3$/m, 'flags beat file');
  assert.match(out, /^ {2}deadlineMs: 12000$/m);
  assert.match(out, /^ {2}failuresToDown: 5$/m, 'file beats defaults');
  assert.match(out, /^maxCalls: 40$/m);
  assert.match(out, /^command:\n {2}- asterisk\n {2}- -f$/m, 'the argv after -- is the supervised command');
  assert.match(out, /^ami: ami:\/\/admin:\[redacted\]@127\.0\.0\.1:5038$/m);
  assert.doesNotMatch(out, /hunter2|s3cret-trunk/);
  assert.match(out, /^ {2}host: 127\.0\.0\.1$/m, 'admin binds loopback by default');
});

test('cli - agent refuses --weight with --max-calls, and a config error lists every problem', async (t) => {
  const sb = sandbox(t);
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  const both = await sb.run(
    ['agent', '--sip-uri', 'sip:10.0.0.21:5060', '--weight', '5', '--max-calls', '9'],
    env,
  );
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /--weight and --max-calls are alternatives/);
  const bad = await sb.run(
    ['agent', '--sip-uri', 'http://x', '--ami', 'ami://nopass@127.0.0.1', '--print-config'],
    { ...env, SWITCHYARD_HEALTH__FAILURES_TO_DOWN: '0' },
  );
  assert.equal(bad.code, 2, bad.stderr);
  const problems = bad.stderr.split('\n').filter((l) => l.startsWith('config error: '));
  assert.ok(
    problems.some((l) => l.startsWith('config error: sipUri: ')),
    bad.stderr,
  );
  assert.ok(
    problems.some((l) => l.startsWith('config error: ami: ')),
    bad.stderr,
  );
  assert.ok(
    problems.some((l) => l.startsWith('config error: health.failuresToDown: ')),
    bad.stderr,
  );
  assert.equal(bad.stdout, '', 'nothing printed as config');
});

test('cli - start --print-config shows the single-host defaults', async (t) => {
  const sb = sandbox(t);
  const res = await sb.run(['start', '--print-config'], { PATH: process.env['PATH'] ?? '/usr/bin:/bin' });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^listFile: var\/dispatcher\.list$/m);
  assert.match(res.stdout, /^kamailioRpc: http:\/\/127\.0\.0\.1:5071\/RPC$/m);
});

test('cli - a dispatcher config error lists every problem and exits 2', async (t) => {
  const sb = sandbox(t);
  const file = join(sb.dir, 'bad.yaml');
  writeFileSync(file, 'massRemoval:\n  maxFraction: 1.5\nadmin:\n  prot: 9401\n');
  const res = await sb.run(
    ['dispatcher', '--config', file, '--admin-port', 'http', '--kamailio-rpc', 'udp://x'],
    {
      SWITCHYARD_RELOAD_DELTA_MS: '-5',
      SWITCHYARD_LIST_FIEL: 'x',
    },
  );
  assert.equal(res.code, 2);
  assert.equal(res.stdout, '');
  const lines = res.stderr.trimEnd().split('\n');
  assert.ok(
    lines.every((l) => l.startsWith('config error: ')),
    res.stderr,
  );
  const expected = [
    /^config error: admin\.prot: unknown key \(did you mean port\?\) \(from file .*bad\.yaml\)$/,
    /^config error: SWITCHYARD_LIST_FIEL: .*did you mean SWITCHYARD_LIST_FILE\?.* \(from env\)$/,
    /^config error: admin\.port: expected a number, got "http" \(from flags\)$/,
    /^config error: kamailioRpc: .* \(from flags\)$/,
    /^config error: reloadDeltaMs: .*>=0 \(from env SWITCHYARD_RELOAD_DELTA_MS\)$/,
    /^config error: massRemoval\.maxFraction: .*<=1 \(from file .*bad\.yaml\)$/,
  ];
  assert.equal(lines.length, expected.length, res.stderr);
  for (const re of expected)
    assert.ok(
      lines.some((l) => re.test(l)),
      `${re} in:\n${res.stderr}`,
    );
});

test('cli - start runs the dispatcher on one host and exits 0 on SIGTERM', async (t) => {
  const sb = sandbox(t);
  // A port nothing answers on: the dispatcher must start (and keep retrying) without Kamailio.
  const rpcPort = await freeTcpPort();
  const child = spawn(
    process.execPath,
    [
      MAIN,
      'start',
      '--admin-port',
      '0',
      '--kamailio-rpc',
      `http://127.0.0.1:${rpcPort}/RPC`,
      '--log-level',
      'warn',
    ],
    {
      cwd: sb.dir,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: sb.dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  const deadline = Date.now() + 20_000;
  while (!stdout.includes('admin listening on') && Date.now() < deadline && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.match(stdout, /switchyard start: single-host mode/);
  assert.match(stdout, /deploy\/kamailio\/kamailio\.cfg/);
  assert.match(stdout, /^admin listening on http:\/\/127\.0\.0\.1:\d+ /m);
  assert.ok(
    existsSync(join(sb.dir, 'var', 'registry.db')),
    `embedded registry created in var/\n${stdout}${stderr}`,
  );
  // Let it run its first passes, then stop it the way systemd or Ctrl-C would.
  await new Promise((r) => setTimeout(r, 300));
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
});
