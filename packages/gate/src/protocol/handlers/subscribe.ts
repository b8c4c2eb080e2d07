import type { ISubscribePacket } from 'mqtt-packet';
import type { MqttConnection } from '../connection';

/**
 * SUBSCRIBE gets a SUBACK granting each requested QoS (MQTT-3.8.4-1, -5). The gate records
 * nothing: replies and pushes reach a client whether it subscribed or not (mqant's model).
 * mqant only answers SUBSCRIBEs that ask for QoS 2; we answer every one.
 */
export function handleSubscribe(conn: MqttConnection, packet: ISubscribePacket): void {
  if (packet.subscriptions.length === 0) return conn.close('SUBSCRIBE without a topic filter (MQTT-3.8.3-3)');
  conn.send({
    cmd: 'suback',
    messageId: packet.messageId,
    granted: packet.subscriptions.map((s) => s.qos),
  });
}
