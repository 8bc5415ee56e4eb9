import { writeFile } from 'node:fs/promises';
import type { Command } from '@commander-js/extra-typings';
import { stringify } from 'yaml';
import { CAPTURE_SECRET_PATHS, type CaptureConfig, captureConfigSchema } from '../capture/config.ts';
import type { CallStatus, CallSummary, CaptureStore } from '../capture/model.ts';
import type { CallDetail } from '../console/model.ts';
import { formatConfigProblems, loadConfig, redactConfig } from '../core/config/index.ts';
import { createLogger } from '../core/logger.ts';
import { type ApiFlags, apiOptionHelp } from './api-client.ts';
import { ROLE_CONFIG_SCHEMAS } from './config.ts';
import type { CliContext } from './operator.ts';
import {
  ExitCode,
  printable,
  renderTable,
  reportError,
  usageError,
  writeErr,
  writeJson,
  writeOut,
} from './output.ts';
import { runUntilSignal } from './roles.ts';

/**
 * `switchyard capture` (the HEP server), and the query commands `calls` and `trace`, which read
 * the capture store directly (the console's API serves the same queries over HTTP). The capture
 * modules load only when one of these commands runs: every other command (the agent above all)
 * must not pay for SQLite, PostgreSQL and the exporters.
 */
export function registerCaptureCommands(program: Command, ctx: CliContext): void {
  const o = apiOptionHelp();
  program
    .command('capture')
    .description('run the SIP capture server: HEP v3 over UDP/TCP into SQLite or PostgreSQL')
    .option('--listen <list>', 'udp://127.0.0.1:9060,tcp://127.0.0.1:9060 (comma-separated)')
    .option('--store <spec>', 'sqlite:PATH or postgres://user@host/db')
    .option('--forward <addr>', 'also forward every HEP packet to this collector, udp://host:port')
    .option('--registry <spec>', 'record control-plane events from this registry')
    .option('--admin-port <port>', '/metrics, /healthz, /readyz port (0: any free port)')
    .option('--admin-host <host>', 'admin address (default 127.0.0.1: keep it on loopback)')
    .option(
      '--config <file>',
      'YAML or JSON config file (the auth key belongs here or in SWITCHYARD_AUTH_KEY)',
    )
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace')
    .option('--print-config', 'print the effective config (secrets redacted) as YAML and exit')
    .action(async (opts) => {
      const res = loadConfig({
        schema: captureConfigSchema,
        file: opts.config,
        sharedEnvSchemas: ROLE_CONFIG_SCHEMAS,
        secretPaths: CAPTURE_SECRET_PATHS,
        flags: {
          listen: opts.listen,
          store: opts.store,
          forward: opts.forward,
          registry: opts.registry,
          admin: { port: opts.adminPort, host: opts.adminHost },
          log: { level: opts.logLevel },
        },
      });
      if (!res.ok) {
        writeErr(formatConfigProblems(res.problems));
        ctx.exitCode = ExitCode.usage;
        return;
      }
      const config: CaptureConfig = res.config;
      if (opts.printConfig) {
        writeOut(stringify(redactConfig(config, CAPTURE_SECRET_PATHS)));
        return;
      }
      const logger = createLogger({ level: config.log.level, base: { role: 'capture' } });
      ctx.exitCode = await runUntilSignal(async () => {
        const { runCapture } = await import('../capture/index.ts');
        return runCapture(config, { logger });
      }, logger);
    });

  program
    .command('calls')
    .description('search captured calls, newest first')
    .option(
      '--store <spec>',
      'sqlite:PATH or postgres://... (env SWITCHYARD_STORE, default sqlite:var/capture.db)',
    )
    .option('--since <age>', 'only calls that started within this age: 30s, 15m, 2h, 7d', '1h')
    .option('--number <n>', 'calling or called number (From or To user)')
    .option('--status <s>', 'answered, failed, busy, cancelled, ringing or unknown')
    .option('--endpoint <host[:port]>', 'only calls that touched this address')
    .option('--limit <n>', 'at most this many calls', '50')
    .option('--json', 'print JSON')
    .option(o.api[0], `${o.api[1]}; without it the store is read directly`)
    .option(o.tokenFile[0], o.tokenFile[1])
    .action(async (opts) => {
      if (opts.api !== undefined || opts.tokenFile !== undefined) {
        await callsOverApi(ctx, opts);
        return;
      }
      await withStore(ctx, opts, async (store) => {
        const sinceMs = parseAge(opts.since);
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
          throw usageError('--limit must be 1..10000');
        const status = opts.status === undefined ? undefined : parseStatus(opts.status);
        const calls = await store.searchCalls({
          sinceUs: (Date.now() - sinceMs) * 1000,
          limit,
          ...(opts.number === undefined ? {} : { number: opts.number }),
          ...(status === undefined ? {} : { status }),
          ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
        });
        if (opts.json) {
          writeJson(calls);
          return;
        }
        if (calls.length === 0) {
          writeOut(`no calls in the last ${opts.since}`);
          return;
        }
        writeOut(
          renderTable(
            ['started', 'from', 'to', 'status', 'code', 'setup', 'duration', 'msgs', 'call-id'],
            calls.map(callRow),
          ),
        );
      });
    });

  program
    .command('trace')
    .description("show one call's messages: ladder as text (default), raw text, SVG or pcap")
    .argument('<call-id>', 'the Call-ID (other legs linked by correlation are included)')
    .option(
      '--store <spec>',
      'sqlite:PATH or postgres://... (env SWITCHYARD_STORE, default sqlite:var/capture.db)',
    )
    .option('--text', 'print every message as captured')
    .option('--pcap <file>', 'write a pcap file (Wireshark, tshark)')
    .option('--svg <file>', 'write the ladder diagram as SVG')
    .option('--only', 'this Call-ID only, without correlated legs')
    .option('--json', 'print JSON (summary, legs, messages without raw bytes)')
    .option(o.api[0], `${o.api[1]}; without it the store is read directly`)
    .option(o.tokenFile[0], o.tokenFile[1])
    .action(async (callId, opts) => {
      if (opts.api !== undefined || opts.tokenFile !== undefined) {
        await traceOverApi(ctx, callId, opts);
        return;
      }
      await withStore(ctx, opts, async (store) => {
        const { loadCallTrace } = await import('../capture/trace.ts');
        const trace = await loadCallTrace(store, callId, { only: opts.only === true });
        if (!trace)
          throw usageError(`no call with Call-ID ${JSON.stringify(printable(callId))} in the store`);
        const { summary, legs, messages, events } = trace;
        const { callText, ladderSvg } = await import('../capture/ladder.ts');
        if (opts.pcap !== undefined) {
          const { pcapFile } = await import('../proto/pcap.ts');
          await writeFile(opts.pcap, pcapFile(messages));
          writeErr(`wrote ${messages.length} messages to ${opts.pcap}`);
        }
        if (opts.svg !== undefined) {
          await writeFile(opts.svg, ladderSvg(messages, events));
          writeErr(`wrote the ladder of ${messages.length} messages to ${opts.svg}`);
        }
        if (opts.json) {
          writeJson({
            summary,
            legs,
            events,
            messages: messages.map(({ raw, ...m }) => ({ ...m, bytes: raw.byteLength })),
          });
          return;
        }
        if (opts.text) {
          writeOut(callText(messages, events));
          return;
        }
        if (opts.pcap === undefined && opts.svg === undefined)
          writeOut(ladderText(summary, messages, events));
      });
    });
}

