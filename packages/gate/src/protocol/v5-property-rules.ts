import { ReasonCode } from './mqtt5';

/**
 * Which MQTT 5 properties each packet a client sends may carry (MQTT 5.0 §2.2.2.2, table
 * 2-4), by mqtt-packet's property names; `will` is the CONNECT's Will Properties
 * (§3.1.3.2). Any other property is a Malformed Packet (§2.2.2.2: "an Identifier which is
 * not valid for its packet type"). mqtt-packet parses every known property in every packet.
 */
const ALLOWED: Readonly<Record<string, ReadonlySet<string>>> = {
  connect: new Set([
    'sessionExpiryInterval',
    'receiveMaximum',
    'maximumPacketSize',
    'topicAliasMaximum',
    'requestResponseInformation',
    'requestProblemInformation',
    'userProperties',
    'authenticationMethod',
    'authenticationData',
  ]),
  will: new Set([
    'willDelayInterval',
    'payloadFormatIndicator',
    'messageExpiryInterval',
    'contentType',
    'responseTopic',
    'correlationData',
    'userProperties',
  ]),
  publish: new Set([
    'payloadFormatIndicator',
    'messageExpiryInterval',
    'contentType',
    'responseTopic',
    'correlationData',
    'subscriptionIdentifier',
    'topicAlias',
    'userProperties',
  ]),
  puback: new Set(['reasonString', 'userProperties']),
  pubrec: new Set(['reasonString', 'userProperties']),
  pubrel: new Set(['reasonString', 'userProperties']),
  pubcomp: new Set(['reasonString', 'userProperties']),
  subscribe: new Set(['subscriptionIdentifier', 'userProperties']),
  unsubscribe: new Set(['userProperties']),
  disconnect: new Set(['sessionExpiryInterval', 'reasonString', 'serverReference', 'userProperties']),
  auth: new Set(['authenticationMethod', 'authenticationData', 'reasonString', 'userProperties']),
};

/**
 * Value ranges whose breach is a Protocol Error (0x82), by property, with the rule. Checked
 * elsewhere: Topic Alias 0 or above the maximum (publish.ts, 0x94, MQTT-3.3.2-8, -9), a
 * Response Topic with wildcards (publish.ts, MQTT-3.3.2-14), a DISCONNECT Session Expiry
 * Interval after CONNECT's 0 (disconnect.ts, MQTT-3.14.2-2). mqtt-packet hands the one-byte
 * properties (Payload Format Indicator, Request Problem / Response Information) over as
 * booleans, so a value above 1 cannot be seen here.
 */
const RANGES: Readonly<Record<string, { ok: (v: number) => boolean; rule: string }>> = {
  receiveMaximum: { ok: (v) => v !== 0, rule: 'Receive Maximum 0 (MQTT 5.0 §3.1.2.11.3)' },
  maximumPacketSize: { ok: (v) => v !== 0, rule: 'Maximum Packet Size 0 (MQTT 5.0 §3.1.2.11.4)' },
  subscriptionIdentifier: { ok: (v) => v >= 1 && v <= 268_435_455, rule: 'Subscription Identifier 0 (MQTT 5.0 §3.8.2.1.2)' },
};

/** A property breach: the reason code (0x81 Malformed Packet or 0x82 Protocol Error) and what is wrong. */
export interface PropertyProblem {
  code: number;
  what: string;
}

function listProblem(kind: string, properties: Record<string, unknown>): PropertyProblem | undefined {
  const allowed = ALLOWED[kind];
  for (const [name, value] of Object.entries(properties)) {
    if (allowed && !allowed.has(name))
      return { code: ReasonCode.MalformedPacket, what: `property ${name} is not valid in ${kind} (MQTT 5.0 §2.2.2.2)` };
    const range = RANGES[name];
    if (range && typeof value === 'number' && !range.ok(value)) return { code: ReasonCode.ProtocolError, what: range.rule };
  }
  if (properties.authenticationData !== undefined && properties.authenticationMethod === undefined) {
    return { code: ReasonCode.ProtocolError, what: 'Authentication Data without an Authentication Method (MQTT 5.0 §3.1.2.11.10, §3.15.2.2.3)' };
  }
  return undefined;
}

/**
 * Whether the MQTT 5 properties of a packet from a client keep the rules of table 2-4 and
 * the value ranges above (run after `propertiesProblem`, once they are well-formed). CONNECT:
 * its Will Properties too. PUBLISH: a Subscription Identifier is a Protocol Error from a
 * client (MQTT-3.3.4-6).
 * @returns undefined when fine, else the reason code and what is wrong.
 */
export function propertyRulesProblem(packet: { cmd: string; properties?: unknown; will?: { properties?: unknown } }): PropertyProblem | undefined {
  const p = packet.properties as Record<string, unknown> | undefined;
  let problem = p ? listProblem(packet.cmd, p) : undefined;
  if (!problem && packet.cmd === 'publish' && p?.subscriptionIdentifier !== undefined) {
    problem = { code: ReasonCode.ProtocolError, what: 'a Subscription Identifier from a client (MQTT-3.3.4-6)' };
  }
  const will = packet.will?.properties as Record<string, unknown> | undefined;
  if (!problem && packet.cmd === 'connect' && will) {
    problem = listProblem('will', will);
    if (problem) problem = { ...problem, what: `Will Properties: ${problem.what}` };
  }
  return problem;
}
