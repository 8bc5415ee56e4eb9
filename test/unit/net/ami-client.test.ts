import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { SwitchyardError } from '../../../src/core/errors.ts';
import { createLogger } from '../../../src/core/logger.ts';
import { createCallCounter } from '../../../src/net/ami-calls.ts';
import {
  type AmiClient,
  type AmiClientOptions,
  type AmiState,
  type AmiStateDetail,
  createAmiClient,
} from '../../../src/net/ami-client.ts';
import { type AmiMessage, getField, getFields } from '../../../src/proto/ami.ts';
import {
  type FakeAmi,
  type FakeAmiOptions,
  type FakeAmiTiming,
  startFakeAmi,
} from '../../harness/fake-ami.ts';
import { waitFor } from '../../harness/wait.ts';

/**
 * The AMI client and call counter against test/harness/fake-ami.ts, which replays Asterisk 20
 * transcripts (test/fixtures/ami/). Timings are shrunk; the order of messages is Asterisk's.
 */

const USER = 'switchyard';
const SECRET = 'Zebra-s3cr3t-42';
const FAST: Partial<FakeAmiTiming> = {
  authFailedDelayMs: 10,
  stopNowShutdownMs: 30,
  lastCallShutdownMs: 30,
  idleShutdownMs: 5,
  closeAfterShutdownMs: 5,
};

interface Setup {
  fake: FakeAmi;
  client: AmiClient;
  logs: string[];
  states: Array<[AmiState, AmiStateDetail]>;
  events: AmiMessage[];
}

const codeOf = (code: string) => (err: unknown) => SwitchyardError.is(err) && err.code === code;

async function setup(
  t: TestContext,
  fakeOpts: FakeAmiOptions = {},
  clientOpts: Partial<AmiClientOptions> = {},
): Promise<Setup> {
  const fake = await startFakeAmi({ username: USER, secret: SECRET, timing: FAST, ...fakeOpts });
  const client = connectTo(t, fake.port, clientOpts);
  t.after(() => fake.close());
  return { fake, ...client };
}

function connectTo(t: TestContext, port: number, clientOpts: Partial<AmiClientOptions> = {}) {
  const logs: string[] = [];
  const logger = createLogger({ level: 'trace', destination: { write: (line: string) => logs.push(line) } });
  const client = createAmiClient({
    host: '127.0.0.1',
    port,
    username: USER,
    secret: SECRET,
    logger,
    connectTimeoutMs: 500,
    actionTimeoutMs: 500,
    reconnect: { initialMs: 20, maxMs: 200 },
    ...clientOpts,
  });
  const states: Array<[AmiState, AmiStateDetail]> = [];
  const events: AmiMessage[] = [];
  client.onState((state, detail) => states.push([state, detail]));
  client.onEvent((event) => events.push(event));
  t.after(async () => {
    await client.close();
    // Whatever happened in the test, the secret never reached a log line.
    const leaked = logs.filter((l) => l.includes(SECRET));
    assert.deepEqual(leaked, [], 'secret in logs');
  });
  return { client, logs, states, events };
}

const connected = (client: AmiClient, what = 'AMI login') =>
  waitFor(() => client.state === 'connected', { timeoutMs: 1500, what });

test('ami client - logs in as the transcripts do and sees FullyBooted', async (t) => {
  const { fake, client, states, events } = await setup(t);
  await connected(client);
  await waitFor(() => client.fullyBooted, { timeoutMs: 1000, what: 'FullyBooted' });
  assert.equal(client.version, '9.0.0');
  assert.equal(client.session, 1);
  assert.deepEqual(
    states.map(([s]) => s),
    ['authenticating', 'connected'],
  );
  const login = fake.actions.find((a) => a.name === 'Login')!;
  assert.deepEqual(
    login.fields.filter(([k]) => k !== 'ActionID'),
    [
      ['Action', 'Login'],
      ['Username', USER],
      ['Secret', SECRET],
      ['Events', 'on'],
    ],
  );
  await waitFor(() => events.some((e) => getField(e, 'Event') === 'SuccessfulAuth'), { timeoutMs: 1000 });
  assert.equal(getField(events[0]!, 'Event'), 'FullyBooted');
  const status = await client.action('CoreStatus');
  assert.equal(getField(status, 'Response'), 'Success');
  assert.equal(getField(status, 'CoreCurrentCalls'), '0');
});

