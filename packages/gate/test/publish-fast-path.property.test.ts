/**
 * Property tests of the PUBLISH fast path (src/protocol/publish-fast-path.ts), which decodes
 * QoS 0/1 PUBLISHes ahead of mqtt-packet: wherever it returns a packet, mqtt-packet parses the
 * same bytes to the same packet, field for field, without an error; over valid PUBLISHes
 * (MQTT 3.1.1 and 5, every property a client may send, and some it may not), over those
 * bytes cut, extended and flipped, and over hand-made property lists (runs past the end,
 * repeats, unknown ids). Valid QoS 0/1 PUBLISHes with only the handled properties are never
 * declined (the fast path is taken); everything it declines goes to mqtt-packet as before.
 */
import fc from 'fast-check';
import * as mqtt from 'mqtt-packet';
import { propertiesProblem } from '../src/protocol/mqtt5';
import { parsePublishFast } from '../src/protocol/publish-fast-path';
import { propertyRulesProblem } from '../src/protocol/v5-property-rules';

/** What mqtt-packet makes of `buf`: its packets and whether it reported an error. */
function reference(buf: Buffer, v5: boolean): { packets: mqtt.Packet[]; error: boolean } {
  const parser = mqtt.parser({ protocolVersion: v5 ? 5 : 4 });
  const packets: mqtt.Packet[] = [];
  let error = false;
  parser.on('packet', (p: mqtt.Packet) => packets.push(p));
  parser.on('error', () => (error = true));
  parser.parse(buf);
  return { packets, error };
}

/** Own enumerable fields, with Buffers as hex and null-prototype objects as plain ones: comparable with toEqual, field for field. */
function fields(p: unknown): unknown {
  if (Buffer.isBuffer(p)) return { hex: p.toString('hex') };
  if (Array.isArray(p)) return p.map(fields);
  if (p !== null && typeof p === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(p)) out[k] = fields((p as Record<string, unknown>)[k]);
    return out;
  }
  return p;
}

/** The fast path's verdict on one packet's bytes is mqtt-packet's, wherever it gives one. */
function agrees(buf: Buffer, v5: boolean): boolean {
  const fast = parsePublishFast(buf, 0, buf.length, v5);
  if (fast === undefined) return false;
  const ref = reference(buf, v5);
  expect(ref.error).toBe(false);
  expect(ref.packets).toHaveLength(1);
  expect(fields(fast)).toEqual(fields(ref.packets[0]));
  expect(Object.keys(fast)).toEqual(Object.keys(ref.packets[0]).filter((k) => (ref.packets[0] as never)[k] !== undefined));
  // What the connection then skips for it (onPacket `vetted`) would not have refused it.
  expect(propertiesProblem(fast.properties)).toBeUndefined();
  expect(propertyRulesProblem(fast)).toBeUndefined();
  // The payload is a view of the packet's bytes, as mqtt-packet's is.
  expect(fast.payload instanceof Buffer && (fast.payload as Buffer).buffer === buf.buffer).toBe(true);
  return true;
}

const str = (maxLength: number) => fc.string({ unit: 'grapheme', maxLength });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));

/** The properties the fast path decodes (a client's request properties). */
const handled = fc.record(
  {
    payloadFormatIndicator: fc.boolean(),
    messageExpiryInterval: fc.nat({ max: 0xffffffff }),
    contentType: str(20),
    responseTopic: str(30),
    correlationData: bytes(40),
    topicAlias: fc.integer({ min: 1, max: 65_535 }),
    userProperties: fc.dictionary(str(8), fc.oneof(str(8), fc.array(str(6), { minLength: 1, maxLength: 3 })), { maxKeys: 4 }),
  },
  { requiredKeys: [] },
);

const publish = fc.record({
  v5: fc.boolean(),
  topic: str(40),
  payload: fc.oneof(
    { weight: 9, arbitrary: bytes(200) },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 20_000 }).map((n) => Buffer.alloc(n, 7)) },
  ),
  qos: fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1>,
  messageId: fc.integer({ min: 1, max: 65_535 }),
  dup: fc.boolean(),
  retain: fc.boolean(),
  properties: handled,
});

interface Pub {
  v5: boolean;
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  messageId: number;
  dup: boolean;
  retain: boolean;
  properties: mqtt.IPublishPacket['properties'];
}

