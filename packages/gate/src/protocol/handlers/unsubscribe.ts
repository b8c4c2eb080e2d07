import type { IUnsubscribePacket } from 'mqtt-packet';
import type { MqttConnection } from '../connection';

/** UNSUBSCRIBE gets an UNSUBACK (MQTT-3.10.4-4). */
export function handleUnsubscribe(conn: MqttConnection, packet: IUnsubscribePacket): void {
  conn.send({ cmd: 'unsuback', messageId: packet.messageId, granted: [] });
}
