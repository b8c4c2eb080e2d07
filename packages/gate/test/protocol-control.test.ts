/**
 * SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT, wills, and pushes without subscriptions
 * (reference/mqtt-layer.md §6.3 items 5 and 6; MQTT-3.8.4-1, -3.10.4-4, -3.12.4-1, -3.14.4).
 */
import type * as mqtt from 'mqtt';
import type { IPublishPacket, ISubackPacket } from 'mqtt-packet';
import type { SessionData } from '@mqgate/rpc';
import { Connections } from './helpers/connections';
import { startGate, mqttConnect, request, mqttOpts, VERSIONS, RawClient, type Harness } from './helpers/harness';
import { disconnectOf, nextSession, within } from './helpers/waiters';

let h: Harness;
const conns = new Connections();
/** Handler calls by request topic. */
const calls = new Map<string, number>();

beforeAll(async () => {
  h = await startGate();
  await h.serve('svc', async (fn, args) => {
    const topic = (args[0] as SessionData).topic;
    calls.set(topic, (calls.get(topic) ?? 0) + 1);
    return fn === 'HD_echo' ? args[1] : null;
  });
});

afterEach(() => conns.closeAll());

afterAll(() => h.stop());

const openRaw = (clientId: string, fields: Parameters<RawClient['connect']>[0] = {}) => conns.connectedRaw(h.tcpPort, clientId, fields);
const openMqtt = (opts: mqtt.IClientOptions, url = h.tcpUrl) => conns.mqtt(url, opts);

describe.each(VERSIONS)('MQTT.js at level %i', (v) => {
  test('SUBSCRIBE to several topics gets a SUBACK granting each requested QoS', async () => {
    const c = await openMqtt({ ...mqttOpts(v), clientId: `sub-${v}` });
    const granted = await within(c.subscribeAsync({ 'a/b': { qos: 0 }, 'c/+/d': { qos: 1 }, 'e/#': { qos: 2 } }), 2000, 'SUBACK');
    expect(granted.map((g) => [g.topic, g.qos])).toEqual([
      ['a/b', 0],
      ['c/+/d', 1],
      ['e/#', 2],
    ]);
  });

  test('UNSUBSCRIBE gets an UNSUBACK', async () => {
    const c = await openMqtt({ ...mqttOpts(v), clientId: `unsub-${v}` });
    await within(c.subscribeAsync('x/y', { qos: 1 }), 2000, 'SUBACK');
    await within(c.unsubscribeAsync(['x/y', 'never/subscribed']), 2000, 'UNSUBACK');
    // The connection still works.
    expect((await within(request(c, 'svc/HD_echo/1', '{"u":1}'), 2000, 'reply')).Result).toEqual({ u: 1 });
  });

  test('DISCONNECT (client end): the gate emits disconnect with reason "client disconnect"', async () => {
    const session = nextSession(h);
    const c = await openMqtt({ ...mqttOpts(v), clientId: `bye-${v}` });
    const reason = disconnectOf(h, (await session).sessionId);
    await within(c.endAsync(), 2000, 'endAsync');
    expect(await within(reason, 2000, 'disconnect event')).toBe('client disconnect');
  });

  test('replies and pushes arrive without any SUBSCRIBE', async () => {
    const session = nextSession(h);
    const c = await openMqtt({ ...mqttOpts(v), clientId: `nosub-${v}` });
    const { sessionId } = await session;
    const reply = await within(request(c, 'svc/HD_echo/nosub', '{"r":1}'), 2000, 'reply');
    expect(reply.Result).toEqual({ r: 1 });
    const pushed = new Promise<[string, string]>((resolve) => c.once('message', (t, p) => resolve([t, p.toString()])));
    expect(h.gate.send(sessionId, 'push/hello', 'hi there')).toBe(true);
    expect(await within(pushed, 2000, 'push')).toEqual(['push/hello', 'hi there']);
  });

  test('a CONNECT with a will is accepted; the will is never delivered when the client drops', async () => {
    const watcher = await openMqtt({ ...mqttOpts(v), clientId: `watcher-${v}` });
    await within(watcher.subscribeAsync('#', { qos: 0 }), 2000, 'SUBACK');
    const seen: string[] = [];
    watcher.on('message', (t) => seen.push(t));

    const willTopic = `svc/HD_echo/will-${v}`;
    const session = nextSession(h);
    const dying = await mqttConnect(h.tcpUrl, {
      ...mqttOpts(v),
      clientId: `dying-${v}`,
      will: { topic: willTopic, payload: Buffer.from('{"will":1}'), qos: 1, retain: false },
    });
    const lost = disconnectOf(h, (await session).sessionId);
    dying.stream.destroy(); // no DISCONNECT: the case where a broker would publish the will
    expect(await within(lost, 2000, 'disconnect event')).toMatch(/^connection lost/);
    dying.end(true);

    // A request from the watcher after the loss: had the will been routed or delivered, it
    // would have been dispatched before this one.
    expect((await within(request(watcher, 'svc/HD_echo/after-will', '{}'), 2000, 'reply')).Error).toBe('');
    expect(calls.get(willTopic)).toBeUndefined();
    expect(seen).toEqual(['svc/HD_echo/after-will']);
  });
});

