import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { createEmbeddedStore } from './embedded-store.ts';
import { createEtcdStore } from './etcd-store.ts';
import type { KvStore } from './store.ts';

/**
 * Registry specs, as given in config (`registry:`) and on the command line:
 *
 *   etcd://host:port[,host:port...]   etcd v3 members (port defaults to 2379); plain HTTP/2
 *   embedded:PATH                     the single-host SQLite store at PATH
 *   PATH                              the same (anything without a scheme)
 *
 * Not supported yet, refused with a clear error rather than half-working: credentials in the
 * spec (`etcd://user:pass@...`; they would also end up in logs and `ps`), TLS (`etcds://`), and
 * URL paths or query strings.
 */
export type StoreSpec = { kind: 'etcd'; endpoints: string[] } | { kind: 'embedded'; path: string };

export const DEFAULT_ETCD_PORT = 2379;

const FORMS = 'use etcd://host:port[,host:port...], embedded:PATH, or a file path';
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const HOST_PORT =
  /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::(\d{1,5}))?$/;

/** The spec as it may appear in messages and logs: userinfo (a password) is never echoed. */
function redactSpec(spec: string): string {
  return spec.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, '$1[redacted]@');
}

function bad(spec: string, why: string): SwitchyardError {
  const shown = redactSpec(spec);
  return new SwitchyardError(
    ErrorCode.INVALID_ARGUMENT,
    `invalid registry ${JSON.stringify(shown)}: ${why}`,
    {
      details: { spec: shown },
    },
  );
}

/** Parses a registry spec; throws SY_ERR_INVALID_ARGUMENT with the reason. */
export function parseStoreSpec(spec: string): StoreSpec {
  if (typeof spec !== 'string' || spec.trim().length === 0) throw bad(String(spec), `empty; ${FORMS}`);
  if (spec !== spec.trim()) throw bad(spec, 'leading or trailing whitespace');
  if (/[\u0000-\u001f\u007f]/.test(spec)) throw bad(spec, 'control characters');

  const scheme = SCHEME.exec(spec)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'embedded', path: spec };
  if (scheme === 'embedded') {
    const path = spec.slice('embedded:'.length);
    if (path.length === 0) throw bad(spec, 'embedded: needs a file path, e.g. embedded:var/registry.db');
    return { kind: 'embedded', path };
  }
  if (scheme === 'etcds' || scheme === 'https') throw bad(spec, 'TLS to etcd is not supported yet');
  if (scheme !== 'etcd')
    throw bad(spec, `unknown scheme "${scheme}:"; ${FORMS} (prefix a path with ./ if it contains ':')`);
  // Schemes are case-insensitive (RFC 3986 §3.1): compare after the scheme, not the raw text.
  const afterScheme = spec.slice('etcd:'.length);
  if (!afterScheme.startsWith('//')) throw bad(spec, `expected etcd://host:port; ${FORMS}`);

  const rest = afterScheme.slice(2);
  if (rest.includes('@')) {
    throw bad(spec, 'credentials in the registry spec are not supported (they would leak into logs and ps)');
  }
  if (/[/?#]/.test(rest)) throw bad(spec, 'etcd:// takes only host:port pairs (no path, query or fragment)');
  if (rest.length === 0) throw bad(spec, 'etcd:// needs at least one host:port');
  const endpoints: string[] = [];
  for (const part of rest.split(',')) {
    const m = HOST_PORT.exec(part);
    if (!m) throw bad(spec, `"${part}" is not host:port`);
    const host = m[1] ?? '';
    const port = m[2] === undefined ? DEFAULT_ETCD_PORT : Number(m[2]);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw bad(spec, `port ${m[2]} out of range 1-65535`);
    const endpoint = `http://${host}:${port}`;
    if (endpoints.includes(endpoint)) throw bad(spec, `${host}:${port} listed twice`);
    endpoints.push(endpoint);
  }
  return { kind: 'etcd', endpoints };
}

export interface OpenStoreOptions {
  /** Deadline of every call; default 1000 ms. */
  callTimeoutMs?: number;
  logger: Logger;
}

/** Opens the store a spec names. Neither backend waits for the registry to answer. */
export async function openStore(spec: string, opts: OpenStoreOptions): Promise<KvStore> {
  const parsed = parseStoreSpec(spec);
  const common = opts.callTimeoutMs === undefined ? {} : { callTimeoutMs: opts.callTimeoutMs };
  if (parsed.kind === 'etcd')
    return createEtcdStore({ endpoints: parsed.endpoints, logger: opts.logger, ...common });
  return createEmbeddedStore({ path: parsed.path, logger: opts.logger, ...common });
}
