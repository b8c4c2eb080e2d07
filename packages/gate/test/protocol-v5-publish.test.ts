// MQTT 5 PUBLISH, request/response and SUBSCRIBE (MQTT 5.0).
import type * as mqtt from 'mqtt';
import type { IPublishPacket, ISubackPacket, IUnsubackPacket } from 'mqtt-packet';
import { replyWithProperties, RpcError, type SessionData } from '@mqgate/rpc';
import { Connections } from './helpers/connections';
import { startGate, type Harness } from './helpers/harness';
import { within } from './helpers/waiters';
import { envelopeOf, mqtt5, RawV5Peers, type RawV5 } from './v5-support';

let h: Harness;
const peers = new RawV5Peers();
const conns = new Connections();
/** Session snapshots the `svc` module received, newest last. */
const received: SessionData[] = [];

beforeAll(async () => {
  h = await startGate({ maxInflight: 3, topicAliasMaximum: 4, maxResponseTopicLength: 64, maxCorrelationDataLength: 16, handlerTimeout: 300 });
  await h.serve('svc', async (fn, args) => {
    received.push(args[0] as SessionData);
    if (fn === 'HD_bytes') return Buffer.from([0xde, 0xad]);
    if (fn === 'HD_fail') throw new RpcError('handler says no', 'REMOTE');
    if (fn === 'HD_slow') return new Promise(() => undefined);
    if (fn === 'HD_props')
      return replyWithProperties({ ok: true }, { userProperties: { served: 'yes', tags: ['a', 'b'] }, contentType: 'application/vnd.x+json' });
    return args[1];
  });
});
afterAll(() => h.stop());
afterEach(async () => {
  await peers.closeAll();
  await conns.closeAll();
});

const pub = (topic: string, properties: IPublishPacket['properties'], extra: Partial<IPublishPacket> = {}): IPublishPacket => ({
  cmd: 'publish',
  topic,
  payload: Buffer.from('{"n":1}'),
  qos: 0,
  dup: false,
  retain: false,
  properties,
  ...extra,
});

/** Resolves with the next message an MQTT.js client gets on `topic`, with its packet. */
function nextOn(c: mqtt.MqttClient, topic: string): Promise<IPublishPacket> {
  return new Promise((resolve) => {
    const on = (t: string, _p: Buffer, packet: IPublishPacket) => {
      if (t !== topic) return;
      c.off('message', on);
      resolve(packet);
    };
    c.on('message', on);
  });
}

