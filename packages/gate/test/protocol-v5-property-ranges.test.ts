/**
 * MQTT 5 property rules on every packet a client sends (protocol/v5-property-rules.ts), one
 * row per rule, raw bytes over TCP: a CONNECT breaking one gets CONNACK 0x82 Protocol Error
 * (a value out of range) or 0x81 Malformed Packet (a property the packet may not carry,
 * MQTT 5.0 §2.2.2.2) and is closed; a later packet gets DISCONNECT with that code. Each row
 * also checks that the gate keeps serving.
 */
import * as mqttPacket from 'mqtt-packet';
import { startGate, RawClient, type Harness } from './helpers/harness';
import { RawV5Peers } from './v5-support';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A fixed header (type byte) and the body with its one-byte Remaining Length. */
const packet = (type: number, body: Buffer) => Buffer.concat([Buffer.from([type, body.length]), body]);

/** A v5 CONNECT, client id "c", with these property bytes (and none for Will). */
const connectWith = (props: string) => {
  const p = hex(props);
  return packet(0x10, Buffer.concat([hex('00044d515454 05 02 003c'), Buffer.from([p.length]), p, hex('0001 63')]));
};
/** A v5 CONNECT with a will (QoS 0) whose Will Properties are these bytes. */
const connectWithWill = (willProps: string) => {
  const p = hex(willProps);
  return packet(0x10, Buffer.concat([hex('00044d515454 05 06 003c 00 0001 63'), Buffer.from([p.length]), p, hex('0001 77 0000')]));
};

let h: Harness;
const v5 = new RawV5Peers();
beforeAll(async () => {
  h = await startGate();
});
afterEach(() => v5.closeAll());
afterAll(() => h.stop());

async function stillServed(): Promise<void> {
  const other = await RawClient.open(h.tcpPort);
  expect((await other.connect({ clientId: 'still-served' })).returnCode).toBe(0);
  other.destroy();
}

test.each([
  ['Receive Maximum 0', '0x82', connectWith('21 0000')],
  ['Maximum Packet Size 0', '0x82', connectWith('27 00000000')],
  ['Authentication Data without an Authentication Method', '0x82', connectWith('16 0001 78')],
  ['a Server Keep Alive (a CONNACK property)', '0x81', connectWith('13 000a')],
  ['a Subscription Identifier', '0x81', connectWith('0b 01')],
  ['a Topic Alias', '0x81', connectWith('23 0001')],
  ['a Will Property Receive Maximum', '0x81', connectWithWill('21 000a')],
])('CONNECT with %s gets CONNACK %s and is closed', async (_what, code, bytes) => {
  const peer = await v5.tcp(h.tcpPort);
  peer.sendBytes(bytes);
  const ack = (await peer.next('connack')) as mqttPacket.IConnackPacket;
  expect(ack.reasonCode).toBe(Number(code));
  await peer.closed;
  await stillServed();
});

test.each([
  ['Receive Maximum 10', connectWith('21 000a')],
  ['Maximum Packet Size 1', connectWith('27 00000001')],
  ['Topic Alias Maximum 0 (allowed)', connectWith('22 0000')],
  ['Will Properties in range', connectWithWill('18 0000000a 02 0000003c')],
])('CONNECT with %s is accepted', async (_what, bytes) => {
  const peer = await v5.tcp(h.tcpPort);
  peer.sendBytes(bytes);
  expect(((await peer.next('connack')) as mqttPacket.IConnackPacket).reasonCode).toBe(0);
});

test.each([
  ['PUBLISH with a Subscription Identifier (MQTT-3.3.4-6)', '0x82', packet(0x30, hex('0001 61 02 0b01 7b7d'))],
  ['PUBLISH with a Receive Maximum', '0x81', packet(0x30, hex('0001 61 03 21000a 7b7d'))],
  ['SUBSCRIBE with Subscription Identifier 0', '0x82', packet(0x82, hex('0001 02 0b00 0001 61 00'))],
  ['SUBSCRIBE with a Reason String', '0x81', packet(0x82, hex('0001 04 1f000178 0001 61 00'))],
  ['UNSUBSCRIBE with a Reason String', '0x81', packet(0xa2, hex('0001 04 1f000178 0001 61'))],
  ['PUBACK with a Topic Alias', '0x81', packet(0x40, hex('0001 00 03 230001'))],
  ['DISCONNECT with a Receive Maximum', '0x81', packet(0xe0, hex('00 03 21000a'))],
  ['AUTH with Authentication Data without a method', '0x82', packet(0xf0, hex('18 04 16000178'))],
])('%s gets DISCONNECT %s and is closed', async (_what, code, bytes) => {
  const peer = await v5.connected(h.tcpPort, { clientId: 'ranges' });
  peer.sendBytes(bytes);
  expect((await peer.disconnected()).reasonCode).toBe(Number(code));
  await stillServed();
});
