// Server-sent MQTT 5 DISCONNECT before the gate closes a connection on purpose (MQTT 5.0).
import type { IPublishPacket } from 'mqtt-packet';
import { gateClient, GATE_MODULE_TYPE, type SessionData } from '@mqgate/rpc';
import { KICK_TOPIC } from '@mqgate/gate';
import { startGate, type Harness } from './helpers/harness';
import { disconnectOf, nextSession, within } from './helpers/waiters';
import { RawV5Peers, type RawV5 } from './v5-support';

let h: Harness;
const peers = new RawV5Peers();
beforeAll(async () => {
  h = await startGate({ maxPacketSize: 1000, maxKeepalive: 1 });
  await h.serve('svc', (_fn, args) => args[1]);
});
afterAll(() => h.stop());
afterEach(() => peers.closeAll());

async function codeOf(raw: RawV5): Promise<{ reasonCode: number | undefined; reasonString: string | undefined }> {
  const d = await within(raw.disconnected(), 3000, 'DISCONNECT then close');
  return { reasonCode: d.reasonCode, reasonString: d.properties?.reasonString };
}

async function connected(clientId: string): Promise<{ raw: RawV5; session: SessionData }> {
  const session = nextSession(h);
  const raw = await peers.connected(h.tcpPort, { clientId });
  return { raw, session: await session };
}

test('0x95 Packet too large: a packet over maxPacketSize; the gate keeps serving others', async () => {
  const { raw } = await connected('big');
  raw.send({ cmd: 'publish', topic: 'svc/HD_echo', payload: Buffer.alloc(2000), qos: 0, dup: false, retain: false });
  expect((await codeOf(raw)).reasonCode).toBe(0x95);
  const other = await peers.connected(h.tcpPort, { clientId: 'other' });
  expect((await within(other.ask('svc/HD_echo', '{"ok":1}', { responseTopic: 'o' }, 'o'), 2000, 'reply')).payload.toString()).toContain('"ok":1');
});

test('0x81 Malformed Packet: a PUBLISH whose property length runs past the packet', async () => {
  const { raw } = await connected('malformed');
  // PUBLISH, topic "a/b", property length 9 but only 1 byte follows.
  raw.sendBytes(Buffer.from([0x30, 7, 0, 3, 0x61, 0x2f, 0x62, 9, 0x01]));
  expect((await codeOf(raw)).reasonCode).toBe(0x81);
});

test.each([
  ['a second CONNECT', { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'again', keepalive: 60 }],
  ['an AUTH (no exchange is supported)', { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'x' } }],
  ['a SUBSCRIBE without filters', null],
])('0x82 Protocol Error: %s', async (name, packet) => {
  const { raw } = await connected(`proto-${name.length}`);
  // mqtt-packet will not generate an empty SUBSCRIBE: packet id 1, property length 0, no filters.
  if (packet === null) raw.sendBytes(Buffer.from([0x82, 3, 0, 1, 0]));
  else raw.send(packet as never);
  expect((await codeOf(raw)).reasonCode).toBe(0x82);
});

test('0x8E Session taken over: the older connection gets gate/kick, then DISCONNECT 0x8E (MQTT-3.1.4-3)', async () => {
  const { raw: older } = await connected('twin');
  await peers.connected(h.tcpPort, { clientId: 'twin' });
  const kick = (await within(older.next('publish'), 2000, 'kick push')) as IPublishPacket;
  expect(kick.topic).toBe(KICK_TOPIC);
  expect((await codeOf(older)).reasonCode).toBe(0x8e);
});

test("0x98 Administrative action: a module's session.close(reason) sends gate/kick, then DISCONNECT with the reason as Reason String", async () => {
  const { raw, session } = await connected('admin');
  const [gate] = h.transport.servers(GATE_MODULE_TYPE);
  await gateClient(h.transport, gate.serverId).close(session.sessionId, 'banned for spam');
  const kick = (await within(raw.next('publish'), 2000, 'kick push')) as IPublishPacket;
  expect(JSON.parse(kick.payload.toString())).toEqual({ reason: 'banned for spam' });
  expect(await codeOf(raw)).toEqual({ reasonCode: 0x98, reasonString: 'banned for spam' });
});

test('0x8D Keep Alive timeout: past 1.5 × the Server Keep Alive (maxKeepalive 1 s)', async () => {
  const raw = await peers.tcp(h.tcpPort);
  expect((await raw.connect({ clientId: 'sleepy', keepalive: 60 })).properties?.serverKeepAlive).toBe(1);
  expect((await codeOf(raw)).reasonCode).toBe(0x8d);
});

test('a client DISCONNECT with reason 0x04 (with will) is accepted; the will is dropped', async () => {
  const { raw, session } = await connected('willing');
  const reason = disconnectOf(h, session.sessionId);
  raw.send({ cmd: 'disconnect', reasonCode: 0x04 });
  expect(await within(reason, 2000, 'disconnect event')).toBe('client disconnect (reason code 0x04)');
  await within(raw.closed, 2000, 'close');
  expect(raw.packets.filter((p) => p.cmd === 'disconnect')).toEqual([]);
});

test('0x8B Server shutting down: a graceful stop sends gate/kick, then DISCONNECT 0x8B', async () => {
  const own = await startGate({});
  const raw = await peers.connected(own.tcpPort, { clientId: 'stopping' });
  const stopped = own.stop();
  expect(((await within(raw.next('publish'), 3000, 'kick push')) as IPublishPacket).topic).toBe(KICK_TOPIC);
  expect((await codeOf(raw)).reasonCode).toBe(0x8b);
  await stopped;
});

test('0x97 Quota exceeded: a slow consumer past maxBufferedBytes gets DISCONNECT 0x97 behind its backlog', async () => {
  const own = await startGate({ maxBufferedBytes: 256 * 1024, maxInflight: 1000 });
  try {
    const big = Buffer.alloc(16 * 1024, 0x61);
    await own.serve('svc', async () => big);
    const raw = await peers.connected(own.tcpPort, { clientId: 'slow5' });
    const gone = new Promise<string>((resolve) => own.gate.on('disconnect', (_s, reason) => resolve(reason)));
    raw.socket?.pause();
    for (let i = 0; i < 2000; i++)
      raw.send({ cmd: 'publish', topic: `svc/HD_big/${i}`, payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
    expect(await within(gone, 5000, 'slow consumer close')).toMatch(/slow consumer/);
    raw.socket?.resume();
    expect((await codeOf(raw)).reasonCode).toBe(0x97);
  } finally {
    await own.stop();
  }
});
