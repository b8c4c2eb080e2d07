// A little over 400 lines on purpose: the Gate class is the one lifecycle (start, accept, authenticate,
// connect, stop) and its public API; the protocol, routing and session work live in their own files.
import { EventEmitter, once } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { IConnectPacket } from 'mqtt-packet';
import {
  GATE_MODULE_TYPE,
  gateCallTimeout,
  gateClient,
  liveGatesOf,
  serveGateService,
  silentLogger,
  type AppComponent,
  type AppContext,
  type Logger,
  type Mqtt5PushProperties,
  type RpcServerHandle,
  type RpcTransport,
  type SessionCounts,
  type SessionData,
} from '@mqgate/rpc';
import { JwtConnect } from './jwt-connect';
import type { JwtClaims } from './jwt';
import { resolveOptions, type GateOptions, type ResolvedGateOptions } from './options';
import { MqttConnection, type ConnectVerdict, type ProtocolHooks } from './protocol/connection';
import { ReasonCode } from './protocol/mqtt5';
import { State } from './protocol/state';
import { RequestScheduler, type RunRequest } from './request-scheduler';
import { Router, type RouterStats } from './router';
import { GateSession } from './session';
import type { SessionLimits } from './session-limits';
import { SessionManager, type SessionEvents, type UserIndexLink } from './session-manager';
import { SessionRegistry } from './session-registry';
import { SessionPersistence, type StorageFailure, type StorageStats } from './session-persistence';
import { gateService } from './session-service';
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

/**
 * What a started gate works with, built once at `start(ctx)` with every dependency known
 * (the transport, the logger, the user index), and never changed afterwards.
 */
interface GateRuntime {
  readonly transport: RpcTransport;
  readonly logger: Logger;
  readonly sessions: SessionManager;
  readonly persistence: SessionPersistence | undefined;
  readonly router: Router;
  readonly scheduler: RequestScheduler;
  /** Present with the `jwt` option: token checks at CONNECT, expiry, `gate/HD_refresh`. */
  readonly jwt: JwtConnect | undefined;
}

type Conn = MqttConnection<GateSession>;

const NO_REQUESTS: RouterStats = Object.freeze({ requests: 0, notifies: 0, errors: 0 });

export class Gate extends EventEmitter<GateEvents> implements AppComponent {
  readonly name = 'gate';
  readonly options: ResolvedGateOptions;
  /** The live sessions, by session, user and client id (empty until started). */
  private readonly registry = new SessionRegistry();
  private runtime: GateRuntime | undefined;
  private readonly connections = new Set<Conn>();
  /** Open connections per client address (only with maxConnectionsPerIp). */
  private readonly perIp = new Map<string, number>();
  private readonly hooks: ProtocolHooks<GateSession>;
  private tcp: NetServer | undefined;
  private ws: HttpServer | undefined;
  private service: RpcServerHandle | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private phase: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopped: Promise<void> | undefined;
  /** Replies and pushes dropped as larger than an MQTT 5 client's Maximum Packet Size (MQTT-3.1.2-25). */
  private droppedOversize = 0;

  constructor(options: GateOptions = {}) {
    super();
    this.options = resolveOptions(options);
    this.hooks = {
      authenticate: (conn, packet) => this.authenticate(conn, packet),
      connected: (conn) => this.onConnected(conn),
      closed: (conn, reason) => this.onClosed(conn, reason),
      dropped: () => void this.droppedOversize++,
    };
  }

  /** Present once started when the gate has a StorageHandler. */
  get persistence(): SessionPersistence | undefined {
    return this.runtime?.persistence;
  }

  /** This gate's node id: the `serverId` of its sessions and the address of its session service. */
  get serverId(): string {
    return this.options.serverId;
  }

