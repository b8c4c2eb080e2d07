import { createServer, type Server, type Socket } from 'node:net';
import type { ListenOptions } from './options';
import { normalizeIp } from './remote-address';
import { corkForTick, whenSocketDrained, type FlushListener, type TickCorked } from './tick-cork';
import { EndBound } from './end-bound';
import { readProxyHeader } from './proxy-protocol';
import type { ClientCertificate, Wire, WireSink } from './wire';

class TcpWire implements Wire, TickCorked {
  readonly network = 'tcp' as const;
  readonly remoteAddress: string;
  corked = false;
  tickBytes = 0;
  flushTo: FlushListener | undefined;
  constructor(
    private readonly socket: Socket,
    remoteAddress?: string,
    readonly secure = false,
    readonly certificate?: ClientCertificate,
    readonly acceptedAt?: number,
  ) {
    this.remoteAddress = remoteAddress ?? normalizeIp(socket.remoteAddress);
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
  unsentBytes(): number {
    return this.socket.writableLength;
  }
  whenDrained(drained: () => void): void {
    whenSocketDrained(this.socket, drained);
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
    if (!this.socket.destroyed) endBound.ended(this.socket);
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
  endBound.closed(this);
  this[SINK].closed(this[FAILURE]);
}

/** An ended socket is destroyed when it has not closed 2 s later (2.00-2.25 s, see EndBound). */
const endBound = new EndBound<Socket>(2000, (socket) => socket.destroy());

const NO_PROXIES: ReadonlySet<string> = new Set();

/** How a TCP (or TLS) socket is read once it is known who the client is. */
export interface SocketWiring {
  /** The client's address when not the socket peer's (PROXY protocol). */
  remoteAddress?: string;
  secure?: boolean;
  certificate?: ClientCertificate;
  /** Bytes already read from the socket past a PROXY header: fed first. */
  head?: Buffer;
  /** When the socket was accepted (ms), if before now (a PROXY header was read first). */
  acceptedAt?: number;
}

/** Hands a connected socket to the gate: wraps it in a Wire and feeds its bytes to the returned sink. */
export function wireSocket(socket: Socket, accept: (wire: Wire) => WireSink, how: SocketWiring = {}): void {
  const state = socket as SocketWithSink;
  state[SINK] = accept(new TcpWire(socket, how.remoteAddress, how.secure, how.certificate, how.acceptedAt));
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', onClose);
  if (how.head && how.head.length > 0 && !socket.destroyed) state[SINK].data(how.head);
}

export interface TcpListenOptions extends ListenOptions {
  /** Read a PROXY protocol v1/v2 header first (believed only from `trustedProxies`). */
  proxyProtocol?: boolean;
  trustedProxies?: ReadonlySet<string>;
  /** ms a connection has to send its PROXY header. */
  headerTimeout?: number;
}

/**
 * Listens for MQTT over TCP. `accept` is called for every socket and returns the sink that
 * reads it. With `proxyProtocol`, a PROXY header from a trusted proxy sets the client's
 * address (see proxy-protocol.ts).
 */
export function listenTcp(opts: TcpListenOptions, accept: (wire: Wire) => WireSink): Promise<Server> {
  const server = createServer({ noDelay: true }, (socket) => {
    if (!opts.proxyProtocol) return wireSocket(socket, accept);
    const acceptedAt = Date.now(); // connectTimeout counts from here, PROXY header included
    readProxyHeader(socket, opts.trustedProxies ?? NO_PROXIES, opts.headerTimeout ?? 10_000, (found) =>
      wireSocket(socket, accept, { ...found, acceptedAt }),
    );
  });
  return listenOn(server, opts);
}

/** Binds a server; rejects on a listen error (EADDRINUSE...), ignores later accept errors. */
export function listenOn<S extends Server>(server: S, opts: ListenOptions): Promise<S> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      server.on('error', () => undefined); // e.g. EMFILE on accept: that connection is lost, the listener lives
      resolve(server);
    });
  });
}
