import { makeSessionData, type Mqtt5Request, type SessionData } from '@mqgate/rpc';
import type { MqttConnection } from '../protocol/connection';
import type { ReplayBuffer } from '../resume/replay-buffer';
import { randomHex } from './ids';

/** What a session resumed from elsewhere keeps: its ids, user and settings. */
export interface RestoredSession {
  sessionId: string;
  traceId: string;
  userId: string;
  settings: Readonly<Record<string, string>>;
}

let spanCounter = 0;
const spanPrefix = randomHex(4);

/**
 * The gate's own, authoritative copy of one connection's session (mqant's sessionagent).
 * Modules only ever see snapshots ({@link GateSession.snapshot}); they change this one
 * through the session service.
 */
export class GateSession {
  readonly sessionId: string;
  readonly traceId: string;
  userId = '';
  /** Replaced, never mutated, so snapshots can share it. */
  settings: Readonly<Record<string, string>> = Object.freeze({});
  /** Resume: SHA-256 of the current resume token; undefined for guests. */
  resumeHash: Buffer | undefined;
  /** Resume: the pushes missed while detached; set only while the session is detached. */
  replay: ReplayBuffer | undefined;
  /** Resume: while detached (and after), epoch ms at which its window ends; the stored record's resume expiry. Cleared on attach. */
  resumeUntil: number | undefined;

  /**
   * @param restored a session resumed from another gate or the store: same ids, user and
   * settings (the registry and the user index are the caller's to update).
   */
  constructor(
    public conn: MqttConnection<GateSession>,
    readonly serverId: string,
    restored?: RestoredSession,
  ) {
    this.sessionId = restored?.sessionId ?? randomHex(16);
    this.traceId = restored?.traceId ?? randomHex(8);
    if (restored) {
      this.userId = restored.userId;
      this.settings = restored.settings;
    }
    // mqant stores the WebSocket User-Agent in Settings (gate/base/mqtt_agent.go).
    else if (conn.wire.userAgent) this.settings = Object.freeze({ 'User-Agent': conn.wire.userAgent });
  }

  /** Moves the session to a new connection (a resume): pushes and replies go there from now on. */
  attach(conn: MqttConnection<GateSession>): void {
    this.conn = conn;
    this.replay = undefined;
    this.resumeUntil = undefined;
  }

  /**
   * What the gate gives its StorageHandler: the snapshot plus the resume token's hash and
   * until when the stored record may resume it: for a detached session the end of its
   * window (detach time + window, {@link resumeUntil}), else `now + window` ms (window the
   * gate's resume window), so a resume still works when this gate is gone.
   */
  record(window: number): SessionData {
    const s = this.snapshot();
    if (this.resumeHash && window > 0) s.resume = { tokenHash: this.resumeHash, expiresAt: this.resumeUntil ?? Date.now() + window };
    return s;
  }

  /** The client's address: that of the connection it is (re-)attached to (the wire's, fixed at accept). */
  get ip(): string {
    return this.conn.wire.remoteAddress;
  }

  /** The network (mqant's Network) of the connection it is (re-)attached to. */
  get network(): string {
    return this.conn.wire.network;
  }

  get clientId(): string {
    return this.conn.clientId;
  }

  /**
   * A copy for a module: new SpanId, the request's topic (mqant's Clone, keeping Topic),
   * the connection's protocol level, and an MQTT 5 request's context (`mqtt5`).
   */
  snapshot(topic = '', mqtt5?: Mqtt5Request): SessionData {
    spanCounter = (spanCounter + 1) >>> 0;
    return makeSessionData({
      ip: this.ip,
      network: this.network,
      userId: this.userId,
      sessionId: this.sessionId,
      serverId: this.serverId,
      traceId: this.traceId,
      spanId: spanPrefix + spanCounter.toString(16).padStart(8, '0'),
      settings: this.settings,
      topic,
      protocolVersion: this.conn.protocolVersion,
      mqtt5,
    });
  }
}
