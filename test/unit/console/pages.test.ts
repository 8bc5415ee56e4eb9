import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ladderSvg } from '../../../src/capture/ladder.ts';
import type { CallSummary, StoredMessage } from '../../../src/capture/model.ts';
import type {
  CallDetail,
  ClusterModel,
  ClusterNode,
  LogEvent,
  Principal,
} from '../../../src/console/model.ts';
import {
  escapeHtml,
  html,
  type PageContext,
  raw,
  readAsset,
  renderCallPage,
  renderCallsPage,
  renderClusterFragment,
  renderClusterPage,
  renderErrorPage,
  renderEventsPage,
  renderLoginPage,
} from '../../../src/console/pages/index.ts';

const admin: Principal = { name: 'admin', role: 'admin' };
const reader: Principal = { name: 'grafana', role: 'read' };
const ctx = (principal: Principal = admin): PageContext => ({
  principal,
  csrfToken: 'csrf-abc123',
  title: 'switchyard up (demo)',
});

const NOW = '2026-12-01T10:00:00.000Z';

function node(id: string, extra: Partial<ClusterNode> = {}): ClusterNode {
  return {
    id,
    setId: 1,
    uri: `sip:${id}.local:5080`,
    source: 'agent',
    state: 'ready',
    effective: 'in-rotation',
    phase: 'up',
    healthy: true,
    calls: 3,
    callsSource: 'ami',
    maxCalls: 100,
    weight: 10,
    weightOverridden: false,
    restarts: 0,
    probeMs: 2,
    reason: null,
    version: 'Asterisk 20.5.0',
    since: '2026-12-01T09:00:00.000Z',
    lastChange: '2026-12-01T09:59:30.000Z',
    intent: null,
    drain: null,
    ...extra,
  };
}

function clusterModel(hostile = ''): ClusterModel {
  return {
    generatedAt: NOW,
    revision: 42,
    nodes: [
      node('ast-1'),
      node('ast-2', {
        state: 'ready',
        effective: 'drained',
        calls: 2,
        weight: 30,
        weightOverridden: true,
        reason: hostile || null,
        intent: {
          drain: true,
          disable: false,
          weight: 30,
          by: hostile || 'alice',
          reason: hostile || 'maintenance',
          updatedAt: '2026-12-01T09:58:00.000Z',
        },
        drain: {
          nodeId: 'ast-2',
          startedAt: '2026-12-01T09:58:00.000Z',
          by: hostile || 'alice',
          startCalls: 10,
          calls: 2,
          state: 'waiting',
          finishedAt: null,
        },
      }),
      node('static-1', {
        source: 'static',
        state: null,
        effective: 'disabled',
        phase: null,
        healthy: null,
        calls: null,
        callsSource: null,
        maxCalls: null,
        restarts: null,
        probeMs: null,
        version: null,
        lastChange: null,
        intent: { drain: false, disable: true, by: 'bob', updatedAt: '2026-12-01T09:00:00.000Z' },
      }),
      node('ast-3', {
        state: 'down',
        effective: 'down',
        phase: 'failed',
        healthy: false,
        reason: hostile || 'SIP OPTIONS timed out',
        restarts: 4,
        drain: {
          nodeId: 'ast-3',
          startedAt: '2026-12-01T09:50:00.000Z',
          by: 'alice',
          startCalls: 5,
          calls: 0,
          state: 'done',
          finishedAt: '2026-12-01T09:55:00.000Z',
        },
      }),
    ],
    dispatchers: [
      {
        name: hostile || 'lb-1',
        kamailioRpc: 'http://127.0.0.1:5071/RPC',
        listFile: '/var/lib/switchyard/dispatcher.list',
        generation: 17,
        appliedHash: 'abc',
        inSync: true,
        registryConnected: true,
        kamailioReachable: true,
        driftRepairs: 1,
        lastDrift: hostile || 'ast-2 state',
        ...(hostile ? { lastError: hostile } : {}),
        heldRemoval: { setId: 1, nodes: ['ast-4', hostile || 'ast-5'], since: '2026-12-01T09:59:00.000Z' },
        nodes: 4,
        updatedAt: '2026-12-01T09:59:58.000Z',
      },
    ],
    orphanIntents: [
      {
        id: 'ast-9',
        drain: true,
        disable: false,
        by: hostile || 'carol',
        reason: hostile || 'decommission',
        updatedAt: '2026-12-01T08:00:00.000Z',
      },
    ],
    rejected: [{ key: hostile || '/switchyard/nodes/bad', reason: hostile || 'node record invalid' }],
    services: [
      { name: 'kamailio', state: 'running', detail: hostile || 'pid 1234' },
      { name: 'capture', state: 'restarting', detail: null },
    ],
    generator: {
      target: 'sip:demo@127.0.0.1:5060',
      ratePerSecond: 2,
      attempted: 100,
      succeeded: 97,
      failed: 3,
      active: 4,
    },
  };
}

