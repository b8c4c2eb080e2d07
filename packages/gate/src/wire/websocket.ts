import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ListenOptions } from '../options';
import { EndBound } from './end-bound';
import { resolveRemoteAddress } from './remote-address';
import { upgradeTurns, type PendingUpgrade } from './upgrade-turns';
import { corkForTick, whenSocketDrained, type FlushListener, type TickCorked } from './tick-cork';
import { verifiedCertificate } from './tls';
import { messageTooLargeReason, onMessageTooLarge } from './websocket-bound';
import type { ClientCertificate, Wire, WireSink } from './wire';

const SEND_BINARY = { binary: true, compress: false, fin: true } as const;

/** Subprotocols a client may ask for; the first one it offers that we know is echoed. */
const MQTT_SUBPROTOCOLS = ['mqtt', 'mqttv3.1'];

class WebSocketWire implements Wire, TickCorked {
  readonly network = 'websocket' as const;
  corked = false;
  /** Bytes written in the current tick (corked), frame headers included (at most 10 each). */
  tickBytes = 0;
  flushTo: FlushListener | undefined;
  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Duplex,
    readonly remoteAddress: string,
    readonly userAgent: string | undefined,
    readonly secure = false,
    readonly certificate?: ClientCertificate,
    readonly acceptedAt?: number,
  ) {}
  get corkTarget(): Duplex {
    return this.socket;
  }
  /**
   * One frame per packet; the frames written in one tick leave in one syscall (see
   * corkForTick; a frame header is at most 10 bytes).
   */
  write(packet: Buffer): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    corkForTick(this, packet.length + 10);
    this.ws.send(packet, SEND_BINARY);
  }
  bufferedBytes(): number {
    return Math.max(0, this.ws.bufferedAmount - this.tickBytes);
  }
  unsentBytes(): number {
    return this.ws.bufferedAmount;
  }
  whenDrained(drained: () => void): void {
    whenSocketDrained(this.socket, drained);
  }
  pause(): void {
    this.ws.pause();
  }
  resume(): void {
    this.ws.resume();
  }
  end(): void {
    this.ws.close(1000);
    if (this.ws.readyState !== this.ws.CLOSED) endBound.ended(this.ws);
  }
  destroy(): void {
    this.ws.terminate();
  }
}

export interface WebSocketListenOptions extends ListenOptions {
  /**
   * Largest WebSocket message, bytes (see webSocketMessageBound: what a connection may send at
   * once, not maxPacketSize, which the MQTT parser applies per packet). A larger one is closed
   * with 1009, after the sink's `tooLarge` (an MQTT 5 DISCONNECT 0x95).
   */
  maxPayload: number;
  /** Peers whose X-Forwarded-For is believed. */
  trustedProxies: ReadonlySet<string>;
  /** Serve wss: HTTPS with these options (see wire/tls.ts) instead of plain HTTP. */
  tls?: HttpsOptions;
  /**
   * ms from TCP accept to CONNECT (the gate's connectTimeout): a socket not upgraded by then is
   * destroyed (a client trickling its HTTP headers is not held for Node's 60 s headersTimeout),
   * and the MQTT connection's own CONNECT deadline counts from the accept too.
   */
  connectTimeout?: number;
  /**
   * Asked for each accepted socket before its HTTP upgrade, with the socket's peer address
   * (the gate's door: caps and bans, see Admission.pending): undefined destroys the socket at
   * once; else the function is called once the socket upgrades or closes.
   */
  admitSocket?: (ip: string) => (() => void) | undefined;
}

const ACCEPTED = Symbol('acceptedAt');
const UPGRADE_TIMER = Symbol('upgradeTimer');
const ADMITTED = Symbol('admitted');
interface AcceptedSocket extends Duplex {
  [ACCEPTED]?: number;
  [UPGRADE_TIMER]?: NodeJS.Timeout;
  /** Ends the socket's count before its upgrade (WebSocketListenOptions.admitSocket). */
  [ADMITTED]?: () => void;
}
function endAdmitted(this: AcceptedSocket): void {
  this[ADMITTED]?.();
}
function destroySocket(socket: Duplex): void {
  socket.destroy();
}
function clearUpgradeTimer(this: AcceptedSocket): void {
  clearTimeout(this[UPGRADE_TIMER]);
}

/**
 * The socket has upgraded: its upgrade deadline is cleared and its count before the upgrade
 * ended (WebSocketListenOptions.admitSocket), and what they held (timer, callbacks, close
 * listeners) is let go, so an open connection keeps none of it. Returns when it was accepted.
 */
function upgraded(socket: AcceptedSocket): number | undefined {
  const timer = socket[UPGRADE_TIMER];
  if (timer !== undefined) {
    clearTimeout(timer);
    socket[UPGRADE_TIMER] = undefined;
    socket.off('close', clearUpgradeTimer);
  }
  const admitted = socket[ADMITTED];
  if (admitted !== undefined) {
    socket[ADMITTED] = undefined;
    socket.off('close', endAdmitted);
    admitted();
  }
  return socket[ACCEPTED];
}

