import { startGate, RawClient, type Harness } from './helpers/harness';

let h: Harness;
beforeAll(async () => {
  h = await startGate({ maxBufferedBytes: 256 * 1024, maxInflight: 1000 });
  const big = Buffer.alloc(16 * 1024, 0x61);
  await h.serve('svc', async () => big);
});
afterAll(() => h.stop());

test('a client that stops reading is closed as a slow consumer instead of buffering without bound', async () => {
  const raw = await RawClient.open(h.tcpPort);
  await raw.connect({ clientId: 'slow' });
  const gone = new Promise<string>((resolve) => h.gate.on('disconnect', (_s, reason) => resolve(reason)));
  raw.socket.pause(); // never read again
  const request = Buffer.from('x');
  for (let i = 0; i < 2000; i++) {
    raw.send({ cmd: 'publish', topic: `svc/HD_big/${i}`, payload: request, qos: 0, dup: false, retain: false });
  }
  expect(await gone).toMatch(/slow consumer/);
  // the gate keeps serving others
  const other = await RawClient.open(h.tcpPort);
  expect((await other.connect({ clientId: 'fast' })).returnCode).toBe(0);
  other.destroy();
  raw.destroy();
});
