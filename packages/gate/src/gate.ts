// Over 400 lines (about 580) on purpose: the Gate class is the one lifecycle (start, accept,
// authenticate, connect, close, drain, stop) and its public API, each method a few lines over
// its documentation; listeners, runtime, protocol, sessions and the door (admission, bans) are elsewhere.
import { EventEmitter } from 'node:events';
import type { IConnectPacket } from 'mqtt-packet';
import {
  GATE_MODULE_TYPE,
  serveGateService,
  silentLogger,
  type AppComponent,
  type AppContext,
  type Mqtt5PushProperties,
  type PushQos,
  type RpcServerHandle,
  type SessionCounts,
  type SessionData,
  type SharedBan,
} from '@mqgate/rpc';
import { checkQos, quoteInput } from '@mqgate/rpc/internal';
import { Door, type BanTarget } from './admission/door';
import { closeInBatches } from './drain';
import { watchEventLoop } from './ops/event-loop-stall';
import { GateListeners, type GateAddresses } from './wire/listeners';
import { buildRuntime, type GateRuntime } from './gate-runtime';
import { closeReasonLabel, GateMetrics } from './ops/metrics';
import { OpsServer, type Readiness } from './ops/server';
import type { JwtClaims } from './jwt/verifier';
import { resolveOptions, type GateOptions, type ResolvedGateOptions } from './options';
import { MqttConnection, type ConnectVerdict, type DropReason, type ProtocolHooks } from './protocol/connection';
import { packetHandlers } from './protocol/handlers';
import { OutputBudget } from './protocol/output-budget';
import { ReasonCode } from './protocol/mqtt5';
import { State } from './protocol/state';
import type { RouterStats } from './routing/router';
import { GateSession } from './session/session';
import type { GateEvents } from './gate-events';
import type { SessionPersistence, StorageStats } from './persistence/persistence';
import { reportUnstoredAtStop } from './persistence/stop-unstored';
import { SessionRegistry } from './session/registry';
import { gateService } from './session/service';
import type { TlsReload } from './wire/tls';
import type { Wire } from './wire/wire';

export type { GateAddresses } from './wire/listeners';

/** errno codes of an accept that found no file descriptor left (system errors, not mqgate error codes). */
const FD_EXHAUSTED: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE']);
export type { BanTarget } from './admission/door';
export type { GateEvents } from './gate-events';

/** Reason sent to every client when the gate stops. */
export const STOP_REASON = 'server shutting down';

type Conn = MqttConnection<GateSession>;

const NO_REQUESTS: RouterStats = Object.freeze({ requests: 0, notifies: 0, errors: 0 });

/**
 * The gate: MQTT over TCP and WebSocket, one session per connection, client requests routed
 * to module handlers over the app's transport, replies and pushes back to that one client,
 * and the session service modules call to change sessions. An {@link AppComponent}: add it
 * to an app with `app.use(gate)` (after the modules, so it stops first), or call
 * `start({ transport, logger })` yourself.
 *
 * Events (see {@link GateEvents}): `connect`, `disconnect`, `bind`, `unbind`, `storageError`.
 */
export class Gate extends EventEmitter<GateEvents> implements AppComponent {
  readonly name = 'gate';
  readonly options: ResolvedGateOptions;
  /** The live sessions, by session, user and client id (empty until started). */
  private readonly registry = new SessionRegistry();
  private runtime: GateRuntime | undefined;
  private readonly connections = new Set<Conn>();
  /** Connection admission at accept, CONNECT and Bind, and the bans (admission/door.ts, admission/tables.ts). */
  private readonly door: Door;
  private readonly hooks: ProtocolHooks<GateSession>;
  private readonly endpoints = new GateListeners();
  private service: RpcServerHandle | undefined;
  private sweep: NodeJS.Timeout | undefined;
  private phase: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopped: Promise<void> | undefined;
  /** Replies and pushes not sent as larger than maxPacketSize or an MQTT 5 client's Maximum Packet Size (MQTT-3.1.2-24). */
  private droppedOversize = 0;
  /** Pushes dropped to slow consumers while the output was over maxBufferedBytesTotal. */
  private droppedMemory = 0;
  /** The bound on unsent output across connections (maxBufferedBytesTotal); undefined when off. */
  private readonly budget: OutputBudget | undefined;
  /** Prometheus metrics, with `metricsPort` only. */
  readonly metrics: GateMetrics | undefined;
  private ops: OpsServer | undefined;
  /** Set once the listeners are bound / the transport is ready and the session service served. */
  private listening = false;
  private transportReady = false;
  /** ms over which the stop closes the sessions: drainPeriod for drain(), 0 for stop(). */
  private spread = 0;
  private hurry: (() => void) | undefined;
  /** Stops the event-loop stall watch (while started). */
  private unwatch: (() => void) | undefined;

