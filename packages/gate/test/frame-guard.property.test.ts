/**
 * Property tests of the frame guard (src/protocol/frame-guard.ts), which finds packet
 * boundaries in the byte stream before mqtt-packet sees it: over any valid packets cut
 * anywhere, over oversize headers, and over arbitrary bytes.
 */
import fc from 'fast-check';
import * as mqtt from 'mqtt-packet';
import { FrameGuard } from '../src/protocol/frame-guard';

const MAX = 65_536;
const id = fc.integer({ min: 1, max: 65_535 });
const topic = fc.string({ unit: 'grapheme', maxLength: 40 });
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));

/** A valid packet of any type a client sends (and some it does not), MQTT 3.1.1 or 5, as mqtt-packet encodes it. */
const packet = fc.oneof(
  fc
    .record({
      v5: fc.boolean(),
      topic: topic.filter((t) => t.length > 0),
      payload: fc.oneof(
        { weight: 9, arbitrary: bytes(300) },
        { weight: 1, arbitrary: fc.integer({ min: 16_000, max: 40_000 }).map((n) => Buffer.alloc(n, 7)) },
      ),
      qos: fc.constantFrom(0, 1, 2),
      id,
    })
    .map((p) =>
      mqtt.generate(
        {
          cmd: 'publish',
          topic: p.topic,
          payload: p.payload,
          qos: p.qos as 0 | 1 | 2,
          messageId: p.qos ? p.id : undefined,
          dup: false,
          retain: false,
          ...(p.v5 ? { properties: { correlationData: p.payload.subarray(0, 10), userProperties: { k: 'v' } } } : {}),
        },
        { protocolVersion: p.v5 ? 5 : 4 },
      ),
    ),
  fc
    .record({ cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp'), id, v5: fc.boolean() })
    .map((p) =>
      mqtt.generate(
        { cmd: p.cmd, messageId: p.id, ...(p.v5 ? { reasonCode: p.cmd === 'pubrel' || p.cmd === 'pubcomp' ? 0x92 : 0x10 } : {}) } as mqtt.Packet,
        { protocolVersion: p.v5 ? 5 : 4 },
      ),
    ),
  fc
    .record({
      topics: fc.array(
        topic.filter((t) => t.length > 0),
        { minLength: 1, maxLength: 4 },
      ),
      id,
    })
    .map((p) => mqtt.generate({ cmd: 'subscribe', messageId: p.id, subscriptions: p.topics.map((t) => ({ topic: t, qos: 1 as const })) })),
  fc
    .record({
      topics: fc.array(
        topic.filter((t) => t.length > 0),
        { minLength: 1, maxLength: 4 },
      ),
      id,
    })
    .map((p) => mqtt.generate({ cmd: 'unsubscribe', messageId: p.id, unsubscriptions: p.topics })),
  fc.record({ clientId: topic, level: fc.constantFrom(3, 4, 5), user: fc.option(topic, { nil: undefined }) }).map((p) =>
    mqtt.generate(
      {
        cmd: 'connect',
        protocolId: p.level === 3 ? 'MQIsdp' : 'MQTT',
        protocolVersion: p.level as 3 | 4 | 5,
        clientId: p.clientId || 'c',
        clean: true,
        keepalive: 30,
        username: p.user,
      },
      { protocolVersion: p.level === 5 ? 5 : 4 },
    ),
  ),
  fc.constantFrom(mqtt.generate({ cmd: 'pingreq' }), mqtt.generate({ cmd: 'disconnect' }), mqtt.generate({ cmd: 'pingresp' })),
);

/** `stream` cut at the given points (taken modulo its length). */
function cut(stream: Buffer, points: number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (stream.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of [...at, stream.length]) {
    if (p > from) out.push(stream.subarray(from, p));
    from = Math.max(from, p);
  }
  return out;
}

/** Feeds the chunks as MqttConnection.feed does; returns the ends it reports inside chunks (stream offsets), or the violation. */
function boundaries(guard: FrameGuard, chunks: Buffer[]): { ends: number[]; violation?: string } {
  const ends: number[] = [];
  let base = 0;
  for (const chunk of chunks) {
    let end = 0;
    while (end < chunk.length) {
      const next = guard.next(chunk, end);
      if (next < 0) return { ends, violation: guard.violation };
      expect(next).toBeGreaterThan(end);
      expect(next).toBeLessThanOrEqual(chunk.length);
      if (next < chunk.length) ends.push(base + next);
      end = next;
    }
    base += chunk.length;
  }
  return { ends };
}

test('valid packets cut anywhere: the guard finds exactly their boundaries and ends in step', () => {
  fc.assert(
    fc.property(fc.array(packet, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (packets, points) => {
      const stream = Buffer.concat(packets);
      const chunks = cut(stream, points);
      const guard = new FrameGuard(MAX);
      const { ends, violation } = boundaries(guard, chunks);
      expect(violation).toBeUndefined();
      // Packet ends that fall inside a chunk are reported there, and nothing else is.
      const chunkEnds = new Set<number>();
      let off = 0;
      for (const c of chunks) chunkEnds.add((off += c.length));
      const expected: number[] = [];
      off = 0;
      for (const p of packets) {
        off += p.length;
        if (!chunkEnds.has(off)) expected.push(off);
      }
      expect(ends).toEqual(expected);
      // After the last byte the guard is at a packet boundary: a PINGREQ next is one whole packet.
      expect(guard.next(Buffer.from([0xc0, 0x00]), 0)).toBe(2);
      expect(guard.next(Buffer.from([0xc0, 0x00, 0xd0]), 0)).toBe(2);
    }),
    { numRuns: 300 },
  );
});

test('a packet over maxPacketSize is refused on its fixed header, before any of its body', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 70_000 }),
      fc.integer({ min: 0, max: 268_435_455 }),
      fc.integer({ min: 0, max: 255 }),
      fc.array(fc.nat(), { maxLength: 4 }),
      (max, remaining, first, points) => {
        const rl: number[] = [];
        let n = remaining;
        do {
          let b = n % 128;
          n = Math.floor(n / 128);
          if (n > 0) b |= 0x80;
          rl.push(b);
        } while (n > 0);
        const header = Buffer.from([first, ...rl]);
        const total = header.length + remaining;
        const guard = new FrameGuard(max);
        const { violation, ends } = boundaries(guard, cut(header, points));
        if (total > max) {
          expect(violation).toMatch(new RegExp(`^packet of ${total} bytes exceeds maxPacketSize ${max}$`));
        } else {
          expect(violation).toBeUndefined();
          // Under the limit: a zero-length body ends at the header; otherwise it is awaited.
          if (remaining > 0) expect(guard.next(Buffer.alloc(remaining), 0)).toBe(remaining);
        }
        expect(ends.every((e) => e <= header.length)).toBe(true);
      },
    ),
    { numRuns: 2000 },
  );
});

test('arbitrary bytes, cut anywhere: the guard never throws, always advances, never past the chunk; a violation is final', () => {
  fc.assert(
    fc.property(bytes(600), fc.array(fc.nat(), { maxLength: 30 }), fc.integer({ min: 1, max: 2000 }), (stream, points, max) => {
      const guard = new FrameGuard(max);
      const { violation } = boundaries(guard, cut(stream, points));
      if (violation !== undefined) expect(violation).toMatch(/^(malformed Remaining Length|packet of \d+ bytes exceeds maxPacketSize)/);
    }),
    { numRuns: 3000 },
  );
});

test('a fifth Remaining Length byte is malformed wherever the chunks are cut', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0x80, max: 0xff }), { minLength: 4, maxLength: 4 }),
      fc.integer({ min: 0, max: 0xff }),
      fc.array(fc.nat(), { maxLength: 5 }),
      (cont, last, points) => {
        const guard = new FrameGuard(268_435_460);
        const { violation } = boundaries(guard, cut(Buffer.from([0x30, ...cont, last]), points));
        expect(violation).toBe('malformed Remaining Length (more than 4 bytes, MQTT-2.2.3)');
      },
    ),
  );
});
