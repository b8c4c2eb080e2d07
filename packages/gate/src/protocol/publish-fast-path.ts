import type { IPublishPacket } from 'mqtt-packet';

/**
 * A client PUBLISH at QoS 0 or 1 (MQTT 3.1.1 §3.3, MQTT 5.0 §3.3), decoded by hand ahead of
 * mqtt-packet's generic parser (whose per-packet debug() calls, BufferList copies and
 * property-table walk cost more than the rest of the PUBLISH path; issue 21).
 *
 * `buf[start, end)` must be exactly one packet (the frame guard's boundaries). Returns the
 * packet mqtt-packet 9 would emit for those bytes, field for field (cmd, retain, qos, dup,
 * length, topic, payload, messageId at QoS 1, properties when there are any; the payload and
 * the Correlation Data are views of `buf`, as mqtt-packet's are), or undefined for anything
 * else: another packet type, QoS 2 or 3, a length that does not add up, a string or property
 * running past its end, a property other than Payload Format Indicator, Message Expiry
 * Interval, Content Type, Response Topic, Correlation Data, Topic Alias and User Property, or
 * one of those given twice. The caller then hands the bytes to mqtt-packet, so malformed input
 * fails exactly as it did (the same error, the same close). Checked against mqtt-packet in
 * test/publish-fast-path.property.test.ts.
 */
export function parsePublishFast(buf: Buffer, start: number, end: number, v5: boolean): IPublishPacket | undefined {
  const b0 = buf[start];
  if ((b0 & 0xf0) !== 0x30) return undefined;
  const qos = (b0 >> 1) & 3;
  if (qos > 1) return undefined;
  // Remaining Length: at most 4 bytes (MQTT-2.2.3).
  let i = start + 1;
  let length = 0;
  let mul = 1;
  for (let n = 0; ; n++) {
    if (n === 4 || i >= end) return undefined;
    const byte = buf[i++];
    length += (byte & 0x7f) * mul;
    mul *= 128;
    if ((byte & 0x80) === 0) break;
  }
  if (i + length !== end) return undefined;
  if (end - i < 2) return undefined;
  const topicEnd = i + 2 + ((buf[i] << 8) | buf[i + 1]);
  if (topicEnd > end) return undefined;
  const topic = buf.toString('utf8', i + 2, topicEnd);
  i = topicEnd;
  let messageId = 0;
  if (qos === 1) {
    if (end - i < 2) return undefined;
    messageId = (buf[i] << 8) | buf[i + 1];
    i += 2;
  }
  let properties: IPublishPacket['properties'];
  if (v5) {
    let plen = 0;
    mul = 1;
    for (let n = 0; ; n++) {
      if (n === 4 || i >= end) return undefined;
      const byte = buf[i++];
      plen += (byte & 0x7f) * mul;
      mul *= 128;
      if ((byte & 0x80) === 0) break;
    }
    const pend = i + plen;
    if (pend > end) return undefined;
    if (plen > 0) {
      properties = parseProperties(buf, i, pend);
      if (properties === undefined) return undefined;
      i = pend;
    }
  }
  const payload = buf.subarray(i, end);
  if (qos === 0) {
    const p = { cmd: 'publish', retain: (b0 & 1) !== 0, qos, dup: (b0 & 8) !== 0, length, topic, payload } as IPublishPacket;
    if (properties !== undefined) p.properties = properties;
    return p;
  }
  const p = { cmd: 'publish', retain: (b0 & 1) !== 0, qos, dup: (b0 & 8) !== 0, length, topic, payload, messageId } as IPublishPacket;
  if (properties !== undefined) p.properties = properties;
  return p;
}

type Props = NonNullable<IPublishPacket['properties']>;
type UserProps = Record<string, string | string[]>;

/** The PUBLISH properties in `buf[i, pend)`, or undefined when mqtt-packet must decide (see parsePublishFast). */
function parseProperties(buf: Buffer, i: number, pend: number): Props | undefined {
  const out: Props = {};
  let user: UserProps | undefined;
  while (i < pend) {
    const id = buf[i++];
    switch (id) {
      case 1: // Payload Format Indicator: a byte; mqtt-packet gives `byte !== 0`
        if (out.payloadFormatIndicator !== undefined || i >= pend) return undefined;
        out.payloadFormatIndicator = buf[i++] !== 0;
        break;
      case 2: // Message Expiry Interval: four bytes
        if (out.messageExpiryInterval !== undefined || pend - i < 4) return undefined;
        out.messageExpiryInterval = buf.readUInt32BE(i);
        i += 4;
        break;
      case 35: // Topic Alias: two bytes
        if (out.topicAlias !== undefined || pend - i < 2) return undefined;
        out.topicAlias = (buf[i] << 8) | buf[i + 1];
        i += 2;
        break;
      case 3: // Content Type, 8: Response Topic: UTF-8 strings
      case 8: {
        const key = id === 3 ? 'contentType' : 'responseTopic';
        if (out[key] !== undefined || pend - i < 2) return undefined;
        const e = i + 2 + ((buf[i] << 8) | buf[i + 1]);
        if (e > pend) return undefined;
        out[key] = buf.toString('utf8', i + 2, e);
        i = e;
        break;
      }
      case 9: {
        // Correlation Data: binary, a view of the packet as mqtt-packet's
        if (out.correlationData !== undefined || pend - i < 2) return undefined;
        const e = i + 2 + ((buf[i] << 8) | buf[i + 1]);
        if (e > pend) return undefined;
        out.correlationData = buf.subarray(i + 2, e);
        i = e;
        break;
      }
      case 38: {
        // User Property: a name and a value; a repeated name collects its values in order
        if (pend - i < 2) return undefined;
        const ne = i + 2 + ((buf[i] << 8) | buf[i + 1]);
        if (ne + 2 > pend) return undefined;
        const ve = ne + 2 + ((buf[ne] << 8) | buf[ne + 1]);
        if (ve > pend) return undefined;
        const name = buf.toString('utf8', i + 2, ne);
        const value = buf.toString('utf8', ne + 2, ve);
        i = ve;
        if (user === undefined) out.userProperties = user = Object.create(null) as UserProps;
        const had = user[name];
        // mqtt-packet tests truthiness: an earlier empty value is replaced, not collected.
        if (!had) user[name] = value;
        else if (Array.isArray(had)) had.push(value);
        else user[name] = [had, value];
        break;
      }
      default:
        return undefined;
    }
  }
  return out;
}
