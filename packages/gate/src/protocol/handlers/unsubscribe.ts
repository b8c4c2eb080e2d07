import type { IUnsubscribePacket } from 'mqtt-packet';
import type { MqttConnection } from '../connection';
import { ReasonCode } from '../mqtt5';

/**
 * UNSUBSCRIBE gets an UNSUBACK (MQTT-3.10.4-4). MQTT 5 (§3.11.3): one reason code 0x00
 * (Success) per filter, since every subscription is granted. Without filters it is a
 * Protocol Error (MQTT-3.10.3-2): DISCONNECT 0x82 for MQTT 5.
 */
export function handleUnsubscribe(conn: MqttConnection, packet: IUnsubscribePacket): void {
  if (packet.unsubscriptions.length === 0) return conn.fail(ReasonCode.ProtocolError, 'UNSUBSCRIBE without a topic filter (MQTT-3.10.3-2)');
  conn.send({ cmd: 'unsuback', messageId: packet.messageId, granted: conn.v5 ? packet.unsubscriptions.map(() => ReasonCode.Success) : [] });
}
