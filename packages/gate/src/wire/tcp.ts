import { createServer, type Server, type Socket } from 'node:net';
import type { ListenOptions } from './options';
import { normalizeIp } from './remote-address';
import { corkForTick, whenSocketDrained, type FlushListener, type TickCorked } from './tick-cork';
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
    boundEnd(this.socket);
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
  ending.delete(this);
  this[SINK].closed(this[FAILURE]);
}

/** ms an ended socket may take to flush what was written before it is destroyed. */
const END_BOUND_MS = 2000;
/** How often the ended sockets are checked, ms: a socket is destroyed END_BOUND_MS to END_BOUND_MS + this after its end. */
const END_SWEEP_MS = 250;
/**
 * Ended sockets not closed yet → when they are cut (in end order, so in deadline order): one
 * sweep for all instead of a timer per close, and a socket that closes is let go at once
 * (a timer would hold it, its connection and session for the whole bound).
 */
const ending = new Map<Socket, number>();
let endSweep: NodeJS.Timeout | undefined;

function boundEnd(socket: Socket): void {
  if (socket.destroyed || ending.has(socket)) return;
  ending.set(socket, Date.now() + END_BOUND_MS);
  endSweep ??= setInterval(sweepEnding, END_SWEEP_MS).unref();
}

function sweepEnding(): void {
  const now = Date.now();
  for (const [socket, at] of ending) {
    if (at > now) break;
    ending.delete(socket);
    socket.destroy();
  }
  if (ending.size === 0 && endSweep) {
    clearInterval(endSweep);
    endSweep = undefined;
  }
}

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
