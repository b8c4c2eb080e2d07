/**
 * Client PUBLISH at QoS 0, 1, 2 (reference/mqtt-layer.md §6.3 item 4; MQTT 3.1.1 §3.3, §4.3,
 * MQTT-4.6.0-2, MQTT-4.3.3-2): acks on receipt and in order, never held by a handler; QoS 2
 * duplicates not dispatched twice; the cap on QoS 2 ids awaiting PUBREL.
 */
import type * as mqtt from 'mqtt';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import type { SessionData } from '@mqgate/rpc';
import { Connections } from './helpers/connections';
import { startGate, request, mqttOpts, VERSIONS, type RawClient, type Harness } from './helpers/harness';
import { nextMessage, within } from './helpers/waiters';

class Deferred<T = void> {
  resolve!: (v: T) => void;
  readonly promise = new Promise<T>((r) => (this.resolve = r));
}

let h: Harness;
const conns = new Connections();
/** HD_hold handlers wait for the test to release them, by request topic. */
const holds = new Map<string, Deferred>();
const hold = (topic: string): Deferred => {
  let d = holds.get(topic);
  if (!d) holds.set(topic, (d = new Deferred()));
  return d;
};
/** Handler calls by request topic. */
const calls = new Map<string, number>();
/** HD_hold handlers that have returned, by topic. */
const finished = new Set<string>();

beforeAll(async () => {
  h = await startGate({ maxQos2Pending: 3 });
  await h.serve('svc', async (fn, args) => {
    const topic = (args[0] as SessionData).topic;
    calls.set(topic, (calls.get(topic) ?? 0) + 1);
    if (fn === 'HD_hold') {
      await hold(topic).promise;
      finished.add(topic);
      return { done: topic };
    }
    if (fn === 'HD_count') return calls.get(topic) ?? 0;
    return args[1];
  });
});

afterEach(async () => {
  for (const d of holds.values()) d.resolve();
  holds.clear();
  await conns.closeAll();
});

afterAll(() => h.stop());

const openRaw = (clientId: string) => conns.connectedRaw(h.tcpPort, clientId);
const openMqtt = (opts: mqtt.IClientOptions) => conns.mqtt(h.tcpUrl, opts);

function publish(topic: string, payload: string, qos: 0 | 1 | 2, messageId?: number, dup = false): Packet {
  return { cmd: 'publish', topic, payload: Buffer.from(payload), qos, messageId, dup, retain: false } as Packet;
}

/** A QoS 0 request on its own topic, awaited: every earlier request of `raw` has been dispatched by then. */
async function sync(raw: RawClient, tag: string): Promise<void> {
  const topic = `svc/HD_echo/sync-${tag}`;
  raw.send(publish(topic, '{"sync":1}', 0));
  await within(
    raw.next('publish', (p) => (p as IPublishPacket).topic === topic),
    2000,
    'sync reply',
  );
}

describe.each(VERSIONS)('MQTT.js at level %i', (v) => {
  test('QoS 0 request gets its reply', async () => {
    const c = await openMqtt({ ...mqttOpts(v), clientId: `q0-${v}` });
    const reply = await within(request(c, 'svc/HD_echo/q0', '{"q":0}', 0), 2000, 'reply');
    expect(reply).toEqual({ Trace: expect.any(String), Error: '', Result: { q: 0 } });
  });

  test('QoS 1: the PUBACK arrives while the handler is still running; the reply follows', async () => {
    const c = await openMqtt({ ...mqttOpts(v), clientId: `q1-${v}` });
    const topic = `svc/HD_hold/q1-${v}`;
    const reply = nextMessage(c, topic);
    await within(c.publishAsync(topic, '{}', { qos: 1 }), 2000, 'PUBACK (publishAsync)');
    expect(finished.has(topic)).toBe(false);
    hold(topic).resolve();
    expect(JSON.parse((await within(reply, 2000, 'reply')).toString()).Result).toEqual({ done: topic });
    expect(calls.get(topic)).toBe(1);
  });

  test('QoS 2: publishAsync completes (PUBREC, PUBREL, PUBCOMP), the handler runs once, the reply arrives', async () => {
    const c = await openMqtt({ ...mqttOpts(v), clientId: `q2-${v}` });
    const topic = `svc/HD_count/q2-${v}`;
    const reply = nextMessage(c, topic);
    await within(c.publishAsync(topic, '{}', { qos: 2 }), 2000, 'QoS 2 flow (publishAsync)');
    expect(JSON.parse((await within(reply, 2000, 'reply')).toString()).Result).toBe(1);
    // A later request has been dispatched, so a second dispatch of the QoS 2 one would show.
    await within(request(c, `svc/HD_echo/after-${v}`, '{}'), 2000, 'later reply');
    expect(calls.get(topic)).toBe(1);
  });

  test('QoS 1 and 2 acks are not held by slow handlers', async () => {
    const c = await openMqtt({ ...mqttOpts(v), clientId: `held-${v}` });
    const topics = ['a', 'b', 'c'].map((t) => `svc/HD_hold/${t}-${v}`);
    await within(
      Promise.all([
        c.publishAsync(topics[0], '{}', { qos: 1 }),
        c.publishAsync(topics[1], '{}', { qos: 2 }),
        c.publishAsync(topics[2], '{}', { qos: 1 }),
      ]),
      2000,
      'every ack while all handlers are held',
    );
    expect(topics.filter((t) => finished.has(t))).toEqual([]);
  });
});

