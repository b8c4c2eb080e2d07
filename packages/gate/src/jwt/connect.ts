import type { IConnectPacket, IPublishPacket } from 'mqtt-packet';
import { RpcError, type Logger } from '@mqgate/rpc';
import { PersistenceError } from '../persistence/error';
import { JwtRefusal, JwtVerifier, type JwtClaims, type ResolvedJwtOptions } from './verifier';
import type { ConnectVerdict, MqttConnection } from '../protocol/connection';
import type { PublishProperties } from '../protocol/encode';
import { ReasonCode } from '../protocol/mqtt5';
import { State } from '../protocol/state';
import type { RunRequest } from '../routing/scheduler';
import { decodePayload, encodeReply, ENVELOPE_CONTENT_TYPE } from '../routing/envelope';
import { GateSession } from '../session/session';
import type { SessionManager } from '../session/manager';
import type { SessionRegistry } from '../session/registry';

type Conn = MqttConnection<GateSession>;

/** The MQTT 5 Authentication Method (MQTT 5.0 §3.1.2.11.9) whose Authentication Data is a JWT. */
export const JWT_AUTH_METHOD = 'JWT';

/** Topic of the in-band refresh: `gate/HD_refresh/<msgid>` with `{"token"}`, answered in the gate (never routed). */
export const REFRESH_TOPIC = 'gate/HD_refresh';

/** Reason on `gate/kick` (and the MQTT 5 DISCONNECT's Reason String) when a connection's token expires. */
export const TOKEN_EXPIRED_REASON = 'token expired';

/**
 * MQTT 5 DISCONNECT reason code at expiry: 0xA0 Maximum connect time, "the maximum
 * connection time authorized for this connection has been exceeded" (MQTT 5.0 §3.14.2.1).
 */
export const TOKEN_EXPIRED_CODE = ReasonCode.MaximumConnectTime;

/** True for `gate/HD_refresh` and `gate/HD_refresh/<msgid>`. */
export function isRefreshTopic(topic: string): boolean {
  return topic === REFRESH_TOPIC || topic.startsWith(`${REFRESH_TOPIC}/`);
}

/** What the gate tracks of a connection authenticated by a token. */
interface Tracked {
  /** The user the CONNECT's token named; a refresh must name the same one. */
  readonly userId: string;
  /** Epoch ms at which the connection is closed (Infinity: the token had no `exp`). */
  deadline: number;
  /** Epoch ms of the last refresh attempt (0: none yet). */
  lastRefresh: number;
}

/** What JwtConnect works with, from the gate's runtime. */
export interface JwtConnectDeps {
  readonly options: ResolvedJwtOptions;
  readonly sessions: SessionManager;
  readonly registry: SessionRegistry;
  readonly serverId: string;
  readonly logger: Logger;
  /**
   * Resume at CONNECT (Clean Session 0 / Clean Start 0 resumes the user's detached session): resumes the detached session of the token's user
   * with this client id and registers it; true when it did (ResumeManager.atConnect).
   */
  readonly resumeAtConnect?: (conn: Conn, userId: string, clean: boolean) => Promise<boolean>;
}

/** Runs the gate's authenticate hook with the verified claims (gate.ts). */
export type HookWithClaims = (claims: JwtClaims) => ConnectVerdict | Promise<ConnectVerdict>;

const codeOf = (v: ConnectVerdict): number => (typeof v === 'number' ? v : v.reasonCode);

/**
 * JWT at CONNECT (gate option `jwt`): verifies the token, runs the authenticate hook with its
 * claims, binds the session to the token's user before the CONNACK (the same bind a module's
 * Bind runs: user index claim under the duplicate-login policy, StorageHandler Query and
 * merge), closes connections whose token has expired (from the gate's periodic sweep), and
 * answers `gate/HD_refresh`.
 */
export class JwtConnect {
  readonly verifier: JwtVerifier;
  private readonly tracked = new Map<GateSession, Tracked>();

  constructor(private readonly deps: JwtConnectDeps) {
    this.verifier = new JwtVerifier(deps.options);
  }

