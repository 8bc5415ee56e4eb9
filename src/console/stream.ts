import type { ServerResponse } from 'node:http';

/**
 * Server-sent events to the browsers (and any API client): `cluster` (something in the cluster
 * changed; data `{"revision":N}`, the page then fetches its fragment) and `event` (one new event
 * log line as JSON). A comment line every `heartbeatMs` keeps proxies and idle timeouts from
 * closing the stream and lets the server notice clients that went away.
 *
 * Bounded: at most `maxClients` streams; a client whose socket buffer passes `maxBufferedBytes`
 * (it stopped reading) is cut off instead of growing the server's memory.
 */
export interface EventStream {
  /** Takes over the response; returns false (and sends nothing) when full. */
  add(res: ServerResponse): boolean;
  send(event: string, data: unknown): void;
  clients(): number;
  close(): void;
}

export function createEventStream(
  opts: { heartbeatMs?: number; maxClients?: number; maxBufferedBytes?: number } = {},
): EventStream {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const maxClients = opts.maxClients ?? 100;
  const maxBufferedBytes = opts.maxBufferedBytes ?? 1024 * 1024;
  const clients = new Set<ServerResponse>();

  const write = (res: ServerResponse, chunk: string) => {
    if (res.writableLength > maxBufferedBytes) {
      clients.delete(res);
      res.destroy();
      return;
    }
    res.write(chunk);
  };
  const heartbeat = setInterval(() => {
    for (const res of clients) write(res, ': keep-alive\n\n');
  }, heartbeatMs);
  heartbeat.unref();

  return {
    add(res) {
      if (clients.size >= maxClients) return false;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-content-type-options': 'nosniff',
      });
      // Tells EventSource how soon to reconnect after the server restarts.
      res.write('retry: 2000\n\n');
      clients.add(res);
      res.on('close', () => clients.delete(res));
      return true;
    },
    send(event, data) {
      // JSON never contains a raw newline, so one `data:` line is always a whole message.
      const chunk = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
      for (const res of clients) write(res, chunk);
    },
    clients: () => clients.size,
    close() {
      clearInterval(heartbeat);
      for (const res of clients) res.end();
      clients.clear();
    },
  };
}
