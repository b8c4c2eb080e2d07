import * as mqtt from 'mqtt-packet';
import {
  encodeAck,
  encodeAckV5,
  encodeConnackV4,
  encodePublishQos0,
  encodePublishV5,
  PINGRESP,
  type PublishProperties,
} from '../src/protocol/encode';
import { encodeReply } from '@mqgate/gate';

describe('hand-written encoders write what mqtt-packet writes', () => {
  test.each([
    ['short', 'a/HD_b/1', 0],
    ['127-byte remaining length edge', 'x'.repeat(10), 115],
    ['two-byte length', 'echo/HD_echo/42', 300],
    ['three-byte length', 'push/topic', 20_000],
    ['four-byte length', 't', 2_100_000],
    ['utf-8 topic', 'chät/HD_sägen/✓', 5],
  ])('QoS 0 PUBLISH, %s', (_name, topic, size) => {
    const payload = Buffer.alloc(size as number, 7);
    const expected = mqtt.generate({ cmd: 'publish', topic: topic as string, payload, qos: 0, dup: false, retain: false });
    expect(encodePublishQos0(topic as string, payload).equals(expected)).toBe(true);
  });

  test('a topic over 65535 bytes is refused', () => {
    expect(() => encodePublishQos0('t'.repeat(70_000), Buffer.alloc(0))).toThrow(RangeError);
  });

  test.each([
    ['puback', 0x40],
    ['pubrec', 0x50],
    ['pubcomp', 0x70],
  ] as const)('%s', (cmd, byte) => {
    for (const id of [1, 255, 256, 65535]) {
      expect(encodeAck(byte, id).equals(mqtt.generate({ cmd, messageId: id } as mqtt.Packet))).toBe(true);
    }
  });

  test('pingresp', () => {
    expect(PINGRESP.equals(mqtt.generate({ cmd: 'pingresp' }))).toBe(true);
  });
});

describe('hand-written MQTT 5 encoders write what mqtt-packet writes at protocol level 5', () => {
  const V5 = { protocolVersion: 5 } as const;
  const cases: Array<[string, string, number, PublishProperties | undefined]> = [
    ['no properties', 'a/HD_b', 3, undefined],
    ['empty properties', 'a/HD_b', 3, {}],
    [
      'reply envelope',
      'some/response',
      60,
      { payloadFormatIndicator: true, contentType: 'application/json', correlationData: Buffer.from([0, 1, 255]) },
    ],
    ['push with expiry', 'push/x', 20_000, { messageExpiryInterval: 3600, contentType: 'text/plain' }],
    [
      'user properties, repeated name',
      'r',
      1,
      { payloadFormatIndicator: true, contentType: 'application/json', userProperties: { a: '1', b: ['x', 'yé'] } },
    ],
    ['four-byte length', 't', 2_100_000, { payloadFormatIndicator: true, correlationData: Buffer.alloc(300, 1) }],
    ['utf-8 topic and content type', 'chät/✓', 5, { contentType: 'tëxt' }],
  ];
  test.each(cases)('QoS 0 PUBLISH v5, %s', (_name, topic, size, props) => {
    const payload = Buffer.alloc(size, 7);
    const expected = mqtt.generate(
      { cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false, properties: props as mqtt.IPublishPacket['properties'] },
      V5,
    );
    expect(encodePublishV5(topic, payload, props).toString('hex')).toBe(expected.toString('hex'));
  });

  test('a string property over 65535 bytes is refused', () => {
    expect(() => encodePublishV5('t', Buffer.alloc(0), { contentType: 'x'.repeat(70_000) })).toThrow(RangeError);
  });

  test.each([
    ['puback', 0x40],
    ['pubrec', 0x50],
    ['pubcomp', 0x70],
  ] as const)('%s with a reason code', (cmd, byte) => {
    for (const id of [1, 256, 65535]) {
      for (const reasonCode of [0x00, 0x97, 0x99]) {
        expect(encodeAckV5(byte, id, reasonCode).toString('hex')).toBe(
          mqtt.generate({ cmd, messageId: id, reasonCode } as mqtt.Packet, V5).toString('hex'),
        );
      }
    }
  });
});

test('the 3.1.1 CONNACK accepting a CONNECT, Session Present 0 and 1: what mqtt-packet writes, a new buffer each time', () => {
  for (const sessionPresent of [false, true]) {
    expect(encodeConnackV4(0, sessionPresent).toString('hex')).toBe(
      mqtt.generate({ cmd: 'connack', returnCode: 0, sessionPresent }, { protocolVersion: 4 }).toString('hex'),
    );
  }
  expect(encodeConnackV4(0, false)).not.toBe(encodeConnackV4(0, false));
});

test('the reply envelope is the JSON of {Trace, Error, Result}', () => {
  for (const [error, result] of [
    ['', { a: [1, 'x'] }],
    ['', null],
    ['', undefined],
    ['', 'text "quoted"'],
    ['boom "x"', null],
  ] as const) {
    expect(JSON.parse(encodeReply('tr', error, result).toString())).toEqual({ Trace: 'tr', Error: error, Result: result ?? null });
    expect(encodeReply('tr', error, result).toString()).toBe(
      JSON.stringify({ Trace: 'tr', Error: error, Result: result === undefined ? null : result }),
    );
  }
});
