import * as mqtt from 'mqtt-packet';
import { encodeAck, encodePublishQos0, PINGRESP } from '../src/protocol/encode';
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

test('the reply envelope is the JSON of {Trace, Error, Result}', () => {
  for (const [error, result] of [
    ['', { a: [1, 'x'] }],
    ['', null],
    ['', undefined],
    ['', 'text "quoted"'],
    ['boom "x"', null],
  ] as const) {
    expect(JSON.parse(encodeReply('tr', error, result).toString())).toEqual({ Trace: 'tr', Error: error, Result: result ?? null });
    expect(encodeReply('tr', error, result).toString()).toBe(JSON.stringify({ Trace: 'tr', Error: error, Result: result === undefined ? null : result }));
  }
});
