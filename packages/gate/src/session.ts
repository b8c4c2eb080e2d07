import { randomBytes } from 'node:crypto';
import { makeSessionData, type Mqtt5Request, type SessionData } from '@mqgate/rpc';
import type { MqttConnection } from './protocol/connection';

let spanCounter = 0;
const spanPrefix = randomBytes(4).toString('hex');

/**
 * The gate's own, authoritative copy of one connection's session (mqant's sessionagent).
 * Modules only ever see snapshots ({@link GateSession.snapshot}); they change this one
 * through the session service.
 */
export class GateSession {
  readonly sessionId = randomBytes(16).toString('hex');
  readonly traceId = randomBytes(8).toString('hex');
  readonly ip: string;
  readonly network: string;
  userId = '';
  /** Replaced, never mutated, so snapshots can share it. */
  settings: Readonly<Record<string, string>> = Object.freeze({});

  constructor(
    readonly conn: MqttConnection<GateSession>,
    readonly serverId: string,
  ) {
    this.ip = conn.wire.remoteAddress;
    this.network = conn.wire.network;
    // mqant stores the WebSocket User-Agent in Settings (gate/base/mqtt_agent.go).
    if (conn.wire.userAgent) this.settings = Object.freeze({ 'User-Agent': conn.wire.userAgent });
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
