import type { BufferedPush } from '@mqgate/rpc';
import type { MqttConnection } from '../protocol/connection';

/**
 * Takes the QoS 1 pushes the session's last connection still held (QoS 1 pushes are delivered at least once): the
 * written and unacknowledged ones first, with their packet identifiers, then those queued
 * behind the inflight window, in order. Empties the connection's outbound state, so a push is
 * carried over once.
 */
export function takeUnacked(conn: MqttConnection): BufferedPush[] {
  const out = conn.outbound;
  if (!out) return [];
  conn.outbound = undefined;
  return out.takeAll();
}

/**
 * Writes a resume's pushes to the session's new connection, in their order: a QoS 1 push
 * that was in flight is resent with DUP 1 under its packet identifier (MQTT-4.4.0-1), other
 * QoS 1 pushes go out under new ones (all within the new client's window, the rest queued),
 * QoS 0 pushes as before. Bodies are copied (they may be views of a transport's buffer).
 */
export function replayPushes(conn: MqttConnection, pushes: readonly BufferedPush[]): void {
  for (const p of pushes) {
    if (p.qos === 1) conn.publishQos1(p.topic, Buffer.from(p.body), p.properties, p.messageId ?? 0);
    else conn.push(p.topic, Buffer.from(p.body), p.properties);
  }
}