  /**
   * Serves the session service on the transport, then opens the listeners.
   * @throws Error when already started, or when a port cannot be bound (EADDRINUSE...).
   */
  async start(ctx: AppContext): Promise<void> {
    if (this.phase !== 'new') throw new Error(`gate ${this.serverId} cannot start: it is ${this.phase}`);
    this.phase = 'running';
    const runtime = this.buildRuntime(ctx);
    this.runtime = runtime;
    try {
      this.service = await ctx.transport.serve(
        { serverId: this.serverId, moduleType: GATE_MODULE_TYPE },
        serveGateService(gateService(runtime.sessions)),
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
    runtime.logger.info({ serverId: this.serverId, ...this.describeAddresses() }, 'gate listening');
  }

  private buildRuntime(ctx: AppContext): GateRuntime {
    const o = this.options;
    const transport = ctx.transport;
    const logger = o.logger ?? ctx.logger ?? silentLogger;
    const limits: SessionLimits = {
      maxUserIdBytes: o.maxUserIdBytes,
      maxSettings: o.maxSettings,
      maxSettingKeyBytes: o.maxSettingKeyBytes,
      maxSettingValueBytes: o.maxSettingValueBytes,
      maxSettingsBytes: o.maxSettingsBytes,
    };
    let persistence: SessionPersistence | undefined;
    if (o.storage) {
      persistence = new SessionPersistence(
        o.storage,
        { heartbeatInterval: o.heartbeatInterval, retryInitialDelay: o.storageRetryDelay, retryMaxDelay: o.storageRetryMaxDelay, limits },
        () => logger,
      );
      persistence.on('storageError', (f) => this.safeEmit('storageError', f));
    }
    const users: UserIndexLink = {
      index: o.userIndex ?? ctx.userIndex,
      policy: o.duplicateLogin,
      liveGates: () => {
        const gates = liveGatesOf(transport.servers(GATE_MODULE_TYPE));
        return gates.some((g) => g.serverId === this.serverId) ? gates : [...gates, { serverId: this.serverId, startedAt: 0 }];
      },
      // Bounded: a crashed gate the registry still lists must not hold the new bind past its deadline.
      kickRemote: (loc, reason) =>
        gateClient(transport, loc.serverId, { timeout: gateCallTimeout(transport) })
          .close(loc.sessionId, reason)
          .catch(() => undefined),
    };
    const sessions = new SessionManager({
      registry: this.registry,
      users,
      persistence,
      deleteOnUnbind: o.deleteOnUnbind,
      logger,
      limits,
      emit: (event, ...args) => this.safeEmit(event, ...(args as GateEvents[typeof event])),
    });
    const router = new Router(transport, o.handlerTimeout, logger);
    const jwt = o.jwt && new JwtConnect({ options: o.jwt, sessions, registry: this.registry, serverId: this.serverId, logger });
    const route: RunRequest = (s, p) => router.route(s, p);
    const scheduler = new RequestScheduler(o.maxInflight, o.ordered, jwt ? jwt.answeringRefresh(route) : route);
    return { transport, logger, sessions, persistence, router, scheduler, jwt };
  }

  /** Emits an event; a listener's exception must not escape into a socket callback and end the process. */
  private safeEmit<E extends keyof GateEvents>(event: E, ...args: GateEvents[E]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    } catch (err) {
      this.runtime?.logger.error({ event, error: err instanceof Error ? err.message : String(err) }, 'gate event listener threw');
    }
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
    return this.registry.counts();
  }

  /**
   * Request counters since start, connections open (CONNECT pending included), and
   * `droppedOversize`: replies and pushes not sent because they were larger than the MQTT 5
   * client's Maximum Packet Size (MQTT-3.1.2-25).
   */
  stats(): RouterStats & { connections: number; outstanding: number; droppedOversize: number; storage: StorageStats | undefined } {
    const r = this.runtime;
    return {
      ...(r ? r.router.stats : NO_REQUESTS),
      connections: this.connections.size,
      droppedOversize: this.droppedOversize,
      outstanding: r ? r.scheduler.outstanding : 0,
      storage: r?.persistence ? { ...r.persistence.stats } : undefined,
    };
  }

  /** A snapshot of a live session, or undefined. */
  getSession(sessionId: string): SessionData | undefined {
    return this.registry.get(sessionId)?.snapshot();
  }

  /** Snapshots of the live sessions of a user on this gate. */
  sessionsOfUser(userId: string): SessionData[] {
    return this.registry.byUserId(userId).map((s) => s.snapshot());
  }

  /**
   * Pushes to one session from the gate's own process; `properties` reach MQTT 5 clients only.
   * Returns false when it is not connected, or the push exceeds the client's Maximum Packet Size.
   */
  send(sessionId: string, topic: string, body: Buffer | string, properties?: Mqtt5PushProperties): boolean {
    const s = this.registry.get(sessionId);
    return s ? s.conn.publish(topic, typeof body === 'string' ? Buffer.from(body) : body, properties) : false;
  }

  /** Pushes to every session on this gate; `properties` reach MQTT 5 clients only. Returns how many got it. */
  broadcast(topic: string, body: Buffer | string, properties?: Mqtt5PushProperties): number {
    return this.runtime?.sessions.broadcast(topic, typeof body === 'string' ? Buffer.from(body) : body, properties) ?? 0;
  }

  /** Closes a session, telling the client why on `gate/kick` first. Returns false when unknown. */
  kick(sessionId: string, reason?: string): boolean {
    const s = this.registry.get(sessionId);
    if (!s || !this.runtime) return false;
    this.runtime.sessions.kick(s, reason);
    return true;
  }

  private accept(wire: Wire): Conn {
    const conn: Conn = new MqttConnection(wire, this.hooks, this.options);
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

  /** The authenticate hook's answer as a CONNACK reason code (MQTT 5.0 §3.2.2.2; connect.ts maps it for 3.1.1). */
  private authenticate(conn: Conn, packet: IConnectPacket): ConnectVerdict | Promise<ConnectVerdict> {
    if (this.phase !== 'running') return { reasonCode: ReasonCode.ServerUnavailable, reasonString: STOP_REASON };
    const jwt = this.runtime?.jwt;
    if (jwt) return jwt.authenticate(conn, packet, (claims) => this.runHook(conn, packet, claims));
    return this.runHook(conn, packet, undefined);
  }

  /** The authenticate hook's verdict; with `jwt`, the token (and its Authentication Method) has passed and `claims` are its claims. */
  private runHook(conn: Conn, packet: IConnectPacket, claims: JwtClaims | undefined): ConnectVerdict | Promise<ConnectVerdict> {
    const hook = this.options.authenticate;
    const method = packet.properties?.authenticationMethod;
    const refusal = method === undefined || claims ? ReasonCode.NotAuthorized : ReasonCode.BadAuthenticationMethod;
    if (!hook) return method === undefined || claims ? 0 : { reasonCode: refusal, reasonString: `authentication method ${JSON.stringify(method)} is not supported` };
    const verdict = hook({
      clientId: conn.clientId,
      username: packet.username,
      password: packet.password,
      remoteAddress: conn.wire.remoteAddress,
      network: conn.wire.network,
      protocolVersion: conn.protocolVersion,
      userProperties: conn.v5?.userProperties,
      authenticationMethod: method,
      authenticationData: packet.properties?.authenticationData,
      ...(claims && { jwt: claims }),
    });
    const toCode = (v: unknown): ConnectVerdict => {
      if (v === true) return 0;
      if (typeof v === 'object' && v !== null) {
        const o = v as { returnCode?: number; reasonCode?: number; reasonString?: string };
        if (typeof o.reasonCode === 'number' && o.reasonCode >= 0x80 && o.reasonCode <= 0xff) return { reasonCode: o.reasonCode, reasonString: o.reasonString };
        if (o.returnCode === 4) return ReasonCode.BadUserNameOrPassword;
      }
      return refusal;
    };
    if (verdict instanceof Promise) {
      return verdict.then(toCode, (err: unknown) => {
        this.runtime?.logger.warn({ clientId: conn.clientId, error: String(err) }, 'authenticate hook failed');
        return ReasonCode.ServerUnavailable;
      });
    }
    return toCode(verdict);
  }

  private onConnected(conn: Conn): void {
    const r = this.runtime as GateRuntime;
    const older = this.registry.byClientId(conn.clientId);
    if (older) r.sessions.kick(older, 'session taken over by a new connection with the same client id (MQTT-3.1.4-2)', ReasonCode.SessionTakenOver);
    // With `jwt` the session was made, and bound, before the CONNACK.
    const session = conn.session ?? new GateSession(conn, this.serverId);
    conn.session = session;
    conn.requests = r.scheduler.open(session);
    this.registry.add(session);
    if (this.phase !== 'running') conn.freeze();
    this.safeEmit('connect', session.snapshot());
  }

  private onClosed(conn: Conn, reason: string): void {
    if (this.connections.delete(conn) && this.options.maxConnectionsPerIp > 0) {
      const ip = conn.wire.remoteAddress;
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n > 0) this.perIp.set(ip, n);
      else this.perIp.delete(ip);
    }
    const session = conn.session;
    const r = this.runtime;
    if (!session || !r) return;
    r.persistence?.closed(session);
    r.jwt?.closed(session);
    r.sessions.release(session, session.userId);
    this.registry.remove(session);
    // conn.requests is set at CONNACK: a JWT session closed before it had no `connect` either.
    if (conn.requests) this.safeEmit('disconnect', session.snapshot(), reason);
  }

  private checkTimers(): void {
    const now = Date.now();
    for (const conn of this.connections) conn.checkTimers(now);
    this.runtime?.jwt?.sweep(now);
    const persistence = this.runtime?.persistence;
    if (persistence) for (const s of this.registry.all()) persistence.tick(s, now);
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
    const r = this.runtime;
    if (r) await Promise.race([r.scheduler.idle(), timedOut]);
    clearTimeout(timer);
    if (r?.persistence) {
      // One last attempt to store changes a failing store has not taken yet, bounded.
      const flushed = r.persistence.flush(this.registry.all());
      await Promise.race([flushed, new Promise((done) => setTimeout(done, Math.min(2000, this.options.stopTimeout)).unref())]);
    }
    if (r) for (const s of [...this.registry.all()]) r.sessions.kick(s, STOP_REASON, ReasonCode.ServerShuttingDown);
    r?.persistence?.close();
    for (const conn of [...this.connections]) conn.destroy('gate is stopping');
    if (this.ws) (this.ws as HttpServer).closeAllConnections();
    await this.service?.close();
    await Promise.all(closing);
    if (this.sweep) clearInterval(this.sweep);
    this.phase = 'stopped';
    r?.logger.info({ serverId: this.serverId }, 'gate stopped');
  }
}

/** Creates a gate; see {@link GateOptions} for the options and their defaults. */
export function createGate(options?: GateOptions): Gate {
  return new Gate(options);
}
