/**
 * Property tests of the hand-written encoders (src/protocol/encode.ts): for arbitrary
 * topics, payloads, packet ids and MQTT 5 properties they write byte for byte what
 * mqtt-packet's generate() writes, and mqtt-packet's parser reads the same fields back.
 * Also the User Properties size of src/protocol/mqtt5.ts, which the limits rely on.
 */
import fc from 'fast-check';
import * as mqtt from 'mqtt-packet';
import { encodeAck, encodeAckV5, encodePublishQos0, encodePublishV5, type PublishProperties } from '../src/protocol/encode';
import { userPropertiesSize } from '../src/protocol/mqtt5';

/**
 * Any string, lone surrogates included (both sides write them as U+FFFD); now and then one
 * of 100 to 400 characters, so that 2-byte lengths have a high byte.
 */
const anyString = (maxLength = 30) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 100, maxLength: 400 }) },
  );
/** Well-formed Unicode, which parses back to itself; the same lengths. */
const text = (maxLength = 30) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: 'grapheme', maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 100, maxLength: 400 }) },
  );
const payload = fc
  .oneof(
    { weight: 9, arbitrary: fc.uint8Array({ maxLength: 400 }) },
    { weight: 1, arbitrary: fc.integer({ min: 16_380, max: 17_000 }).map((n) => new Uint8Array(n).fill(3)) },
  )
  .map((a) => Buffer.from(a));

/**
 * At least one name: given `{}`, mqtt-packet's generate() writes nothing at all (an empty
 * buffer) where the encoder writes the packet without pairs (checked on its own below).
 */
const userProperties = (str: fc.Arbitrary<string>) =>
  fc.dictionary(
    str.filter((k) => k !== '__proto__'),
    fc.oneof(str, fc.array(str, { minLength: 1, maxLength: 3 })),
    { minKeys: 1, maxKeys: 4 },
  );

/** Properties in the encoder's order (mqtt-packet writes an object's keys in their order). */
const properties = (str: fc.Arbitrary<string>) =>
  fc.option(
    fc.record(
      {
        payloadFormatIndicator: fc.constant(true as const), // false: the encoder writes nothing, mqtt-packet writes 0
        messageExpiryInterval: fc.integer({ min: 0, max: 0xffff_ffff }),
        contentType: str,
        correlationData: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
        userProperties: userProperties(str),
      },
      { requiredKeys: [] },
    ),
    { nil: undefined },
  );

function parse(bytes: Buffer, protocolVersion: 4 | 5): mqtt.Packet[] {
  const parser = mqtt.parser({ protocolVersion });
  const out: mqtt.Packet[] = [];
  parser.on('packet', (p) => out.push(p));
  parser.on('error', (err) => {
    throw err;
  });
  parser.parse(bytes);
  return out;
}

/** User Properties as mqtt-packet parses them back: a name given once is a string. */
function normalized(up: Record<string, string | string[]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(up)) out[k] = Array.isArray(v) && v.length === 1 ? v[0] : v;
  return out;
}

test('QoS 0 PUBLISH (levels 3, 4): what mqtt-packet writes, for any topic and payload', () => {
  fc.assert(
    fc.property(anyString(80), payload, (topic, body) => {
      const expected = mqtt.generate({ cmd: 'publish', topic, payload: body, qos: 0, dup: false, retain: false });
      expect(encodePublishQos0(topic, body).toString('hex')).toBe(expected.toString('hex'));
    }),
    { numRuns: 500 },
  );
});

test('a payload given as text (a reply envelope) is written as its UTF-8 bytes: the same packet as with those bytes, at levels 4 and 5', () => {
  fc.assert(
    fc.property(anyString(60), anyString(300), properties(anyString()), (topic, body, props) => {
      const bytes = Buffer.from(body, 'utf8');
      expect(encodePublishQos0(topic, body).toString('hex')).toBe(encodePublishQos0(topic, bytes).toString('hex'));
      const p = props as PublishProperties | undefined;
      expect(encodePublishV5(topic, body, p).toString('hex')).toBe(encodePublishV5(topic, bytes, p).toString('hex'));
      const expected = mqtt.generate({ cmd: 'publish', topic, payload: bytes, qos: 0, dup: false, retain: false });
      expect(encodePublishQos0(topic, body).toString('hex')).toBe(expected.toString('hex'));
    }),
    { numRuns: 300 },
  );
});

test('QoS 0 PUBLISH (levels 3, 4) parses back to its topic and payload', () => {
  fc.assert(
    fc.property(
      text(80).filter((t) => t.length > 0),
      payload,
      (topic, body) => {
        const [p, ...rest] = parse(encodePublishQos0(topic, body), 4);
        expect(rest).toEqual([]);
        expect(p).toMatchObject({ cmd: 'publish', topic, qos: 0, dup: false, retain: false });
        expect(Buffer.from((p as mqtt.IPublishPacket).payload as Buffer).equals(body)).toBe(true);
      },
    ),
    { numRuns: 300 },
  );
});