describe('request/response by Response Topic and Correlation Data (rule 4)', () => {
  test.each(['tcp', 'websocket'] as const)(
    'MQTT.js v5 over %s: the reply comes on the Response Topic with the Correlation Data, unsubscribed',
    async (network) => {
      const c = await conns.mqtt(network === 'tcp' ? h.tcpUrl : h.wsUrl, mqtt5());
      const reply = nextOn(c, 'my/replies');
      c.publish('svc/HD_echo', '{"a":1}', { qos: 1, properties: { responseTopic: 'my/replies', correlationData: Buffer.from([0, 1, 2, 255]) } });
      const p = await within(reply, 2000, 'reply');
      expect(envelopeOf(p)).toEqual({ Trace: expect.any(String), Error: '', Result: { a: 1 } });
      expect(p.qos).toBe(0);
      expect(p.properties).toEqual({ correlationData: Buffer.from([0, 1, 2, 255]), contentType: 'application/json', payloadFormatIndicator: true });
    },
  );

  test('without Correlation Data the reply has none; a bytes result goes out raw, without Content Type', async () => {
    const raw = await peers.connected(h.tcpPort, { clientId: 'nocd' });
    const r1 = await within(raw.ask('svc/HD_echo', '{"b":2}', { responseTopic: 'r/1' }, 'r/1'), 2000, 'reply');
    expect(r1.properties).toEqual({ payloadFormatIndicator: true, contentType: 'application/json' });
    const r2 = await within(raw.ask('svc/HD_bytes', 'x', { responseTopic: 'r/2', correlationData: Buffer.from('k') }, 'r/2'), 2000, 'bytes');
    expect(r2.payload).toEqual(Buffer.from([0xde, 0xad]));
    expect(r2.properties).toEqual({ correlationData: Buffer.from('k') });
  });

  test.each([
    ['an unknown handler name', 'svc/nope', /must begin with 'HD_'/],
    ['a one-level topic', 'svc', /Topic must be/],
    ['a module nobody serves', 'ghost/HD_x', /not found/],
    ['a handler error', 'svc/HD_fail', /handler says no/],
    ['a deadline', 'svc/HD_slow', /^DEADLINE: /],
  ])('%s is answered on the Response Topic with Error set', async (_name, topic, error) => {
    const raw = await peers.connected(h.tcpPort, { clientId: `err-${topic.replace(/\W/g, '')}` });
    const r = await within(raw.ask(topic, '{}', { responseTopic: 'errs', correlationData: Buffer.from('c1') }, 'errs'), 3000, 'error reply');
    expect(envelopeOf(r)).toMatchObject({ Error: expect.stringMatching(error), Result: null });
    expect(r.properties?.correlationData).toEqual(Buffer.from('c1'));
  });

  test('a client subscribed to its Response Topic gets each reply once', async () => {
    const c = await conns.mqtt(h.tcpUrl, mqtt5());
    await c.subscribeAsync('mine/#');
    const got: string[] = [];
    c.on('message', (t, payload) => got.push(`${t} ${JSON.stringify(envelopeOf({ payload }).Result)}`));
    const last = nextOn(c, 'mine/last');
    c.publish('svc/HD_echo', '{"i":1}', { properties: { responseTopic: 'mine/r' } });
    c.publish('svc/HD_echo', '{"i":2}', { properties: { responseTopic: 'mine/r' } });
    c.publish('svc/HD_echo', '{"i":3}', { properties: { responseTopic: 'mine/last' } });
    await within(last, 2000, 'last reply');
    expect(got.sort()).toEqual(['mine/last {"i":3}', 'mine/r {"i":1}', 'mine/r {"i":2}']);
  });

  test("mqant's form keeps working over v5; a PUBLISH with neither msgid nor Response Topic is a notify", async () => {
    const c = await conns.mqtt(h.tcpUrl, mqtt5());
    const reply = nextOn(c, 'svc/HD_echo/7');
    c.publish('svc/HD_echo/7', '{"m":7}');
    const p = await within(reply, 2000, 'mqant-form reply');
    expect(envelopeOf(p).Result).toEqual({ m: 7 });
    expect(p.properties).toMatchObject({ contentType: 'application/json', payloadFormatIndicator: true });
    const seen = [] as string[];
    c.on('message', (t) => seen.push(t));
    const calls = received.length;
    c.publish('svc/HD_echo', '{"notify":1}');
    const after = nextOn(c, 'svc/HD_echo/8');
    c.publish('svc/HD_echo/8', '{}');
    await within(after, 2000, 'request after the notify');
    expect(received.length).toBe(calls + 2);
    expect(seen).toEqual(['svc/HD_echo/8']);
  });

  test('QoS 1 and 2 requests with a Response Topic are acked with reason 0x00 and answered', async () => {
    const raw = await peers.connected(h.tcpPort, { clientId: 'qos12' });
    const r1 = raw.next('publish', (p) => (p as IPublishPacket).topic === 'q/1');
    raw.send(pub('svc/HD_echo', { responseTopic: 'q/1' }, { qos: 1, messageId: 1 }));
    expect(((await raw.next('puback')) as { reasonCode?: number }).reasonCode ?? 0).toBe(0);
    await within(r1, 2000, 'QoS 1 reply');
    const r2 = raw.next('publish', (p) => (p as IPublishPacket).topic === 'q/2');
    raw.send(pub('svc/HD_echo', { responseTopic: 'q/2' }, { qos: 2, messageId: 2 }));
    expect(((await raw.next('pubrec')) as { reasonCode?: number }).reasonCode ?? 0).toBe(0);
    raw.send({ cmd: 'pubrel', messageId: 2 });
    await raw.next('pubcomp');
    await within(r2, 2000, 'QoS 2 reply');
  });
});

