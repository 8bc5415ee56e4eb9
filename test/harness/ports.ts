import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/**
 * Free ports on loopback for daemons the tests start. The OS picks them, so parallel test files
 * and other services on the machine (research/real-components.md problem 13) do not collide.
 */
export async function freeTcpPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** A port free for both UDP and TCP on `host` (SIP listens on both in some configs). */
export async function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const sock = createSocket('udp4');
      sock.once('error', reject);
      sock.bind(0, host, () => {
        const p = sock.address().port;
        sock.close(() => resolve(p));
      });
    });
    try {
      const tcp = await new Promise<boolean>((resolve) => {
        const srv = createServer();
        srv.once('error', () => resolve(false));
        srv.listen(port, host, () => srv.close(() => resolve(true)));
      });
      if (tcp) return port;
    } catch {
      // try another port
    }
  }
  throw new Error(`no free UDP+TCP port on ${host}`);
}

let nextHost = 0;
/**
 * A loopback address of its own for each daemon (127.0.0.0/8 is all loopback on Linux), so SIP
 * peers can all use port 5060-like ports without clashing and logs show who is who.
 */
export function loopbackHost(): string {
  nextHost++;
  const base = 40 + (process.pid % 150);
  return `127.${base}.${Math.floor(nextHost / 250) % 250}.${(nextHost % 250) + 2}`;
}
