import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** What `/readyz` checks; ready when every field is true. */
export interface Readiness {
  /** Every configured listener is bound and the gate is running. */
  listeners: boolean;
  /** The transport is connected, its broker connection up now (RpcTransport.healthy), and the gate's session service registered on it. */
  transport: boolean;
  /** The last StorageHandler call succeeded (true without storage or before any call). */
  storage: boolean;
  /** False once drain() or stop() has begun. */
  accepting: boolean;
}

/** Readiness as one boolean. */
export function isReady(r: Readiness): boolean {
  return r.listeners && r.transport && r.storage && r.accepting;
}

/**
 * The gate's operations endpoint on its own port: `GET /metrics` (Prometheus text format,
 * from the gate's registry), `/healthz` (200 while the process serves HTTP at all) and
 * `/readyz` (200 when {@link Readiness} is all true, else 503; the body is the checks as
 * JSON). Anything else: 404. Only GET and HEAD; request bodies are not read.
 */
export class OpsServer {
  private readonly server: Server;

  constructor(registry: Registry, readiness: () => Readiness) {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const r = readiness();
        res.writeHead(isReady(r) ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(r)}\n`);
      } else if (path === '/metrics') {
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`),
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
      }
    });
    this.server.headersTimeout = 5000;
    this.server.requestTimeout = 10_000;
  }

  /** @throws Error when the port cannot be bound. */
  async listen(port: number, host: string | undefined): Promise<void> {
    this.server.listen(port, host);
    await Promise.race([once(this.server, 'listening'), once(this.server, 'error').then(([err]) => Promise.reject(err))]);
  }

  address(): AddressInfo | undefined {
    return (this.server.address() as AddressInfo | null) ?? undefined;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = once(this.server, 'close');
    this.server.close();
    this.server.closeAllConnections();
    await closed;
  }
}
