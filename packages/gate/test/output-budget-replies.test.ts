/**
 * Clients that pipeline requests and never read their replies. Each may hold
 * maxBufferedBytes (set high here), but past maxBufferedBytesTotal the gate closes the
 * connections with the largest backlogs until the total is back under; a client that reads
 * keeps its replies coming.
 */
import type { IPublishPacket } from 'mqtt-packet';
import { RawClient, startGate, type Harness } from './helpers/harness';
import { within } from './helpers/waiters';

const MiB = 1024 * 1024;
let h: Harness;
beforeAll(async () => {
  h = await startGate({ maxBufferedBytesTotal: 4 * MiB, maxBufferedBytes: 64 * MiB, maxInflight: 1000, slowConsumerTimeout: 600_000 });
  const reply = Buffer.alloc(16 * 1024, 0x61);
  await h.serve('svc', async () => reply);
});
afterAll(() => h.stop());

test('non-reading clients pipelining requests are closed, largest backlogs first, once the total passes maxBufferedBytesTotal', async () => {
  const reasons: string[] = [];
  h.gate.on('disconnect', (_s, reason) => reasons.push(reason));
  const slow: RawClient[] = [];
  for (let i = 0; i < 20; i++) {
    const c = await RawClient.open(h.tcpPort);
    await c.connect({ clientId: `pipe-${i}`, keepalive: 0 });
    c.socket.pause(); // never reads again
    slow.push(c);
  }
  const reader = await RawClient.open(h.tcpPort);
  await reader.connect({ clientId: 'reader', keepalive: 0 });
  const payload = Buffer.from('x');
  for (let round = 0; round < 40; round++) {
    for (const c of slow)
      for (let k = 0; k < 25; k++) c.send({ cmd: 'publish', topic: `svc/HD_big/${round}-${k}`, payload, qos: 0, dup: false, retain: false });
    await new Promise((r) => setImmediate(r));
  }
  await within(
    (async () => {
      while (!reasons.some((r) => r.includes('over maxBufferedBytesTotal'))) await new Promise((r) => setTimeout(r, 20));
    })(),
    60_000,
    'a slow consumer closed on the total',
  );
  expect(reasons.every((r) => r.startsWith('slow consumer'))).toBe(true);
  const answer = reader.next('publish', (p) => (p as IPublishPacket).topic === 'svc/HD_big/reader');
  reader.send({ cmd: 'publish', topic: 'svc/HD_big/reader', payload, qos: 0, dup: false, retain: false });
  expect(((await within(answer, 30_000, "the reader's reply")) as IPublishPacket).payload.length).toBe(16 * 1024);
  // Each sweep brings the total back under; what is left over is at most one sweep's worth of new replies.
  await within(
    (async () => {
      while (h.gate.stats().bufferedBytes > 4 * MiB) await new Promise((r) => setTimeout(r, 20));
    })(),
    30_000,
    'the total back under the bound',
  );
  for (const c of slow) c.destroy();
  reader.destroy();
}, 120_000);
