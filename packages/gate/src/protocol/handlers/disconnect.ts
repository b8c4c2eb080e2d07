import type { IDisconnectPacket } from 'mqtt-packet';
import type { MqttConnection } from '../connection';
import { ReasonCode } from '../mqtt5';

/**
 * DISCONNECT: the client leaves cleanly; the will is discarded (MQTT-3.14.4-3) and the
 * connection closed. MQTT 5 (§3.14.2): any reason code is accepted, 0x04 (Disconnect with
 * Will Message) included, and the will is still dropped (the gate has no subscribers to
 * give it to). A Session Expiry Interval set here when the CONNECT's was 0 is a Protocol
 * Error (MQTT 5.0 §3.14.2.2.2): DISCONNECT 0x82; any other value is stored on the connection.
 */
export function handleDisconnect(conn: MqttConnection, packet: IDisconnectPacket): void {
  const v5 = conn.v5;
  const expiry = packet.properties?.sessionExpiryInterval;
  if (v5 && expiry !== undefined) {
    if (v5.sessionExpiryInterval === 0 && expiry !== 0) {
      return conn.fail(ReasonCode.ProtocolError, 'DISCONNECT sets a Session Expiry Interval after CONNECT set 0 (MQTT 5.0 §3.14.2.2.2)');
    }
    v5.sessionExpiryInterval = expiry;
  }
  const code = v5 ? (packet.reasonCode ?? 0) : 0;
  conn.close(code === 0 ? 'client disconnect' : `client disconnect (reason code 0x${code.toString(16).padStart(2, '0')})`);
}
