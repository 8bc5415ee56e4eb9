import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type KeepalivedOptions,
  keepalivedCommand,
  keepalivedOptionsSchema,
  renderKeepalivedConfig,
} from '../../../src/lab/keepalived-config.ts';

const BASE: KeepalivedOptions = {
  routerId: 'lb1',
  interface: 'eth0',
  virtualRouterId: 51,
  priority: 150,
  advertIntervalS: 1,
  unicastSrcIp: '10.213.0.11',
  unicastPeers: ['10.213.0.12'],
  vip: '10.213.0.100',
  prefixLength: 24,
};

const CHECK = {
  argv: ['/usr/bin/curl', '-fsS', '--max-time', '1', 'http://127.0.0.1:9401/readyz'],
  intervalS: 1,
  timeoutS: 2,
  fall: 2,
  rise: 2,
  weight: -100,
};

test('keepalived config - the research config: unicast VRRP, both BACKUP, garp settings', () => {
  assert.equal(
    renderKeepalivedConfig(BASE),
    [
      '# Rendered by switchyard src/lab/keepalived-config.ts - see docs/reference/keepalived-config.md',
      'global_defs {',
      '    router_id lb1',
      '    enable_script_security',
      '    script_user root',
      '    vrrp_garp_master_delay 0',
      '    vrrp_garp_master_repeat 3',
      '}',
      'vrrp_instance VI_SIP {',
      '    state BACKUP',
      '    interface eth0',
      '    version 3',
      '    virtual_router_id 51',
      '    priority 150',
      '    advert_int 1',
      '    unicast_src_ip 10.213.0.11',
      '    unicast_peer {',
      '        10.213.0.12',
      '    }',
      '    virtual_ipaddress {',
      '        10.213.0.100/24 dev eth0',
      '    }',
      '}',
      '',
    ].join('\n'),
  );
});

test('keepalived config - the health check is tracked and the notify script attached', () => {
  const cfg = renderKeepalivedConfig({
    ...BASE,
    advertIntervalS: 0.2,
    checkScript: CHECK,
    notifyScript: { argv: ['/usr/local/bin/sylab-notify', 'lb1'] },
  });
  assert.match(
    cfg,
    /vrrp_script chk_lb \{\n {4}script "\/usr\/bin\/curl -fsS --max-time 1 http:\/\/127.0.0.1:9401\/readyz"\n {4}interval 1\n {4}timeout 2\n {4}fall 2\n {4}rise 2\n {4}weight -100\n\}\n/,
  );
  assert.match(cfg, / {4}advert_int 0.2\n/);
  assert.match(cfg, / {4}track_script \{\n {8}chk_lb\n {4}\}\n/);
  assert.match(cfg, / {4}notify "\/usr\/local\/bin\/sylab-notify lb1"\n\}\n$/);
  assert.ok(!cfg.includes('nopreempt'), 'preemption stays on');
  assert.ok(!cfg.includes('vrrp_strict'), 'vrrp_strict would refuse unicast');
  // Balanced braces: the structure is ours alone.
  assert.equal(cfg.split('{').length, cfg.split('}').length);
});

test('keepalived config - several peers, one per line', () => {
  const cfg = renderKeepalivedConfig({ ...BASE, unicastPeers: ['10.213.0.12', '10.213.0.13'] });
  assert.match(cfg, /unicast_peer \{\n {8}10.213.0.12\n {8}10.213.0.13\n {4}\}/);
});

test('keepalived config - bad values are refused with their path', () => {
  const bad: [Partial<KeepalivedOptions>, RegExp][] = [
    [{ routerId: 'lb 1' }, /routerId/],
    [{ interface: 'eth0-is-far-too-long' }, /interface/],
    [{ virtualRouterId: 0 }, /virtualRouterId/],
    [{ priority: 255 }, /priority/],
    [{ advertIntervalS: 0.05 }, /advertIntervalS/],
    [{ advertIntervalS: 0.123 }, /centiseconds/],
    [{ unicastSrcIp: '10.213.0.256' }, /unicastSrcIp/],
    [{ unicastPeers: [] }, /unicastPeers/],
    [{ unicastPeers: ['10.213.0.11'] }, /unicastPeers: must not contain/],
    [{ unicastPeers: ['10.213.0.12', '10.213.0.12'] }, /duplicate/],
    [{ vip: '10.213.0.12' }, /vip: must differ/],
    [{ prefixLength: 33 }, /prefixLength/],
    [{ checkScript: { ...CHECK, argv: ['curl', 'x'] } }, /absolute path/],
    [{ checkScript: { ...CHECK, argv: ['/bin/sh', '-c', 'true; reboot'] } }, /checkScript.argv.2/],
    [{ checkScript: { ...CHECK, argv: ['/usr/bin/test', '$HOME'] } }, /checkScript.argv.1/],
    [{ checkScript: { ...CHECK, intervalS: 0.5 } }, /intervalS/],
    [{ checkScript: { ...CHECK, weight: 10 } }, /weight/],
    [{ notifyScript: { argv: ['/bin/echo', 'a"b'] } }, /notifyScript.argv.1/],
  ];
  for (const [over, message] of bad) {
    assert.throws(
      () => renderKeepalivedConfig({ ...BASE, ...over } as KeepalivedOptions),
      (err: Error & { code?: string }) => err.code === 'SY_ERR_CONFIG_INVALID' && message.test(err.message),
      JSON.stringify(over),
    );
  }
  assert.throws(
    () => renderKeepalivedConfig({ ...BASE, extra: 1 } as KeepalivedOptions),
    /SY_ERR|Unrecognized|extra/,
  );
});

