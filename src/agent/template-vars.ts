import type { AgentConfig } from './config.ts';

/** A template variable name: what may stand between `{{` and `}}`. */
export const TEMPLATE_VAR_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** Variables every template can use; config `templateVars` may not redefine them. */
export const BUILTIN_TEMPLATE_VARS = [
  'nodeId',
  'sipUri',
  'sipHost',
  'sipPort',
  'announceAddress',
  'rtpStart',
  'rtpEnd',
  'configDir',
  'dataDir',
  'logDir',
  'recordingsDir',
] as const;
export type BuiltinTemplateVar = (typeof BUILTIN_TEMPLATE_VARS)[number];

/**
 * Host and port of a SIP URI already validated by SIP_URI_PATTERN. The host keeps IPv6 brackets
 * so that `{{sipHost}}:{{sipPort}}` is always a valid host:port; the port defaults per RFC 3263
 * (5060, 5061 for sips).
 */
export function sipHostPort(uri: string): { host: string; port: number } {
  const secure = uri.startsWith('sips:');
  const rest = uri.slice(secure ? 5 : 4).split(';')[0] ?? '';
  const hostPort = rest.slice(rest.lastIndexOf('@') + 1);
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort);
  const host = m?.[1] ?? hostPort;
  const port = m?.[2] === undefined ? (secure ? 5061 : 5060) : Number(m[2]);
  return { host, port };
}

/** Built-in variables from the config plus config `templateVars` (which cannot shadow them). */
export function templateVariables(config: AgentConfig): Record<string, string> {
  const { host, port } = sipHostPort(config.sipUri);
  const builtins: Record<BuiltinTemplateVar, string> = {
    nodeId: config.nodeId,
    sipUri: config.sipUri,
    sipHost: host,
    sipPort: String(port),
    // Media addresses are written bare (rtp.conf, pjsip external_media_address): no brackets.
    announceAddress: config.announceAddress ?? host.replace(/^\[(.*)\]$/, '$1'),
    rtpStart: String(config.rtp.start),
    rtpEnd: String(config.rtp.end),
    configDir: config.paths.config,
    dataDir: config.paths.data,
    logDir: config.paths.logs,
    recordingsDir: config.paths.recordings,
  };
  return { ...config.templateVars, ...builtins };
}
