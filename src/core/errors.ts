/** Stable error codes; documented in docs/reference/errors.md. */
export const ErrorCode = {
  CONFIG_INVALID: 'SY_ERR_CONFIG_INVALID',
  REGISTRY_UNAVAILABLE: 'SY_ERR_REGISTRY_UNAVAILABLE',
  REGISTRY_TIMEOUT: 'SY_ERR_REGISTRY_TIMEOUT',
  REGISTRY_COMPACTED: 'SY_ERR_REGISTRY_COMPACTED',
  REGISTRY_INVALID_RECORD: 'SY_ERR_REGISTRY_INVALID_RECORD',
  LEASE_LOST: 'SY_ERR_LEASE_LOST',
  KAMAILIO_RPC: 'SY_ERR_KAMAILIO_RPC',
  KAMAILIO_UNREACHABLE: 'SY_ERR_KAMAILIO_UNREACHABLE',
  KAMAILIO_RELOAD_BUSY: 'SY_ERR_KAMAILIO_RELOAD_BUSY',
  LIST_FILE_WRITE: 'SY_ERR_LIST_FILE_WRITE',
  NODE_NOT_FOUND: 'SY_ERR_NODE_NOT_FOUND',
  INVALID_ARGUMENT: 'SY_ERR_INVALID_ARGUMENT',
  TEMPLATE_INVALID: 'SY_ERR_TEMPLATE_INVALID',
  TEMPLATE_WRITE: 'SY_ERR_TEMPLATE_WRITE',
  FIRST_BOOT_MARKER: 'SY_ERR_FIRST_BOOT_MARKER',
  AMI_UNAVAILABLE: 'SY_ERR_AMI_UNAVAILABLE',
  AMI_AUTH_FAILED: 'SY_ERR_AMI_AUTH_FAILED',
  AMI_TIMEOUT: 'SY_ERR_AMI_TIMEOUT',
  AMI_ACTION_FAILED: 'SY_ERR_AMI_ACTION_FAILED',
  AMI_SHUTTING_DOWN: 'SY_ERR_AMI_SHUTTING_DOWN',
  CLOSED: 'SY_ERR_CLOSED',
  AGENT_BOOT: 'SY_ERR_AGENT_BOOT',
  CAPTURE_STORE_UNAVAILABLE: 'SY_ERR_CAPTURE_STORE_UNAVAILABLE',
  CAPTURE_STORE_SCHEMA: 'SY_ERR_CAPTURE_STORE_SCHEMA',
  CONSOLE_UNREACHABLE: 'SY_ERR_CONSOLE_UNREACHABLE',
  CONSOLE_API: 'SY_ERR_CONSOLE_API',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const MARKER = Symbol.for('switchyard.error');

/**
 * The one error class. `retryable` says whether trying again later can help (a registry that is
 * away) or not (a config error). Thrown only for programmer, config and I/O errors; wire data
 * uses Result instead.
 */
export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: unknown;
  readonly [MARKER] = true;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { retryable?: boolean; cause?: unknown; details?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SwitchyardError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.details = opts.details;
  }

  static is(value: unknown): value is SwitchyardError {
    return typeof value === 'object' && value !== null && MARKER in value;
  }
}

/** A short, log-safe description of anything thrown. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return SwitchyardError.is(err) ? `${err.code}: ${err.message}` : err.message;
  return String(err);
}
