import type { MqttConnection } from '../connection';

/** PINGREQ gets a PINGRESP (MQTT-3.12.4-1). Any packet already refreshed the keepalive. */
export function handlePingreq(conn: MqttConnection): void {
  conn.sendPingresp();
}
