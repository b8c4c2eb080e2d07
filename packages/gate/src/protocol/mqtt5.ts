import { type UserProperties } from '@mqgate/rpc';
import { quoteInput } from '@mqgate/rpc/internal';

/**
 * MQTT 5 reason codes the gate sends (MQTT 5.0 §2.4, table 2-6). Values below 0x80 succeed.
 */
export const ReasonCode = {
  Success: 0x00,
  /** DISCONNECT from the client that asks for its will (§3.14.2.1); the gate drops wills. */
  DisconnectWithWill: 0x04,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  /** CONNACK: the client is banned (§3.2.2.2): gate.ban, flapping detection. */
  Banned: 0x8a,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicNameInvalid: 0x90,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  ServerShuttingDown: 0x8b,
  SubscriptionIdentifiersNotSupported: 0xa1,
  /** CONNACK: too many CONNECTs (§3.2.2.2): the same client id's CONNECTs at once past flapping's maxCount. */
  ConnectionRateExceeded: 0x9f,
  /** DISCONNECT: the maximum connection time authorized has been exceeded (§3.14.2.1); sent when a JWT expires. */
  MaximumConnectTime: 0xa0,
} as const;

/**
 * The MQTT 5 state of one connection, from its CONNECT (MQTT 5.0 §3.1.2.11): what the
 * client asked for, and the inbound Topic Aliases it set (§3.3.2.3.4).
 */
export class Mqtt5State {
  /** Session Expiry Interval, seconds (§3.1.2.11.2); 0 = the session ends with the connection. The detached session's resume window (capped by resumeWindow). */
  sessionExpiryInterval: number;
  /** Client's Receive Maximum (§3.1.2.11.3): QoS 1/2 PUBLISHes the gate may leave unacknowledged toward it (MQTT-3.3.4-9): it caps the window of QoS 1 pushes with maxOutboundInflight. */
  readonly receiveMaximum: number;
  /** Client's Maximum Packet Size, bytes (§3.1.2.11.4); Infinity when not given. Nothing larger is sent (MQTT-3.1.2-25). */
  readonly maximumPacketSize: number;
  /** Client's Topic Alias Maximum (§3.1.2.11.5): aliases the gate may use toward it. The gate uses none. */
  readonly clientTopicAliasMaximum: number;
  /** Request Problem Information (§3.1.2.11.7): when false, no Reason String or User Property except on PUBLISH, CONNACK, DISCONNECT (MQTT-3.1.2-29). */
  readonly problemInformation: boolean;
  /** Request Response Information (§3.1.2.11.6): the client wants Response Information in CONNACK. */
  readonly responseInformation: boolean;
  /** The CONNECT's User Properties (§3.1.2.11.8), given to the authenticate hook. */
  readonly userProperties: UserProperties | undefined;
  /** Inbound Topic Aliases, alias → topic (§3.3.2.3.4); made on first use. */
  aliases: Map<number, string> | undefined;

  constructor(p: ConnectProperties | undefined) {
    this.sessionExpiryInterval = p?.sessionExpiryInterval ?? 0;
    this.receiveMaximum = p?.receiveMaximum ?? 65_535;
    this.maximumPacketSize = p?.maximumPacketSize ?? Infinity;
    this.clientTopicAliasMaximum = p?.topicAliasMaximum ?? 0;
    this.problemInformation = p?.requestProblemInformation !== false;
    this.responseInformation = p?.requestResponseInformation === true;
    this.userProperties = p?.userProperties as UserProperties | undefined;
  }
}

/** The CONNECT properties as mqtt-packet parses them. */
export interface ConnectProperties {
  sessionExpiryInterval?: number;
  receiveMaximum?: number;
  maximumPacketSize?: number;
  topicAliasMaximum?: number;
  requestResponseInformation?: boolean;
  requestProblemInformation?: boolean;
  userProperties?: Record<string, string | string[]>;
  authenticationMethod?: string;
  authenticationData?: Buffer;
}

/**
 * Size of User Properties as a limit sees them: how many pairs, and their UTF-8 bytes
 * (names and values).
 */
export function userPropertiesSize(up: UserProperties | undefined): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  if (up === undefined) return { count, bytes };
  for (const k of Object.keys(up)) {
    const v = up[k];
    const kb = Buffer.byteLength(k, 'utf8');
    for (const x of typeof v === 'string' ? [v] : v) {
      count++;
      bytes += kb + Buffer.byteLength(x, 'utf8');
    }
  }
  return { count, bytes };
}

/**
 * Why User Properties break the gate's limits (`maxUserProperties` pairs,
 * `maxUserPropertyBytes` UTF-8 bytes of names and values per packet), or undefined.
 */
export function userPropertiesProblem(up: UserProperties | undefined, maxCount: number, maxBytes: number): string | undefined {
  if (up === undefined) return undefined;
  const { count, bytes } = userPropertiesSize(up);
  if (count > maxCount) return `${count} User Properties exceed maxUserProperties ${maxCount}`;
  if (bytes > maxBytes) return `User Properties of ${bytes} bytes exceed maxUserPropertyBytes ${maxBytes}`;
  return undefined;
}

/**
 * Whether a parsed packet's MQTT 5 properties are well-formed, before any handler reads them:
 * mqtt-packet hands over a string or binary property whose length runs past the packet as
 * `null` (no parse error), and a property sent twice as an array of its values. The first is
 * a Malformed Packet (MQTT 5.0 §1.5.4, §2.2.2.2), the second a Protocol Error for every
 * property but User Property (§2.2.2.2: "a Protocol Error to include the same property more
 * than once" except User Property and, from a server, Subscription Identifier).
 * @returns undefined when fine, else the reason code and what is wrong.
 */
export function propertiesProblem(properties: unknown): { code: number; what: string } | undefined {
  if (properties === undefined || properties === null) return undefined;
  if (typeof properties !== 'object') return { code: ReasonCode.MalformedPacket, what: 'properties are not a property list' };
  for (const [name, value] of Object.entries(properties as Record<string, unknown>)) {
    if (value === null || value === undefined) return { code: ReasonCode.MalformedPacket, what: `property ${name} runs past the end of the packet` };
    if (name === 'userProperties') {
      if (typeof value !== 'object') return { code: ReasonCode.MalformedPacket, what: 'User Property list is malformed' };
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const values = Array.isArray(v) ? v : [v];
        if (values.some((x) => typeof x !== 'string'))
          return { code: ReasonCode.MalformedPacket, what: `User Property ${quoteInput(k)} runs past the end of the packet` };
      }
      continue;
    }
    // SUBSCRIBE may carry one Subscription Identifier; mqtt-packet keeps any one as a number.
    if (Array.isArray(value)) return { code: ReasonCode.ProtocolError, what: `property ${name} appears more than once (MQTT 5.0 §2.2.2.2)` };
  }
  return undefined;
}
