/**
 * MQTT over WebSocket (reference/mqtt-layer.md §6.3 item 10; MQTT 3.1.1 §6): any path,
 * the subprotocol echoed, packets spanning or sharing frames, one frame per outgoing
 * packet, text frames refused.
 */
import { get as httpGet } from 'node:http';
import * as mqttPacket from 'mqtt-packet';
import type { IConnackPacket, IPublishPacket } from 'mqtt-packet';
import { Connections } from './helpers/connections';
import { startGate, request, mqttOpts, VERSIONS, type Harness } from './helpers/harness';
import { disconnectOf, nextSession, within } from './helpers/waiters';

const connectBytes = (clientId: string): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 60 });
const publishBytes = (topic: string, payload: string): Buffer =>
  mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, dup: false, retain: false });
const PINGREQ = Buffer.from([0xc0, 0x00]);

let h: Harness;
let base: string;
const conns = new Connections();

beforeAll(async () => {
  h = await startGate();
  base = `ws://127.0.0.1:${h.wsPort}`;
  await h.serve('svc', async (fn, args) => {
    if (fn === 'HD_big') return { text: 'z'.repeat(20_000) };
    return fn === 'HD_echo' ? args[1] : null;
  });
});

afterEach(() => conns.closeAll());

afterAll(() => h.stop());

const openWs = (path = '/mqtt', protocols?: string[]) => conns.ws(base + path, { protocols });

describe('paths and subprotocols', () => {
  test.each(['/mqtt', '/', '/foo/bar'])('path %s: CONNACK 0 and a request round trip', async (path) => {
    const ws = await openWs(path);
    expect((await within(ws.connect({ clientId: `path${path}` }), 2000, 'CONNACK')).returnCode).toBe(0);
    ws.send({ cmd: 'publish', topic: 'svc/HD_echo/p', payload: Buffer.from('{"path":1}'), qos: 0, dup: false, retain: false });
    const reply = (await within(ws.next('publish'), 2000, 'reply')) as IPublishPacket;
    expect(JSON.parse(reply.payload.toString()).Result).toEqual({ path: 1 });
  });

  test.each([
    [['mqtt'], 'mqtt'],
    [['mqttv3.1'], 'mqttv3.1'],
    [['foo', 'mqtt'], 'mqtt'],
    [['mqttv3.1', 'mqtt'], 'mqttv3.1'],
  ])('offered %j: the server selects %s', async (offered, selected) => {
    const ws = await openWs('/mqtt', offered);
    expect(ws.protocol).toBe(selected);
    expect((await within(ws.connect({ clientId: 'subproto' }), 2000, 'CONNACK')).returnCode).toBe(0);
  });

  test('a plain HTTP request gets 426 Upgrade Required', async () => {
    const status = await within(
      new Promise<number | undefined>((resolve, reject) => {
        const req = httpGet(`http://127.0.0.1:${h.wsPort}/mqtt`, (res) => {
          res.resume();
          resolve(res.statusCode);
        });
        req.on('error', reject);
      }),
      2000,
      'HTTP response',
    );
    expect(status).toBe(426);
  });
});

