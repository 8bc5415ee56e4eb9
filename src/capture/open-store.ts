import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { CaptureStore } from './model.ts';

/**
 * Capture store specs, as given in config (`store:`) and on the command line:
 *
 *   sqlite:PATH                                   a SQLite file at PATH (created if missing)
 *   postgres://user[:password]@host[:port]/db     PostgreSQL (also postgresql://); query
 *                                                 parameters are passed to pg as libpq takes them
 *
 * A password in the spec never reaches an error message or a log line: redactCaptureSpec.
 */
export type CaptureStoreSpec =
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; connectionString: string };

const FORMS =
  'use sqlite:PATH (e.g. sqlite:var/capture.db) or postgres://user[:password]@host[:port]/database';

/** The spec as it may appear in messages and logs: the password (userinfo or query) replaced. */
export function redactCaptureSpec(spec: string): string {
  return spec
    .replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#@]*)@/, (_all, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      return colon < 0 ? `${scheme}${userinfo}@` : `${scheme}${userinfo.slice(0, colon)}:[redacted]@`;
    })
    .replace(/([?&]password=)[^&#]*/gi, '$1[redacted]');
}

function bad(spec: string, why: string): SwitchyardError {
  const shown = redactCaptureSpec(spec);
  return new SwitchyardError(
    ErrorCode.INVALID_ARGUMENT,
    `invalid capture store ${JSON.stringify(shown)}: ${why}`,
    {
      details: { spec: shown },
    },
  );
}

/** Parses a capture store spec; throws SY_ERR_INVALID_ARGUMENT naming the accepted forms. */
export function parseCaptureSpec(spec: string): CaptureStoreSpec {
  if (typeof spec !== 'string' || spec.trim().length === 0) throw bad(String(spec), `empty; ${FORMS}`);
  if (spec !== spec.trim()) throw bad(spec, 'leading or trailing whitespace');
  if (/[\u0000-\u001f\u007f]/.test(spec)) throw bad(spec, 'control characters');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(spec)?.[1]?.toLowerCase();
  if (scheme === 'sqlite') {
    const path = spec.slice('sqlite:'.length);
    if (path.length === 0) throw bad(spec, 'sqlite: needs a file path, e.g. sqlite:var/capture.db');
    if (path.startsWith('//'))
      throw bad(spec, 'write sqlite:PATH (sqlite:/abs/path or sqlite:rel/path), not a URL');
    return { kind: 'sqlite', path };
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    let url: URL;
    try {
      url = new URL(spec);
    } catch {
      throw bad(spec, `not a valid URL; ${FORMS}`);
    }
    if (!spec.slice(scheme.length + 1).startsWith('//'))
      throw bad(spec, `expected ${scheme}://host/...; ${FORMS}`);
    if (url.hostname === '') throw bad(spec, `${scheme}:// needs a host; ${FORMS}`);
    if (url.pathname.length <= 1)
      throw bad(spec, `${scheme}:// needs a database name, e.g. ${scheme}://host/capture`);
    return { kind: 'postgres', connectionString: spec };
  }
  throw bad(spec, scheme === undefined ? FORMS : `unknown scheme "${scheme}:"; ${FORMS}`);
}

export interface OpenCaptureStoreOptions {
  logger?: Logger;
  /**
   * Only read (the CLI, the console): no schema is created and writes are refused with
   * SY_ERR_INVALID_ARGUMENT. A missing SQLite file is an error then.
   */
  readOnly?: boolean;
}

/** Opens the store a spec names; the backends are loaded only when used. */
export async function openCaptureStore(
  spec: string,
  opts: OpenCaptureStoreOptions = {},
): Promise<CaptureStore> {
  const parsed = parseCaptureSpec(spec);
  const readOnly = opts.readOnly ?? false;
  const logger = opts.logger;
  try {
    if (parsed.kind === 'sqlite') {
      const { createSqliteCaptureStore } = await import('./store-sqlite.ts');
      return await createSqliteCaptureStore({ path: parsed.path, readOnly });
    }
    const { createPostgresCaptureStore } = await import('./store-postgres.ts');
    return await createPostgresCaptureStore({
      connectionString: parsed.connectionString,
      readOnly,
      ...(logger === undefined ? {} : { logger }),
    });
  } catch (err) {
    // Whatever the backend said, neither the spec nor the password is shown as given.
    const shown = redactCaptureSpec(spec);
    const secrets = [spec, ...passwordsIn(spec)];
    let message = err instanceof Error ? err.message : String(err);
    for (const secret of secrets)
      message = message.replaceAll(secret, secret === spec ? shown : '[redacted]');
    const known = SwitchyardError.is(err);
    throw new SwitchyardError(
      known ? err.code : ErrorCode.CAPTURE_STORE_UNAVAILABLE,
      `capture store ${shown}: ${message}`,
      { retryable: known ? err.retryable : false, cause: err, details: { spec: shown } },
    );
  }
}

/** The password of a postgres:// spec as written and decoded (empty strings left out). */
function passwordsIn(spec: string): string[] {
  try {
    const url = new URL(spec);
    const raw = url.password;
    const query = url.searchParams.get('password') ?? '';
    return [...new Set([raw, decodeURIComponent(raw), query])].filter((p) => p.length > 0);
  } catch {
    return [];
  }
}
