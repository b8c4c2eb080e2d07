/**
 * Client id takeover (reference/mqtt-layer.md §6.3 item 7; MQTT-3.1.4-2): a second CONNECT
 * with the same client id closes the older connection, which is told why on `gate/kick`.
 */
import type * as mqtt from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import { KICK_TOPIC } from '@mqgate/gate';
import { Connections } from './helpers/connections';
import { startGate, request, mqttOpts, VERSIONS, type Harness } from './helpers/harness';
import { closeOf, disconnectOf, nextSession, within } from './helpers/waiters';

let h: Harness;
const conns = new Connections();

beforeAll(async () => {
  h = await startGate();
  await h.serve('svc', async (fn, args) => (fn === 'HD_echo' ? args[1] : null));
});

afterEach(() => conns.closeAll());

afterAll(() => h.stop());

const openMqtt = (opts: mqtt.IClientOptions, url = h.tcpUrl) => conns.mqtt(url, opts);

describe.each(VERSIONS)('MQTT.js at level %i', (v) => {
  test('the first connection gets a gate/kick push with {reason}, then is closed; the second keeps working', async () => {
    const clientId = `same-${v}`;
    const firstSession = nextSession(h);
    const first = await openMqtt({ ...mqttOpts(v), clientId });
    const firstId = (await firstSession).sessionId;
    const events: string[] = [];
    const kicked = new Promise<Buffer>((resolve) =>
      first.on('message', (t, p) => {
        events.push(`message ${t}`);
        if (t === KICK_TOPIC) resolve(p);
      }),
    );
    const closed = new Promise<void>((resolve) =>
      first.once('close', () => {
        events.push('close');
        resolve();
      }),
    );
    const reason = disconnectOf(h, firstId);

    const second = await openMqtt({ ...mqttOpts(v), clientId });
    const kick = JSON.parse((await within(kicked, 2000, 'kick push')).toString());
    expect(kick).toEqual({ reason: expect.any(String) });
    expect(kick.reason.length).toBeGreaterThan(0);
    await within(closed, 2000, 'first connection closed');
    expect(events).toEqual([`message ${KICK_TOPIC}`, 'close']);
    expect(await within(reason, 2000, 'disconnect event')).toMatch(/^kicked: /);

    expect((await within(request(second, 'svc/HD_echo/2', '{"second":true}'), 2000, 'reply')).Result).toEqual({ second: true });
    expect(second.connected).toBe(true);
  });
});

test('raw: the kick push is the last packet before the server closes the first connection', async () => {
  const first = await conns.connectedRaw(h.tcpPort, 'raw-same');
  const second = await conns.connectedRaw(h.tcpPort, 'raw-same');
  await within(first.closed, 2000, 'first closed');
  expect(first.packets).toHaveLength(1);
  const kick = first.packets[0] as IPublishPacket;
  expect(kick).toMatchObject({ cmd: 'publish', topic: KICK_TOPIC, qos: 0 });
  expect(JSON.parse(kick.payload.toString())).toEqual({ reason: expect.any(String) });
  second.send({ cmd: 'pingreq' });
  await within(second.next('pingresp'), 2000, 'PINGRESP on the second connection');
});

test('takeover works across networks: a WebSocket CONNECT takes over a TCP one', async () => {
  const tcp = await openMqtt({ clientId: 'cross-net' });
  const closed = closeOf(tcp);
  const ws = await conns.connectedWs(h.wsUrl, 'cross-net');
  await within(closed, 2000, 'TCP connection closed');
  ws.send({ cmd: 'publish', topic: 'svc/HD_echo/ws', payload: Buffer.from('{"ws":1}'), qos: 0, dup: false, retain: false });
  const reply = (await within(ws.next('publish'), 2000, 'reply')) as IPublishPacket;
  expect(JSON.parse(reply.payload.toString()).Result).toEqual({ ws: 1 });
});

test('different client ids do not take each other over', async () => {
  const a = await openMqtt({ clientId: 'distinct-a' });
  const b = await openMqtt({ clientId: 'distinct-b' });
  const [ra, rb] = await within(Promise.all([request(a, 'svc/HD_echo/a', '{"a":1}'), request(b, 'svc/HD_echo/b', '{"b":1}')]), 2000, 'replies');
  expect([ra.Result, rb.Result]).toEqual([{ a: 1 }, { b: 1 }]);
  expect(a.connected && b.connected).toBe(true);
});

test('a refused CONNECT does not take over the live connection with that client id', async () => {
  // Refusal here comes from an unsupported level: it must not kick the holder of the id.
  const holder = await openMqtt({ clientId: 'holder' });
  const raw = await conns.raw(h.tcpPort);
  // A level-6 CONNECT for the same id (level 5 is served since MQTT 5 support).
  const id = Buffer.from('holder');
  const body = Buffer.concat([Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([6, 0x02, 0, 60, 0, id.length]), id]);
  raw.sendBytes(Buffer.concat([Buffer.from([0x10, body.length]), body]));
  expect(((await within(raw.next('connack'), 2000, 'CONNACK')) as { returnCode: number }).returnCode).toBe(1);
  await within(raw.closed, 2000, 'refused connection closed');
  expect((await within(request(holder, 'svc/HD_echo/h', '{"h":1}'), 2000, 'reply')).Result).toEqual({ h: 1 });
  expect(holder.connected).toBe(true);
});
