/**
 * Every byte a connection holds for its client counts toward maxBufferedBytesTotal: its
 * unsent output, and the QoS 1 pushes in its inflight window and queued behind it (kept
 * until the client's PUBACK, MQTT-4.3.2). Clients that read their QoS 1 pushes but never
 * PUBACK hold nothing unsent, yet the gate keeps every push for them; `bufferedBytes` counts
 * those bytes, and past the bound the gate drops pushes to the holders above
 * outputHighWaterMark and closes the largest holders first, counted and logged. Real sockets:
 * raw mqtt-packet peers that read and never acknowledge.
 */
import * as mqttPacket from 'mqtt-packet';
import { silentLogger, type SessionData } from '@mqgate/rpc';
import { startGate, type Harness } from './helpers/harness';
import { Hoarder } from './helpers/hoarder';
import { waitUntil } from './helpers/waiters';

const KiB = 1024;

let h: Harness | undefined;
const peers: Hoarder[] = [];
afterEach(async () => {
  for (const p of peers.splice(0)) p.socket.destroy();
  await h?.stop();
  h = undefined;
});

test('QoS 1 pushes held for clients that never PUBACK count toward maxBufferedBytesTotal; past it pushes are dropped and the largest holders closed', async () => {
  const limit = 2048 * KiB;
  const warns: string[] = [];
  const logger = { ...silentLogger, warn: (_f: object, m: string) => void warns.push(m) };
  h = await startGate({
    websocket: false,
    maxBufferedBytesTotal: limit,
    maxBufferedBytes: 512 * KiB,
    maxOutboundInflight: 16,
    maxOutboundQueue: 1000,
    slowConsumerTimeout: 600_000,
    logger,
  });
  const gate = h.gate;
  const sids: string[] = [];
  const reasons: string[] = [];
  gate.on('disconnect', (_s: SessionData, reason: string) => reasons.push(reason));
  for (let i = 0; i < 12; i++) {
    const session = new Promise<SessionData>((resolve) => gate.once('connect', resolve));
    const p = await Hoarder.open(h.tcpPort);
    peers.push(p);
    expect((await p.connect()).cmd).toBe('connack');
    sids.push((await session).sessionId);
  }
  const body = Buffer.alloc(8 * KiB, 0x61);
  // Under the bound: 12 clients × 8 pushes of 8 KiB = 768 KiB held (twice that while also unsent), nothing unsent once read.
  for (let round = 0; round < 8; round++) for (const sid of sids) expect(gate.send(sid, 'hoard', body, undefined, 1)).toBe(true);
  const held = 12 * 8 * (body.length + 'hoard'.length + 64);
  await waitUntil('every push read by its client', () => peers.every((p) => p.packets.length === 8));
  for (const p of peers) p.forget();
  expect(gate.stats().bufferedBytes).toBeGreaterThanOrEqual(held);
  expect(gate.stats().droppedMemory).toBe(0);

  // Over it: the holders above outputHighWaterMark get no more, the largest are closed.
  let refused = 0;
  for (let round = 0; round < 40; round++) {
    for (const sid of sids) if (!gate.send(sid, 'hoard', body, undefined, 1)) refused++;
    await new Promise((r) => setTimeout(r, 5));
  }
  expect(refused).toBeGreaterThan(0);
  expect(gate.stats().droppedMemory).toBeGreaterThan(0);
  await waitUntil('a holder closed by the budget', () => reasons.some((r) => r.includes('over maxBufferedBytesTotal')));
  await waitUntil('the total back under the bound', () => gate.stats().bufferedBytes <= limit);
  expect(warns.some((m) => m.startsWith('push dropped'))).toBe(true);
  expect(warns.some((m) => m.startsWith('closing a slow consumer'))).toBe(true);
  // Each connection's held bytes leave the total when it closes: all closed, nothing counted.
  for (const p of peers) p.socket.destroy();
  await Promise.all(peers.map((p) => p.closed));
  await waitUntil('every connection gone', () => gate.stats().connections === 0);
  expect(gate.stats().bufferedBytes).toBe(0);
});

test('a client that PUBACKs its QoS 1 pushes frees what it held: the total goes back to 0', async () => {
  h = await startGate({ websocket: false, maxBufferedBytesTotal: 1024 * KiB, maxOutboundInflight: 4 });
  const gate = h.gate;
  const session = new Promise<SessionData>((resolve) => gate.once('connect', resolve));
  const p = await Hoarder.open(h.tcpPort);
  peers.push(p);
  await p.connect();
  const sid = (await session).sessionId;
  for (let i = 0; i < 10; i++) expect(gate.send(sid, 'acked', Buffer.alloc(1000), undefined, 1)).toBe(true);
  expect(gate.stats().bufferedBytes).toBeGreaterThanOrEqual(10 * 1000);
  for (let got = 0; got < 10; got++) {
    const pub = (await p.next('publish')) as mqttPacket.IPublishPacket;
    p.send({ cmd: 'puback', messageId: pub.messageId as number });
  }
  await waitUntil('all acknowledged', () => gate.stats().bufferedBytes === 0);
});