test('ami client - a wrong secret is auth-failed, retried slowly and said clearly', async (t) => {
  const fake = await startFakeAmi({ username: USER, secret: 'the-right-one', timing: FAST });
  t.after(() => fake.close());
  const { client, states, logs } = connectTo(t, fake.port);
  await waitFor(() => client.state === 'auth-failed', { timeoutMs: 1000, what: 'auth-failed' });
  const [, detail] = states.find(([s]) => s === 'auth-failed')!;
  assert.equal(detail.retryInMs, 200, 'retries at maxMs, not at the fast backoff');
  assert.match(detail.reason ?? '', /Authentication failed/);
  await assert.rejects(client.action('Ping'), codeOf('SY_ERR_AMI_AUTH_FAILED'));
  assert.ok(logs.some((l) => /"level":50/.test(l) && /check the AMI username and secret/.test(l)));
  // It keeps trying (the secret may be fixed in manager.conf), at the slow pace.
  await waitFor(() => fake.connectionsAccepted >= 2, { timeoutMs: 1000, what: 'second attempt' });
  assert.equal(client.stats().authFailures >= 1, true);
});

test('ami client - waits for FullyBooted when Asterisk is still booting', async (t) => {
  const { fake, client, events } = await setup(t, { booted: false });
  await connected(client);
  await client.action('Ping');
  assert.equal(client.fullyBooted, false);
  fake.finishBoot();
  await waitFor(() => client.fullyBooted, { timeoutMs: 1000, what: 'FullyBooted' });
  assert.ok(events.some((e) => getField(e, 'Event') === 'FullyBooted'));
});

