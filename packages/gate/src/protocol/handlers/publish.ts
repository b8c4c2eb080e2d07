import type { IPublishPacket } from 'mqtt-packet';
import type { MqttConnection } from '../connection';
import { State } from '../state';

/**
 * PUBLISH from a client (MQTT 3.1.1 §3.3, §4.3). The ack is written on receipt, before the
 * request is dispatched, so a handler's latency never holds an ack and acks leave in the
 * order the packets came (MQTT-4.6.0-2):
 * - QoS 0: dispatched;
 * - QoS 1: PUBACK, then dispatched (a resent duplicate is dispatched again: at least once);
 * - QoS 2: PUBREC; the packet identifier is held until PUBREL and a duplicate is never
 *   dispatched twice (MQTT-4.3.3-2). More than maxQos2Pending held ids close the connection.
 * A topic that is empty or holds a wildcard closes the connection (MQTT-3.3.2-2, MQTT-4.7.3-1),
 * and so does one that is not well-formed UTF-8 or holds U+0000 (MQTT-1.5.3-1, -2): the
 * decoder turns ill-formed bytes into U+FFFD, which is taken as the sign of them.
 */
export function handlePublish(conn: MqttConnection, packet: IPublishPacket): void {
  const topic = packet.topic;
  if (topic.length === 0) return conn.close('PUBLISH with an empty topic (MQTT-4.7.3-1)');
  if (topic.includes('+') || topic.includes('#')) return conn.close('PUBLISH topic with a wildcard (MQTT-3.3.2-2)');
  if (topic.includes('\u0000') || topic.includes('\ufffd')) return conn.destroy('PUBLISH topic is not well-formed UTF-8 (MQTT-1.5.3-1, -2)');
  const id = packet.messageId ?? 0;
  switch (packet.qos) {
    case 0:
      break;
    case 1:
      conn.sendAck(0x40, id);
      break;
    case 2: {
      const held = (conn.qos2 ??= new Set());
      if (held.has(id)) {
        conn.sendAck(0x50, id);
        return;
      }
      if (held.size >= conn.limits.maxQos2Pending) {
        return conn.close(`more than ${conn.limits.maxQos2Pending} QoS 2 messages awaiting PUBREL`);
      }
      held.add(id);
      conn.sendAck(0x50, id);
      break;
    }
  }
  if (conn.state !== State.Connected) return; // the ack write found a slow consumer and closed it
  conn.requests?.submit(packet);
}
