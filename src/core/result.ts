/**
 * Data from the wire or from the registry is never an exception: parsers and decoders return a
 * Result, and callers count and log the failures.
 */
export type Result<T> = { ok: true; value: T } | { ok: false; reason: string };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(reason: string): Result<T> {
  return { ok: false, reason };
}