describe('handlers see the MQTT 5 context and set reply properties (rule 5)', () => {
  test('User Properties, Content Type and Correlation Data reach the handler in the session snapshot', async () => {
    const raw = await peers.connected(h.tcpPort, { clientId: 'ctx' });
    const props = {
      responseTopic: 'ctx/r',
      correlationData: Buffer.from('id-9'),
      contentType: 'application/json',
      userProperties: { lang: 'fr', k: ['1', '2'] },
    };
    await within(raw.ask('svc/HD_echo', '{}', props, 'ctx/r'), 2000, 'reply');
    const s = received.at(-1) as SessionData;
    expect(s.protocolVersion).toBe(5);
    expect(s.mqtt5).toEqual({ userProperties: { lang: 'fr', k: ['1', '2'] }, contentType: 'application/json', correlationData: Buffer.from('id-9') });
    const plain = await conns.mqtt(h.tcpUrl, { protocolVersion: 4 });
    const reply = nextOn(plain, 'svc/HD_echo/1');
    plain.publish('svc/HD_echo/1', '{}');
    await within(reply, 2000, '3.1.1 reply');
    expect((received.at(-1) as SessionData).protocolVersion).toBe(4);
    expect((received.at(-1) as SessionData).mqtt5).toBeUndefined();
  });

  test("a handler's replyWithProperties sets User Properties and Content Type on a v5 reply; a 3.1.1 client gets the plain result", async () => {
    const raw = await peers.connected(h.tcpPort, { clientId: 'rprops' });
    const r = await within(raw.ask('svc/HD_props', '{}', { responseTopic: 'p/r', correlationData: Buffer.from('z') }, 'p/r'), 2000, 'reply');
    expect(envelopeOf(r).Result).toEqual({ ok: true });
    expect(r.properties).toEqual({
      payloadFormatIndicator: true,
      contentType: 'application/vnd.x+json',
      correlationData: Buffer.from('z'),
      userProperties: { served: 'yes', tags: ['a', 'b'] },
    });
    const v4 = await conns.mqtt(h.tcpUrl, { protocolVersion: 4 });
    const reply = nextOn(v4, 'svc/HD_props/1');
    v4.publish('svc/HD_props/1', '{}');
    expect(envelopeOf(await within(reply, 2000, '3.1.1 reply')).Result).toEqual({ ok: true });
  });

  test('push properties reach a v5 client and are dropped for 3.1.1', async () => {
    const v5 = await conns.mqtt(h.tcpUrl, mqtt5({ clientId: 'push5' }));
    const v4 = await conns.mqtt(h.tcpUrl, { protocolVersion: 4, clientId: 'push4' });
    const p5 = nextOn(v5, 'news');
    const p4 = nextOn(v4, 'news');
    expect(
      h.gate.broadcast('news', '{"n":1}', { userProperties: { from: 'ops' }, contentType: 'application/json', messageExpiryInterval: 60 }),
    ).toBeGreaterThanOrEqual(2);
    expect((await within(p5, 2000, 'v5 push')).properties).toEqual({
      messageExpiryInterval: 60,
      contentType: 'application/json',
      userProperties: { from: 'ops' },
    });
    const got4 = await within(p4, 2000, 'v4 push');
    expect(got4.payload.toString()).toBe('{"n":1}');
  });
});

