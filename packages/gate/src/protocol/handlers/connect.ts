import { randomBytes } from 'node:crypto';
import type { IConnectPacket } from 'mqtt-packet';
import type { MqttConnection } from '../connection';
import { State } from '../state';

/**
 * CONNECT (MQTT 3.1.1 §3.1):
 * - protocol level 3 (MQTT 3.1, "MQIsdp") and 4 (3.1.1) are served; any other level gets
 *   CONNACK return code 1 and the connection closes (MQTT-3.1.2-2), level 5 included for now;
 * - an empty client id with clean session 0 gets return code 2 (MQTT-3.1.3-8); with clean
 *   session 1 the gate assigns one (MQTT-3.1.3-6);
 * - keepalive k > 0 closes the connection after 1.5·k s of silence (MQTT-3.1.2-24); k = 0
 *   falls back to the gate's maxIdle; k above the gate's maxKeepalive gets return code 2
 *   (3.1.1 has no way to tell a client a shorter keepalive; Mosquitto's max_keepalive does the same);
 * - a will message is accepted and dropped: a gate has no subscribers to deliver it to.
 *   Backends learn of a lost connection from the gate's `disconnect` event instead;
 * - the authenticate hook decides (return codes 4, 5; 3 if it fails).
 */
export function handleConnect(conn: MqttConnection, packet: IConnectPacket): void {
  conn.state = State.Connecting;
  const level = packet.protocolVersion ?? 4;
  if (level !== 3 && level !== 4) return refuse(conn, 1, `unsupported protocol level ${level} (MQTT-3.1.2-2)`);
  // mqtt-packet strips the 0x80 "bridge" bit of a non-standard level (0x83, 0x84) and flags it.
  if ((packet as { bridgeMode?: boolean }).bridgeMode) return refuse(conn, 1, `unsupported protocol level ${level | 0x80} (MQTT-3.1.2-2)`);
  conn.protocolVersion = level;
  let clientId = packet.clientId ?? '';
  if (clientId === '') {
    if (!packet.clean) return refuse(conn, 2, 'empty client id with clean session 0 (MQTT-3.1.3-8)');
    clientId = `mqgate-${randomBytes(9).toString('base64url')}`;
  }
  conn.clientId = clientId;
  const keepalive = packet.keepalive ?? 0;
  const maxKeepalive = conn.limits.maxKeepalive;
  if (maxKeepalive > 0 && keepalive > maxKeepalive) {
    // 3.1.1 cannot tell a client another keepalive; refused as Mosquitto does for max_keepalive.
    return refuse(conn, 2, `keepalive ${keepalive} s exceeds maxKeepalive ${maxKeepalive} s`);
  }
  conn.idleLimit = keepalive > 0 ? keepalive * 1500 : conn.limits.maxIdle;

  let decision: number | Promise<number>;
  try {
    decision = conn.hooks.authenticate(conn, packet);
  } catch {
    decision = 3;
  }
  if (typeof decision === 'number') return conclude(conn, decision);
  decision
    .then(
      (code) => conclude(conn, code),
      () => conclude(conn, 3),
    )
    .catch((err: unknown) => conn.destroy(`CONNECT failed: ${err instanceof Error ? err.message : String(err)}`));
}

function conclude(conn: MqttConnection, returnCode: number): void {
  if (conn.state !== State.Connecting) return; // closed while authenticating
  if (returnCode !== 0) return refuse(conn, returnCode, `CONNECT refused with return code ${returnCode}`);
  conn.state = State.Connected;
  conn.send({ cmd: 'connack', returnCode: 0, sessionPresent: false });
  conn.hooks.connected(conn);
  conn.flushPending();
}

function refuse(conn: MqttConnection, returnCode: number, reason: string): void {
  conn.send({ cmd: 'connack', returnCode, sessionPresent: false });
  conn.close(reason);
}
