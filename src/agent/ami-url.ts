import { REDACTED } from '../core/config/index.ts';
import { fail, ok, type Result } from '../core/result.ts';

/** Asterisk's manager.conf default port. */
export const DEFAULT_AMI_PORT = 5038;

/** Where and how to log in to Asterisk's Manager Interface. */
export interface AmiEndpoint {
  /** Host name or address, without IPv6 brackets (ready for net.connect). */
  host: string;
  port: number;
  username: string;
  /** The secret of the manager.conf user. Never log it: log `display` instead. */
  password: string;
  /** The URL with the password replaced by "[redacted]", for logs and status output. */
  display: string;
}

// AMI is a CRLF line protocol (`Username: x\r\nSecret: y\r\n\r\n`): a CR or LF in either would
// end the Login action early and smuggle in a header or a whole action of the sender's choice.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

function decode(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}

/**
 * Parses `ami://USER:PASSWORD@HOST[:PORT]` (percent-encode reserved characters in the user and
 * password). Reasons never contain the password, so they can go into config problems as they are.
 */
export function parseAmiUrl(text: string): Result<AmiEndpoint> {
  // Whitespace must be percent-encoded: the URL parser would accept a raw space in the password,
  // but redactUrlPasswords (which hides it in printed config) stops at whitespace.
  if (/[\s\u0000-\u001f\u007f]/.test(text))
    return fail('whitespace and control characters must be percent-encoded');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('not a URL: expected ami://USER:PASSWORD@HOST[:PORT]');
  }
  if (url.protocol !== 'ami:') return fail('the scheme must be ami://');
  if (url.hostname === '') return fail('no host: expected ami://USER:PASSWORD@HOST[:PORT]');
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '')
    return fail('no path, query or fragment allowed after the host and port');
  const username = decode(url.username);
  const password = decode(url.password);
  if (username === undefined || password === undefined)
    return fail('bad percent-encoding in the user or password');
  if (username === '') return fail('no user: expected ami://USER:PASSWORD@HOST[:PORT]');
  if (password === '') return fail('no password: AMI logins need the secret from manager.conf');
  if (CONTROL_CHARS.test(username) || CONTROL_CHARS.test(password))
    return fail('control characters (CR, LF, NUL...) are not allowed in the user or password');
  const port = url.port === '' ? DEFAULT_AMI_PORT : Number(url.port);
  if (port === 0) return fail('port 0 is not a port AMI can listen on');
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return ok({
    host,
    port,
    username,
    password,
    display: `ami://${url.username}:${REDACTED}@${url.host}`,
  });
}
