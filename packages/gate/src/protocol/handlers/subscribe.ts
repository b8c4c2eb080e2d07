import type { ISubscribePacket } from 'mqtt-packet';
import type { MqttConnection } from '../connection';
import { ReasonCode } from '../mqtt5';

/**
 * SUBSCRIBE gets a SUBACK granting each requested QoS (MQTT-3.8.4-1, -5). The gate records
 * nothing: replies and pushes reach a client whether it subscribed or not (mqant's model),
 * and once each, subscribed or not. mqant only answers SUBSCRIBEs that ask for QoS 2; we
 * answer every one.
 *
 * MQTT 5 (§3.9.3): the reason codes are the granted QoS 0x00..0x02; a SUBSCRIBE carrying a
 * Subscription Identifier gets 0xA1 (Subscription Identifiers not supported, as CONNACK
 * says) for every filter. Shared subscriptions (`$share/group/filter`, §4.8.2) are granted
 * and deliver nothing, like every subscription here. No retained messages exist, so none
 * are sent whatever the Retain Handling. A SUBSCRIBE without filters is a Protocol Error
 * (MQTT-3.8.3-2): DISCONNECT 0x82.
 */
export function handleSubscribe(conn: MqttConnection, packet: ISubscribePacket): void {
  if (packet.subscriptions.length === 0)
    return conn.fail(ReasonCode.ProtocolError, 'SUBSCRIBE without a topic filter (MQTT-3.8.3-3; MQTT 5: MQTT-3.8.3-2)');
  const noIds = conn.v5 !== undefined && packet.properties?.subscriptionIdentifier !== undefined;
  conn.send({
    cmd: 'suback',
    messageId: packet.messageId,
    granted: packet.subscriptions.map((s) => (noIds ? ReasonCode.SubscriptionIdentifiersNotSupported : s.qos)),
  });
}
