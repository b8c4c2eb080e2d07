import * as mqtt from 'mqtt-packet';
import { encodeConnackV4 } from '../src/protocol/encode';

test('the hand-encoded 3.1.1 CONNACK is byte for byte what mqtt-packet generates, for every return code and Session Present', () => {
  for (const level of [3, 4] as const)
    for (let returnCode = 0; returnCode <= 5; returnCode++)
      for (const sessionPresent of [false, true]) {
        const theirs = mqtt.generate({ cmd: 'connack', returnCode, sessionPresent }, { protocolVersion: level });
        expect(encodeConnackV4(returnCode, sessionPresent)).toEqual(theirs);
      }
});
