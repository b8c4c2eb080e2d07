import type { UserProperties } from '@mqgate/rpc';

/**
 * Hand-written encoders for the packets the gate sends most: a QoS 0 PUBLISH (every reply
 * and push) and the 4-byte acks. Byte-for-byte what mqtt-packet's generate() writes for
 * protocol levels 3 and 4 (MQTT 3.1.1 §3.3, §3.4, §3.5, §3.7), and for level 5 the QoS 0
 * PUBLISH with its few properties (MQTT 5.0 §3.3.2.3); a test checks them against it.
 * Everything else goes through mqtt-packet.
 */

/** Bytes of the Remaining Length varint for `n` (MQTT-2.2.3: at most 268 435 455). */
function varintSize(n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4;
}

/**
 * A QoS 0 PUBLISH, retain 0, dup 0.
 * @throws RangeError when the topic is longer than 65 535 bytes or the packet exceeds the
 *   MQTT maximum of 268 435 455 bytes of Remaining Length.
 */
export function encodePublishQos0(topic: string, payload: Buffer | string): Buffer {
  const topicLength = Buffer.byteLength(topic, 'utf8');
  if (topicLength > 0xffff) throw new RangeError(`topic of ${topicLength} bytes exceeds 65535 (MQTT-1.5.3)`);
  const remaining = 2 + topicLength + payloadSize(payload);
  if (remaining > 268_435_455) throw new RangeError(`PUBLISH of ${remaining} bytes exceeds the MQTT maximum`);
  const header = 1 + varintSize(remaining);
  const out = Buffer.allocUnsafe(header + remaining);
  out[0] = 0x30;
  let pos = writeVarint(out, 1, remaining);
  out[pos++] = topicLength >> 8;
  out[pos++] = topicLength & 0xff;
  pos += out.write(topic, pos, 'utf8');
  writePayload(out, pos, payload);
  return out;
}

/** Bytes of a payload given as bytes or as text (UTF-8). */
export function payloadSize(payload: Buffer | string): number {
  return typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.length;
}

/** Writes a payload at `pos`: bytes copied, text encoded in place (UTF-8), so a reply envelope is never a buffer of its own. */
function writePayload(out: Buffer, pos: number, payload: Buffer | string): void {
  if (typeof payload === 'string') out.write(payload, pos, 'utf8');
  else payload.copy(out, pos);
}

/** Writes `n` as a Variable Byte Integer at `pos` (MQTT 5.0 §1.5.5); returns the position after it. */
function writeVarint(out: Buffer, pos: number, n: number): number {
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out[pos++] = byte;
  } while (n > 0);
  return pos;
}

/**
 * The properties of a PUBLISH the gate sends an MQTT 5 client (MQTT 5.0 §3.3.2.3); every
 * field optional. Written in this order, the order mqtt-packet writes them in when given an
 * object with the keys in this order.
 */
export interface PublishProperties {
  /** Payload Format Indicator 1 = UTF-8 (§3.3.2.3.2); false or absent writes nothing. */
  payloadFormatIndicator?: boolean;
  /** Message Expiry Interval, seconds (§3.3.2.3.3). */
  messageExpiryInterval?: number;
  /** Content Type (§3.3.2.3.9). */
  contentType?: string;
  /** Correlation Data (§3.3.2.3.6), echoed from the request. */
  correlationData?: Buffer;
  /** User Properties (§3.3.2.3.7). */
  userProperties?: UserProperties;
}

function utf8Field(what: string, s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  if (n > 0xffff) throw new RangeError(`${what} of ${n} bytes exceeds 65535 (MQTT-1.5.4)`);
  return n;
}

/** Byte length of the encoded properties (without their own length varint). */
function propertiesSize(p: PublishProperties): number {
  let n = 0;
  if (p.payloadFormatIndicator) n += 2;
  if (p.messageExpiryInterval !== undefined) n += 5;
  if (p.contentType !== undefined) n += 3 + utf8Field('Content Type', p.contentType);
  if (p.correlationData !== undefined) {
    if (p.correlationData.length > 0xffff) throw new RangeError(`Correlation Data of ${p.correlationData.length} bytes exceeds 65535`);
    n += 3 + p.correlationData.length;
  }
  const up = p.userProperties;
  if (up !== undefined) {
    for (const k of Object.keys(up)) {
      const v = up[k];
      const kn = utf8Field('User Property name', k);
      if (typeof v === 'string') n += 5 + kn + utf8Field('User Property value', v);
      else for (const x of v) n += 5 + kn + utf8Field('User Property value', x);
    }
  }
  return n;
}

function writeString(out: Buffer, pos: number, s: string): number {
  const n = out.write(s, pos + 2, 'utf8');
  out[pos] = n >> 8;
  out[pos + 1] = n & 0xff;
  return pos + 2 + n;
}

function writeProperties(out: Buffer, pos: number, p: PublishProperties): number {
  if (p.payloadFormatIndicator) {
    out[pos++] = 0x01;
    out[pos++] = 1;
  }
  if (p.messageExpiryInterval !== undefined) {
    out[pos++] = 0x02;
    out.writeUInt32BE(p.messageExpiryInterval, pos);
    pos += 4;
  }
  if (p.contentType !== undefined) {
    out[pos++] = 0x03;
    pos = writeString(out, pos, p.contentType);
  }
  if (p.correlationData !== undefined) {
    out[pos++] = 0x09;
    out[pos++] = p.correlationData.length >> 8;
    out[pos++] = p.correlationData.length & 0xff;
    pos += p.correlationData.copy(out, pos);
  }
  const up = p.userProperties;
  if (up !== undefined) {
    for (const k of Object.keys(up)) {
      const v = up[k];
      for (const x of typeof v === 'string' ? [v] : v) {
        out[pos++] = 0x26;
        pos = writeString(out, pos, k);
        pos = writeString(out, pos, x);
      }
    }
  }
  return pos;
}