test('ami client - actions: lists, Command output, errors, reserved and invalid ones', async (t) => {
  const { fake, client } = await setup(t);
  fake.addCall();
  await connected(client);
  const list = await client.actionList('CoreShowChannels');
  assert.equal(list.events.length, 1);
  assert.equal(getField(list.events[0]!, 'Event'), 'CoreShowChannel');
  assert.equal(getField(list.complete!, 'ListItems'), '1');
  assert.equal(getField(list.response, 'EventList'), 'start');

  const out = await client.action('Command', { Command: 'core show channels count' });
  assert.deepEqual(getFields(out, 'Output'), ['1 active channel', '1 active call', '1 call processed']);

  await assert.rejects(client.action('NoSuchAction'), (err: unknown) => {
    assert.ok(codeOf('SY_ERR_AMI_ACTION_FAILED')(err));
    assert.match((err as Error).message, /Invalid\/unknown command: NoSuchAction/);
    return true;
  });
  await assert.rejects(client.action('Command', { Command: 'core shutdown gracefully' }), (err: unknown) => {
    const response = (err as SwitchyardError).details as { response: AmiMessage };
    assert.match(getField(response.response, 'Output') ?? '', /^No such command 'core shutdown gracefully'/);
    return codeOf('SY_ERR_AMI_ACTION_FAILED')(err);
  });
  await assert.rejects(client.action('Login'), codeOf('SY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(
    client.action('Ping', { X: 'a\r\nAction: Command' }),
    codeOf('SY_ERR_INVALID_ARGUMENT'),
  );
  assert.equal(fake.actions.filter((a) => a.name === 'Login').length, 1, 'nothing was injected');
  assert.equal(client.state, 'connected');
});

test('ami client - an action without a response times out and the session carries on', async (t) => {
  const { fake, client } = await setup(t);
  await connected(client);
  fake.silence('Ping');
  await assert.rejects(client.action('Ping', {}, { timeoutMs: 50 }), codeOf('SY_ERR_AMI_TIMEOUT'));
  fake.silence('Ping', false);
  assert.equal(getField(await client.action('Ping'), 'Ping'), 'Pong');
  assert.equal(client.stats().actionTimeouts, 1);
  assert.equal(client.session, 1);
});

test('ami client - garbage and oversized frames are dropped, counted and survived', async (t) => {
  const { fake, client, events, logs } = await setup(t, {}, { maxFrameBytes: 4096 });
  await connected(client);
  fake.sendRaw(Buffer.from([0, 1, 2, 255, 13, 10, 0xfe, 13, 10, 13, 10]));
  fake.sendRaw(`Event: Huge\r\nValue: ${'x'.repeat(100_000)}\r\n\r\n`);
  fake.sendRaw('no colon here\r\n\r\n');
  fake.sendRaw(`Response: Success\r\nActionID: sy-999999\r\nMessage: ${SECRET}\r\n\r\n`);
  fake.sendRaw(`garbage with the secret ${SECRET} in it\r\n\r\n`);
  // The logged sample is the frame's first 64 bytes: cut in the middle of the secret.
  fake.sendRaw(`${'#'.repeat(58)}${SECRET}\r\n\r\n`);
  assert.equal(getField(await client.action('Ping'), 'Ping'), 'Pong');
  assert.deepEqual(
    logs.filter((l) => l.includes(SECRET.slice(0, 6))),
    [],
  );
  const stats = client.stats();
  assert.equal(stats.droppedFrames, 5);
  assert.equal(stats.unmatched, 1);
  assert.equal(client.session, 1, 'no reconnect');
  assert.ok(!events.some((e) => getField(e, 'Event') === 'Huge'));
});

test('ami client - reconnects after the connection drops and the call count resyncs', async (t) => {
  const { fake, client, states } = await setup(t);
  const a = fake.addCall();
  fake.addCall({ linkedid: a.linkedid }); // the outbound leg of the same call
  const counter = createCallCounter(client);
  t.after(() => counter.close());
  await waitFor(() => counter.calls().synced, { timeoutMs: 1500, what: 'first sync' });
  assert.deepEqual(counter.calls(), { channels: 2, calls: 1, synced: true });

  const c = fake.addCall();
  await waitFor(() => counter.calls().channels === 3, { timeoutMs: 1000, what: 'Newchannel' });
  assert.equal(counter.calls().calls, 2);

  // Asterisk's view changes while the session is down: only a new snapshot can know.
  fake.dropConnections();
  await waitFor(() => client.state !== 'connected', { timeoutMs: 1000, what: 'disconnect' });
  assert.equal(counter.calls().synced, false);
  fake.hangupCall(c.uniqueid);
  fake.hangupCall(a.uniqueid);
  const d = fake.addCall();

  await waitFor(() => client.session === 2 && counter.calls().synced, { timeoutMs: 1500, what: 'resync' });
  assert.deepEqual(counter.calls(), { channels: 2, calls: 2, synced: true });
  assert.ok(states.some(([s, detail]) => s === 'disconnected' && detail.retryInMs === 20));
  fake.hangupCall(d.uniqueid);
  await waitFor(() => counter.calls().channels === 1, { timeoutMs: 1000, what: 'Hangup' });
  assert.equal(fake.actions.filter((x) => x.name === 'CoreShowChannels').length, 2);
});

test('ami calls - events that overtake the snapshot are replayed on it', async (t) => {
  const { fake, client } = await setup(t);
  const a = fake.addCall();
  const b = fake.addCall();
  const release = fake.hold('CoreShowChannels');
  const counter = createCallCounter(client);
  t.after(() => counter.close());
  await waitFor(() => fake.actions.some((x) => x.name === 'CoreShowChannels'), { timeoutMs: 1500 });
  // The snapshot (a, b) is taken; then a hangs up and b gets a second leg c, all before the
  // list is sent. Snapshot alone: 2 channels, 2 calls. Truth: 2 channels, 1 call.
  fake.hangupCall(a.uniqueid);
  const c = fake.addCall({ linkedid: b.linkedid });
  await client.action('Ping'); // the events above have reached the client
  assert.equal(counter.calls().synced, false);
  release();
  await waitFor(() => counter.calls().synced, { timeoutMs: 1000, what: 'sync' });
  assert.deepEqual(counter.calls(), { channels: 2, calls: 1, synced: true });
  assert.deepEqual(
    fake.calls().map((x) => x.uniqueid),
    [b.uniqueid, c.uniqueid],
  );
});

test('ami calls - a snapshot that fails is asked for again in the same session', async (t) => {
  const { fake, client } = await setup(t, {}, { actionTimeoutMs: 60 });
  fake.addCall();
  fake.silence('CoreShowChannels');
  const counter = createCallCounter(client, { resyncRetryMs: 20 });
  t.after(() => counter.close());
  await waitFor(() => fake.actions.filter((x) => x.name === 'CoreShowChannels').length >= 2, {
    timeoutMs: 1500,
    what: 'a retry',
  });
  assert.equal(counter.calls().synced, false);
  fake.silence('CoreShowChannels', false);
  await waitFor(() => counter.calls().synced, { timeoutMs: 1500, what: 'sync' });
  assert.deepEqual(counter.calls(), { channels: 1, calls: 1, synced: true });
  assert.equal(client.session, 1);
});

test('ami client - core stop now: calls hung up, Shutdown, reconnect once Asterisk is back', async (t) => {
  const { fake, client, events } = await setup(t);
  fake.addCall();
  fake.addCall();
  const counter = createCallCounter(client);
  t.after(() => counter.close());
  const changes: number[] = [];
  counter.onChange((c) => changes.push(c.channels));
  await waitFor(() => counter.calls().channels === 2, { timeoutMs: 1500, what: 'sync' });

  // As observed: the Command never gets a response; the session ends with Asterisk.
  await assert.rejects(
    client.action('Command', { Command: 'core stop now' }, { timeoutMs: 1000 }),
    codeOf('SY_ERR_AMI_UNAVAILABLE'),
  );
  const hangups = events.filter((e) => getField(e, 'Event') === 'Hangup');
  assert.deepEqual(
    hangups.map((e) => getField(e, 'Cause')),
    ['16', '16'],
  );
  assert.ok(events.some((e) => getField(e, 'Event') === 'Shutdown'));
  assert.equal(client.shuttingDown, true);
  assert.deepEqual(changes.slice(-3), [1, 0, 0]);
  assert.deepEqual(counter.calls(), { channels: 0, calls: 0, synced: false });
  assert.equal(fake.running, false);

  await fake.restart();
  await waitFor(() => client.session === 2 && counter.calls().synced, { timeoutMs: 1500, what: 'reconnect' });
  assert.equal(client.shuttingDown, false);
  assert.deepEqual(counter.calls(), { channels: 0, calls: 0, synced: true });
});

test('ami client - core stop gracefully: actions refused as shutting down, calls still counted', async (t) => {
  const { fake, client, states } = await setup(t);
  const call = fake.addCall();
  const counter = createCallCounter(client);
  t.after(() => counter.close());
  await waitFor(() => counter.calls().channels === 1, { timeoutMs: 1500, what: 'sync' });

  fake.shutdown('gracefully');
  await assert.rejects(client.action('Ping'), codeOf('SY_ERR_AMI_SHUTTING_DOWN'));
  assert.equal(client.shuttingDown, true);
  assert.equal(client.state, 'connected', 'the session stays open');

  // A second client (a restarted agent) cannot even log in, and is told why.
  const other = connectTo(t, fake.port);
  await waitFor(() => other.states.some(([s]) => s === 'disconnected'), { timeoutMs: 1000, what: 'refused' });
  const [, detail] = other.states.find(([s]) => s === 'disconnected')!;
  assert.equal(detail.reason, 'login refused: Asterisk is shutting down');
  assert.equal(other.client.shuttingDown, true);
  assert.notEqual(other.client.state, 'auth-failed');

  // The call ends by itself; Asterisk exits ~lastCallShutdownMs later.
  fake.hangupCall(call.uniqueid);
  await waitFor(() => counter.calls().channels === 0, { timeoutMs: 1000, what: 'Hangup' });
  await waitFor(() => states.some(([s]) => s === 'disconnected'), { timeoutMs: 1000, what: 'exit' });
});

test('ami client - close() logs off, fails pending actions and stops reconnecting', async (t) => {
  const { fake, client } = await setup(t);
  await connected(client);
  fake.silence('Ping');
  const pending = client.action('Ping');
  await client.close();
  await assert.rejects(pending, codeOf('SY_ERR_CLOSED'));
  await assert.rejects(client.action('Ping'), codeOf('SY_ERR_CLOSED'));
  assert.equal(client.state, 'disconnected');
  await waitFor(() => fake.actions.some((a) => a.name === 'Logoff'), { timeoutMs: 1000, what: 'Logoff' });
  const accepted = fake.connectionsAccepted;
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(fake.connectionsAccepted, accepted);
});

test('ami client - actions before login are refused as unavailable', async (t) => {
  const { client } = await setup(t);
  await assert.rejects(client.action('Ping'), codeOf('SY_ERR_AMI_UNAVAILABLE'));
});

async function rawServer(t: TestContext, onSocket: (s: Socket) => void): Promise<number> {
  const server: Server = createServer(onSocket);
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as { port: number }).port;
}