  constructor(options: GateOptions = {}) {
    super();
    this.options = resolveOptions(options);
    this.hooks = {
      authenticate: (conn, packet) => this.authenticate(conn, packet),
      connected: (conn) => this.onConnected(conn),
      closed: (conn, reason) => this.onClosed(conn, reason),
      dropped: (conn, bytes, reason) => this.onDropped(conn, bytes, reason),
      rateLimited: (conn, limit, rate) =>
        this.runtime?.warn(
          limit === 'messageRate' ? 'limit:messageRate' : 'limit:byteRate',
          { clientId: conn.clientId, ip: conn.wire.remoteAddress, perSecond: rate.perSecond, burst: rate.burst },
          `connection paused: over ${limit}; it reads again once its bucket has refilled`,
        ),
    };
    if (this.options.maxBufferedBytesTotal > 0) {
      this.budget = new OutputBudget(this.options.maxBufferedBytesTotal, (m, unsent, total) => this.shed(m as Conn, unsent, total));
      this.hooks.budget = this.budget;
    }
    if (this.options.metricsPort !== false) {
      const metrics = new GateMetrics(
        { connections: () => this.connections, counts: () => this.counts(), bufferedBytes: () => this.budget?.total ?? 0 },
        this.options.metricsHandlerCap,
      );
      this.metrics = metrics;
      this.hooks.traffic = metrics.traffic;
      this.on('connect', () => metrics.connected());
    }
    this.door = new Door({
      options: this.options,
      metrics: this.metrics,
      connections: this.connections,
      registry: this.registry,
      runtime: () => this.runtime,
      running: () => this.phase === 'running',
    });
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
    const runtime = buildRuntime({
      options: this.options,
      ctx,
      serverId: this.serverId,
      registry: this.registry,
      metrics: this.metrics,
      emit: (event, ...args) => this.safeEmit(event, ...args),
      userBanned: (userId) => this.door.userRefused(userId),
    });
    this.runtime = runtime;

    try {
      if (this.metrics && this.options.metricsPort !== false) {
        this.ops = new OpsServer(this.metrics.registry, () => this.readiness());
        await this.ops.listen(this.options.metricsPort, this.options.metricsHost);
      }
      await ctx.transport.ready?.();
      this.transportReady = true;
      this.service = await ctx.transport.serve(
        { serverId: this.serverId, moduleType: GATE_MODULE_TYPE },
        serveGateService(gateService(runtime.sessions, runtime.resume, runtime.warn)),
      );
      await this.endpoints.open(
        this.options,
        (wire) => this.accept(wire),
        (r) => {
          if (r.error) runtime.logger.error({ listener: r.listener, error: r.error }, 'TLS reload failed; old certificate kept');
          else runtime.logger.info({ listener: r.listener }, 'TLS certificate reloaded');
          this.safeEmit('tlsReload', r);
        },
        (ip) => this.door.pending(ip),
      );
      this.listening = true;
      this.endpoints.onError((listener, err) => {
        const code = err.code;
        const kind = code !== undefined && FD_EXHAUSTED.has(code) ? 'emfile' : 'listener-error';
        runtime.warn(
          kind,
          { listener, code, error: err.message },
          `${listener} listener: ${err.message} (that connection is lost, the listener keeps accepting)`,
        );
      });
      this.unwatch = watchEventLoop(runtime.warn);
    } catch (err) {
      await this.stop();
      throw err;
    }
    const period = Math.max(10, Math.min(500, this.options.connectTimeout / 4, this.options.maxIdle / 4));
    this.sweep = setInterval(() => this.checkTimers(), period);
    this.sweep.unref();
    this.door.start(this.options.userIndex ?? ctx.userIndex);
    runtime.logger.info({ serverId: this.serverId, ...this.endpoints.describe() }, 'gate listening');
  }

