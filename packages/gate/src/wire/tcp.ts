import { createServer, type Server, type Socket } from 'node:net';
import type { ListenOptions } from '../options';
import { normalizeIp } from './remote-address';
import type { Wire, WireSink } from './wire';

class TcpWire implements Wire {
  readonly network = 'tcp' as const;
  readonly remoteAddress: string;
  private corked = false;
  /** Bytes written in the current tick (corked). */
  private tickBytes = 0;
  constructor(private readonly socket: Socket) {
    this.remoteAddress = normalizeIp(socket.remoteAddress);
  }
  /**
   * Packets written in one tick leave in one syscall: the socket is corked at the first
   * write of a tick and uncorked on the next (acks and replies of one read batch together).
   */
  write(packet: Buffer): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      process.nextTick(uncork, this);
    }
    this.tickBytes += packet.length;
    socket.write(packet);
  }
  /** @internal */
  flush(): void {
    this.corked = false;
    this.tickBytes = 0;
    this.socket.uncork();
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
function uncork(wire: TcpWire): void {
  wire.flush();
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
