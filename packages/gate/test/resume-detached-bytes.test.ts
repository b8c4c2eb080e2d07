/**
 * What detached sessions hold is bounded in bytes across the gate (maxDetachedBytesTotal):
 * their missed pushes and the QoS 1 pushes their clients had not acknowledged. Past it the
 * oldest pushes of the oldest detached sessions are dropped first, and their resume reports
 * them in `lost`; the newest sessions keep everything. A detached session no longer holds
 * its closed connection (socket, parser, buffers): that object is garbage once the session
 * is detached. Real sockets, MQTT.js and raw mqtt-packet peers, in-process transport.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as mqttPacket from 'mqtt-packet';
import { InProcessTransport, MemoryUserIndex, gateClient, silentLogger, type SessionData } from '@mqgate/rpc';
import { DEFAULTS, Gate, resolveOptions, type GateOptions } from '@mqgate/gate';
import { Hoarder } from './helpers/hoarder';
import { ResumePeer, loginAndDrop } from './helpers/resume-peer';
import { waitUntil } from './helpers/waiters';

const KiB = 1024;
let transport: InProcessTransport;
let gate: Gate | undefined;
const peers: ResumePeer[] = [];
const hoarders: Hoarder[] = [];

beforeEach(async () => {
  transport = new InProcessTransport();
  await transport.serve({ serverId: 'user@1', moduleType: 'user' }, async (_fn, args) => {
    const s = args[0] as SessionData;
    const bound = await gateClient(transport, s.serverId).bind(s.sessionId, (args[1] as { userId: string }).userId);
    return { sessionId: bound.sessionId };
  });
});

afterEach(async () => {
  for (const r of hoarders.splice(0)) r.socket.destroy();
  await Promise.all(peers.splice(0).map((p) => p.client.endAsync(true)));
  await gate?.stop();
  gate = undefined;
  await transport.close();
});

async function start(options: GateOptions): Promise<Gate> {
  const index = new MemoryUserIndex();
  gate = new Gate({ tcp: { port: 0, host: '127.0.0.1' }, websocket: false, userIndex: index, ...options });
  await gate.start({ transport, logger: silentLogger, userIndex: index });
  return gate;
}

const url = (g: Gate) => `mqtt://127.0.0.1:${g.addresses().tcp!.port}`;

async function open(g: Gate): Promise<ResumePeer> {
  const c = await ResumePeer.open(url(g));
  peers.push(c);
  return c;
}

test('maxDetachedBytesTotal: an eighth of the heap limit by default; 0 and false turn it off; negative is a RangeError', () => {
  expect(resolveOptions({}).maxDetachedBytesTotal).toBe(DEFAULTS.maxDetachedBytesTotal);
  expect(DEFAULTS.maxDetachedBytesTotal).toBeGreaterThan(0);
  expect(resolveOptions({ maxDetachedBytesTotal: false }).maxDetachedBytesTotal).toBe(0);
  expect(resolveOptions({ maxDetachedBytesTotal: 0 }).maxDetachedBytesTotal).toBe(0);
  expect(() => resolveOptions({ maxDetachedBytesTotal: -1 })).toThrow(/maxDetachedBytesTotal/);
});

test('past maxDetachedBytesTotal the oldest detached session loses its oldest pushes first; its resume reports them as lost, the newest keep all', async () => {
  const limit = 48 * KiB;
  const g = await start({ maxDetachedBytesTotal: limit, resumeBufferBytes: 64 * KiB, resumeBufferMessages: 1000 });
  const a = await loginAndDrop(g, await open(g), 'alice');
  const b = await loginAndDrop(g, await open(g), 'bob');
  const c = await loginAndDrop(g, await open(g), 'carol');
  const body = (i: number) => Buffer.alloc(2 * KiB, 0x30 + i);
  for (const s of [a, b, c]) for (let i = 0; i < 10; i++) expect(g.send(s.sessionId, 'news', body(i))).toBe(true);
  const cost = 2 * KiB + 'news'.length + 64;
  expect(g.stats().detachedBytes).toBeLessThanOrEqual(limit);
  expect(g.stats().detachedBytes).toBeGreaterThan(limit - 2 * cost);
  const evicted = Math.ceil((30 * cost - limit) / cost);
  expect(g.stats().detachedEvicted).toBe(evicted);

  const ca = await open(g);
  const ra = (await ca.resume(a.token)).Result as { lost: number; replayed: number };
  expect(ra).toMatchObject({ lost: evicted, replayed: 10 - evicted });
  await waitUntil('alice replayed', () => ca.msgs.filter((m) => m.topic === 'news').length === 10 - evicted);
  // the oldest went: what is left are the newest, in order
  expect(ca.msgs.filter((m) => m.topic === 'news').map((m) => m.payload[0] - 0x30)).toEqual(
    Array.from({ length: 10 - evicted }, (_, i) => evicted + i),
  );
  const cc = await open(g);
  expect((await cc.resume(c.token)).Result).toMatchObject({ lost: 0, replayed: 10, recovered: true });
  const cb = await open(g);
  expect((await cb.resume(b.token)).Result).toMatchObject({ lost: 0, replayed: 10 });
  expect(g.stats().detachedBytes).toBe(0);
});

test('QoS 1 pushes a dropped client had not acknowledged count toward maxDetachedBytesTotal; the closed connection is freed; the resume gets them', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const g = await start({ maxDetachedBytesTotal: 1024 * KiB, maxOutboundInflight: 4 });
  const raw = await Hoarder.open(g.addresses().tcp!.port);
  hoarders.push(raw);
  await raw.connect();
  raw.send({ cmd: 'publish', topic: 'user/HD_login/1', payload: Buffer.from('{"userId":"quinn"}'), qos: 0, retain: false, dup: false });
  const reply = (await raw.next('publish', (p) => (p as mqttPacket.IPublishPacket).topic === 'user/HD_login/1')) as mqttPacket.IPublishPacket;
  const sessionId = (JSON.parse(reply.payload.toString()) as { Result: { sessionId: string } }).Result.sessionId;
  const tokenPush = (await raw.next('publish', (p) => (p as mqttPacket.IPublishPacket).topic === 'gate/session')) as mqttPacket.IPublishPacket;
  const token = (JSON.parse(tokenPush.payload.toString()) as { token: string }).token;
  for (let i = 0; i < 6; i++) expect(g.send(sessionId, 'q1', Buffer.alloc(4 * KiB, 0x41 + i), undefined, 1)).toBe(true);
  await waitUntil('the window written', () => raw.packets.filter((p) => p.cmd === 'publish').length === 4);
  const conns = (g as unknown as { connections: Set<object> }).connections;
  expect(conns.size).toBe(1);
  const closedConn = new WeakRef([...conns][0]);
  const gone = new Promise<void>((resolve) => g.on('disconnect', (s) => s.sessionId === sessionId && resolve()));
  raw.socket.destroy();
  await gone;
  expect(g.stats().detachedBytes).toBeGreaterThanOrEqual(6 * (4 * KiB + 'q1'.length + 64));
  await waitUntil(
    'the closed connection collected',
    () => {
      gc();
      return closedConn.deref() === undefined;
    },
    5000,
    50,
  );
  const c = await open(g);
  expect((await c.resume(token)).Result).toMatchObject({ lost: 0, replayed: 6 });
  await waitUntil('six QoS 1 pushes', () => c.msgs.filter((m) => m.topic === 'q1').length === 6);
  expect(c.msgs.filter((m) => m.topic === 'q1').map((m) => [m.payload[0] - 0x41, m.qos])).toEqual([0, 1, 2, 3, 4, 5].map((i) => [i, 1]));
  expect(g.stats().detachedBytes).toBe(0);
});
