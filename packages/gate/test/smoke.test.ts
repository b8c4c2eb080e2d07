import { startGate, mqttConnect, request, RawClient, type Harness } from './helpers/harness';

let h: Harness;
beforeAll(async () => {
  h = await startGate();
  await h.serve('echo', async (fn, args) => (fn === 'HD_echo' ? args[1] : null));
});
afterAll(() => h.stop());

test('a request over TCP gets the envelope back', async () => {
  const c = await mqttConnect(h.tcpUrl);
  const reply = await request(c, 'echo/HD_echo/1', '{"a":1}');
  expect(reply).toEqual({ Trace: expect.any(String), Error: '', Result: { a: 1 } });
  await c.endAsync();
});

test('raw client: CONNACK 0', async () => {
  const raw = await RawClient.open(h.tcpPort);
  const ack = await raw.connect();
  expect(ack.returnCode).toBe(0);
  raw.destroy();
});
