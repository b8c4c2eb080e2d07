import { isUtf8 } from 'node:buffer';
import type { IPublishPacket } from 'mqtt-packet';
import type { UserProperties } from '@mqgate/rpc';
import type { MqttConnection } from '../connection';
import { ReasonCode, userPropertiesProblem, type Mqtt5State } from '../mqtt5';
import { State } from '../state';

/**
 * PUBLISH from a client (MQTT 3.1.1 §3.3, §4.3; MQTT 5.0 §3.3). The ack is written on
 * receipt, before the request is dispatched, so a handler's latency never holds an ack and
 * acks leave in the order the packets came (MQTT-4.6.0-2):
 * - QoS 0: dispatched;
 * - QoS 1: PUBACK, then dispatched (a resent duplicate is dispatched again: at least once);
 * - QoS 2: PUBREC; the packet identifier is held until PUBREL and a duplicate is never
 *   dispatched twice (MQTT-4.3.3-2). More than maxQos2Pending held ids close the connection.
 * A topic that is empty or holds a wildcard closes the connection (MQTT-3.3.2-2, MQTT-4.7.3-1),
 * and so does one that is not well-formed UTF-8 or holds U+0000 (MQTT-1.5.3-1, -2; MQTT 5: MQTT-1.5.4-1, -2): the
 * decoder turns ill-formed bytes into U+FFFD, which is taken as the sign of them.
 *
 * MQTT 5 adds, in this order:
 * - Topic Alias (§3.3.2.3.4): a topic name with an alias sets it, an empty topic with a
 *   known alias uses it; an alias of 0, above the gate's topicAliasMaximum, or unknown is
 *   DISCONNECT 0x94 (Topic Alias invalid);
 * - protocol errors close with DISCONNECT: empty topic without alias 0x82, wildcard 0x90,
 *   ill-formed UTF-8 0x81, a Response Topic with a wildcard 0x82 (MQTT-3.3.2-14);
 * - flow control: more unacknowledged QoS 2 PUBLISHes (PUBREC sent, no PUBREL yet) than
 *   the Receive Maximum the gate stated (maxInflight) is DISCONNECT 0x93 (MQTT-3.3.4-7);
 *   QoS 1 is acknowledged on receipt and a paused connection reads nothing, so it never
 *   has more than that outstanding;
 * - refusals with a reason code on PUBACK / PUBREC (§3.4.2.1), and a QoS 0 request
 *   dropped: 0x99 for Payload Format Indicator 1 with a payload that is not UTF-8
 *   (MQTT 5.0 §3.3.2.3.2: a receiver may check it), 0x97 (Quota exceeded) for a Response
 *   Topic over maxResponseTopicLength, Correlation Data over maxCorrelationDataLength, or
 *   User Properties over maxUserProperties / maxUserPropertyBytes. A refused QoS 2 id is not
 *   held (the flow ends at a PUBREC ≥ 0x80, §4.3.3).
 */