function encode(p: Pub): Buffer {
  return mqtt.generate(
    {
      cmd: 'publish',
      topic: p.topic,
      payload: p.payload,
      qos: p.qos,
      messageId: p.messageId,
      dup: p.dup,
      retain: p.retain,
      properties: p.v5 ? p.properties : undefined,
    },
    { protocolVersion: p.v5 ? 5 : 4 },
  );
}

test('every valid QoS 0/1 PUBLISH with the handled properties is decoded, as mqtt-packet decodes it', () => {
  fc.assert(
    fc.property(publish, (p) => {
      const buf = encode(p as Pub);
      if (buf.length === 0) return; // mqtt-packet refuses to encode it (MQTT 5: an empty topic without a Topic Alias)
      expect(agrees(buf, p.v5)).toBe(true);
    }),
    { numRuns: 2000 },
  );
});

test('a PUBLISH cut short, extended, or with a byte changed: decoded only where mqtt-packet decodes it alike', () => {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('extend' as const), extra: bytes(8) }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  );
  fc.assert(
    fc.property(publish, fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.boolean(), (p, mutations, asV5) => {
      let buf = encode(p as Pub);
      for (const m of mutations) {
        if (m.kind === 'cut') buf = buf.subarray(0, m.at % (buf.length + 1));
        else if (m.kind === 'extend') buf = Buffer.concat([buf, m.extra]);
        else if (buf.length > 0) {
          buf = Buffer.from(buf);
          buf[m.at % buf.length] = m.value;
        }
      }
      if (buf.length === 0) return;
      agrees(Buffer.from(buf), asV5); // asserts inside when the fast path decodes it
    }),
    { numRuns: 3000 },
  );
});

test('hand-made MQTT 5 property lists: repeats, unknown ids, values running past the list: declined unless mqtt-packet agrees', () => {
  const prop = fc.oneof(
    fc.constantFrom(1, 2, 3, 8, 9, 11, 35, 38, 0, 17, 255).chain((id) => bytes(12).map((b) => Buffer.concat([Buffer.from([id]), b]))),
  );
  fc.assert(
    fc.property(
      str(10),
      fc.constantFrom(0, 1),
      fc.array(prop, { maxLength: 4 }),
      fc.integer({ min: -3, max: 3 }),
      bytes(10),
      (topic, qos, props, skew, payload) => {
        const list = Buffer.concat(props);
        const plen = Math.max(0, list.length + skew);
        const t = Buffer.from(topic, 'utf8');
        const varHeader = Buffer.concat([
          Buffer.from([t.length >> 8, t.length & 0xff]),
          t,
          qos === 1 ? Buffer.from([0, 9]) : Buffer.alloc(0),
          varint(plen),
          list,
          payload,
        ]);
        const buf = Buffer.concat([Buffer.from([0x30 | (qos << 1)]), varint(varHeader.length), varHeader]);
        agrees(buf, true);
      },
    ),
    { numRuns: 3000 },
  );
});

test('declined: QoS 2, other packet types, a Subscription Identifier, a property given twice, a 5-byte length', () => {
  const v5 = { protocolVersion: 5 } as const;
  const declined = [
    mqtt.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 2, messageId: 3, dup: false, retain: false }),
    mqtt.generate({ cmd: 'pingreq' }),
    mqtt.generate({ cmd: 'puback', messageId: 4 }),
    mqtt.generate(
      { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { subscriptionIdentifier: 5 } },
      v5,
    ),
    // Response Topic twice (mqtt-packet makes an array of it, which the gate refuses).
    Buffer.from([0x30, 10, 0, 1, 0x61, 8, 8, 0, 1, 0x62, 8, 0, 1, 0x63].slice(0, 12)),
    Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
  ];
  const twice = Buffer.from([0x30, 13, 0, 1, 0x61, 8, 8, 0, 1, 0x62, 8, 0, 1, 0x63, 0]);
  for (const b of declined) expect(parsePublishFast(b, 0, b.length, true)).toBeUndefined();
  expect(parsePublishFast(twice, 0, twice.length - 1, true)).toBeUndefined();
  // An earlier empty User Property value is replaced, not collected (mqtt-packet tests truthiness).
  const empty = mqtt.generate(
    { cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 0, dup: false, retain: false, properties: { userProperties: { k: ['', 'v'] } } },
    v5,
  );
  expect(agrees(empty, true)).toBe(true);
  expect(parsePublishFast(empty, 0, empty.length, true)?.properties?.userProperties).toEqual({ k: 'v' });
});

function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}
