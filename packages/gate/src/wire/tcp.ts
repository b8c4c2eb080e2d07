import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { ListenOptions } from '../options';
import { resolveRemoteAddress } from './remote-address';
import type { Wire, WireSink } from './wire';

class TcpWire implements Wire {
  readonly network = 'tcp' as const;
  readonly remoteAddress: string;
  constructor(private readonly socket: Socket) {
    this.remoteAddress = resolveRemoteAddress(socket.remoteAddress, undefined, EMPTY);
  }
  write(packet: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(packet);
  }
  bufferedBytes(): number {
    return this.socket.writableLength;
  }
  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }
  end(): void {
    this.socket.end();
    // A peer that never reads would keep the socket half-open; give the flush a bound.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }
  destroy(): void {
    this.socket.destroy();
  }
}
const EMPTY: ReadonlySet<string> = new Set();

/**
 * Listens for MQTT over TCP. `accept` is called for every socket and returns the sink that
 * reads it. (A PROXY protocol header is not understood; put TCP clients behind an L4
 * balancer that keeps the source address, or use WebSocket with X-Forwarded-For.)
 */
export function listenTcp(opts: ListenOptions, accept: (wire: Wire) => WireSink): Promise<Server> {
  const server = createServer({ noDelay: true }, (socket) => {
    const sink = accept(new TcpWire(socket));
    socket.on('data', (chunk: Buffer) => sink.data(chunk));
    let failure: Error | undefined;
    socket.on('error', (err) => {
      failure = err;
    });
    socket.on('close', () => sink.closed(failure));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export function serverAddress(server: Server | { address(): AddressInfo | string | null }): AddressInfo {
  return server.address() as AddressInfo;
}