export function handlePublish(conn: MqttConnection, packet: IPublishPacket): void {
  const v5 = conn.v5;
  if (v5 && !resolveAlias(conn, v5, packet)) return;
  const topic = packet.topic;
  if (topic.length === 0) return conn.fail(ReasonCode.ProtocolError, 'PUBLISH with an empty topic (MQTT-4.7.3-1)');
  if (topic.includes('+') || topic.includes('#')) return conn.fail(ReasonCode.TopicNameInvalid, 'PUBLISH topic with a wildcard (MQTT-3.3.2-2)');
  if (topic.includes('\u0000') || topic.includes('\ufffd')) {
    return conn.fail(ReasonCode.MalformedPacket, 'PUBLISH topic is not well-formed UTF-8 (MQTT-1.5.3-1, -2; MQTT 5: MQTT-1.5.4-1, -2)', 'destroy');
  }
  const id = packet.messageId ?? 0;
  let refusal: [number, string] | undefined;
  if (v5 && packet.properties !== undefined) {
    const responseTopic = packet.properties.responseTopic;
    if (responseTopic !== undefined && (responseTopic.includes('+') || responseTopic.includes('#') || responseTopic === '')) {
      return conn.fail(ReasonCode.ProtocolError, 'Response Topic is empty or holds a wildcard (MQTT-3.3.2-14)');
    }
    refusal = refusalOf(conn, packet);
  }
  switch (packet.qos) {
    case 0:
      if (refusal) return; // QoS 0 has no ack to say why: use QoS 1 to learn it
      break;
    case 1:
      if (refusal) return conn.sendAckV5(0x40, id, refusal[0], refusal[1]);
      conn.sendAck(0x40, id);
      break;
    case 2: {
      const held = (conn.qos2 ??= new Set());
      if (held.has(id)) {
        conn.sendAck(0x50, id);
        return;
      }
      if (refusal) return conn.sendAckV5(0x50, id, refusal[0], refusal[1]);
      if (v5 && held.size >= Math.min(conn.limits.maxInflight, conn.limits.maxQos2Pending)) {
        const max = Math.min(conn.limits.maxInflight, conn.limits.maxQos2Pending);
        return conn.fail(ReasonCode.ReceiveMaximumExceeded, `more than ${max} QoS 2 PUBLISHes unacknowledged (Receive Maximum, MQTT-3.3.4-7)`);
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

/** Applies the Topic Alias of an MQTT 5 PUBLISH (MQTT 5.0 §3.3.2.3.4). False when the connection was closed for it. */
function resolveAlias(conn: MqttConnection, v5: Mqtt5State, packet: IPublishPacket): boolean {
  const alias = packet.properties?.topicAlias;
  if (alias === undefined) return true;
  const max = conn.limits.topicAliasMaximum;
  if (alias === 0 || alias > max) {
    conn.fail(ReasonCode.TopicAliasInvalid, `Topic Alias ${alias} is 0 or above the Topic Alias Maximum ${max} (MQTT-3.3.2-8, -9)`);
    return false;
  }
  if (packet.topic === '') {
    const topic = v5.aliases?.get(alias);
    if (topic === undefined) {
      conn.fail(ReasonCode.TopicAliasInvalid, `Topic Alias ${alias} has no topic set on this connection (MQTT 5.0 §3.3.2.3.4)`);
      return false;
    }
    packet.topic = topic;
  } else {
    (v5.aliases ??= new Map()).set(alias, packet.topic);
  }
  return true;
}

/** Why an MQTT 5 PUBLISH cannot be accepted at all: [reason code, Reason String], or undefined. */
function refusalOf(conn: MqttConnection, packet: IPublishPacket): [number, string] | undefined {
  const p = packet.properties as NonNullable<IPublishPacket['properties']>;
  const l = conn.limits;
  if (p.payloadFormatIndicator && !isUtf8(packet.payload as Buffer)) {
    return [ReasonCode.PayloadFormatInvalid, 'Payload Format Indicator 1 but the payload is not UTF-8 (MQTT 5.0 §3.3.2.3.2)'];
  }
  if (p.responseTopic !== undefined) {
    const n = Buffer.byteLength(p.responseTopic, 'utf8');
    if (n > l.maxResponseTopicLength)
      return [ReasonCode.QuotaExceeded, `Response Topic of ${n} bytes exceeds maxResponseTopicLength ${l.maxResponseTopicLength}`];
  }
  const cd = p.correlationData;
  if (cd !== undefined && cd.length > l.maxCorrelationDataLength) {
    return [ReasonCode.QuotaExceeded, `Correlation Data of ${cd.length} bytes exceeds maxCorrelationDataLength ${l.maxCorrelationDataLength}`];
  }
  const problem = userPropertiesProblem(p.userProperties as UserProperties | undefined, l.maxUserProperties, l.maxUserPropertyBytes);
  return problem === undefined ? undefined : [ReasonCode.QuotaExceeded, problem];
}