/** `switchyard calls --api`: the same search through the console. */
async function callsOverApi(
  ctx: CliContext,
  opts: ApiFlags & {
    since: string;
    number?: string;
    status?: string;
    endpoint?: string;
    limit: string;
    json?: true;
  },
): Promise<void> {
  try {
    parseAge(opts.since);
    if (opts.status !== undefined) parseStatus(opts.status);
    const q = new URLSearchParams({ since: opts.since, limit: opts.limit });
    if (opts.number !== undefined) q.set('number', opts.number);
    if (opts.status !== undefined) q.set('status', opts.status);
    if (opts.endpoint !== undefined) q.set('node', opts.endpoint);
    const { connectApi } = await import('./api-client.ts');
    const { calls } = await connectApi(opts).get<{ calls: CallSummary[] }>(`/api/v1/calls?${q}`);
    if (opts.json) writeJson(calls);
    else if (calls.length === 0) writeOut(`no calls in the last ${opts.since}`);
    else
      writeOut(
        renderTable(
          ['started', 'from', 'to', 'status', 'code', 'setup', 'duration', 'msgs', 'call-id'],
          calls.map(callRow),
        ),
      );
  } catch (err) {
    ctx.exitCode = reportError(err, opts.json === true);
  }
}

/** `switchyard trace --api`: one call through the console (ladder, text, SVG, pcap). */
async function traceOverApi(
  ctx: CliContext,
  callId: string,
  opts: ApiFlags & { text?: true; pcap?: string; svg?: string; json?: true },
): Promise<void> {
  try {
    const { connectApi } = await import('./api-client.ts');
    const api = connectApi(opts);
    const path = `/api/v1/calls/${encodeURIComponent(callId)}`;
    const detail = await api.get<CallDetail>(path);
    if (opts.pcap !== undefined) {
      await writeFile(opts.pcap, await api.getBytes(`${path}/pcap`));
      writeErr(`wrote ${detail.messages.length} messages to ${opts.pcap}`);
    }
    if (opts.svg !== undefined) {
      await writeFile(opts.svg, await api.getBytes(`${path}/ladder.svg`));
      writeErr(`wrote the ladder of ${detail.messages.length} messages to ${opts.svg}`);
    }
    if (opts.json) writeJson(detail);
    else if (opts.text) writeOut((await api.getBytes(`${path}/text`)).toString('utf8'));
    else if (opts.pcap === undefined && opts.svg === undefined) {
      const c = detail.call;
      const t0 = detail.messages[0]?.tsUs ?? c.firstTsUs;
      const lines = [
        ...detail.messages.map((m) => ({
          ts: m.tsUs,
          text: `${`+${((m.tsUs - t0) / 1e6).toFixed(3)}`.padStart(9)}  ${m.src.padEnd(22)} -> ${m.dst.padEnd(22)} ${printable(m.label)}${m.callId === c.callId ? '' : `  [leg ${printable(m.callId)}]`}`,
        })),
        ...detail.events.map((e) => ({
          ts: e.tsUs,
          text: `${`+${((e.tsUs - t0) / 1e6).toFixed(3)}`.padStart(9)}  ~~ ${printable(e.kind)} ${printable(e.subject)} ${printable(JSON.stringify(e.detail))}`,
        })),
      ].sort((a, b) => a.ts - b.ts);
      writeOut(
        [
          `${printable(c.callId)}: ${printable(c.fromUser)} -> ${printable(c.toUser)}, ${c.status}${c.finalStatus === undefined ? '' : ` ${c.finalStatus}`}, ${c.messageCount} messages${detail.nodes.length > 0 ? `, nodes ${detail.nodes.join(', ')}` : ''}`,
          ...lines.map((l) => l.text),
        ].join('\n'),
      );
    }
  } catch (err) {
    ctx.exitCode = reportError(err, opts.json === true);
  }
}

