import type { IPubrelPacket } from 'mqtt-packet';
import type { MqttConnection } from '../connection';

/** PUBREL: releases a QoS 2 packet identifier and answers PUBCOMP, known id or not (MQTT-4.3.3-1, §3.6.4). */
export function handlePubrel(conn: MqttConnection, packet: IPubrelPacket): void {
  const id = packet.messageId ?? 0;
  conn.qos2?.delete(id);
  conn.sendAck(0x70, id);
}