describe('frames', () => {
  test('a CONNECT split across two frames, and a PUBLISH split across three, both work', async () => {
    const ws = await openWs();
    const connect = connectBytes('split');
    ws.sendBytes(connect.subarray(0, 5));
    ws.sendBytes(connect.subarray(5));
    expect(((await within(ws.next('connack'), 2000, 'CONNACK')) as IConnackPacket).returnCode).toBe(0);
    const pub = publishBytes('svc/HD_echo/split', '{"split":true}');
    ws.sendBytes(pub.subarray(0, 1));
    ws.sendBytes(pub.subarray(1, 9));
    ws.sendBytes(pub.subarray(9));
    const reply = (await within(ws.next('publish'), 2000, 'reply')) as IPublishPacket;
    expect(reply.topic).toBe('svc/HD_echo/split');
    expect(JSON.parse(reply.payload.toString()).Result).toEqual({ split: true });
  });

  test('CONNECT and PINGREQ in one frame: CONNACK and PINGRESP, each in its own frame', async () => {
    const ws = await openWs();
    ws.sendBytes(Buffer.concat([connectBytes('shared'), PINGREQ]));
    expect(((await within(ws.next('connack'), 2000, 'CONNACK')) as IConnackPacket).returnCode).toBe(0);
    await within(ws.next('pingresp'), 2000, 'PINGRESP');
    expect(ws.frames.map((f) => [f.binary, f.bytes.length, f.packets.length, f.leftover])).toEqual([
      [true, 4, 1, 0],
      [true, 2, 1, 0],
    ]);
  });

  test('the tail of one packet and a whole next packet in one frame work', async () => {
    const ws = await openWs();
    const connect = connectBytes('tail');
    ws.sendBytes(connect.subarray(0, 7));
    ws.sendBytes(Buffer.concat([connect.subarray(7), publishBytes('svc/HD_echo/tail', '{"tail":1}')]));
    expect(((await within(ws.next('connack'), 2000, 'CONNACK')) as IConnackPacket).returnCode).toBe(0);
    const reply = (await within(ws.next('publish'), 2000, 'reply')) as IPublishPacket;
    expect(JSON.parse(reply.payload.toString()).Result).toEqual({ tail: 1 });
  });

  test('every outgoing packet is exactly one binary frame: CONNACK (4 bytes), replies small and large', async () => {
    const ws = await openWs();
    expect((await within(ws.connect({ clientId: 'frames' }), 2000, 'CONNACK')).returnCode).toBe(0);
    ws.send({ cmd: 'publish', topic: 'svc/HD_echo/f1', payload: Buffer.from('{"f":1}'), qos: 0, dup: false, retain: false });
    await within(ws.next('publish'), 2000, 'small reply');
    ws.send({ cmd: 'publish', topic: 'svc/HD_big/f2', payload: Buffer.from('{}'), qos: 0, dup: false, retain: false });
    await within(ws.next('publish'), 2000, 'large reply');
    // Three requests in one frame: three replies, three frames.
    ws.sendBytes(Buffer.concat([1, 2, 3].map((i) => publishBytes(`svc/HD_echo/burst-${i}`, `{"i":${i}}`))));
    for (let i = 1; i <= 3; i++)
      await within(
        ws.next('publish', (p) => (p as IPublishPacket).topic === `svc/HD_echo/burst-${i}`),
        2000,
        `burst reply ${i}`,
      );

    expect(ws.frames).toHaveLength(6);
    expect(ws.frames[0].bytes).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x00]));
    for (const f of ws.frames) {
      expect({ binary: f.binary, packets: f.packets.length, leftover: f.leftover, error: f.error }).toEqual({
        binary: true,
        packets: 1,
        leftover: 0,
        error: undefined,
      });
    }
    expect(ws.frames.slice(1).map((f) => (f.packets[0] as IPublishPacket).topic)).toEqual([
      'svc/HD_echo/f1',
      'svc/HD_big/f2',
      'svc/HD_echo/burst-1',
      'svc/HD_echo/burst-2',
      'svc/HD_echo/burst-3',
    ]);
    expect(ws.frames[2].bytes.length).toBeGreaterThan(20_000);
  });

  test('a text frame closes the connection (MQTT-6.0.0-1)', async () => {
    const ws = await openWs();
    const session = nextSession(h);
    expect((await within(ws.connect({ clientId: 'text' }), 2000, 'CONNACK')).returnCode).toBe(0);
    const { sessionId } = await session;
    const reason = disconnectOf(h, sessionId);
    ws.ws.send(publishBytes('svc/HD_echo/text', '{}').toString('latin1'), { binary: false });
    const code = await within(ws.closed, 3000, 'close');
    expect(code).toBe(1003);
    expect(await within(reason, 2000, 'disconnect event')).toMatch(/text frame/);
    expect(ws.packets).toEqual([]);
  });

  test('a text frame before CONNECT closes the connection too', async () => {
    const ws = await openWs();
    ws.ws.send('hello', { binary: false });
    expect(await within(ws.closed, 3000, 'close')).toBe(1003);
    expect(ws.frames).toEqual([]);
  });
});

describe.each(VERSIONS)('MQTT.js over WebSocket at level %i', (v) => {
  test('connects, subscribes, gets replies at QoS 0, 1 and 2', async () => {
    const c = await conns.mqtt(h.wsUrl, { ...mqttOpts(v), clientId: `ws-mqttjs-${v}` });
    const granted = await within(c.subscribeAsync('any/topic', { qos: 1 }), 2000, 'SUBACK');
    expect(granted.map((g) => g.qos)).toEqual([1]);
    for (const qos of [0, 1, 2] as const) {
      const reply = await within(request(c, `svc/HD_echo/q${qos}`, `{"qos":${qos}}`, qos), 2000, `reply at QoS ${qos}`);
      expect(reply).toEqual({ Trace: expect.any(String), Error: '', Result: { qos } });
    }
  });
});