  /** Emits an event; a listener's exception must not escape into a socket callback and end the process. */
  private safeEmit<E extends keyof GateEvents>(event: E, ...args: GateEvents[E]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    } catch (err) {
      this.runtime?.logger.error({ event, error: err instanceof Error ? err.message : String(err) }, 'gate event listener threw');
    }
  }

  /** Where the listeners are bound (after start). */
  addresses(): GateAddresses {
    return { ...this.endpoints.addresses(), metrics: this.ops?.address() };
  }

  /** What `/readyz` reports: listeners bound, transport ready and its broker connection up now (RpcTransport.healthy), storage reachable as last seen, not draining. */
  readiness(): Readiness {
    return {
      listeners: this.listening && this.phase === 'running' && this.endpoints.allListening(),
      transport: this.transportReady && this.service !== undefined && (this.runtime?.transport.healthy?.() ?? true),
      storage: this.metrics?.storageOk ?? true,
      accepting: this.phase === 'running',
    };
  }

  /**
   * Re-reads the PEM files of the TLS listeners and uses them for new handshakes; open
   * connections stay. Call it on SIGHUP (the `mqgate` command does). A listener whose new
   * files fail keeps the old ones (see the `tlsReload` event). No TLS listener: `[]`.
   */
  reloadTls(): Promise<TlsReload[]> {
    return this.endpoints.reloadTls();
  }

  /** Connected sessions: total, bound to a user, guests. */
  counts(): SessionCounts {
    return { ...this.registry.counts(), detached: this.runtime?.resume.detached.size ?? 0 };
  }

  /**
   * Request counters since start, connections open (CONNECT pending included), and
   * `droppedOversize`: replies and pushes not sent because they were larger than maxPacketSize
   * or the MQTT 5 client's Maximum Packet Size (MQTT-3.1.2-24; a reply is answered with an
   * Error envelope instead); `droppedMemory`: pushes dropped to slow consumers while over
   * maxBufferedBytesTotal; `bufferedBytes`: bytes held for clients across connections (unsent output and
   * QoS 1 pushes not acknowledged), as that
   * bound counts it (0 when off); `detachedBytes`: bytes the detached sessions hold (their
   * pushes, as maxDetachedBytesTotal counts them); `detachedEvicted`: pushes of detached
   * sessions dropped past maxDetachedBytesTotal since start.
   */
  stats(): RouterStats & {
    connections: number;
    outstanding: number;
    droppedOversize: number;
    droppedMemory: number;
    bufferedBytes: number;
    detachedBytes: number;
    detachedEvicted: number;
    storage: StorageStats | undefined;
  } {
    const r = this.runtime;
    return {
      ...(r ? r.router.stats : NO_REQUESTS),
      connections: this.connections.size,
      droppedOversize: this.droppedOversize,
      droppedMemory: this.droppedMemory,
      bufferedBytes: this.budget?.total ?? 0,
      detachedBytes: r?.resume.detached.bytes.total ?? 0,
      detachedEvicted: r?.resume.detached.bytes.evicted ?? 0,
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
   * Pushes to one session from the gate's own process; `properties` reach MQTT 5 clients only;
   * `qos` 1 delivers at least once (kept until PUBACK, resent on resume).
   * Returns false when it is not connected, the push exceeds the client's Maximum Packet Size,
   * or a QoS 1 push finds maxOutboundQueue / maxBufferedBytes full.
   * @throws TypeError for a qos other than 0 or 1.
   */
  send(sessionId: string, topic: string, body: Buffer | string, properties?: Mqtt5PushProperties, qos: PushQos = 0): boolean {
    checkQos('Gate.send', qos);
    const s = this.runtime?.sessions.find(sessionId);
    return s ? (this.runtime as GateRuntime).sessions.send(s, topic, typeof body === 'string' ? Buffer.from(body) : body, properties, qos) : false;
  }

  /** Pushes to every session on this gate; `properties` reach MQTT 5 clients only; `qos` as {@link send}. Returns how many got it. */
  broadcast(topic: string, body: Buffer | string, properties?: Mqtt5PushProperties, qos: PushQos = 0): number {
    checkQos('Gate.broadcast', qos);
    return this.runtime?.sessions.broadcast(topic, typeof body === 'string' ? Buffer.from(body) : body, properties, qos) ?? 0;
  }

  /** Closes a session, telling the client why on `gate/kick` first. Returns false when unknown. */
  kick(sessionId: string, reason?: string): boolean {
    const s = this.registry.get(sessionId);
    if (!s || !this.runtime) return false;
    this.runtime.sessions.kick(s, reason);
    return true;
  }

  private accept(wire: Wire): Conn {
    const conn: Conn = new MqttConnection(wire, this.hooks, this.options, packetHandlers);
    if (this.phase !== 'running') {
      conn.destroy('gate is stopping');
      return conn;
    }
    if (this.door.admit(conn)) this.connections.add(conn);
    return conn;
  }

  /**
   * Bans a client address (refused at accept), a client id (CONNACK 0x8A Banned / 3.1.1
   * return code 5) or a user id (Bind and JWT CONNECT fail with code BANNED) for `ms`, and
   * kicks the live sessions it matches. With a user index that shares bans (RedisUserIndex),
   * every gate on it applies the ban within its `banSyncInterval`. See admission/door.ts.
   * @throws RangeError when `ms` is not positive or maxBans bans are held; TypeError for a bad target; the user index's error.
   */
  ban(target: BanTarget, ms: number): Promise<void> {
    return this.door.ban(target, ms);
  }

  /** Lifts a ban (on every gate, with a user index that shares bans). Resolves false when this gate held none. */
  unban(target: BanTarget): Promise<boolean> {
    return this.door.unban(target);
  }

  /** The bans in force on this gate (its own, flapping ones, and those shared by the user index), soonest to end first. */
  bans(): SharedBan[] {
    return this.door.bans();
  }

  /** The authenticate hook's answer as a CONNACK reason code (MQTT 5.0 §3.2.2.2; connect.ts maps it for 3.1.1). */
  private authenticate(conn: Conn, packet: IConnectPacket): ConnectVerdict | Promise<ConnectVerdict> {
    if (this.phase !== 'running') return { reasonCode: ReasonCode.ServerUnavailable, reasonString: STOP_REASON };
    const refused = this.door.connect(conn, packet);
    if (refused !== undefined) return refused;
    const jwt = this.runtime?.jwt;
    if (jwt) return jwt.authenticate(conn, packet, (claims) => this.runHook(conn, packet, claims));
    return this.runHook(conn, packet, undefined, true);
  }

  /**
   * Resume at CONNECT: a CONNECT the hook accepted with `{ userId }` resumes that user's
   * detached session of this client id (Clean Session / Clean Start 0, Session Present 1)
   * or discards it (1); see ResumeManager.atConnect.
   */
  private resumeAtConnect(conn: Conn, packet: IConnectPacket, verdict: ConnectVerdict): ConnectVerdict | Promise<ConnectVerdict> {
    const userId = typeof verdict === 'object' ? verdict.userId : undefined;
    if (userId === undefined || !this.runtime) return verdict;
    return this.runtime.resume.atConnect(conn, userId, packet.clean !== false).then((present) => ({ reasonCode: 0, sessionPresent: present }));
  }

  /** The authenticate hook's verdict; with `jwt`, the token (and its Authentication Method) has passed and `claims` are its claims. */
  private runHook(conn: Conn, packet: IConnectPacket, claims: JwtClaims | undefined, resume = false): ConnectVerdict | Promise<ConnectVerdict> {
    const hook = this.options.authenticate;
    const method = packet.properties?.authenticationMethod;
    const refusal = method === undefined || claims ? ReasonCode.NotAuthorized : ReasonCode.BadAuthenticationMethod;
    if (!hook)
      return method === undefined || claims
        ? 0
        : { reasonCode: refusal, reasonString: `authentication method ${quoteInput(method)} is not supported` };
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
      secure: conn.wire.secure === true,
      certificate: conn.wire.certificate,
      ...(claims && { jwt: claims }),
    });
    const toCode = (v: unknown): ConnectVerdict => {
      if (v === true) return 0;
      if (typeof v === 'object' && v !== null) {
        const o = v as { returnCode?: number; reasonCode?: number; reasonString?: string; userId?: unknown };
        if (typeof o.userId === 'string' && o.returnCode === undefined && o.reasonCode === undefined)
          return o.userId === '' ? 0 : { reasonCode: 0, userId: o.userId };
        if (typeof o.reasonCode === 'number' && o.reasonCode >= 0x80 && o.reasonCode <= 0xff)
          return { reasonCode: o.reasonCode, reasonString: o.reasonString };
        if (o.returnCode === 4) return ReasonCode.BadUserNameOrPassword;
      }
      return refusal;
    };
    // `resume`: the verdict goes on to resumeAtConnect in the same step (one promise per CONNECT, not two).
    const settle = resume ? (v: unknown) => this.resumeAtConnect(conn, packet, toCode(v)) : toCode;
    if (verdict instanceof Promise) {
      return verdict.then(settle, (err: unknown) => {
        this.runtime?.logger.warn({ clientId: conn.clientId, error: String(err) }, 'authenticate hook failed');
        return ReasonCode.ServerUnavailable;
      });
    }
    return settle(verdict);
  }

  private onConnected(conn: Conn): void {
    const r = this.runtime as GateRuntime;
    const older = this.registry.byClientId(conn.clientId);
    if (older && older !== conn.session)
      r.sessions.kick(
        older,
        'session taken over by a new connection with the same client id (MQTT-3.1.4-2; MQTT 5: MQTT-3.1.4-3)',
        ReasonCode.SessionTakenOver,
      );
    // With `jwt` the session was made, and bound, before the CONNACK; a resume at CONNECT (rule 6) attached one.
    const session = conn.session ?? new GateSession(conn, this.serverId);
    conn.session = session;
    conn.requests = r.scheduler.open(session);
    this.registry.add(session);
    if (this.phase !== 'running') conn.freeze();
    if (this.listenerCount('connect') > 0) this.safeEmit('connect', session.snapshot()); // no snapshot for nobody
    r.resume.connected(session);
    this.door.connected(conn); // flapping: may close it at once (DISCONNECT 0x8A), after its connect event
  }

  private onClosed(conn: Conn, reason: string): void {
    this.metrics?.connectionClosed(reason, conn.refused);
    this.logClose(conn, reason);
    if (this.connections.delete(conn)) this.door.released(conn);
    const session = conn.session;
    const r = this.runtime;
    if (!session || !r) return;
    r.jwt?.closed(session);
    if (!r.resume.keep(session, this.phase === 'running' ? reason : 'kicked: gate stopping')) {
      r.persistence?.closed(session);
      r.sessions.release(session, session.userId);
    }
    this.registry.remove(session);
    // conn.requests is set at CONNACK: a JWT session closed before it had no `connect` either.
    if (conn.requests && this.listenerCount('disconnect') > 0) this.safeEmit('disconnect', session.snapshot(), reason);
  }

  /** One debug line per closed connection: why (the metrics' `reason` label and the text), who, how long. */
  private logClose(conn: Conn, reason: string): void {
    const logger = this.runtime?.logger;
    // The line is built only for a logger that may print it (pino's isLevelEnabled, when it has one).
    if (!logger || logger === silentLogger || (logger as { isLevelEnabled?(level: string): boolean }).isLevelEnabled?.('debug') === false) return;
    const s = conn.session;
    logger.debug(
      {
        reason: conn.refused ? 'refused' : closeReasonLabel(reason),
        detail: reason,
        clientId: conn.clientId || undefined,
        userId: s?.userId || undefined,
        sessionId: s?.sessionId,
        ip: conn.wire.remoteAddress,
        network: conn.wire.network,
        durationMs: Date.now() - conn.openedAt,
      },
      'connection closed',
    );
  }

  /** A reply or push not written (see ProtocolHooks.dropped): counted, and logged rate-limited. */
  private onDropped(conn: Conn, bytes: number, reason: DropReason): void {
    if (reason === 'memory') this.droppedMemory++;
    else this.droppedOversize++;
    this.metrics?.pushDropped(reason);
    const fields = { clientId: conn.clientId, sessionId: conn.session?.sessionId, bytes };
    if (reason === 'memory') {
      const limit = this.options.maxBufferedBytesTotal;
      this.runtime?.warn(
        'output-budget',
        { ...fields, unsent: conn.counted, total: this.budget?.total, limit },
        'push dropped: the gate is over maxBufferedBytesTotal and this client is not reading',
      );
    } else {
      this.runtime?.warn(
        'packet-too-large',
        { ...fields, limit: conn.packetLimit },
        "PUBLISH not sent: larger than the packet limit (maxPacketSize, or the MQTT 5 client's Maximum Packet Size)",
      );
    }
  }

  /** The output budget's choice: a connection with one of the largest backlogs while over maxBufferedBytesTotal. */
  private shed(conn: Conn, unsent: number, total: number): void {
    const limit = this.options.maxBufferedBytesTotal;
    this.runtime?.warn(
      'slow-consumer',
      { clientId: conn.clientId, sessionId: conn.session?.sessionId, remoteAddress: conn.wire.remoteAddress, unsent, total, limit },
      "closing a slow consumer: the gate's unsent output is over maxBufferedBytesTotal and this connection holds one of the largest backlogs",
    );
    if (conn.state === State.Closed) {
      // Closing gracefully, its socket still flushing: cut it now, or the bytes the sweep
      // counts as freed would stay held until the wire's end bound.
      conn.wire.destroy();
      this.budget?.release(conn);
      return;
    }
    // No DISCONNECT 0x97: it would wait behind the backlog the client does not read (MQTT 5.0 §4.13: a MAY).
    conn.destroy(`slow consumer: ${unsent} bytes unsent while the gate holds ${total}, over maxBufferedBytesTotal ${limit}`);
  }

  private checkTimers(): void {
    const now = Date.now();
    for (const conn of this.connections) conn.checkTimers(now);
    this.budget?.sweep();
    this.runtime?.jwt?.sweep(now);
    this.runtime?.sessions.checkIndex(now); // the user index re-asserted after an empty Redis restart
    const persistence = this.runtime?.persistence;
    if (persistence) for (const s of this.registry.all()) persistence.tick(s, now);
  }

  /**
   * Graceful stop: stops accepting connections and reading requests, waits for requests in
   * flight, then for the session store to take every change the gate promised to store
   * (retrying; both within `stopTimeout` ms of the stop, and each user whose last change is
   * still not stored then is logged at error: userId, sessionId, what was lost), tells every
   * client why on `gate/kick`, closes every connection, and withdraws the session service.
   * Idempotent.
   */
  stop(): Promise<void> {
    this.hurry?.(); // a stop during a drain closes the remaining sessions at once
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  /**
   * A stop for rolling deploys: `/readyz` turns false at once, the listeners stop accepting,
   * requests in flight finish (up to `stopTimeout` ms), then the sessions are kicked with
   * `gate/kick` {"reason":"server shutting down"} in batches spread over `drainPeriod` ms,
   * so that clients do not all reconnect at the same moment. `stop()` during a drain kicks
   * the rest at once. Resolves when the gate has stopped; same promise as stop().
   */
  drain(): Promise<void> {
    if (!this.stopped) this.spread = this.options.drainPeriod;
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.phase = 'stopping';
    const deadline = Date.now() + this.options.stopTimeout;
    const closing = this.endpoints.stopAccepting();
    for (const conn of this.connections) {
      if (conn.state === State.Connected) conn.freeze();
      else conn.destroy('gate is stopping');
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.stopTimeout)));
    const r = this.runtime;
    if (r) await Promise.race([r.scheduler.idle(), timedOut]);
    clearTimeout(timer);
    // The changes a failing store has not taken yet, as promised, until the stop's deadline.
    if (r?.persistence) void reportUnstoredAtStop(r.logger, r.persistence, await r.persistence.settle(deadline));
    const hurry = new Promise<void>((resolve) => (this.hurry = resolve));
    if (r) await closeInBatches([...this.registry.all()], this.spread, (s) => r.sessions.kick(s, STOP_REASON, ReasonCode.ServerShuttingDown), hurry);
    this.hurry = undefined;
    r?.resume.close();
    r?.persistence?.close();
    for (const conn of [...this.connections]) conn.destroy('gate is stopping');
    this.endpoints.closeAllConnections();
    await this.service?.close();
    await closing;
    if (this.sweep) clearInterval(this.sweep);
    this.unwatch?.();
    this.budget?.close();
    this.door.stop();
    await this.ops?.close();
    this.phase = 'stopped';
    r?.logger.info({ serverId: this.serverId }, 'gate stopped');
  }
}

/** Creates a gate; see {@link GateOptions} for the options and their defaults. */
export function createGate(options?: GateOptions): Gate {
  return new Gate(options);
}
