import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 between a client and a server (etcd), to simulate partitions: the
 * pattern of etcd3's own test Proxy (research/libraries-and-style.md §4.1).
 *
 * - `block()` destroys every open connection and, until `unblock()`, either blackholes new ones
 *   (accepted, never forwarded: the client's deadlines fire, as with a silent network) or
 *   refuses them (reset at once, as with a dead host).
 * - `freeze()` is a half-open network: open connections stay open but carry nothing more, and
 *   new ones are blackholed. Only the client's own liveness checks can notice.
 * - `unblock()` drops the held blackholed sockets (so clients reconnect) and forwards again.
 */
export interface FaultProxy {
  /** 'http://127.0.0.1:port', to give to the client instead of the server's URL. */
  readonly url: string;
  readonly port: number;
  /** Connections accepted since start, for tests that assert a reconnect happened. */
  readonly connectionsAccepted: number;
  block(opts?: { mode?: 'blackhole' | 'refuse' }): void;
  freeze(): void;
  unblock(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: 'pass' | 'blackhole' | 'refuse' = 'pass';
  let accepted = 0;
  /** Forwarded pairs and held (blackholed) sockets, so block/close can destroy them. */
  const open = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();

  const server: Server = createServer((client) => {
    accepted++;
    open.add(client);
    client.once('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    if (mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    if (mode === 'blackhole') {
      client.pause();
      return;
    }
    const upstream = createConnection({ host: target.host, port: target.port });
    open.add(upstream);
    upstream.once('close', () => {
      open.delete(upstream);
      client.destroy();
    });
    client.once('close', () => upstream.destroy());
    upstream.on('error', () => upstream.destroy());
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    client.once('close', () => pairs.delete(pair));
    client.pipe(upstream);
    upstream.pipe(client);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (typeof addr !== 'object' || addr === null) throw new Error('fault proxy: no address');
  const port = addr.port;

  const destroyAll = () => {
    for (const s of open) s.destroy();
    open.clear();
  };

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get connectionsAccepted() {
      return accepted;
    },
    block(opts = {}) {
      mode = opts.mode ?? 'blackhole';
      destroyAll();
    },
    freeze() {
      mode = 'blackhole';
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    unblock() {
      mode = 'pass';
      destroyAll();
    },
    async close() {
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
