/**
 * Hand-written encoders for the packets the gate sends most: a QoS 0 PUBLISH (every reply
 * and push) and the 4-byte acks. Byte-for-byte what mqtt-packet's generate() writes for
 * protocol levels 3 and 4 (MQTT 3.1.1 §3.3, §3.4, §3.5, §3.7); a test checks them against it.
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
export function encodePublishQos0(topic: string, payload: Buffer): Buffer {
  const topicLength = Buffer.byteLength(topic, 'utf8');
  if (topicLength > 0xffff) throw new RangeError(`topic of ${topicLength} bytes exceeds 65535 (MQTT-1.5.3)`);
  const remaining = 2 + topicLength + payload.length;
  if (remaining > 268_435_455) throw new RangeError(`PUBLISH of ${remaining} bytes exceeds the MQTT maximum`);
  const header = 1 + varintSize(remaining);
  const out = Buffer.allocUnsafe(header + remaining);
  out[0] = 0x30;
  let pos = 1;
  let n = remaining;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out[pos++] = byte;
  } while (n > 0);
  out[pos++] = topicLength >> 8;
  out[pos++] = topicLength & 0xff;
  pos += out.write(topic, pos, 'utf8');
  payload.copy(out, pos);
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

/** PINGRESP. */
export const PINGRESP = Buffer.from([0xd0, 0x00]);
