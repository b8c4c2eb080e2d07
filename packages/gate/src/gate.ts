import { EventEmitter, once } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { IConnectPacket, IPublishPacket } from 'mqtt-packet';
import {
  GATE_MODULE_TYPE,
  GateFunctions,
  MemoryUserIndex,
  gateCallTimeout,
  liveGatesOf,
  silentLogger,
  type AppComponent,
  type AppContext,
  type Logger,
  type RpcServerHandle,
  type RpcTransport,
  type SessionData,
} from '@mqgate/rpc';
import { resolveOptions, type GateOptions, type ResolvedGateOptions } from './options';
import { MqttConnection, State, type ProtocolHooks } from './protocol/connection';
import { RequestScheduler } from './request-scheduler';
import { Router, type RouterStats } from './router';
import { GateSession } from './session';
import { SessionManager, type SessionEvents } from './session-manager';
import type { SessionCounts } from './session-registry';
import { SessionPersistence, type StorageFailure, type StorageStats } from './session-persistence';
import { sessionService } from './session-service';
import { listenTcp } from './wire/tcp';
import { listenWebSocket } from './wire/websocket';
import { trustedSet } from './wire/remote-address';
import type { Wire } from './wire/wire';

/** Bound addresses of a started gate (useful with port 0). */
export interface GateAddresses {
  tcp?: AddressInfo;
  websocket?: AddressInfo;
}

/** Reason sent to every client when the gate stops. */
export const STOP_REASON = 'server shutting down';

/**
 * The gate: MQTT over TCP and WebSocket, one session per connection, client requests routed
 * to module handlers over the app's transport, replies and pushes back to that one client,
 * and the session service modules call to change sessions. An {@link AppComponent}: add it
 * to an app with `app.use(gate)` (after the modules, so it stops first), or call
 * `start({ transport, logger })` yourself.
 *
 * Events (see {@link GateEvents}): `connect`, `disconnect`, `bind`, `unbind`, `storageError`.
 */
/** Gate events: the session events plus `storageError`. */
export interface GateEvents extends SessionEvents {
  /** A StorageHandler call failed (the gate keeps running and retries writes). */
  storageError: [failure: StorageFailure];
}

export class Gate extends EventEmitter<GateEvents> implements AppComponent {
  readonly name = 'gate';
  readonly options: ResolvedGateOptions;
  readonly sessions = new SessionManager();
  /** Present when the gate has a StorageHandler. */
  readonly persistence: SessionPersistence | undefined;
  private transport: RpcTransport | undefined;
  private logger: Logger;
  private readonly scheduler: RequestScheduler;
  private readonly router: Router;
  private readonly connections = new Set<MqttConnection>();
  /** Open connections per client address (only with maxConnectionsPerIp). */
  private readonly perIp = new Map<string, number>();
  private readonly hooks: ProtocolHooks;
  private tcp: NetServer | undefined;
  private ws: HttpServer | undefined;
  private service: RpcServerHandle | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private phase: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopped: Promise<void> | undefined;