  /**
   * Decides a CONNECT. The token is the MQTT 5 Authentication Data when the Authentication
   * Method is `JWT` (no AUTH exchange, MQTT 5.0 §4.12), else the Password (any User Name; at
   * 3.1.1 a User Name must come with it, MQTT-3.1.2-22). Another Authentication Method is
   * refused with 0x8C. On success the session exists, is registered and bound when this
   * resolves to 0; `conn.session` is set, and gate.ts's `connected` hook takes it over. With
   * Clean Session 0 / Clean Start 0 the user's detached session of this client id is resumed
   * instead of a bind (Session Present 1: Clean Session 0 / Clean Start 0 resumes the user's detached session).
   * @returns 0, or a refusal: see {@link JwtVerifier.verify}; 0x87 with a Reason String when
   *   the duplicate-login policy rejects the login (`reject-new`); 0x88 when the user index
   *   fails; the hook's own refusal.
   */
  async authenticate(conn: Conn, packet: IConnectPacket, hook: HookWithClaims): Promise<ConnectVerdict> {
    const method = packet.properties?.authenticationMethod;
    if (method !== undefined && method !== JWT_AUTH_METHOD) {
      return { reasonCode: ReasonCode.BadAuthenticationMethod, reasonString: `authentication method not supported (use ${JWT_AUTH_METHOD})` };
    }
    const data = packet.properties?.authenticationData;
    const token = method !== undefined && data !== undefined && data.length > 0 ? data : packet.password;
    let verified;
    try {
      verified = await this.verifier.verify(token);
    } catch (err) {
      return this.refused(conn, err);
    }
    const verdict = await hook(verified.claims);
    if (codeOf(verdict) !== 0) return verdict;
    if (conn.state !== State.Connecting) return ReasonCode.ServerUnavailable; // gone while verifying
    // Clean Session 0 / Clean Start 0: the token's user's detached session of this client id, if any (no bind: it is bound).
    // Clean 1 needs nothing here: the bind below discards the user's detached sessions.
    if (packet.clean === false && (await this.deps.resumeAtConnect?.(conn, verified.userId, false)) && conn.session) {
      this.tracked.set(conn.session, { userId: verified.userId, deadline: verified.deadline, lastRefresh: 0 });
      return { reasonCode: 0, sessionPresent: true };
    }
    if (conn.state !== State.Connecting) return ReasonCode.ServerUnavailable;
    const session = new GateSession(conn, this.deps.serverId);
    conn.session = session;
    // Registered by session id only: the client id index (takeover) is updated at CONNACK.
    this.deps.registry.add(session, false);
    try {
      await this.deps.sessions.bind(session, verified.userId);
    } catch (err) {
      if (!(err instanceof PersistenceError)) return this.bindFailed(conn, session, err);
      // As on a module's Bind: the session is bound; the store catches up when it is back.
      this.deps.logger.warn(
        { clientId: conn.clientId, userId: verified.userId, error: err.message },
        'JWT bind at CONNECT: the session store failed',
      );
    }
    this.tracked.set(session, { userId: verified.userId, deadline: verified.deadline, lastRefresh: 0 });
    return 0;
  }

  private refused(conn: Conn, err: unknown): ConnectVerdict {
    if (!(err instanceof JwtRefusal)) throw err;
    const log = err.reasonCode === ReasonCode.ServerUnavailable ? 'warn' : 'debug';
    this.deps.logger[log]({ clientId: conn.clientId, remoteAddress: conn.wire.remoteAddress, error: err.detail }, 'JWT refused at CONNECT');
    return { reasonCode: err.reasonCode, reasonString: err.clientText };
  }

  private bindFailed(conn: Conn, session: GateSession, err: unknown): ConnectVerdict {
    if (conn.session === session && conn.state === State.Connecting) {
      this.deps.registry.remove(session);
      conn.session = undefined;
    }
    if (err instanceof RpcError && err.code === 'DUPLICATE_LOGIN') {
      return { reasonCode: ReasonCode.NotAuthorized, reasonString: 'user already logged in (duplicate login policy)' };
    }
    if (err instanceof RpcError && err.code === 'BANNED') return { reasonCode: ReasonCode.Banned, reasonString: 'banned' };
    this.deps.logger.warn({ clientId: conn.clientId, error: err instanceof Error ? err.message : String(err) }, 'JWT bind at CONNECT failed');
    return { reasonCode: ReasonCode.ServerUnavailable, reasonString: 'server unavailable' };
  }

