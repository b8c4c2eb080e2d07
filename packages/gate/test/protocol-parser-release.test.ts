/**
 * An idle connection does not keep mqtt-packet's parser (1.6 KiB of heap, and the CONNECT it
 * keeps as its settings): the sweep releases it once the connection is connected and the
 * parser has been unused for a sweep with nothing buffered, and the next packet that needs it
 * (anything but a plain QoS 0/1 PUBLISH) makes it again at the connection's protocol level.
 */
import { startGate, RawClient, mqttConnect, type Harness } from './helpers/harness';
import { within } from './helpers/waiters';

let h: Harness;
beforeAll(async () => {
  // A short connectTimeout makes the sweep run every 50 ms.
  h = await startGate({ connectTimeout: 200 });
  await h.serve('echo', (_fn, args) => {
    const session = args[0] as { mqtt5?: { userProperties?: Record<string, unknown> } };
    return { payload: (args[1] as Buffer).toString('hex'), userProperties: session.mqtt5?.userProperties ?? null };
  });
});
afterAll(() => h.stop());

/** The gate's connection of `clientId` (its parser field is private: read for this test only). */
function parserOf(clientId: string): unknown {
  const conns = (h.gate as unknown as { connections: Set<{ clientId: string; parser: unknown }> }).connections;
  for (const c of conns) if (c.clientId === clientId) return c.parser;
  throw new Error(`no connection ${clientId}`);
}

/** Resolves once the gate has released the parser of `clientId` (a few sweeps of 50 ms). */
async function released(clientId: string): Promise<void> {
  const until = Date.now() + 3000;
  while (parserOf(clientId) !== undefined) {
    if (Date.now() > until) throw new Error('parser not released within 3 s');
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('3.1.1: released when idle; a PINGREQ split over two writes and a QoS 2 flow are answered by the parser made again', async () => {
  const c = await RawClient.open(h.tcpPort);
  await c.connect({ clientId: 'release-311' });
  await released('release-311');
  c.sendBytes(Buffer.from([0xc0]));
  await new Promise((r) => setImmediate(r));
  c.sendBytes(Buffer.from([0x00]));
  await within(c.next('pingresp'), 2000, 'PINGRESP');
  await released('release-311');
  c.send({ cmd: 'publish', topic: 'x/HD_none', payload: Buffer.from('{}'), qos: 2, messageId: 5, dup: false, retain: false });
  expect(await within(c.next('pubrec'), 2000, 'PUBREC')).toMatchObject({ messageId: 5 });
  c.send({ cmd: 'pubrel', messageId: 5 });
  expect(await within(c.next('pubcomp'), 2000, 'PUBCOMP')).toMatchObject({ messageId: 5 });
  c.destroy();
});

test('kept while a packet is under way: a PINGREQ whose second byte comes after several sweeps is answered', async () => {
  const a = await RawClient.open(h.tcpPort);
  await a.connect({ clientId: 'release-mid-a' });
  const b = await RawClient.open(h.tcpPort);
  await b.connect({ clientId: 'release-mid-b' });
  await released('release-mid-a');
  a.sendBytes(Buffer.from([0xc0])); // mqtt-packet takes the fixed header byte and holds 0 bytes
  // b's parser, made at the same time, released twice over: the sweeps that would have released a's have run
  for (let i = 0; i < 2; i++) {
    b.sendBytes(Buffer.from([0xc0, 0x00]));
    await within(b.next('pingresp'), 2000, 'PINGRESP to b');
    await released('release-mid-b');
  }
  a.sendBytes(Buffer.from([0x00]));
  await within(a.next('pingresp'), 2000, 'PINGRESP to a');
  a.destroy();
  b.destroy();
});

test('MQTT 5: the parser made again parses at level 5 (a QoS 2 request with a User Property reaches the handler intact)', async () => {
  const c = await mqttConnect(h.tcpUrl, { protocolVersion: 5, clientId: 'release-v5' });
  await released('release-v5');
  const reply = new Promise<Buffer>((resolve) => c.once('message', (_t, payload) => resolve(payload)));
  await c.publishAsync('echo/HD_x/1', Buffer.from('hi'), { qos: 2, properties: { userProperties: { k: 'v' } } });
  const body = JSON.parse((await within(reply, 3000, 'reply')).toString()) as { Error: string; Result: unknown };
  expect(body.Error).toBe('');
  expect(body.Result).toEqual({ payload: Buffer.from('hi').toString('hex'), userProperties: { k: 'v' } });
  await c.endAsync();
});
