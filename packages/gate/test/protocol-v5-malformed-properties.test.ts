/**
 * MQTT 5 properties that mqtt-packet hands over malformed (found by `npm run fuzz`, see
 * fuzz/findings/README.md): a string or binary property whose length runs past its packet
 * arrives as `null`, a property sent twice as an array. Each was one packet that ended the
 * gate process; now it closes only that connection (Malformed Packet 0x81 / Protocol Error
 * 0x82, MQTT 5.0 §2.2.2.2), and the gate keeps serving.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { startGate, RawClient, type Harness } from './helpers/harness';
import { within } from './helpers/waiters';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** CONNECT v5, client id "c", no properties. */
const CONNECT_V5 = hex('10 0e 00044d515454 05 02 003c 00 0001 63');

let h: Harness;
beforeAll(async () => {
  h = await startGate();
});
afterAll(() => h.stop());

test.each([
  ['CONNECT with a User Property value that runs past the packet', hex('10 14 00044d515454 05 02 003c 06 26 0001 6b ffff 0001 63')],
  ['PUBLISH with a User Property value that runs past the packet', Buffer.concat([CONNECT_V5, hex('30 0a 0001 61 06 26 0001 6b ffff')])],
  [
    'PUBLISH with a repeated User Property whose second value runs past',
    Buffer.concat([CONNECT_V5, hex('30 10 0001 61 0c 26 0001 6b 0001 76 26 0001 6b ffff')]),
  ],
  ['PUBLISH with a Response Topic that runs past the packet', Buffer.concat([CONNECT_V5, hex('30 07 0001 61 03 08 ffff')])],
  ['PUBLISH with Correlation Data that runs past the packet', Buffer.concat([CONNECT_V5, hex('30 07 0001 61 03 09 ffff')])],
  ['PUBLISH with the Response Topic twice', Buffer.concat([CONNECT_V5, hex('30 0e 0001 61 08 08 0001 62 08 0001 62 7b7d')])],
])('%s closes that connection; the gate keeps serving', async (_name, bytes) => {
  const s = netConnect(h.tcpPort, '127.0.0.1');
  s.on('error', () => undefined);
  const received: Buffer[] = [];
  s.on('data', (d: Buffer) => received.push(d));
  await once(s, 'connect');
  s.write(bytes);
  await within(once(s, 'close'), 3000, 'the gate to close the connection');
  // After a CONNACK, an MQTT 5 DISCONNECT (type 0xE0) with 0x81 Malformed Packet or 0x82 Protocol Error comes first.
  const all = Buffer.concat(received);
  if (all.length > 0 && all[0] === 0x20) {
    const at = all.indexOf(0xe0, 2 + all[1]);
    expect(at).toBeGreaterThan(0);
    expect([0x81, 0x82]).toContain(all[at + 2]);
  }
  const other = await RawClient.open(h.tcpPort);
  expect((await other.connect({ clientId: 'still-served' })).returnCode).toBe(0);
  other.destroy();
});