describe('raw client', () => {
  test('QoS 1: the PUBACK comes before the handler finishes (handler released only after the PUBACK)', async () => {
    const raw = await openRaw('raw-q1');
    const topic = 'svc/HD_hold/raw-q1';
    raw.send(publish(topic, '{}', 1, 41));
    const ack = await within(raw.next('puback'), 2000, 'PUBACK');
    expect(ack).toMatchObject({ cmd: 'puback', messageId: 41 });
    expect(finished.has(topic)).toBe(false);
    expect(raw.packets.filter((p) => p.cmd === 'publish')).toEqual([]);
    hold(topic).resolve();
    const reply = (await within(raw.next('publish'), 2000, 'reply')) as IPublishPacket;
    expect(reply.topic).toBe(topic);
    expect(reply.qos).toBe(0);
    expect(finished.has(topic)).toBe(true);
  });

  test('QoS 1: PUBACKs come in arrival order while handlers finish in reverse order', async () => {
    const raw = await openRaw('raw-order');
    const ids = [11, 12, 13];
    const topics = ids.map((id) => `svc/HD_hold/order-${id}`);
    ids.forEach((id, i) => raw.send(publish(topics[i], '{}', 1, id)));
    const acks: number[] = [];
    for (let i = 0; i < ids.length; i++) acks.push(((await within(raw.next('puback'), 2000, 'PUBACK')) as { messageId: number }).messageId);
    expect(acks).toEqual(ids);
    expect(topics.filter((t) => finished.has(t))).toEqual([]);
    const replies: string[] = [];
    for (const topic of [...topics].reverse()) {
      hold(topic).resolve();
      replies.push(
        (
          (await within(
            raw.next('publish', (p) => (p as IPublishPacket).topic === topic),
            2000,
            'reply',
          )) as IPublishPacket
        ).topic,
      );
    }
    expect(replies).toEqual([...topics].reverse());
  });

  test('QoS 2: PUBREC; a DUP resend before PUBREL gets PUBREC again and is not dispatched; PUBREL → PUBCOMP; the id is then reusable', async () => {
    const raw = await openRaw('raw-q2');
    const topic = 'svc/HD_count/raw-q2';
    raw.send(publish(topic, '{}', 2, 7));
    expect(await within(raw.next('pubrec'), 2000, 'PUBREC')).toMatchObject({ messageId: 7 });
    const first = (await within(
      raw.next('publish', (p) => (p as IPublishPacket).topic === topic),
      2000,
      'reply',
    )) as IPublishPacket;
    expect(JSON.parse(first.payload.toString()).Result).toBe(1);

    raw.send(publish(topic, '{}', 2, 7, true));
    expect(await within(raw.next('pubrec'), 2000, 'PUBREC for the duplicate')).toMatchObject({ messageId: 7 });
    raw.send({ cmd: 'pubrel', messageId: 7 });
    expect(await within(raw.next('pubcomp'), 2000, 'PUBCOMP')).toMatchObject({ messageId: 7 });
    await sync(raw, 'q2-dup');
    expect(calls.get(topic)).toBe(1);
    expect(raw.packets.filter((p) => p.cmd === 'publish')).toEqual([]);

    // After PUBREL the identifier is free: a new message with id 7 is a new message.
    raw.send(publish(topic, '{}', 2, 7));
    expect(await within(raw.next('pubrec'), 2000, 'PUBREC for the reused id')).toMatchObject({ messageId: 7 });
    const second = (await within(
      raw.next('publish', (p) => (p as IPublishPacket).topic === topic),
      2000,
      'second reply',
    )) as IPublishPacket;
    expect(JSON.parse(second.payload.toString()).Result).toBe(2);
    raw.send({ cmd: 'pubrel', messageId: 7 });
    expect(await within(raw.next('pubcomp'), 2000, 'second PUBCOMP')).toMatchObject({ messageId: 7 });
    expect(calls.get(topic)).toBe(2);
  });

  test('QoS 2: a duplicate without the DUP flag before PUBREL is not dispatched either', async () => {
    const raw = await openRaw('raw-q2-nodup');
    const topic = 'svc/HD_count/raw-q2-nodup';
    raw.send(publish(topic, '{}', 2, 8));
    raw.send(publish(topic, '{}', 2, 8));
    expect(await within(raw.next('pubrec'), 2000, 'PUBREC')).toMatchObject({ messageId: 8 });
    expect(await within(raw.next('pubrec'), 2000, 'second PUBREC')).toMatchObject({ messageId: 8 });
    await sync(raw, 'nodup');
    expect(calls.get(topic)).toBe(1);
  });

  test('PUBREL for an unknown id still gets PUBCOMP', async () => {
    const raw = await openRaw('raw-pubrel');
    raw.send({ cmd: 'pubrel', messageId: 999 });
    expect(await within(raw.next('pubcomp'), 2000, 'PUBCOMP')).toMatchObject({ messageId: 999 });
  });

  test('more than maxQos2Pending (3) QoS 2 ids awaiting PUBREL closes the connection', async () => {
    const raw = await openRaw('raw-q2-cap');
    for (const id of [1, 2, 3]) {
      raw.send(publish(`svc/HD_echo/cap-${id}`, '{}', 2, id));
      expect(await within(raw.next('pubrec'), 2000, `PUBREC ${id}`)).toMatchObject({ messageId: id });
    }
    raw.send(publish('svc/HD_echo/cap-4', '{}', 2, 4));
    await within(raw.closed, 2000, 'close on the 4th pending QoS 2 id');
    expect(raw.packets.filter((p) => p.cmd === 'pubrec')).toEqual([]);
  });

  test('the QoS 2 cap counts ids awaiting PUBREL only: released ids make room', async () => {
    const raw = await openRaw('raw-q2-room');
    for (const id of [1, 2, 3]) raw.send(publish(`svc/HD_echo/room-${id}`, '{}', 2, id));
    for (const id of [1, 2, 3]) expect(await within(raw.next('pubrec'), 2000, `PUBREC ${id}`)).toMatchObject({ messageId: id });
    raw.send({ cmd: 'pubrel', messageId: 2 });
    expect(await within(raw.next('pubcomp'), 2000, 'PUBCOMP')).toMatchObject({ messageId: 2 });
    raw.send(publish('svc/HD_echo/room-4', '{}', 2, 4));
    expect(await within(raw.next('pubrec'), 2000, 'PUBREC 4')).toMatchObject({ messageId: 4 });
    // 1, 3, 4 held; the duplicate of a held id does not count as a new one.
    raw.send(publish('svc/HD_echo/room-3', '{}', 2, 3, true));
    expect(await within(raw.next('pubrec'), 2000, 'PUBREC for duplicate 3')).toMatchObject({ messageId: 3 });
    await sync(raw, 'room');
  });

  test.each([
    ['a + wildcard', 'svc/+/1'],
    ['a # wildcard', 'svc/#'],
  ])('a PUBLISH whose topic holds %s closes the connection and is not dispatched (MQTT-3.3.2-2)', async (_n, topic) => {
    const raw = await openRaw('raw-wild');
    raw.send(publish(topic, '{}', 1, 5));
    await within(raw.closed, 2000, 'close');
    expect(raw.packets).toEqual([]);
    expect(calls.get(topic)).toBeUndefined();
  });

  test('a PUBLISH with an empty topic closes the connection (MQTT-4.7.3-1)', async () => {
    const raw = await openRaw('raw-empty-topic');
    raw.sendBytes(Buffer.from([0x30, 0x04, 0x00, 0x00, 0x7b, 0x7d]));
    await within(raw.closed, 2000, 'close');
    expect(raw.packets).toEqual([]);
  });
});
