import type { IUnsubscribePacket } from 'mqtt-packet';
import type { MqttConnection } from '../connection';

/** UNSUBSCRIBE gets an UNSUBACK (MQTT-3.10.4-4). */
export function handleUnsubscribe(conn: MqttConnection, packet: IUnsubscribePacket): void {
  if (packet.unsubscriptions.length === 0) return conn.close('UNSUBSCRIBE without a topic filter (MQTT-3.10.3-2)');
  conn.send({ cmd: 'unsuback', messageId: packet.messageId, granted: [] });
}
