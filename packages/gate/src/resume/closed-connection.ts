import { MqttConnection } from '../protocol/connection';
import { State } from '../protocol/state';
import type { GateSession } from '../session/session';
import type { ClientCertificate, Wire } from '../wire/wire';

/**
 * The wire of a connection that has gone: what it said about the client, and nothing to
 * write to or read from (every operation does nothing, nothing is buffered).
 */
class ClosedWire implements Wire {
  flushTo = undefined;
  constructor(
    readonly network: 'tcp' | 'websocket',
    readonly remoteAddress: string,
    readonly userAgent: string | undefined,
    readonly secure: boolean | undefined,
    readonly certificate: ClientCertificate | undefined,
  ) {}
  write(): void {}
  bufferedBytes(): number {
    return 0;
  }
  unsentBytes(): number {
    return 0;
  }
  whenDrained(): void {}
  pause(): void {}
  resume(): void {}
  end(): void {}
  destroy(): void {}
}

/**
 * What a detached session keeps of its closed connection: a closed MqttConnection with the
 * client's identity (client id, protocol level, MQTT 5 state without its inbound topic
 * aliases, address, network) and no parser, socket, read buffer or QoS 1 state. A detached
 * session referenced its whole closed connection (its socket, parser and buffers, about
 * 5 KiB each) for the resume window. Every method of a closed connection does nothing (a
 * late reply is counted as dropped, as on the connection it replaces); a resume attaches
 * the session to its new connection.
 */
export function closedConnection(conn: MqttConnection<GateSession>): MqttConnection<GateSession> {
  const w = conn.wire;
  const closed = Object.create(MqttConnection.prototype) as MqttConnection<GateSession>;
  const v5 = conn.v5;
  if (v5) v5.aliases = undefined; // inbound aliases are the connection's own (MQTT 5.0 §3.3.2.3.4)
  Object.assign(closed, {
    state: State.Closed,
    clientId: conn.clientId,
    protocolVersion: conn.protocolVersion,
    v5,
    session: conn.session,
    wire: new ClosedWire(w.network, w.remoteAddress, w.userAgent, w.secure, w.certificate),
    hooks: conn.hooks,
    limits: conn.limits,
    lastSeen: conn.lastSeen,
    openedAt: conn.openedAt,
    idleLimit: conn.idleLimit,
    frozen: true,
    counted: 0,
    pushBytes: 0,
    backlogged: false,
  });
  return closed;
}