function summary(callId: string, hostile = ''): CallSummary {
  return {
    callId,
    firstTsUs: 1_764_583_200_000_000,
    lastTsUs: 1_764_583_230_000_000,
    method: 'INVITE',
    fromUser: hostile || '1001',
    toUser: hostile || '2002',
    finalStatus: 200,
    status: 'answered',
    setupDelayUs: 120_000,
    durationUs: 30_000_000,
    endpoints: ['10.0.0.1:5060', '10.0.0.2:5080'],
    captureIds: [1],
    messageCount: 7,
    correlation: [hostile || 'x-cid-1'],
  };
}

function callDetail(callId: string, hostile = ''): CallDetail {
  const text = `INVITE sip:2002@x SIP/2.0\r\nFrom: <sip:${hostile || '1001'}@x>\r\nCall-ID: ${callId}\r\n\r\n`;
  return {
    call: summary(callId, hostile),
    related: [summary(`${callId}-b`, hostile)],
    messages: [
      {
        id: 1,
        tsUs: 1_764_583_200_000_000,
        callId,
        src: '10.0.0.1:5060',
        dst: '10.0.0.2:5080',
        label: 'INVITE',
        cseq: '1 INVITE',
        transport: 'udp',
        text,
      },
      {
        id: 2,
        tsUs: 1_764_583_200_120_000,
        callId,
        src: '10.0.0.2:5080',
        dst: '10.0.0.1:5060',
        label: hostile || '200 OK',
        cseq: '1 INVITE',
        transport: 'tcp',
        text: hostile || 'SIP/2.0 200 OK\r\n\r\n',
      },
    ],
    events: [
      {
        tsUs: 1_764_583_210_000_000,
        kind: 'node.state',
        subject: 'ast-2',
        detail: { from: 'ready', to: 'draining', why: hostile || 'operator' },
      },
    ],
    nodes: ['ast-2'],
  };
}

function logEvents(hostile = ''): LogEvent[] {
  return [
    {
      tsUs: 1_764_583_100_000_000,
      kind: 'node.state',
      subject: 'ast-1',
      actor: 'registry',
      detail: { to: 'ready' },
    },
    {
      tsUs: 1_764_583_200_000_000,
      kind: 'operator.drain',
      subject: 'ast-2',
      actor: hostile || 'alice',
      detail: { reason: hostile || 'maintenance window', calls: 10 },
    },
  ];
}

const filters = { since: '15m', number: '', status: 'answered', node: 'ast-1' };
const nodeList = [
  { id: 'ast-1', uri: 'sip:ast-1.local:5080' },
  { id: 'ast-2', uri: 'sip:ast-2.local:5080' },
];

/**
 * Walks the markup: every `<` must open a well-formed tag (name, then only `name="value"` or bare
 * attributes) or close one, no attribute may be an event handler, and the only script is ours.
 * Text that escaped its context (a raw `<`, a broken-out attribute) fails one of these.
 */
