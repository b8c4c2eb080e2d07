import type { MqttConnection } from '../connection';

/**
 * PUBACK, PUBREC, PUBCOMP from a client acknowledge a server PUBLISH at QoS 1 or 2. The
 * gate only pushes at QoS 0 (as mqant), so there is nothing to release; they are ignored.
 */
export function ignoreAck(_conn: MqttConnection): void {
  // nothing to do
}