test('QoS 0 PUBLISH at level 5, with any properties: what mqtt-packet writes', () => {
  fc.assert(
    fc.property(anyString(60), payload, properties(anyString()), (topic, body, props) => {
      const expected = mqtt.generate(
        { cmd: 'publish', topic, payload: body, qos: 0, dup: false, retain: false, properties: props as mqtt.IPublishPacket['properties'] },
        { protocolVersion: 5 },
      );
      expect(encodePublishV5(topic, body, props as PublishProperties | undefined).toString('hex')).toBe(expected.toString('hex'));
    }),
    { numRuns: 500 },
  );
});

test('QoS 0 PUBLISH at level 5 parses back to its topic, payload and properties', () => {
  fc.assert(
    // Non-empty property strings: mqtt-packet's parser folds a repeated User Property name
    // whose first value is "" into one pair (it tests the value it holds for truthiness).
    fc.property(
      text(60).filter((t) => t.length > 0),
      payload,
      properties(text().filter((t) => t.length > 0)),
      (topic, body, props) => {
        const [p, ...rest] = parse(encodePublishV5(topic, body, props), 5) as mqtt.IPublishPacket[];
        expect(rest).toEqual([]);
        expect(p).toMatchObject({ cmd: 'publish', topic, qos: 0 });
        expect(Buffer.from(p.payload as Buffer).equals(body)).toBe(true);
        const back = p.properties ?? {};
        const want: Record<string, unknown> = { ...props };
        if (props?.userProperties) want.userProperties = normalized(props.userProperties);
        expect({ ...back, userProperties: back.userProperties && { ...back.userProperties } }).toEqual({
          ...want,
          userProperties: want.userProperties,
        });
      },
    ),
    { numRuns: 300 },
  );
});

test('empty User Properties: a PUBLISH without pairs, which parses back', () => {
  const bytes = encodePublishV5('a/b', Buffer.from('x'), { userProperties: {} });
  expect(bytes.toString('hex')).toBe(
    mqtt
      .generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, dup: false, retain: false }, { protocolVersion: 5 })
      .toString('hex'),
  );
  expect(parse(bytes, 5)).toMatchObject([{ cmd: 'publish', topic: 'a/b' }]);
});

const ACK_TYPES = [
  ['puback', 0x40, [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]],
  ['pubrec', 0x50, [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]],
  ['pubcomp', 0x70, [0x00, 0x92]],
] as const;

test('PUBACK, PUBREC, PUBCOMP for any packet id, and at level 5 with any reason code: what mqtt-packet writes, and they parse back', () => {
  fc.assert(
    fc.property(fc.constantFrom(...ACK_TYPES), fc.integer({ min: 1, max: 65_535 }), fc.nat(), ([cmd, byte, reasons], messageId, r) => {
      const v4 = encodeAck(byte, messageId);
      expect(v4.toString('hex')).toBe(mqtt.generate({ cmd, messageId } as mqtt.Packet).toString('hex'));
      expect(parse(v4, 4)).toMatchObject([{ cmd, messageId }]);
      const reasonCode = reasons[r % reasons.length];
      const v5 = encodeAckV5(byte, messageId, reasonCode);
      expect(v5.toString('hex')).toBe(mqtt.generate({ cmd, messageId, reasonCode } as mqtt.Packet, { protocolVersion: 5 }).toString('hex'));
      expect(parse(v5, 5)).toMatchObject([{ cmd, messageId, reasonCode }]);
    }),
    { numRuns: 1000 },
  );
});

test('the User Properties size is the pair count and the UTF-8 bytes of names and values', () => {
  fc.assert(
    fc.property(userProperties(anyString()), (up) => {
      const pairs = Object.entries(up).flatMap(([k, v]) => (typeof v === 'string' ? [v] : v).map((x) => [k, x]));
      expect(userPropertiesSize(up)).toEqual({
        count: pairs.length,
        bytes: pairs.reduce((n, [k, x]) => n + Buffer.byteLength(k) + Buffer.byteLength(x), 0),
      });
      // and the packet carries them in 5 bytes of framing per pair on top (one-byte varints here)
      const { count, bytes } = userPropertiesSize(up);
      const packet = encodePublishV5('t', Buffer.alloc(0), { userProperties: up });
      if (5 * count + bytes < 120) expect(packet.length).toBe(2 + 3 + 1 + 5 * count + bytes);
    }),
    { numRuns: 300 },
  );
});