describe('raw client', () => {
  test('SUBSCRIBE with QoS 0, 1, 2 gets a SUBACK with the same message id granting 0, 1, 2', async () => {
    const raw = await openRaw('raw-sub');
    raw.send({
      cmd: 'subscribe',
      messageId: 321,
      subscriptions: [
        { topic: 'q/0', qos: 0 },
        { topic: 'q/1', qos: 1 },
        { topic: 'q/2', qos: 2 },
      ],
    });
    const ack = (await within(raw.next('suback'), 2000, 'SUBACK')) as ISubackPacket;
    expect(ack.messageId).toBe(321);
    expect(ack.granted).toEqual([0, 1, 2]);
  });

  test('UNSUBSCRIBE gets an UNSUBACK with the same message id', async () => {
    const raw = await openRaw('raw-unsub');
    raw.send({ cmd: 'unsubscribe', messageId: 77, unsubscriptions: ['q/0', 'q/1'] });
    expect(await within(raw.next('unsuback'), 2000, 'UNSUBACK')).toMatchObject({ cmd: 'unsuback', messageId: 77 });
  });

  test('PINGREQ gets a PINGRESP, every time', async () => {
    const raw = await openRaw('raw-ping');
    for (let i = 0; i < 3; i++) {
      raw.send({ cmd: 'pingreq' });
      await within(raw.next('pingresp'), 2000, `PINGRESP ${i}`);
    }
    expect(raw.packets).toEqual([]);
  });

  test('DISCONNECT: the server closes the socket; the gate emits disconnect "client disconnect"', async () => {
    const session = nextSession(h);
    const raw = await openRaw('raw-bye');
    const reason = disconnectOf(h, (await session).sessionId);
    raw.send({ cmd: 'disconnect' });
    await within(raw.closed, 2000, 'server close after DISCONNECT');
    expect(await within(reason, 2000, 'disconnect event')).toBe('client disconnect');
  });

  test('a will is discarded on DISCONNECT and on a lost connection alike', async () => {
    const watcher = await openRaw('raw-watcher');
    for (const end of ['disconnect', 'destroy'] as const) {
      const willTopic = `svc/HD_echo/raw-will-${end}`;
      const session = nextSession(h);
      const dying = await openRaw(`raw-dying-${end}`, {
        will: { topic: willTopic, payload: Buffer.from('{}'), qos: 0, retain: false },
      });
      const lost = disconnectOf(h, (await session).sessionId);
      if (end === 'disconnect') dying.send({ cmd: 'disconnect' });
      else dying.destroy();
      await within(lost, 2000, 'disconnect event');
      watcher.send({ cmd: 'publish', topic: `svc/HD_echo/sync-${end}`, payload: Buffer.from('{}'), qos: 0, dup: false, retain: false });
      await within(
        watcher.next('publish', (p) => (p as IPublishPacket).topic === `svc/HD_echo/sync-${end}`),
        2000,
        'sync',
      );
      expect(calls.get(willTopic)).toBeUndefined();
    }
    expect(watcher.packets).toEqual([]);
  });

  test('a push from the gate (send, broadcast) reaches a client that never subscribed, at QoS 0', async () => {
    const session = nextSession(h);
    const raw = await openRaw('raw-push');
    const { sessionId } = await session;
    expect(h.gate.send(sessionId, 'push/one', Buffer.from([1, 2, 3]))).toBe(true);
    const one = (await within(raw.next('publish'), 2000, 'push')) as IPublishPacket;
    expect(one).toMatchObject({ topic: 'push/one', qos: 0, retain: false });
    expect(Buffer.from(one.payload as Buffer)).toEqual(Buffer.from([1, 2, 3]));
    expect(h.gate.broadcast('push/all', 'everyone')).toBeGreaterThanOrEqual(1);
    const all = (await within(raw.next('publish'), 2000, 'broadcast')) as IPublishPacket;
    expect(all.topic).toBe('push/all');
    expect(all.payload.toString()).toBe('everyone');
  });

  test.each([
    ['CONNACK', Buffer.from([0x20, 0x02, 0x00, 0x00])],
    ['SUBACK', Buffer.from([0x90, 0x03, 0x00, 0x01, 0x00])],
    ['PINGRESP', Buffer.from([0xd0, 0x00])],
  ])('a server-only packet (%s) from a client closes the connection', async (_n, bytes) => {
    const raw = await openRaw('raw-wrong-way');
    raw.sendBytes(bytes);
    await within(raw.closed, 2000, 'close');
  });

  test('PUBACK, PUBREC, PUBCOMP from a client (for pushes it never got at QoS > 0) are ignored', async () => {
    const raw = await openRaw('raw-stray-acks');
    raw.send({ cmd: 'puback', messageId: 1 });
    raw.send({ cmd: 'pubrec', messageId: 2 });
    raw.send({ cmd: 'pubcomp', messageId: 3 });
    raw.send({ cmd: 'pingreq' });
    await within(raw.next('pingresp'), 2000, 'PINGRESP');
    expect(raw.packets).toEqual([]);
  });
});