test('keepalived config - arbitrary strings in any field are refused or cannot inject', () => {
  const stringFields = ['routerId', 'interface', 'unicastSrcIp', 'vip'] as const;
  const nasty = fc.oneof(
    fc.string(),
    fc.constantFrom(
      'a\nb',
      'a}b',
      'a{',
      '"',
      "'",
      'x #y',
      'x !y',
      '$x',
      'a b',
      '@x',
      '\\',
      '10.0.0.1\n}',
      '',
    ),
    fc.string({ unit: 'grapheme' }),
  );
  const check = (opts: unknown) => {
    let cfg: string;
    try {
      cfg = renderKeepalivedConfig(opts as KeepalivedOptions);
    } catch (err) {
      assert.equal((err as { code?: string }).code, 'SY_ERR_CONFIG_INVALID');
      return;
    }
    // Accepted: it must have the exact structure of a clean render.
    const shape = (text: string) => text.replace(/[^{}"\n]/g, '');
    assert.equal(
      shape(cfg),
      shape(renderKeepalivedConfig({ ...BASE, checkScript: CHECK, notifyScript: { argv: ['/x'] } })),
    );
    for (const line of cfg.split('\n')) assert.doesNotMatch(line, /[\r\t'\\$!;`]/);
  };
  fc.assert(
    fc.property(fc.constantFrom(...stringFields), nasty, (field, value) => {
      check({ ...BASE, checkScript: CHECK, notifyScript: { argv: ['/x'] }, [field]: value });
    }),
  );
  fc.assert(
    fc.property(fc.array(nasty, { minLength: 1, maxLength: 4 }), nasty, (args, notifyArg) => {
      check({
        ...BASE,
        checkScript: { ...CHECK, argv: ['/usr/bin/x', ...args] },
        notifyScript: { argv: ['/x'] },
      });
      check({ ...BASE, checkScript: CHECK, notifyScript: { argv: ['/x', notifyArg] } });
      check({ ...BASE, checkScript: CHECK, notifyScript: { argv: [`/${notifyArg}`] } });
    }),
  );
  fc.assert(
    fc.property(fc.anything(), (value) => {
      check({ ...BASE, checkScript: CHECK, notifyScript: { argv: ['/x'] }, unicastPeers: [value] });
    }),
  );
});

test('keepalived config - the schema accepts the bounds', () => {
  for (const over of [
    { advertIntervalS: 0.1 },
    { advertIntervalS: 10 },
    { priority: 1 },
    { priority: 254 },
    { virtualRouterId: 255 },
    { prefixLength: 8 },
    { prefixLength: 32 },
    { checkScript: { ...CHECK, weight: 0 } },
  ]) {
    assert.ok(keepalivedOptionsSchema.safeParse({ ...BASE, ...over }).success, JSON.stringify(over));
  }
});

test('keepalived command - foreground, console log, VRRP only, private pid files', () => {
  assert.deepEqual(
    keepalivedCommand({
      bin: '/usr/sbin/keepalived',
      cfgPath: '/tmp/lab/lb1/keepalived.conf',
      workDir: '/tmp/lab/lb1/',
    }),
    [
      '/usr/sbin/keepalived',
      '-n',
      '-l',
      '-D',
      '-P',
      '-G',
      '-f',
      '/tmp/lab/lb1/keepalived.conf',
      '-p',
      '/tmp/lab/lb1/keepalived.pid',
      '-r',
      '/tmp/lab/lb1/vrrp.pid',
      '-c',
      '/tmp/lab/lb1/checkers.pid',
    ],
  );
  assert.throws(() => keepalivedCommand({ bin: 'keepalived', cfgPath: '/a', workDir: '/b' }), /bin/);
  assert.throws(() => keepalivedCommand({ bin: '/k', cfgPath: '/a/../etc', workDir: '/b' }), /cfgPath/);
  assert.throws(() => keepalivedCommand({ bin: '/k', cfgPath: '/a', workDir: '/b c' }), /workDir/);
});
