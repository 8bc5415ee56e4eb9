import type * as Http from 'node:http';
import { createRequire } from 'node:module';

/**
 * node:http, loaded as CommonJS. An ES import of node:http evaluates every export, including its
 * lazy WebSocket and MessageEvent getters, which load undici with tls, http2 and zlib: 14 MB more
 * resident memory in every process (measured on Node 24.22; the agent's target is under 80 MB).
 * Loaded this way the getters stay lazy. Import types from 'node:http' directly as usual.
 */
export const http: typeof Http = createRequire(import.meta.url)('node:http');