/**
 * An MQTT 5 QoS 0 PUBLISH, retain 0, dup 0, no Topic Alias (MQTT 5.0 §3.3): the reply and
 * push form for protocol level 5. Without properties it carries a Property Length of 0.
 * @throws RangeError when the topic, a string property or Correlation Data exceeds 65 535
 *   bytes, or the packet exceeds the MQTT maximum (268 435 455 bytes of Remaining Length).
 */
export function encodePublishV5(topic: string, payload: Buffer | string, props: PublishProperties | undefined): Buffer {
  const topicLength = Buffer.byteLength(topic, 'utf8');
  if (topicLength > 0xffff) throw new RangeError(`topic of ${topicLength} bytes exceeds 65535 (MQTT-1.5.4)`);
  const propsLength = props === undefined ? 0 : propertiesSize(props);
  const remaining = 2 + topicLength + varintSize(propsLength) + propsLength + payloadSize(payload);
  if (remaining > 268_435_455) throw new RangeError(`PUBLISH of ${remaining} bytes exceeds the MQTT maximum`);
  const out = Buffer.allocUnsafe(1 + varintSize(remaining) + remaining);
  out[0] = 0x30;
  let pos = writeVarint(out, 1, remaining);
  out[pos++] = topicLength >> 8;
  out[pos++] = topicLength & 0xff;
  pos += out.write(topic, pos, 'utf8');
  pos = writeVarint(out, pos, propsLength);
  if (props !== undefined) pos = writeProperties(out, pos, props);
  writePayload(out, pos, payload);
  return out;
}

/** PUBACK (0x40), PUBREC (0x50), PUBREL (0x62), PUBCOMP (0x70): type byte, length 2, packet id. */
export function encodeAck(typeByte: 0x40 | 0x50 | 0x70, messageId: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out[0] = typeByte;
  out[1] = 2;
  out[2] = (messageId >> 8) & 0xff;
  out[3] = messageId & 0xff;
  return out;
}

/**
 * An MQTT 5 PUBACK / PUBREC / PUBCOMP with a reason code and no properties (MQTT 5.0
 * §3.4.2): reason 0x00 is the 4-byte form of {@link encodeAck} (MQTT-3.4.2-1 lets it be
 * left out); any other code adds the code and a Property Length of 0, as mqtt-packet does.
 */
export function encodeAckV5(typeByte: 0x40 | 0x50 | 0x70, messageId: number, reasonCode: number): Buffer {
  if (reasonCode === 0) return encodeAck(typeByte, messageId);
  const out = Buffer.allocUnsafe(6);
  out[0] = typeByte;
  out[1] = 4;
  out[2] = (messageId >> 8) & 0xff;
  out[3] = messageId & 0xff;
  out[4] = reasonCode;
  out[5] = 0;
  return out;
}

/** PINGRESP. */
export const PINGRESP = Buffer.from([0xd0, 0x00]);

/**
 * A 3.1 / 3.1.1 CONNACK (MQTT 3.1.1 §3.2): type 0x20, Remaining Length 2, the Session Present
 * flag (MQTT-3.2.2-1..3), the return code (0 accepts); byte for byte what mqtt-packet generates,
 * without its generic encoder (whose first use also fills a 65,536-Buffer table of 6 MB). A new
 * Buffer each time (a wire may keep it queued).
 */
export function encodeConnackV4(returnCode: number, sessionPresent: boolean): Buffer {
  return Buffer.from([0x20, 0x02, sessionPresent ? 1 : 0, returnCode]);
}

/**
 * A QoS 1 PUBLISH, retain 0 (QoS 1 pushes are delivered at least once): fixed header 0x32, 0x3A with DUP 1 (a
 * re-delivery, MQTT-3.3.1-1), then topic, packet identifier (MQTT-2.3.1-1: 1..65 535) and,
 * at level 5 (`v5`), the properties as {@link encodePublishV5}. Opt-in per push, so the QoS 0
 * encoders above stay as they are.
 * @throws RangeError as {@link encodePublishQos0} / {@link encodePublishV5}.
 */
export function encodePublishQos1(
  topic: string,
  payload: Buffer,
  messageId: number,
  dup: boolean,
  v5: boolean,
  props: PublishProperties | undefined,
): Buffer {
  const topicLength = Buffer.byteLength(topic, 'utf8');
  if (topicLength > 0xffff) throw new RangeError(`topic of ${topicLength} bytes exceeds 65535 (MQTT-1.5.3)`);
  const propsLength = v5 && props !== undefined ? propertiesSize(props) : 0;
  const remaining = 4 + topicLength + (v5 ? varintSize(propsLength) + propsLength : 0) + payload.length;
  if (remaining > 268_435_455) throw new RangeError(`PUBLISH of ${remaining} bytes exceeds the MQTT maximum`);
  const out = Buffer.allocUnsafe(1 + varintSize(remaining) + remaining);
  out[0] = dup ? 0x3a : 0x32;
  let pos = writeVarint(out, 1, remaining);
  out[pos++] = topicLength >> 8;
  out[pos++] = topicLength & 0xff;
  pos += out.write(topic, pos, 'utf8');
  out[pos++] = messageId >> 8;
  out[pos++] = messageId & 0xff;
  if (v5) {
    pos = writeVarint(out, pos, propsLength);
    if (props !== undefined) pos = writeProperties(out, pos, props);
  }
  payload.copy(out, pos);
  return out;
}
