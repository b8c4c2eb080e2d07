import * as mqtt from 'mqtt-packet';
import { packetParser } from '../src/protocol/packet-parser';

type Event = ['packet', mqtt.Packet] | ['error', string];

/** Feeds `bytes` to a parser in chunks cut at `cuts` and records what it emits. */
function run(parser: mqtt.Parser, bytes: Buffer, cuts: number[]): Event[] {
  const events: Event[] = [];
  parser.on('packet', (p) => events.push(['packet', p]));
  parser.on('error', (e: Error) => events.push(['error', e.message]));
  let from = 0;
  for (const at of [...cuts, bytes.length]) {
    if (at > from) parser.parse(bytes.subarray(from, at));
    from = Math.max(from, at);
  }
  return events;
}

const V4 = { protocolVersion: 4 } as const;
const V5 = { protocolVersion: 5 } as const;
const payload = Buffer.from('{"hello":"world"}');

const stream311 = Buffer.concat([
  mqtt.generate(
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c1', clean: true, keepalive: 30, username: 'u', password: Buffer.from('p') },
    V4,
  ),
  mqtt.generate({ cmd: 'publish', topic: 'echo/HD_echo/1', payload, qos: 0, retain: false, dup: false }, V4),
  mqtt.generate({ cmd: 'publish', topic: 'echo/HD_echo/2', payload: Buffer.alloc(5000, 7), qos: 1, messageId: 9, retain: false, dup: false }, V4),
  mqtt.generate({ cmd: 'publish', topic: 'a/b', payload, qos: 2, messageId: 10, retain: false, dup: true }, V4),
  mqtt.generate({ cmd: 'pubrel', messageId: 10 }, V4),
  mqtt.generate({ cmd: 'puback', messageId: 3 }, V4),
  mqtt.generate({ cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: 'x/#', qos: 1 }] }, V4),
  mqtt.generate({ cmd: 'unsubscribe', messageId: 5, unsubscriptions: ['x/#'] }, V4),
  mqtt.generate({ cmd: 'pingreq' }, V4),
  mqtt.generate({ cmd: 'disconnect' }, V4),
]);

const stream5 = Buffer.concat([
  mqtt.generate(
    {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: '',
      clean: true,
      keepalive: 10,
      properties: { sessionExpiryInterval: 60, receiveMaximum: 20, maximumPacketSize: 100000, userProperties: { a: 'b' } },
      will: { topic: 'w', payload: Buffer.from('bye'), qos: 0, retain: false, properties: { willDelayInterval: 5 } },
    },
    V5,
  ),
  mqtt.generate(
    {
      cmd: 'publish',
      topic: 'echo/HD_echo/1',
      payload,
      qos: 1,
      messageId: 1,
      retain: false,
      dup: false,
      properties: {
        responseTopic: 'reply/x',
        correlationData: Buffer.from([1, 2, 3]),
        topicAlias: 2,
        payloadFormatIndicator: true,
        userProperties: { k: ['v1', 'v2'] },
      },
    },
    V5,
  ),
  mqtt.generate({ cmd: 'puback', messageId: 7, reasonCode: 0x10, properties: { reasonString: 'no' } }, V5),
  mqtt.generate({ cmd: 'disconnect', reasonCode: 4, properties: { sessionExpiryInterval: 0 } }, V5),
]);

/** Deterministic chunkings: whole, every byte apart, and pseudo-random cuts. */
function chunkings(length: number): number[][] {
  const out: number[][] = [[], Array.from({ length }, (_, i) => i)];
  let seed = 17;
  for (let k = 0; k < 20; k++) {
    const cuts: number[] = [];
    for (let at = 0; at < length;) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      at += 1 + (seed % 300);
      cuts.push(at);
    }
    out.push(cuts);
  }
  return out;
}

test.each([
  ['3.1.1', stream311],
  ['MQTT 5', stream5],
])('the lean parser emits packet for packet what mqtt.parser() does (%s stream, any chunking)', (_name, bytes) => {
  for (const cuts of chunkings(bytes.length)) {
    const ours = run(packetParser(), bytes, cuts);
    expect(ours.length).toBeGreaterThan(3);
    expect(ours).toEqual(run(mqtt.parser(), bytes, cuts));
  }
});

test.each([
  ['PUBREL without its reserved flags 0010', Buffer.from([0x60, 0x02, 0x00, 0x01])],
  ['PUBLISH at QoS 3', Buffer.from([0x10, 0x0c, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 30, 0, 0, 0x36, 0x03, 0, 1, 0x61])],
  ['unknown protocol level', Buffer.from([0x10, 0x0c, 0, 4, 0x4d, 0x51, 0x54, 0x54, 9, 2, 0, 30, 0, 0])],
  ['truncated CONNECT', Buffer.from([0x10, 0x03, 0, 4, 0x4d])],
])('malformed input (%s): the same error as mqtt.parser()', (_name, bytes) => {
  const ours = run(packetParser(), bytes, []);
  expect(ours.some(([kind]) => kind === 'error')).toBe(true);
  expect(ours).toEqual(run(mqtt.parser(), bytes, []));
});

test('parsers do not share state: a v5 CONNECT on one leaves another at 3.1.1', () => {
  const a = packetParser();
  const b = packetParser();
  run(a, stream5, []);
  expect(run(b, stream311, [])).toEqual(run(mqtt.parser(), stream311, []));
});