type StoreFlags = { store?: string | undefined; json?: true | undefined };

async function withStore(ctx: CliContext, opts: StoreFlags, fn: (store: CaptureStore) => Promise<void>) {
  let store: CaptureStore | undefined;
  try {
    const res = loadConfig({
      schema: captureConfigSchema.pick({ store: true, log: true }),
      sharedEnvSchemas: ROLE_CONFIG_SCHEMAS,
      flags: { store: opts.store, log: { level: 'warn' } },
    });
    if (!res.ok) throw usageError(formatConfigProblems(res.problems).trimEnd());
    const logger = createLogger({ level: res.config.log.level, base: { role: 'cli' } });
    const { openCaptureStore } = await import('../capture/open-store.ts');
    store = await openCaptureStore(res.config.store, { logger, readOnly: true });
    await fn(store);
  } catch (err) {
    ctx.exitCode = reportError(err, opts.json === true);
  } finally {
    await store?.close();
  }
}

const AGE_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseAge(text: string): number {
  const m = /^(\d{1,9})([smhd])$/.exec(text.trim());
  if (!m) throw usageError(`invalid age ${JSON.stringify(printable(text))}: use e.g. 30s, 15m, 2h or 7d`);
  return Number(m[1]) * (AGE_UNITS[m[2] as string] as number);
}