test('ami client - a peer that is not AMI, or silent, is left and retried', async (t) => {
  const sshPort = await rawServer(t, (s) => s.write('SSH-2.0-OpenSSH_9.2\r\n'));
  const ssh = connectTo(t, sshPort);
  await waitFor(() => ssh.states.some(([s]) => s === 'disconnected'), { timeoutMs: 1000, what: 'not AMI' });
  assert.match(ssh.states.find(([s]) => s === 'disconnected')![1].reason ?? '', /not an AMI banner/);

  const silentPort = await rawServer(t, () => {});
  const silent = connectTo(t, silentPort, { connectTimeoutMs: 50 });
  await waitFor(() => silent.states.some(([s]) => s === 'disconnected'), {
    timeoutMs: 1000,
    what: 'timeout',
  });
  assert.match(
    silent.states.find(([s]) => s === 'disconnected')![1].reason ?? '',
    /no AMI banner within 50 ms/,
  );
});

test('ami client - refuses unusable options', () => {
  const base = { host: '127.0.0.1', port: 5038, username: USER, secret: SECRET };
  for (const bad of [
    { ...base, host: '' },
    { ...base, port: 0 },
    { ...base, secret: 'a\r\nb' },
    { ...base, actionTimeoutMs: -1 },
    { ...base, reconnect: { initialMs: 500, maxMs: 100 } },
    { ...base, maxFrameBytes: 0 },
  ]) {
    assert.throws(
      () => createAmiClient(bad),
      (err: unknown) => codeOf('SY_ERR_INVALID_ARGUMENT')(err) && !(err as Error).message.includes('a\r\nb'),
    );
  }
});

test('ami calls - with read = system,call (the guide) Asterisk sends no dialplan events, and the count is the same', async (t) => {
  const { fake, client } = await setup(t, { readClasses: ['system', 'call'] });
  const names: string[] = [];
  client.onEvent((e) => names.push(getField(e, 'Event') ?? ''));
  const counter = createCallCounter(client);
  t.after(() => counter.close());
  await waitFor(() => counter.calls().synced, { timeoutMs: 1500, what: 'first sync' });
  const a = fake.addCall();
  await waitFor(() => counter.calls().channels === 1, { timeoutMs: 1000, what: 'Newchannel' });
  fake.hangupCall(a.uniqueid);
  await waitFor(() => counter.calls().channels === 0, { timeoutMs: 1000, what: 'Hangup' });
  assert.ok(names.includes('Newchannel') && names.includes('Hangup'));
  assert.ok(!names.includes('VarSet') && !names.includes('Newexten'), names.join(' '));
});
