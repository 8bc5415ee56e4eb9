import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../core/config/index.ts';
import { ErrorCode, SwitchyardError } from '../core/errors.ts';
import { cliConfigSchema, ROLE_CONFIG_SCHEMAS } from './config.ts';
import { configError, printable, usageError } from './output.ts';

/**
 * The console's REST API as the CLI uses it (`status`, `drain --wait`, and `calls`/`trace`/intent
 * commands with --api). Where the token comes from, first found wins: --token-file,
 * SWITCHYARD_API__TOKEN, SWITCHYARD_API__TOKEN_FILE, then the files `switchyard up` generates
 * (var/console/admin.token, var/console/read.token).
 */

export interface ApiFlags {
  api?: string | undefined;
  tokenFile?: string | undefined;
}

export interface ConsoleApi {
  readonly url: string;
  get<T>(path: string): Promise<T>;
  getBytes(path: string): Promise<Buffer>;
  post<T>(path: string, body: unknown): Promise<T>;
}

/** Where `switchyard up` keeps the tokens it generates (its default data dir). */
const UP_TOKEN_FILES = ['var/console/admin.token', 'var/console/read.token'];
const API_TIMEOUT_MS = 10_000;

function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw usageError(`cannot read the API token file ${file}: ${(err as Error).message}`);
  }
  if (text.length === 0) throw usageError(`the API token file ${file} is empty`);
  return text;
}

/** Resolves where the console is and the token to send; throws usage errors. */
export function connectApi(flags: ApiFlags): ConsoleApi {
  const res = loadConfig({
    schema: cliConfigSchema.pick({ api: true }),
    sharedEnvSchemas: ROLE_CONFIG_SCHEMAS,
    secretPaths: ['api.token'],
    flags: { api: { url: flags.api, tokenFile: flags.tokenFile } },
  });
  if (!res.ok) throw configError(res.problems);
  const { url, token, tokenFile } = res.config.api;
  const fallback = UP_TOKEN_FILES.map((f) => resolve(f)).find((f) => existsSync(f));
  const secret =
    flags.tokenFile !== undefined
      ? readToken(flags.tokenFile)
      : (token ??
        (tokenFile !== undefined ? readToken(tokenFile) : fallback ? readToken(fallback) : undefined));
  if (secret === undefined)
    throw usageError('no API token: pass --token-file FILE (switchyard up writes var/console/admin.token)');
  const base = url.replace(/\/+$/, '');

  const request = async (method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response> => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${secret}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(API_TIMEOUT_MS),
      });
    } catch (err) {
      throw new SwitchyardError(
        ErrorCode.CONSOLE_UNREACHABLE,
        `console API at ${base} not reachable (${(err as Error).message}); is switchyard up running?`,
        { retryable: true },
      );
    }
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      let code: string = ErrorCode.CONSOLE_API;
      try {
        const j = (await res.json()) as { error?: { code?: string; message?: string } };
        if (j.error?.message) message = j.error.message;
        if (j.error?.code) code = j.error.code;
      } catch {
        // not JSON: keep the status line
      }
      if (res.status === 400) throw usageError(printable(message));
      const sy = code === ErrorCode.NODE_NOT_FOUND ? ErrorCode.NODE_NOT_FOUND : ErrorCode.CONSOLE_API;
      throw new SwitchyardError(sy, `console API: ${printable(message)} (${res.status}, ${code})`);
    }
    return res;
  };
  return {
    url: base,
    get: async <T>(path: string) => (await (await request('GET', path)).json()) as T,
    getBytes: async (path) => Buffer.from(await (await request('GET', path)).arrayBuffer()),
    post: async <T>(path: string, body: unknown) => (await (await request('POST', path, body)).json()) as T,
  };
}

/** The options of every command that can talk to the console API. */
export function apiOptionHelp() {
  return {
    api: ['--api <url>', 'the console API, e.g. http://127.0.0.1:7080 (env SWITCHYARD_API__URL)'],
    tokenFile: ['--token-file <file>', 'API token file (default: var/console/admin.token of switchyard up)'],
  } as const;
}