const STATUSES: readonly CallStatus[] = ['ringing', 'answered', 'failed', 'cancelled', 'busy', 'unknown'];

function parseStatus(text: string): CallStatus {
  if ((STATUSES as readonly string[]).includes(text)) return text as CallStatus;
  throw usageError(`invalid --status ${JSON.stringify(printable(text))}: one of ${STATUSES.join(', ')}`);
}

const ms = (us: number | undefined) => (us === undefined ? '-' : `${(us / 1000).toFixed(0)} ms`);
const seconds = (us: number | undefined) => (us === undefined ? '-' : `${(us / 1e6).toFixed(1)} s`);

function callRow(c: CallSummary): string[] {
  return [
    new Date(c.firstTsUs / 1000).toISOString().replace('T', ' ').slice(0, 23),
    printable(c.fromUser),
    printable(c.toUser),
    c.status,
    c.finalStatus === undefined ? '-' : String(c.finalStatus),
    ms(c.setupDelayUs),
    seconds(c.durationUs),
    String(c.messageCount),
    printable(c.callId),
  ];
}

/** The terminal ladder: time, arrow between endpoints, label; events between messages. */
function ladderText(
  summary: CallSummary,
  messages: Awaited<ReturnType<CaptureStore['messagesOf']>>,
  events: Awaited<ReturnType<CaptureStore['eventsBetween']>>,
): string {
  const t0 = messages[0]?.tsUs ?? 0;
  const ep = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
  type Line = { ts: number; text: string };
  const lines: Line[] = messages.map((m) => {
    const label = m.method ?? `${m.status ?? '?'} (${m.cseq.split(' ')[1] ?? ''})`;
    return {
      ts: m.tsUs,
      text: `${`+${((m.tsUs - t0) / 1e6).toFixed(3)}`.padStart(9)}  ${ep(m.srcIp, m.srcPort).padEnd(22)} -> ${ep(m.dstIp, m.dstPort).padEnd(22)} ${printable(label)}${m.callId === summary.callId ? '' : `  [leg ${printable(m.callId)}]`}`,
    };
  });
  for (const e of events) {
    lines.push({
      ts: e.tsUs,
      text: `${`+${((e.tsUs - t0) / 1e6).toFixed(3)}`.padStart(9)}  ~~ ${printable(e.kind)} ${printable(e.subject)} ${printable(JSON.stringify(e.detail))}`,
    });
  }
  lines.sort((a, b) => a.ts - b.ts);
  const head = `${printable(summary.callId)}: ${printable(summary.fromUser)} -> ${printable(summary.toUser)}, ${summary.status}${summary.finalStatus === undefined ? '' : ` ${summary.finalStatus}`}, ${summary.messageCount} messages`;
  return [head, ...lines.map((l) => l.text)].join('\n');
}
