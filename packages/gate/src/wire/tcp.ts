import { createServer, type Server, type Socket } from 'node:net';
import type { ListenOptions } from '../options';
import { normalizeIp } from './remote-address';
import { corkForTick, type TickCorked } from './tick-cork';
import type { Wire, WireSink } from './wire';

class TcpWire implements Wire, TickCorked {
  readonly network = 'tcp' as const;
  readonly remoteAddress: string;
  corked = false;
  tickBytes = 0;
  constructor(private readonly socket: Socket) {
    this.remoteAddress = normalizeIp(socket.remoteAddress);
  }
  get corkTarget(): Socket {
    return this.socket;
  }
  /** Packets written in one tick leave in one syscall (see corkForTick). */
  write(packet: Buffer): void {
    if (this.socket.destroyed) return;
    corkForTick(this, packet.length);
    this.socket.write(packet);
  }
  bufferedBytes(): number {
    return Math.max(0, this.socket.writableLength - this.tickBytes);
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

// Shared listeners (no closures per connection: an idle connection costs less memory).
const SINK = Symbol('sink');
const FAILURE = Symbol('failure');
interface SocketWithSink extends Socket {
  [SINK]: WireSink;
  [FAILURE]?: Error;
}
function onData(this: SocketWithSink, chunk: Buffer): void {
  this[SINK].data(chunk);
}
function onError(this: SocketWithSink, err: Error): void {
  this[FAILURE] = err;
}
function onClose(this: SocketWithSink): void {
  this[SINK].closed(this[FAILURE]);
}

/**
 * Listens for MQTT over TCP. `accept` is called for every socket and returns the sink that
 * reads it. (A PROXY protocol header is not understood; put TCP clients behind an L4
 * balancer that keeps the source address, or use WebSocket with X-Forwarded-For.)
 */
export function listenTcp(opts: ListenOptions, accept: (wire: Wire) => WireSink): Promise<Server> {
  const server = createServer({ noDelay: true }, (socket) => {
    const state = socket as SocketWithSink;
    state[SINK] = accept(new TcpWire(socket));
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      server.on('error', () => undefined); // e.g. EMFILE on accept: that connection is lost, the listener lives
      resolve(server);
    });
  });
}
