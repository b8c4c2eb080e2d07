import type { MqttConnection } from '../connection';

/** DISCONNECT: the client leaves cleanly; the will is discarded (MQTT-3.14.4-3) and the connection closed. */
export function handleDisconnect(conn: MqttConnection): void {
  conn.close('client disconnect');
}