  constructor(options: GateOptions = {}) {
    super();
    this.options = resolveOptions(options);
    this.logger = this.options.logger ?? silentLogger;
    this.router = new Router(() => this.requireTransport(), this.options.handlerTimeout, () => this.logger);
    this.scheduler = new RequestScheduler(this.options.maxInflight, this.options.ordered, (s, p) => this.router.route(s, p));
    for (const event of ['connect', 'disconnect', 'bind', 'unbind'] as const) {
      this.sessions.on(event, (...args: unknown[]) => {
        // A listener's exception must not escape into a socket callback and end the process.
        try {
          (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
        } catch (err) {
          this.logger.error({ event, error: err instanceof Error ? err.message : String(err) }, 'gate event listener threw');
        }
      });
    }
    if (this.options.storage) {
      this.persistence = new SessionPersistence(
        this.options.storage,
        {
          heartbeatInterval: this.options.heartbeatInterval,
          retryInitialDelay: this.options.storageRetryDelay,
          retryMaxDelay: this.options.storageRetryMaxDelay,
        },
        () => this.logger,
      );
      this.persistence.on('storageError', (f) => this.emit('storageError', f));
      this.sessions.persistence = this.persistence;
    }
    this.sessions.deleteOnUnbind = this.options.deleteOnUnbind;
    this.hooks = {
      authenticate: (conn, packet) => this.authenticate(conn, packet),
      connected: (conn) => this.onConnected(conn),
      publish: (conn, packet) => this.onPublish(conn, packet),
      closed: (conn, reason) => this.onClosed(conn, reason),
      capacity: (conn) => {
        const s = conn.session as GateSession | undefined;
        if (!s) return 8; // before CONNACK: CONNECT first, then a few more at a time
        return Math.max(1, this.options.maxInflight - s.running - (s.queue?.length ?? 0));
      },
    };
  }

  /** This gate's node id: the `serverId` of its sessions and the address of its session service. */
  get serverId(): string {
    return this.options.serverId;
  }

  private requireTransport(): RpcTransport {
    if (!this.transport) throw new Error('gate is not started');
    return this.transport;
  }

  /**
   * Serves the session service on the transport, then opens the listeners.
   * @throws Error when already started, or when a port cannot be bound (EADDRINUSE...).
   */
  async start(ctx: AppContext): Promise<void> {
    if (this.phase !== 'new') throw new Error(`gate ${this.serverId} cannot start: it is ${this.phase}`);
    this.phase = 'running';
    this.transport = ctx.transport;
    if (!this.options.logger) this.logger = ctx.logger;
    const transport = ctx.transport;
    this.sessions.users = {
      index: this.options.userIndex ?? ctx.userIndex ?? new MemoryUserIndex(),
      policy: this.options.duplicateLogin,
      liveGates: () => {
        const gates = liveGatesOf(transport.servers(GATE_MODULE_TYPE));
        return gates.some((g) => g.serverId === this.serverId) ? gates : [...gates, { serverId: this.serverId, startedAt: 0 }];
      },
      // Bounded: a crashed gate the registry still lists must not hold the new bind past its deadline.
      kickRemote: (loc, reason) =>
        transport
          .call({ serverId: loc.serverId }, GateFunctions.Close, [loc.sessionId, reason], { timeout: gateCallTimeout(transport) })
          .then(
            () => undefined,
            () => undefined,
          ),
    };
    this.sessions.onIndexError = (err, userId) =>
      this.logger.warn({ userId, error: err instanceof Error ? err.message : String(err) }, 'user index update failed');
    try {
      this.service = await ctx.transport.serve(
        { serverId: this.serverId, moduleType: GATE_MODULE_TYPE },
        sessionService(this.sessions),
      );
      const accept = (wire: Wire) => this.accept(wire);
      if (this.options.tcp) this.tcp = await listenTcp(this.options.tcp, accept);
      if (this.options.websocket) {
        this.ws = await listenWebSocket(
          {
            ...this.options.websocket,
            maxPayload: this.options.maxPacketSize,
            trustedProxies: trustedSet(this.options.trustedProxies),
          },
          accept,
        );
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    const period = Math.max(10, Math.min(500, this.options.connectTimeout / 4, this.options.maxIdle / 4));
    this.sweep = setInterval(() => this.checkTimers(), period);
    this.sweep.unref();
    this.logger.info({ serverId: this.serverId, ...this.describeAddresses() }, 'gate listening');
  }

  private describeAddresses(): Record<string, string> {
    const out: Record<string, string> = {};
    const a = this.addresses();
    if (a.tcp) out.tcp = `${a.tcp.address}:${a.tcp.port}`;
    if (a.websocket) out.websocket = `${a.websocket.address}:${a.websocket.port}`;
    return out;
  }

  /** Where the listeners are bound (after start). */
  addresses(): GateAddresses {
    return {
      tcp: this.tcp?.address() as AddressInfo | undefined,
      websocket: this.ws?.address() as AddressInfo | undefined,
    };
  }

  /** Connected sessions: total, bound to a user, guests. */
  counts(): SessionCounts {
    return this.sessions.registry.counts();
  }

  /** Request counters since start, and connections open (CONNECT pending included). */
  stats(): RouterStats & { connections: number; outstanding: number; storage: StorageStats | undefined } {
    return {
      ...this.router.stats,
      connections: this.connections.size,
      outstanding: this.scheduler.outstanding,
      storage: this.persistence ? { ...this.persistence.stats } : undefined,
    };
  }

  /** A snapshot of a live session, or undefined. */
  getSession(sessionId: string): SessionData | undefined {
    return this.sessions.registry.get(sessionId)?.snapshot();
  }

  /** Snapshots of the live sessions of a user on this gate. */
  sessionsOfUser(userId: string): SessionData[] {
    return this.sessions.registry.byUserId(userId).map((s) => s.snapshot());
  }

  /** Pushes to one session from the gate's own process. Returns false when it is not connected. */
  send(sessionId: string, topic: string, body: Buffer | string): boolean {
    const s = this.sessions.registry.get(sessionId);
    return s ? this.sessions.send(s, topic, typeof body === 'string' ? Buffer.from(body) : body) : false;
  }

  /** Pushes to every session on this gate; returns how many got it. */
  broadcast(topic: string, body: Buffer | string): number {
    return this.sessions.broadcast(topic, typeof body === 'string' ? Buffer.from(body) : body);
  }

  /** Closes a session, telling the client why on `gate/kick` first. Returns false when unknown. */
  kick(sessionId: string, reason?: string): boolean {
    const s = this.sessions.registry.get(sessionId);
    if (!s) return false;
    this.sessions.kick(s, reason);
    return true;
  }

  private accept(wire: Wire): MqttConnection {
    const conn = new MqttConnection(wire, this.hooks, this.options);
    if (this.phase !== 'running') {
      conn.destroy('gate is stopping');
      return conn;
    }
    const { maxConnections, maxConnectionsPerIp } = this.options;
    if (maxConnections > 0 && this.connections.size >= maxConnections) {
      conn.destroy(`maxConnections ${maxConnections} reached`);
      return conn;
    }
    if (maxConnectionsPerIp > 0) {
      const n = this.perIp.get(wire.remoteAddress) ?? 0;
      if (n >= maxConnectionsPerIp) {
        conn.destroy(`maxConnectionsPerIp ${maxConnectionsPerIp} reached for ${wire.remoteAddress}`);
        return conn;
      }
      this.perIp.set(wire.remoteAddress, n + 1);
    }
    this.connections.add(conn);
    return conn;
  }

  private authenticate(conn: MqttConnection, packet: IConnectPacket): number | Promise<number> {
    if (this.phase !== 'running') return 3;
    const hook = this.options.authenticate;
    if (!hook) return 0;
    const verdict = hook({
      clientId: conn.clientId,
      username: packet.username,
      password: packet.password,
      remoteAddress: conn.wire.remoteAddress,
      network: conn.wire.network,
      protocolVersion: conn.protocolVersion,
    });
    const toCode = (v: unknown): number =>
      v === true ? 0 : typeof v === 'object' && v !== null && (v as { returnCode?: number }).returnCode === 4 ? 4 : 5;
    if (verdict instanceof Promise) {
      return verdict.then(toCode, (err: unknown) => {
        this.logger.warn({ clientId: conn.clientId, error: String(err) }, 'authenticate hook failed');
        return 3;
      });
    }
    return toCode(verdict);
  }

  private onConnected(conn: MqttConnection): void {
    const older = this.sessions.registry.byClientId(conn.clientId);
    if (older) this.sessions.kick(older, 'session taken over by a new connection with the same client id (MQTT-3.1.4-2)');
    const session = new GateSession(conn, this.serverId);
    conn.session = session;
    this.sessions.registry.add(session);
    if (this.phase !== 'running') conn.freeze();
    this.sessions.emit('connect', session.snapshot());
  }

  private onPublish(conn: MqttConnection, packet: IPublishPacket): void {
    this.scheduler.submit(conn.session as GateSession, packet);
  }

  private onClosed(conn: MqttConnection, reason: string): void {
    if (this.connections.delete(conn) && this.options.maxConnectionsPerIp > 0) {
      const ip = conn.wire.remoteAddress;
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n > 0) this.perIp.set(ip, n);
      else this.perIp.delete(ip);
    }
    const session = conn.session as GateSession | undefined;
    if (!session) return;
    this.scheduler.discard(session);
    this.persistence?.closed(session);
    this.sessions.release(session, session.userId);
    this.sessions.registry.remove(session);
    this.sessions.emit('disconnect', session.snapshot(), reason);
  }

  private checkTimers(): void {
    const now = Date.now();
    for (const conn of this.connections) conn.checkTimers(now);
    if (this.persistence) for (const s of this.sessions.registry.all()) this.persistence.tick(s, now);
  }

  /**
   * Graceful stop: stops accepting connections and reading requests, waits for requests in
   * flight (up to `stopTimeout` ms), tells every client why on `gate/kick`, closes every
   * connection, and withdraws the session service. Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.phase = 'stopping';
    const listeners = [this.tcp, this.ws].filter((s): s is NetServer | HttpServer => s !== undefined);
    const closing = listeners.map((s) => (s.listening ? once(s, 'close') : Promise.resolve([])));
    for (const s of listeners) s.close();
    for (const conn of this.connections) {
      if (conn.state === State.Connected) conn.freeze();
      else conn.destroy('gate is stopping');
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.stopTimeout)));
    await Promise.race([this.scheduler.idle(), timedOut]);
    clearTimeout(timer);
    if (this.persistence) {
      // One last attempt to store changes a failing store has not taken yet, bounded.
      const flushed = this.persistence.flush(this.sessions.registry.all());
      await Promise.race([flushed, new Promise((r) => setTimeout(r, Math.min(2000, this.options.stopTimeout)).unref())]);
    }
    for (const s of [...this.sessions.registry.all()]) this.sessions.kick(s, STOP_REASON);
    this.persistence?.close();
    for (const conn of [...this.connections]) conn.destroy('gate is stopping');
    if (this.ws) (this.ws as HttpServer).closeAllConnections();
    await this.service?.close();
    await Promise.all(closing);
    if (this.sweep) clearInterval(this.sweep);
    this.phase = 'stopped';
    this.logger.info({ serverId: this.serverId }, 'gate stopped');
  }
}

/** Creates a gate; see {@link GateOptions} for the options and their defaults. */
export function createGate(options?: GateOptions): Gate {
  return new Gate(options);
}
