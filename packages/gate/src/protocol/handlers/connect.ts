import { randomBytes } from 'node:crypto';
import type { IConnackPacket, IConnectPacket } from 'mqtt-packet';
import type { ConnectVerdict, MqttConnection } from '../connection';
import { Mqtt5State, ReasonCode, userPropertiesProblem, type ConnectProperties } from '../mqtt5';
import { State } from '../state';
import { encodeConnackV4 } from '../encode';
import { propertyRulesProblem } from '../v5-property-rules';

/** Prefix of the Response Information the gate gives an MQTT 5 client that asks (MQTT 5.0 §3.2.2.3.15): `reply/<clientId>`. */
export const RESPONSE_INFORMATION_PREFIX = 'reply/';

/**
 * CONNECT (MQTT 3.1.1 §3.1, MQTT 5.0 §3.1):
 * - protocol level 3 (MQTT 3.1, "MQIsdp"), 4 (3.1.1) and 5 are served; any other level gets
 *   CONNACK return code 1 and the connection closes (MQTT-3.1.2-2);
 * - an empty client id: levels 3/4 with clean session 0 get return code 2 (MQTT-3.1.3-8),
 *   else the gate assigns one (MQTT-3.1.3-6); level 5 always gets one, sent back as
 *   Assigned Client Identifier (MQTT-3.2.2-16);
 * - keepalive k > 0 closes the connection after 1.5·k s of silence (MQTT-3.1.2-24; MQTT 5: -22); k = 0
 *   falls back to the gate's maxIdle; k above the gate's maxKeepalive gets return code 2 at
 *   levels 3/4 (3.1.1 has no way to tell a client a shorter keepalive; Mosquitto's
 *   max_keepalive does the same), and at level 5 is lowered to maxKeepalive and stated as
 *   Server Keep Alive (MQTT-3.2.2-21, -22);
 * - levels 3/4: a Password without a User Name closes the connection without a CONNACK
 *   (MQTT-3.1.2-22, MQTT-3.1.4-1); MQTT 5 allows it (MQTT 5.0 §3.1.2.9);
 * - a will message is accepted and dropped: a gate has no subscribers to deliver it to.
 *   Backends learn of a lost connection from the gate's `disconnect` event instead;
 * - the authenticate hook decides (return codes 4, 5; 3 if it fails; level 5: reason codes
 *   0x86, 0x87, 0x88, or the hook's own);
 * - CONNACK Session Present is 1 only when the gate resumed a session at CONNECT (the
 *   verdict's `sessionPresent`: Clean Session / Clean Start 0 resumes the user's detached session), else 0
 *   (MQTT-3.2.2-1..3, MQTT 5.0 §3.2.2.1.1);
 * - level 5: a property (or Will Property) CONNECT may not carry gets CONNACK 0x81, one out
 *   of its range (Receive Maximum 0, Maximum Packet Size 0, Authentication Data without a
 *   method) 0x82 Protocol Error (see ../v5-property-rules.ts);
 * - level 5: the CONNECT properties are kept on `conn.v5` (see {@link Mqtt5State}); User
 *   Properties over maxUserProperties / maxUserPropertyBytes get 0x97 (Quota exceeded);
 *   an Authentication Method (MQTT 5.0 §3.1.2.11.9) gets 0x8C (Bad authentication method)
 *   unless the authenticate hook accepts the CONNECT (or, with the gate option `jwt`, the
 *   method is `JWT`): there is no AUTH exchange (§4.12); an accepted method is echoed in
 *   the CONNACK.
 */
export function handleConnect(conn: MqttConnection, packet: IConnectPacket): void {
  conn.state = State.Connecting;
  const level = packet.protocolVersion ?? 4;
  if (level !== 3 && level !== 4 && level !== 5) return refuse(conn, 1, `unsupported protocol level ${level} (MQTT-3.1.2-2)`);
  // mqtt-packet strips the 0x80 "bridge" bit of a non-standard level (0x83, 0x84) and flags it.
  if ((packet as { bridgeMode?: boolean }).bridgeMode) return refuse(conn, 1, `unsupported protocol level ${level | 0x80} (MQTT-3.1.2-2)`);
  conn.protocolVersion = level;
  if (level !== 5 && packet.password !== undefined && packet.username === undefined) {
    return conn.destroy('CONNECT with a Password but no User Name (MQTT-3.1.2-22)');
  }
  const props = packet.properties as ConnectProperties | undefined;
  if (level === 5) {
    conn.v5 = new Mqtt5State(props);
    const rules = propertyRulesProblem(packet);
    if (rules) return refuse(conn, rules.code, `CONNECT: ${rules.what}`);
    const problem = userPropertiesProblem(conn.v5.userProperties, conn.limits.maxUserProperties, conn.limits.maxUserPropertyBytes);
    if (problem) return refuse(conn, ReasonCode.QuotaExceeded, `CONNECT: ${problem}`);
  }
  let clientId = packet.clientId ?? '';
  let assigned = false;
  if (clientId === '') {
    if (!packet.clean && level !== 5) return refuse(conn, 2, 'empty client id with clean session 0 (MQTT-3.1.3-8)');
    clientId = `mqgate-${randomBytes(9).toString('base64url')}`;
    assigned = true;
  }
  conn.clientId = clientId;
  let keepalive = packet.keepalive ?? 0;
  const maxKeepalive = conn.limits.maxKeepalive;
  let serverKeepAlive: number | undefined;
  if (maxKeepalive > 0 && keepalive > maxKeepalive) {
    // 3.1.1 cannot tell a client another keepalive; refused as Mosquitto does for max_keepalive.
    if (level !== 5) return refuse(conn, 2, `keepalive ${keepalive} s exceeds maxKeepalive ${maxKeepalive} s`);
    keepalive = serverKeepAlive = maxKeepalive;
  }
  conn.idleLimit = keepalive > 0 ? keepalive * 1500 : conn.limits.maxIdle;
  const reply = { assigned, serverKeepAlive, authenticationMethod: props?.authenticationMethod };

  let decision: ConnectVerdict | Promise<ConnectVerdict>;
  try {
    decision = conn.hooks.authenticate(conn, packet);
  } catch {
    decision = ReasonCode.ServerUnavailable;
  }
  if (typeof decision === 'number' || !(decision instanceof Promise)) return conclude(conn, decision, reply);
  // One promise per CONNECT: what the verdict's conclusion throws closes the connection.
  decision.then(
    (verdict) => concludeLater(conn, verdict, reply),
    () => concludeLater(conn, ReasonCode.ServerUnavailable, reply),
  );
}

