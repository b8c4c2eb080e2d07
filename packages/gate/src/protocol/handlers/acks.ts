import type { IPubackPacket } from 'mqtt-packet';
import type { MqttConnection } from '../connection';

/**
 * PUBACK: the client acknowledges a QoS 1 push (MQTT-4.3.2); its packet identifier is freed
 * and the next queued push goes out (QoS 1 pushes are delivered at least once). An identifier not in flight is
 * ignored. An MQTT 5 PUBACK with an error reason code (≥ 0x80) ends the delivery too
 * (MQTT 5.0 §4.3.2: the identifier is released either way).
 */
export function handlePuback(conn: MqttConnection, packet: IPubackPacket): void {
  conn.acked(packet.messageId ?? 0);
}

/**
 * PUBREC, PUBCOMP from a client acknowledge a server PUBLISH at QoS 2. The gate pushes at
 * QoS 0 or 1 only, so there is nothing to release; they are ignored.
 */
export function ignoreAck(_conn: MqttConnection): void {
  // nothing to do
}
