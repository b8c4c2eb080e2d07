import type { MqttConnection } from '../connection';
import { ReasonCode } from '../mqtt5';

/**
 * AUTH (MQTT 5.0 §3.15): the gate has no enhanced authentication exchange, so no CONNECT
 * was accepted with one under way; an AUTH is a Protocol Error (MQTT-4.12.0-1 / §4.13):
 * DISCONNECT 0x82, then close. (A CONNECT naming an Authentication Method is refused with
 * CONNACK 0x8C unless the authenticate hook accepts it in one step.)
 */
export function handleAuth(conn: MqttConnection): void {
  conn.fail(ReasonCode.ProtocolError, 'AUTH without an authentication exchange (the gate supports none, MQTT 5.0 §4.12)');
}