/** {@link conclude} after an asynchronous verdict: a throw closes this connection (never an unhandled rejection). */
function concludeLater(conn: MqttConnection, verdict: ConnectVerdict, extras: ConnackExtras): void {
  try {
    conclude(conn, verdict, extras);
  } catch (err) {
    conn.destroy(`CONNECT failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** What the CONNACK of an accepted MQTT 5 CONNECT says besides the limits. */
interface ConnackExtras {
  assigned: boolean;
  serverKeepAlive: number | undefined;
  /** The CONNECT's Authentication Method, echoed on success (MQTT 5.0 §4.12: a successful CONNACK carries the same method). */
  authenticationMethod: string | undefined;
}

/** A v5 reason code as the 3.1.1 return code (MQTT-3.2.2.3): 0x86 → 4, 0x87 / 0x8C → 5, 0x88 / 0x89 / 0x9F → 3. */
function toReturnCode(reasonCode: number): number {
  switch (reasonCode) {
    case 0:
      return 0;
    case ReasonCode.BadUserNameOrPassword:
      return 4;
    case ReasonCode.ServerUnavailable:
    case ReasonCode.ServerBusy:
    case ReasonCode.ConnectionRateExceeded:
      return 3;
    default:
      return 5;
  }
}

function conclude(conn: MqttConnection, verdict: ConnectVerdict, extras: ConnackExtras): void {
  if (conn.state !== State.Connecting) return; // closed while authenticating
  const code = typeof verdict === 'number' ? verdict : verdict.reasonCode;
  if (code !== 0) {
    const text =
      typeof verdict === 'object' && verdict.reasonString ? verdict.reasonString : `CONNECT refused with reason code 0x${code.toString(16)}`;
    return refuse(conn, conn.v5 ? code : toReturnCode(code), text);
  }
  conn.state = State.Connected;
  // Session Present 1 only for a resumed session (MQTT-3.2.2-2; the gate never resumes at Clean Session 1, MQTT-3.2.2-1).
  const present = typeof verdict === 'object' && verdict.sessionPresent === true;
  if (conn.v5) conn.send(connackV5(conn, extras, present));
  else conn.write(encodeConnackV4(0, present));
  conn.hooks.connected(conn);
  conn.flushPending();
}

/**
 * CONNACK 0x00 for MQTT 5 with the gate's limits stated (MQTT 5.0 §3.2.2.3): Receive
 * Maximum = maxInflight, Maximum Packet Size = maxPacketSize, Topic Alias Maximum, no
 * retained messages, wildcard subscriptions granted, no Subscription Identifiers, no shared
 * subscriptions; Server Keep Alive, Assigned Client Identifier, Response Information and the
 * Authentication Method when they apply. Session Present is 1 only when a session was resumed
 * at CONNECT (Clean Start 0 resumes the user's detached session; MQTT 5.0 §3.2.2.1.1).
 */
function connackV5(conn: MqttConnection, extras: ConnackExtras, sessionPresent: boolean): IConnackPacket {
  const l = conn.limits;
  const properties: NonNullable<IConnackPacket['properties']> = {
    receiveMaximum: Math.min(0xffff, l.maxInflight),
    maximumPacketSize: l.maxPacketSize,
    topicAliasMaximum: l.topicAliasMaximum,
    retainAvailable: false,
    wildcardSubscriptionAvailable: true,
    subscriptionIdentifiersAvailable: false,
    sharedSubscriptionAvailable: false,
  };
  if (extras.serverKeepAlive !== undefined) properties.serverKeepAlive = extras.serverKeepAlive;
  if (extras.assigned) properties.assignedClientIdentifier = conn.clientId;
  if (extras.authenticationMethod !== undefined) properties.authenticationMethod = extras.authenticationMethod;
  if (conn.v5?.responseInformation) properties.responseInformation = RESPONSE_INFORMATION_PREFIX + conn.clientId;
  return { cmd: 'connack', reasonCode: 0, sessionPresent, properties };
}

/** CONNACK refusing the CONNECT (a return code, or for MQTT 5 a reason code with the reason as Reason String, MQTT-3.2.2-6), then close. */
function refuse(conn: MqttConnection, code: number, reason: string): void {
  if (conn.v5) {
    conn.send({ cmd: 'connack', reasonCode: code, sessionPresent: false, properties: { reasonString: reason.slice(0, 256) } });
  } else if (conn.state !== State.Closed) {
    conn.write(encodeConnackV4(code, false));
  }
  conn.refused = { code, v5: conn.v5 !== undefined };
  conn.close(reason);
}
