import { once } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { ResolvedGateOptions } from '../options';
import { trustedSet } from './remote-address';
import { openSecureListeners, type SecureListeners } from './secure-listeners';
import { listenTcp } from './tcp';
import type { TlsReload } from './tls';
import { listenWebSocket } from './websocket';
import { webSocketMessageBound } from './websocket-bound';
import type { Wire, WireSink } from './wire';

/** Bound addresses of a started gate (useful with port 0). */
export interface GateAddresses {
  tcp?: AddressInfo;
  websocket?: AddressInfo;
  mqtts?: AddressInfo;
  wss?: AddressInfo;
  /** The `/metrics`, `/healthz`, `/readyz` server (with `metricsPort`). */
  metrics?: AddressInfo;
}

/**
 * The gate's client listeners, plain (TCP, WebSocket) and TLS (mqtts, wss), as the options
 * ask for them: opened together at start, closed together at stop.
 */
export class GateListeners {
  private tcp: NetServer | undefined;
  private ws: HttpServer | undefined;
  private secure: SecureListeners | undefined;

  /**
   * Binds every listener the options name; `accept` gets each new connection's wire;
   * `admitSocket` is asked for each WebSocket socket before its upgrade (the gate's door).
   * @throws Error when a port cannot be bound (EADDRINUSE...) or a TLS file cannot be read.
   */
  async open(
    o: ResolvedGateOptions,
    accept: (wire: Wire) => WireSink,
    onTlsReload: (r: TlsReload) => void,
    admitSocket?: (ip: string) => (() => void) | undefined,
  ): Promise<void> {
    const trustedProxies = trustedSet(o.trustedProxies);
    if (o.tcp) this.tcp = await listenTcp({ ...o.tcp, trustedProxies, headerTimeout: o.connectTimeout }, accept);
    const connectTimeout = o.connectTimeout;
    const maxPayload = webSocketMessageBound(o); // a frame may hold many packets (MQTT-6.0.0-2)
    if (o.websocket) this.ws = await listenWebSocket({ ...o.websocket, maxPayload, trustedProxies, connectTimeout, admitSocket }, accept);
    if (o.mqtts || o.wss) {
      const headerTimeout = o.connectTimeout;
      const config = { mqtts: o.mqtts, wss: o.wss, maxPayload, trustedProxies, headerTimeout, connectTimeout, admitSocket };
      this.secure = await openSecureListeners(config, accept, onTlsReload);
    }
  }

  /** Where each listener is bound. */
  addresses(): Omit<GateAddresses, 'metrics'> {
    return {
      tcp: this.tcp?.address() as AddressInfo | undefined,
      websocket: this.ws?.address() as AddressInfo | undefined,
      mqtts: this.secure?.mqtts?.address() as AddressInfo | undefined,
      wss: this.secure?.wss?.address() as AddressInfo | undefined,
    };
  }

  /** `{tcp: "127.0.0.1:3563", ...}` for the start log line. */
  describe(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, a] of Object.entries(this.addresses())) if (a) out[name] = `${a.address}:${a.port}`;
    return out;
  }

  /** True while every opened listener is still listening. */
  allListening(): boolean {
    return this.servers().every((s) => s.listening);
  }

  /** Re-reads the TLS listeners' PEM files (see Gate.reloadTls). */
  reloadTls(): Promise<TlsReload[]> {
    return this.secure ? this.secure.reloader.reload() : Promise.resolve([]);
  }

  /** Stops accepting connections; resolves once every listener has closed (its connections may still be open). */
  stopAccepting(): Promise<unknown> {
    const servers = this.servers();
    this.secure?.reloader.close();
    const closing = servers.map((s) => (s.listening ? once(s, 'close') : Promise.resolve([])));
    for (const s of servers) s.close();
    return Promise.all(closing);
  }

  /** Ends the HTTP connections the WebSocket listeners still hold (upgrades in progress, idle keep-alive). */
  closeAllConnections(): void {
    this.ws?.closeAllConnections();
    this.secure?.wss?.closeAllConnections();
  }

  /** Calls `report` with every error a bound listener emits (an accept failing with EMFILE...); the listener keeps listening. */
  onError(report: (listener: string, err: NodeJS.ErrnoException) => void): void {
    const named = { tcp: this.tcp, websocket: this.ws, mqtts: this.secure?.mqtts, wss: this.secure?.wss };
    for (const [name, server] of Object.entries(named)) server?.on('error', (err: NodeJS.ErrnoException) => report(name, err));
  }

  private servers(): Array<NetServer | HttpServer> {
    return [this.tcp, this.ws, ...(this.secure?.servers() ?? [])].filter((s): s is NetServer | HttpServer => s !== undefined);
  }
}