describe('inbound PUBLISH v5 (rule 3)', () => {
  async function disconnectCode(raw: RawV5): Promise<number | undefined> {
    return (await within(raw.disconnected(), 2000, 'DISCONNECT and close')).reasonCode;
  }

  test('a topic name with an alias sets it; an empty topic with the alias uses it', async () => {
    const raw = await peers.connected(h.tcpPort, { clientId: 'alias' });
    await within(raw.ask('svc/HD_echo', '{"v":1}', { topicAlias: 2, responseTopic: 'a/r1' }, 'a/r1'), 2000, 'first');
    const r = await within(raw.ask('', '{"v":2}', { topicAlias: 2, responseTopic: 'a/r2' }, 'a/r2'), 2000, 'by alias');
    expect(envelopeOf(r).Result).toEqual({ v: 2 });
    expect((received.at(-1) as SessionData).topic).toBe('svc/HD_echo');
  });

  test('MQTT.js with autoAssignTopicAlias uses the gate’s Topic Alias Maximum', async () => {
    const c = await conns.mqtt(h.tcpUrl, mqtt5({ autoAssignTopicAlias: true }));
    for (const i of [1, 2, 3]) {
      const reply = nextOn(c, `aa/${i}`);
      c.publish('svc/HD_echo', `{"i":${i}}`, { properties: { responseTopic: `aa/${i}` } });
      expect(envelopeOf(await within(reply, 2000, `reply ${i}`)).Result).toEqual({ i });
    }
  });

  test.each([
    ['0', { topic: 'svc/HD_echo', alias: 0 }],
    ['above topicAliasMaximum', { topic: 'svc/HD_echo', alias: 5 }],
    ['unknown', { topic: '', alias: 3 }],
  ])('a Topic Alias %s is DISCONNECT 0x94', async (_name, { topic, alias }) => {
    const raw = await peers.connected(h.tcpPort, { clientId: `bad-alias-${alias}` });
    raw.send(pub(topic, { topicAlias: alias }));
    expect(await disconnectCode(raw)).toBe(0x94);
  });

  test('more unacknowledged QoS 2 PUBLISHes than the Receive Maximum (maxInflight 3) is DISCONNECT 0x93; up to it is fine', async () => {
    const ok = await peers.connected(h.tcpPort, { clientId: 'rm-ok' });
    for (const id of [1, 2, 3]) ok.send(pub('svc/HD_none', undefined, { qos: 2, messageId: id }));
    for (const id of [1, 2, 3]) await ok.next('pubrec', (p) => (p as { messageId: number }).messageId === id);
    ok.send({ cmd: 'pubrel', messageId: 1 });
    await ok.next('pubcomp');
    ok.send(pub('svc/HD_none', undefined, { qos: 2, messageId: 4 }));
    await within(
      ok.next('pubrec', (p) => (p as { messageId: number }).messageId === 4),
      2000,
      'PUBREC 4 after a PUBREL',
    );
    const over = await peers.connected(h.tcpPort, { clientId: 'rm-over' });
    for (const id of [1, 2, 3, 4]) over.send(pub('svc/HD_none', undefined, { qos: 2, messageId: id }));
    expect(await disconnectCode(over)).toBe(0x93);
  });

  test.each([
    ['Payload Format Indicator 1 with bytes that are not UTF-8', { payloadFormatIndicator: true }, Buffer.from([0xff, 0xfe]), 0x99],
    ['a Response Topic over maxResponseTopicLength', { responseTopic: 'r/'.repeat(40) }, Buffer.from('{}'), 0x97],
    ['Correlation Data over maxCorrelationDataLength', { responseTopic: 'r', correlationData: Buffer.alloc(17) }, Buffer.from('{}'), 0x97],
    [
      'User Properties over maxUserProperties',
      { userProperties: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) },
      Buffer.from('{}'),
      0x97,
    ],
    ['User Properties over maxUserPropertyBytes', { userProperties: { big: 'x'.repeat(5000) } }, Buffer.from('{}'), 0x97],
  ])('%s is refused: PUBACK / PUBREC with the reason code and a Reason String, not dispatched', async (_name, properties, payload, code) => {
    const raw = await peers.connected(h.tcpPort, { clientId: `refuse-${code}-${_name.length}` });
    const calls = received.length;
    raw.send(pub('svc/HD_echo', properties as IPublishPacket['properties'], { qos: 1, messageId: 9, payload }));
    const ack = (await within(raw.next('puback'), 2000, 'PUBACK')) as { reasonCode: number; properties?: { reasonString?: string } };
    expect(ack.reasonCode).toBe(code);
    expect(ack.properties?.reasonString).toEqual(expect.any(String));
    raw.send(pub('svc/HD_echo', properties as IPublishPacket['properties'], { qos: 2, messageId: 10, payload }));
    expect(((await within(raw.next('pubrec'), 2000, 'PUBREC')) as { reasonCode: number }).reasonCode).toBe(code);
    // Still connected, and nothing was dispatched.
    await within(raw.ask('svc/HD_echo', '{}', { responseTopic: 'alive' }, 'alive'), 2000, 'still served');
    expect(received.length).toBe(calls + 1);
  });

  test('a Response Topic with a wildcard is DISCONNECT 0x82 (MQTT-3.3.2-14)', async () => {
    const raw = await peers.connected(h.tcpPort, { clientId: 'rt-wild' });
    raw.send(pub('svc/HD_echo', { responseTopic: 'r/#' }));
    expect(await disconnectCode(raw)).toBe(0x82);
  });
});

describe('SUBSCRIBE / UNSUBSCRIBE v5 (rule 7) and WebSocket (rule 8)', () => {
  test('SUBACK grants the QoS; shared subscriptions are granted; a Subscription Identifier gets 0xA1; UNSUBACK 0x00 each', async () => {
    const raw = await peers.connected(h.tcpPort, { clientId: 'subs' });
    raw.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [
        { topic: 'a/#', qos: 0 },
        { topic: '$share/g/b', qos: 1 },
        { topic: 'c', qos: 2 },
      ],
    } as never);
    expect(((await raw.next('suback')) as ISubackPacket).granted).toEqual([0, 1, 2]);
    raw.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'd', qos: 1 }], properties: { subscriptionIdentifier: 5 } } as never);
    expect(((await raw.next('suback')) as ISubackPacket).granted).toEqual([0xa1]);
    raw.send({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['a/#', 'c'] });
    expect(((await raw.next('unsuback')) as IUnsubackPacket).granted).toEqual([0, 0]);
  });

  test('a raw v5 peer over WebSocket negotiates subprotocol mqtt and gets request/response and DISCONNECT codes', async () => {
    const ws = await peers.ws(h.wsUrl);
    expect(ws.subprotocol).toBe('mqtt');
    expect((await ws.connect({ clientId: 'ws5' })).reasonCode).toBe(0);
    const r = await within(ws.ask('svc/HD_echo', '{"w":1}', { responseTopic: 'w/r', correlationData: Buffer.from('w') }, 'w/r'), 2000, 'reply');
    expect(envelopeOf(r).Result).toEqual({ w: 1 });
    expect(r.properties?.correlationData).toEqual(Buffer.from('w'));
    ws.send(pub('', { topicAlias: 1 }));
    expect((await within(ws.disconnected(), 2000, 'DISCONNECT')).reasonCode).toBe(0x94);
  });
});