  /**
   * The request runner with `gate/HD_refresh` answered here, before routing: it is the one
   * gate-served client topic; no other `gate/...` topic reaches the gate's session service.
   */
  answeringRefresh(route: RunRequest): RunRequest {
    return (session, packet) => (isRefreshTopic(packet.topic) ? this.refresh(session, packet) : route(session, packet));
  }

  /** The connection of `session` has closed: forget it. */
  closed(session: GateSession): void {
    this.tracked.delete(session);
  }

  /**
   * From the gate's periodic sweep (`now` in epoch ms): closes each connection whose token's
   * deadline has passed with `gate/kick` `{"reason":"token expired"}`, then (MQTT 5)
   * DISCONNECT 0xA0 with that Reason String. Precision: the sweep period (≤ 500 ms).
   */
  sweep(now: number): void {
    for (const [session, t] of this.tracked) {
      if (now < t.deadline) continue;
      this.tracked.delete(session);
      if (session.conn.state === State.Connected) this.deps.sessions.kick(session, TOKEN_EXPIRED_REASON, TOKEN_EXPIRED_CODE);
    }
  }

  /** When the connection of `session` will be closed (epoch ms), or undefined when it is not tracked. */
  deadlineOf(session: GateSession): number | undefined {
    return this.tracked.get(session)?.deadline;
  }

  /**
   * `gate/HD_refresh[/<msgid>]` with `{"token"}`: verifies a new token for the same user and
   * moves the connection's deadline to it. The reply (on the request topic, or an MQTT 5
   * Response Topic with its Correlation Data; none for a notify) is the mqant envelope
   * `{"Trace","Error","Result"}`: Result `{"exp"}` (epoch s, or null when the new token has
   * none), or Error one of `BAD_ARGUMENT: {"token"} is required`, `RATE_LIMITED: one refresh
   * per <refreshInterval> ms`, `INVALID_TOKEN: <reason>` (the CONNACK texts of
   * {@link JWT_TEXT}), `USER_MISMATCH: the token is for another user`. A refused refresh
   * leaves the deadline as it was.
   */
  async refresh(session: GateSession, packet: IPublishPacket): Promise<void> {
    let error = '';
    let result: unknown = null;
    try {
      result = await this.refreshNow(session, packet.payload as Buffer);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    const props = packet.properties;
    const to = props?.responseTopic ?? (packet.topic === REFRESH_TOPIC ? undefined : packet.topic);
    if (to === undefined) return;
    const body = encodeReply(session.traceId, error, result);
    if (!session.conn.v5) return void session.conn.reply(to, body);
    const properties: PublishProperties = { payloadFormatIndicator: true, contentType: ENVELOPE_CONTENT_TYPE };
    if (props?.correlationData !== undefined) properties.correlationData = props.correlationData;
    session.conn.reply(to, body, properties);
  }

  private async refreshNow(session: GateSession, payload: Buffer): Promise<{ exp: number | null }> {
    const t = this.tracked.get(session);
    if (!t) throw new Error('NOT_AUTHENTICATED: this connection has no token to refresh');
    const now = Date.now();
    const interval = this.deps.options.refreshInterval;
    if (t.lastRefresh > 0 && now - t.lastRefresh < interval) throw new Error(`RATE_LIMITED: one refresh per ${interval} ms`);
    t.lastRefresh = now;
    const body = decodePayload(payload);
    const token = Buffer.isBuffer(body) ? undefined : body.token;
    if (typeof token !== 'string' || token === '') throw new Error('BAD_ARGUMENT: {"token"} is required');
    let verified;
    try {
      verified = await this.verifier.verify(token);
    } catch (err) {
      if (!(err instanceof JwtRefusal)) throw err;
      this.deps.logger.debug({ sessionId: session.sessionId, error: err.detail }, 'JWT refresh refused');
      throw new Error(`INVALID_TOKEN: ${err.clientText}`);
    }
    if (verified.userId !== t.userId) throw new Error('USER_MISMATCH: the token is for another user');
    if (this.tracked.get(session) !== t) throw new Error('NOT_AUTHENTICATED: this connection has no token to refresh');
    t.deadline = verified.deadline;
    return { exp: typeof verified.claims.exp === 'number' ? verified.claims.exp : null };
  }
}