function assertWellFormed(page: string): void {
  const tag = /^<(\/?)([a-zA-Z][\w-]*)((?:\s+[a-zA-Z_:][\w:.-]*(?:="[^"<>]*")?)*)\s*\/?>/;
  let scripts = 0;
  for (let i = page.indexOf('<'); i >= 0; i = page.indexOf('<', i + 1)) {
    const rest = page.slice(i);
    if (rest.startsWith('<!doctype html>')) continue;
    const m = tag.exec(rest);
    assert.ok(m, `stray '<' at ${i}: ${rest.slice(0, 60)}`);
    const attrs = [...(m[3] ?? '').matchAll(/\s+([a-zA-Z_:][\w:.-]*)/g)].map((a) => a[1] ?? '');
    const attrNames = (m[3] ?? '')
      .replace(/="[^"]*"/g, '')
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    assert.ok(attrs.length >= attrNames.length);
    for (const name of attrNames) assert.doesNotMatch(name, /^on/i, `event handler attribute in ${m[0]}`);
    assert.doesNotMatch(m[3] ?? '', /javascript:/i);
    if (m[1] === '' && m[2]?.toLowerCase() === 'script') {
      scripts++;
      assert.equal(m[0], '<script src="/assets/console.js" defer>');
    }
  }
  assert.ok(scripts <= 1, 'only our script');
}

function assertNoInjection(page: string, hostile: string): void {
  assertWellFormed(page);
  if (hostile !== '') assert.ok(!page.includes(hostile), `raw hostile text in page: ${hostile}`);
}

const HOSTILE = `"><script>alert(1)</script><img src=x onerror=alert(2)>'`;

test('html - escapes interpolations and keeps raw() and nested templates as they are', () => {
  assert.equal(escapeHtml(`<a href="x" title='y'>&`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;');
  const inner = html`<b>${'<i>'}</b>`;
  assert.equal(
    html`<p title="${'"x"'}">${inner}${raw('<svg></svg>')}${null}${undefined}${false}${0}${['<', html`<br>`]}</p>`
      .value,
    '<p title="&quot;x&quot;"><b>&lt;i&gt;</b><svg></svg>0&lt;<br></p>',
  );
});

test('pages - the cluster page renders every section with stable test ids for an admin', () => {
  const page = renderClusterPage(ctx(), clusterModel());
  assert.match(page, /^<!doctype html>/);
  assert.match(page, /<meta name="csrf-token" content="csrf-abc123">/);
  assert.match(page, /<input type="hidden" name="csrf" value="csrf-abc123">/);
  assert.match(page, /<form method="post" action="\/logout"/);
  assert.match(page, /<link rel="stylesheet" href="\/assets\/console\.css">/);
  assert.match(page, /<script src="\/assets\/console\.js" defer><\/script>/);
  assert.match(page, /data-testid="live-status"/);
  assert.match(page, /id="flash"/);
  assert.match(page, /<div id="cluster-live">/);
  for (const id of ['ast-1', 'ast-2', 'static-1', 'ast-3']) {
    assert.match(page, new RegExp(`data-testid="node-row-${id}"`));
    assert.match(page, new RegExp(`data-testid="node-state-${id}"`));
    assert.match(page, new RegExp(`data-testid="node-calls-${id}"`));
    assert.match(page, new RegExp(`data-testid="weight-input-${id}"`));
    assert.match(page, new RegExp(`data-testid="weight-set-${id}"`));
  }
  // In rotation: drain and disable; drained by the operator: undrain; disabled: enable.
  assert.match(page, /data-action="drain" data-node="ast-1" data-testid="drain-ast-1"/);
  assert.match(page, /data-testid="disable-ast-1"/);
  assert.match(page, /data-testid="undrain-ast-2"/);
  assert.doesNotMatch(page, /data-testid="drain-ast-2"/);
  assert.match(page, /data-testid="enable-static-1"/);
  assert.doesNotMatch(page, /data-testid="disable-static-1"/);
  assert.match(page, /data-testid="weight-clear-ast-2"/);
  assert.doesNotMatch(page, /data-testid="weight-clear-ast-1"/);
  // State text, calls with max and source, weight override marker, relative times.
  assert.match(page, /data-testid="node-state-ast-1"[^>]*>in rotation</);
  assert.match(page, /class="state st-warn" data-testid="node-state-ast-2"/);
  assert.match(page, /class="state st-bad" data-testid="node-state-ast-3"/);
  assert.match(page, /class="state st-off" data-testid="node-state-static-1"/);
  assert.match(page, /data-testid="node-calls-ast-1" title="from ami">3\/100</);
  assert.match(page, /data-testid="node-calls-static-1" title="source unknown">-</);
  assert.match(page, />30\*</);
  assert.match(page, />1 h ago</);
  assert.match(page, />30 s ago</);
  assert.match(page, /SIP OPTIONS timed out/);
  // Drain progress: waiting with a bar, done.
  assert.match(
    page,
    /data-testid="drain-progress-ast-2"[^>]*><progress max="10" value="8"><\/progress> <span>2 calls left/,
  );
  assert.match(page, /data-testid="drain-progress-ast-3"[^>]*>.*<span>drained</);
  // Dispatchers, services, generator, problems.
  assert.match(page, /data-testid="dispatchers-table"/);
  assert.match(page, /lb-1/);
  assert.match(page, /2 held: ast-4, ast-5/);
  assert.match(page, /data-testid="services-table"/);
  assert.match(page, /kamailio/);
  assert.match(page, /data-testid="generator"/);
  assert.match(page, /data-testid="rejected"/);
  assert.match(page, /data-testid="orphan-intents"/);
  assert.match(page, /<code>ast-9<\/code>: drain by carol \(decommission\)/);
  assertNoInjection(page, '');
});

test('pages - a read-only principal sees no admin buttons', () => {
  const page = renderClusterPage(ctx(reader), clusterModel());
  assert.match(page, /grafana <span class="role role-read">read/);
  assert.doesNotMatch(page, /data-action=/);
  for (const t of ['drain', 'undrain', 'disable', 'enable', 'weight-input', 'weight-set'])
    assert.doesNotMatch(page, new RegExp(`data-testid="${t}-(ast|static)`));
  assert.match(page, /data-testid="node-row-ast-1"/);
  assert.match(page, /data-testid="drain-progress-ast-2"/);
  assert.doesNotMatch(renderClusterFragment(clusterModel(), false), /<button/);
});

test('pages - the cluster fragment is the live part only, without the layout', () => {
  const fragment = renderClusterFragment(clusterModel(), true);
  assert.doesNotMatch(fragment, /<html|<head|<body|cluster-live/);
  assert.match(fragment, /data-revision="42"/);
  assert.match(fragment, /data-testid="node-row-ast-1"/);
  assert.ok(renderClusterPage(ctx(), clusterModel()).includes(fragment));
});

test('pages - an empty cluster renders without tables', () => {
  const model: ClusterModel = {
    ...clusterModel(),
    nodes: [],
    dispatchers: [],
    orphanIntents: [],
    rejected: [],
    services: [],
    generator: null,
  };
  const page = renderClusterPage(ctx(), model);
  assert.match(page, /No nodes in the registry yet/);
  assert.doesNotMatch(page, /data-testid="(generator|rejected|orphan-intents|services-table)"/);
});

test('pages - the calls page has the filter form and links every call', () => {
  const calls = [summary('abc@10.0.0.1'), summary('a/b?c#d "e"')];
  const page = renderCallsPage(ctx(), filters, calls, nodeList);
  assert.match(page, /<form method="get" action="\/calls"/);
  assert.match(page, /<option value="15m" selected>/);
  assert.match(page, /<option value="answered" selected>answered/);
  assert.match(page, /<option value="ast-1" selected>ast-1 \(sip:ast-1\.local:5080\)/);
  for (const s of ['ringing', 'failed', 'cancelled', 'busy', 'unknown'])
    assert.match(page, new RegExp(`value="${s}"`));
  assert.match(page, /href="\/calls\/abc%4010\.0\.0\.1" data-testid="call-row-abc@10\.0\.0\.1"/);
  assert.match(
    page,
    /href="\/calls\/a%2Fb%3Fc%23d%20%22e%22" data-testid="call-row-a\/b\?c#d &quot;e&quot;"/,
  );
  assert.match(page, /1001 → 2002/);
  assert.match(page, />120 ms</);
  assert.match(page, />30\.0 s</);
  assert.match(page, /aria-current="page" class="current">Calls/);
  assert.match(renderCallsPage(ctx(), filters, [], nodeList), /No calls match/);
  assert.doesNotMatch(page, /capture-kept/, 'no line without a capture store');
});

test('pages - the calls page says what capture keeps: span, size and retention', () => {
  const kept = {
    store: 'sqlite' as const,
    messages: 52_000,
    calls: 7412,
    bytes: 23_456_789,
    oldest: '2026-11-24T10:00:00.000Z',
    newest: '2026-12-01T09:59:59.500Z',
    retention: { maxAgeMs: 168 * 3_600_000, maxBytes: 1024 * 1_048_576, lastRun: '2026-12-01T09:59:00.000Z' },
  };
  const page = renderCallsPage(ctx(), filters, [], nodeList, kept);
  assert.match(
    page,
    /Capture holds 7,412 calls \(23\.5 MB of SIP\) from 2026-11-24 10:00:00\.000 to 2026-12-01 09:59:59\.500 UTC; kept up to 168 h and 1024 MiB\./,
  );
  const fresh = renderCallsPage(ctx(), filters, [], nodeList, { ...kept, calls: 0, bytes: 0, retention: {} });
  assert.match(fresh, /Capture holds 0 calls \(0\.0 MB of SIP\).*; no retention run yet\./);
  const unlimited = renderCallsPage(ctx(), filters, [], nodeList, {
    ...kept,
    retention: { lastRun: kept.newest },
  });
  assert.match(unlimited, /; kept without limit\./);
  const quarter = renderCallsPage(ctx(), filters, [], nodeList, {
    ...kept,
    retention: { maxAgeMs: 900_000 },
  });
  assert.match(quarter, /; kept up to 0\.25 h\./);
});

test('pages - the call page shows summary, legs, ladder, events, messages and downloads', () => {
  const detail = callDetail('abc@10.0.0.1');
  const svg = '<svg xmlns="http://www.w3.org/2000/svg"><text>INVITE</text></svg>';
  const page = renderCallPage(ctx(), detail, svg);
  assert.match(page, /<div class="ladder" data-testid="ladder"><svg xmlns/);
  assert.match(page, /href="\/api\/v1\/calls\/abc%4010\.0\.0\.1\/pcap"/);
  assert.match(page, /href="\/api\/v1\/calls\/abc%4010\.0\.0\.1\/text"/);
  assert.match(page, /href="\/calls\/abc%4010\.0\.0\.1-b"/);
  assert.match(page, /\+10\.000 s<\/span> <strong>node\.state<\/strong> ast-2/);
  assert.match(page, /from=ready to=draining why=operator/);
  assert.match(page, /<details><summary>INVITE<\/summary><pre class="sip">INVITE sip:2002@x SIP\/2\.0/);
  assert.match(page, /\+0\.120 s/);
  assert.match(page, /1 INVITE/);
});

test('pages - the call page embeds the real ladder SVG', () => {
  const m: StoredMessage = {
    id: 1,
    tsUs: 1_000_000,
    srcIp: '10.0.0.1',
    srcPort: 5060,
    dstIp: '10.0.0.2',
    dstPort: 5080,
    transport: 'udp',
    captureId: 1,
    callId: 'c1',
    method: 'INVITE',
    cseq: '1 INVITE',
    fromUser: '<script>',
    toUser: 'b',
    raw: Buffer.from('INVITE sip:b@x SIP/2.0\r\nCall-ID: c1\r\n\r\n'),
  };
  const page = renderCallPage(ctx(), callDetail('c1'), ladderSvg([m]));
  assert.match(page, /data-testid="ladder"><svg/);
  assertNoInjection(page, '');
});

test('pages - the events page lists events newest first with compact details', () => {
  const page = renderEventsPage(ctx(), logEvents());
  const rows = page.match(/data-testid="event-row"/g) ?? [];
  assert.equal(rows.length, 2);
  assert.ok(page.indexOf('operator.drain') < page.indexOf('node.state'), 'newest first');
  assert.match(page, /reason=&quot;maintenance window&quot; calls=10/);
  assert.match(page, /<tbody id="events-body">/);
  assert.match(renderEventsPage(ctx(), []), /id="events-empty"/);
});

test('pages - the login page posts the token and says where it is', () => {
  const page = renderLoginPage({ error: 'Unknown token', next: '/calls?status=failed' });
  assert.match(page, /<form method="post" action="\/login"/);
  assert.match(page, /<input type="password" id="token" name="token"/);
  assert.match(page, /<input type="hidden" name="next" value="\/calls\?status=failed">/);
  assert.match(page, /Unknown token/);
  assert.match(page, /var\/console\/admin\.token/);
  assert.doesNotMatch(page, /csrf-token|\/logout/);
  assert.doesNotMatch(renderLoginPage({}), /role="alert"/);
  assert.match(renderErrorPage(404, 'No such call'), /<h1>404<\/h1>[\s\S]*No such call/);
});

test('pages - no page has inline script, style or event handlers (CSP)', () => {
  const pages = [
    renderClusterPage(ctx(), clusterModel()),
    renderCallsPage(ctx(), filters, [summary('c1')], nodeList),
    renderCallPage(ctx(), callDetail('c1'), '<svg></svg>'),
    renderEventsPage(ctx(), logEvents()),
    renderLoginPage({ error: 'x' }),
    renderErrorPage(500, 'boom'),
  ];
  for (const page of pages) {
    assert.doesNotMatch(page, /<script(?! src="\/assets\/console\.js" defer><\/script>)/);
    assert.doesNotMatch(page, /<style|\sstyle=|\son[a-z]+=|javascript:/i);
  }
});

test('pages - hostile strings are escaped on every page', () => {
  const hostile = HOSTILE;
  assertNoInjection(renderClusterPage(ctx(), clusterModel(hostile)), hostile);
  assertNoInjection(renderClusterFragment(clusterModel(hostile), true), hostile);
  assertNoInjection(
    renderCallsPage(
      ctx(),
      { since: hostile, number: hostile, status: hostile, node: hostile },
      [summary(hostile, hostile)],
      nodeList,
    ),
    hostile,
  );
  assertNoInjection(renderCallPage(ctx(), callDetail(hostile, hostile), '<svg></svg>'), hostile);
  assertNoInjection(renderEventsPage(ctx(), logEvents(hostile)), hostile);
  assertNoInjection(renderLoginPage({ error: hostile, next: hostile }), hostile);
  assertNoInjection(renderErrorPage(400, hostile), hostile);
  assertNoInjection(
    renderClusterPage(
      { principal: { name: hostile, role: 'admin' }, csrfToken: hostile, title: hostile },
      clusterModel(),
    ),
    hostile,
  );
});

test('pages - the markup check itself catches break-outs', () => {
  assert.throws(() => assertWellFormed('<p>a < b</p>'), /stray/);
  assert.throws(() => assertWellFormed('<p title="x" onclick="y">'), /event handler/);
  assert.throws(() => assertWellFormed('<td title=""><script>x</script>">'), /script/);
  assert.throws(() => assertWellFormed('<a href="javascript:x">'));
  assertWellFormed('<!doctype html><p title="a &quot;b&quot;" hidden>x &lt; y</p><path d="M 0 0"/>');
});

test('pages - arbitrary strings in free-text fields never inject markup (property)', () => {
  const text = fc.oneof(
    fc.string(),
    fc.constantFrom('<script>', '"><script>x</script>', "'><svg onload=x>", '</textarea>', '&lt;', '`x`'),
    fc.string({
      unit: fc.constantFrom('<', '>', '"', "'", '&', 's', 'c', 'r', 'i', 'p', 't', ' ', '=', '/'),
    }),
  );
  fc.assert(
    fc.property(text, (s) => {
      const pages = [
        renderClusterPage(ctx(), clusterModel(s)),
        renderCallsPage(ctx(), { since: s, number: s, status: s, node: s }, [summary(s, s)], nodeList),
        renderCallPage(ctx(), callDetail(s, s), '<svg></svg>'),
        renderEventsPage(ctx(), logEvents(s)),
        renderLoginPage({ error: s, next: s }),
        renderErrorPage(400, s),
      ];
      for (const page of pages) assertWellFormed(page);
    }),
    { numRuns: 200 },
  );
});

test('assets - console.js and console.css are served from src/console/assets and cached', () => {
  const js = readAsset('console.js');
  const css = readAsset('console.css');
  assert.ok(js && css);
  assert.match(js.contentType, /^text\/javascript/);
  assert.match(css.contentType, /^text\/css/);
  assert.match(js.body, /new EventSource\('\/api\/v1\/stream'\)/);
  assert.match(js.body, /X-CSRF-Token/);
  assert.doesNotMatch(js.body, /innerHTML\s*=(?!\s*markup;)/);
  assert.strictEqual(readAsset('console.js'), js);
  assert.equal(readAsset('nope.js' as 'console.js'), undefined);
});