// Shared WebSocket listeners (no closures per connection: an idle connection costs less memory).
const SINK = Symbol('sink');
const FAILURE = Symbol('failure');
interface SinkedWebSocket extends WebSocket {
  [SINK]: WireSink;
  /** Why the connection is closing: a text frame, or ws's error; nothing more is read. */
  [FAILURE]?: Error;
}
function onWsMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  const ws = this as SinkedWebSocket;
  if (ws[FAILURE]) return; // closing: nothing more is read
  if (!isBinary) {
    ws[FAILURE] = new Error('text frame received; MQTT over WebSocket needs binary frames (MQTT-6.0.0-1)');
    ws.close(1003);
    setTimeout(terminateWs, 1000, ws).unref();
    return;
  }
  ws[SINK].data(data);
}
function terminateWs(ws: WebSocket): void {
  ws.terminate();
}
function onWsError(this: WebSocket, err: Error): void {
  (this as SinkedWebSocket)[FAILURE] = err;
}
function onWsClose(this: WebSocket): void {
  const ws = this as SinkedWebSocket;
  endBound.closed(ws);
  ws[SINK].closed(ws[FAILURE]);
}

/** An HTTP upgrade request waiting for its turn (upgrade-turns.ts); completing it is ws's handshake. */
class Upgrade implements PendingUpgrade {
  constructor(
    private readonly wss: WebSocketServer,
    private readonly req: IncomingMessage,
    private readonly socket: Duplex,
    private readonly head: Buffer,
  ) {}
  complete(): void {
    const { wss, req } = this;
    wss.handleUpgrade(req, this.socket, this.head, (ws) => wss.emit('connection', ws, req));
  }
}

/** An ended WebSocket is terminated when its close handshake has not finished 2 s later (2.00-2.25 s, see EndBound). */
const endBound = new EndBound<WebSocket>(2000, terminateWs);

/**
 * Listens for MQTT over WebSocket (MQTT 3.1.1 §6) on any path (`/mqtt` by convention):
 * binary frames, packets may span or share frames, one frame per outgoing packet, the
 * `mqtt` / `mqttv3.1` subprotocol echoed. A text frame closes the connection (MQTT-6.0.0-1).
 * Plain HTTP requests get 426 Upgrade Required. At most UPGRADES_PER_TURN upgrades are completed
 * per event-loop turn (upgrade-turns.ts); the rest wait in order.
 */
export function listenWebSocket(opts: WebSocketListenOptions, accept: (wire: Wire) => WireSink): Promise<Server> {
  const upgradeRequired = (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
    res.end('MQTT over WebSocket: connect with a WebSocket client (subprotocol "mqtt")\n');
  };
  const http: Server = opts.tls ? createHttpsServer(opts.tls, upgradeRequired) : createServer(upgradeRequired);
  if (opts.tls) http.on('tlsClientError', (_err: Error, socket: Duplex) => socket.destroy());
  const admitSocket = opts.admitSocket;
  if (admitSocket) {
    // Before the TLS handshake for wss: un-upgraded sockets count toward the caps too.
    http.on('connection', (socket: AcceptedSocket & { remoteAddress?: string }) => {
      const done = admitSocket(socket.remoteAddress ?? '');
      if (!done) return void socket.destroy();
      socket[ADMITTED] = done;
      socket.once('close', endAdmitted);
    });
  }
  const connectTimeout = opts.connectTimeout;
  if (connectTimeout !== undefined) {
    // For wss this is the TCP accept, before the TLS handshake: the deadline covers it too.
    http.on('connection', (socket: AcceptedSocket) => {
      socket[ACCEPTED] = Date.now();
      socket[UPGRADE_TIMER] = setTimeout(destroySocket, connectTimeout, socket).unref();
      socket.once('close', clearUpgradeTimer);
    });
  }
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxPayload,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: (protocols) => {
      for (const p of protocols) if (MQTT_SUBPROTOCOLS.includes(p)) return p;
      return false;
    },
  });
  // Upgrades are completed a bounded number per event-loop turn (upgrade-turns.ts).
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgradeTurns.admit(new Upgrade(wss, req, socket, head)));
  const tooLargeReason = messageTooLargeReason(opts.maxPayload);
  wss.on('connection', (client, req) => {
    const ws = client as SinkedWebSocket;
    const ip = resolveRemoteAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], opts.trustedProxies);
    const ua = req.headers['user-agent'];
    const certificate = opts.tls ? verifiedCertificate(req.socket as TLSSocket) : undefined;
    const socket = req.socket as AcceptedSocket;
    const raw = (opts.tls ? (socket as unknown as { _parent?: AcceptedSocket })._parent : undefined) ?? socket;
    let acceptedAt = upgraded(socket); // the gate's accept counts it from now on
    if (raw !== socket) acceptedAt ??= upgraded(raw);
    const wire = new WebSocketWire(ws, socket, ip, ua, opts.tls !== undefined, certificate, acceptedAt);
    const sink = accept(wire);
    ws[SINK] = sink;
    onMessageTooLarge(ws, sink, tooLargeReason);
    ws.on('message', onWsMessage);
    ws.on('error', onWsError);
    ws.on('close', onWsClose);
  });
  // ws closes its clients when the http server closes only if asked; the gate closes them itself.
  http.on('close', () => wss.close());
  // ws re-emits the http server's errors; listen errors reject below, later ones are ignored.
  wss.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port, opts.host, () => {
      http.off('error', reject);
      http.on('error', () => undefined);
      resolve(http);
    });
  });
}
