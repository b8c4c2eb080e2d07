/**
 * Nothing above the packet limit goes out. A reply whose packet would exceed the
 * gate's maxPacketSize, or an MQTT 5 client's Maximum Packet Size (MQTT-3.1.2-24), becomes an
 * Error envelope reply saying so; a push above it is dropped and counted.
 */
import type { IPublishPacket } from 'mqtt-packet';
import { RawClient, startGate, type Harness } from './helpers/harness';
import { nextSession, within } from './helpers/waiters';
import { envelopeOf, RawV5Peers } from './v5-support';

const MAX = 4000;
let h: Harness;
const peers = new RawV5Peers();
beforeAll(async () => {
  h = await startGate({ maxPacketSize: MAX });
  // HD_big answers {"blob": "x" × n} for a request {"n": n} (a session of many settings, in the issue).
  await h.serve('svc', (_fn, args) => ({ blob: 'x'.repeat((args[1] as { n: number }).n) }));
});
afterEach(() => peers.closeAll());
afterAll(() => h.stop());

const publish = (topic: string, n: number) => ({
  cmd: 'publish' as const,
  topic,
  payload: Buffer.from(JSON.stringify({ n })),
  qos: 0 as const,
  dup: false,
  retain: false,
});

test('MQTT 3.1.1: a reply over maxPacketSize becomes an Error envelope; one under it goes out as it is', async () => {
  const raw = await RawClient.open(h.tcpPort);
  await raw.connect({ clientId: 'v4-big' });
  const before = h.gate.stats().droppedOversize;
  const big = raw.next('publish', (p) => (p as IPublishPacket).topic === 'svc/HD_big/1');
  raw.send(publish('svc/HD_big/1', 10_000));
  const reply = (await within(big, 5000, 'error reply')) as IPublishPacket;
  expect(reply.length).toBeLessThanOrEqual(MAX);
  const env = envelopeOf(reply);
  expect(env.Error).toMatch(/^reply too large: \d+ bytes exceeds maxPacketSize 4000$/);
  expect(env.Result).toBeNull();
  expect(h.gate.stats().droppedOversize).toBe(before + 1);
  const small = raw.next('publish', (p) => (p as IPublishPacket).topic === 'svc/HD_big/2');
  raw.send(publish('svc/HD_big/2', 100));
  expect(envelopeOf((await within(small, 5000, 'reply')) as IPublishPacket)).toMatchObject({ Error: '', Result: { blob: 'x'.repeat(100) } });
  raw.destroy();
});

test('MQTT 5: over maxPacketSize, and over the smaller Maximum Packet Size of the client, with Correlation Data echoed', async () => {
  const plain = await peers.connected(h.tcpPort, { clientId: 'v5-big' });
  const a = await plain.ask('svc/HD_big', JSON.stringify({ n: 10_000 }), { responseTopic: 'r/1', correlationData: Buffer.from('c1') }, 'r/1');
  expect(envelopeOf(a).Error).toMatch(/^reply too large: \d+ bytes exceeds maxPacketSize 4000$/);
  expect(a.properties?.correlationData?.toString()).toBe('c1');

  const small = await peers.connected(h.tcpPort, { clientId: 'v5-small', properties: { maximumPacketSize: 500 } });
  const b = await small.ask('svc/HD_big', JSON.stringify({ n: 1000 }), { responseTopic: 'r/2' }, 'r/2');
  expect(b.length).toBeLessThanOrEqual(500);
  expect(envelopeOf(b).Error).toMatch(/^reply too large: \d+ bytes exceeds the client's Maximum Packet Size 500$/);
});

test('a push over maxPacketSize is dropped and counted (send and broadcast); a smaller one still arrives', async () => {
  const raw = await RawClient.open(h.tcpPort);
  const session = nextSession(h);
  await raw.connect({ clientId: 'push-big' });
  const id = (await session).sessionId;
  const before = h.gate.stats().droppedOversize;
  expect(h.gate.send(id, 'push/big', Buffer.alloc(MAX, 0x61))).toBe(false);
  expect(h.gate.broadcast('push/big', Buffer.alloc(MAX, 0x61))).toBe(0);
  expect(h.gate.stats().droppedOversize).toBe(before + 2);
  expect(h.gate.send(id, 'push/small', 'ok')).toBe(true);
  expect(((await within(raw.next('publish'), 2000, 'small push')) as IPublishPacket).topic).toBe('push/small');
  raw.destroy();
});
