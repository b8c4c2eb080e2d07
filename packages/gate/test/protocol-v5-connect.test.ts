// MQTT 5 CONNECT and CONNACK (MQTT 5.0): raw mqtt-packet v5 peers and MQTT.js v5.
import * as mqtt from 'mqtt';
import type { IConnackPacket, IPublishPacket } from 'mqtt-packet';
import type { ConnectInfo, GateOptions } from '@mqgate/gate';
import { Connections } from './helpers/connections';
import { startGate, type Harness } from './helpers/harness';
import { nextSession, within } from './helpers/waiters';
import { envelopeOf, mqtt5, RawV5Peers } from './v5-support';

const peers = new RawV5Peers();
const conns = new Connections();
afterEach(async () => {
  await peers.closeAll();
  await conns.closeAll();
});

async function gateWith(options: GateOptions): Promise<Harness> {
  const h = await startGate(options);
  await h.serve('svc', (_fn, args) => args[1]);
  return h;
}

describe('CONNACK v5 (rule 2)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await gateWith({ maxInflight: 7, maxPacketSize: 4000, maxKeepalive: 30 });
  });
  afterAll(() => h.stop());

  test('states the gate limits as CONNACK properties, Session Present 0', async () => {
    const raw = await peers.tcp(h.tcpPort);
    const ack = await raw.connect({ clientId: 'props', keepalive: 10 });
    expect(ack).toMatchObject({ reasonCode: 0, sessionPresent: false });
    expect(ack.properties).toEqual({
      receiveMaximum: 7,
      maximumPacketSize: 4000,
      topicAliasMaximum: 16,
      retainAvailable: false,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: false,
      sharedSubscriptionAvailable: false,
    });
  });

  test('an empty client id gets an Assigned Client Identifier, clean start 0 included (MQTT-3.2.2-16)', async () => {
    const raw = await peers.tcp(h.tcpPort);
    const session = nextSession(h);
    // mqtt-packet will not generate this (3.1.1's rule MQTT-3.1.3-8); MQTT 5 allows it (MQTT-3.1.3-7).
    raw.sendBytes(Buffer.from([0x10, 13, 0, 4, ...Buffer.from('MQTT'), 5, 0x00, 0, 10, 0, 0, 0]));
    const ack = (await raw.next('connack')) as IConnackPacket;
    expect(ack.reasonCode).toBe(0);
    const assigned = ack.properties?.assignedClientIdentifier;
    expect(assigned).toMatch(/^mqgate-/);
    expect(h.gate.getSession((await session).sessionId)).toBeDefined();
  });

  test('a keepalive above maxKeepalive is lowered and stated as Server Keep Alive (MQTT-3.2.2-21)', async () => {
    const raw = await peers.tcp(h.tcpPort);
    const ack = await raw.connect({ clientId: 'ka', keepalive: 600 });
    expect(ack.reasonCode).toBe(0);
    expect(ack.properties?.serverKeepAlive).toBe(30);
    const within30 = await peers.tcp(h.tcpPort);
    expect((await within30.connect({ clientId: 'ka2', keepalive: 20 })).properties?.serverKeepAlive).toBeUndefined();
  });

  test('Request Response Information 1 gets Response Information reply/<client id>; the prefix works as a Response Topic', async () => {
    const raw = await peers.tcp(h.tcpPort);
    const ack = await raw.connect({ clientId: 'rri', properties: { requestResponseInformation: true } });
    expect(ack.properties?.responseInformation).toBe('reply/rri');
    const reply = await within(raw.ask('svc/HD_echo', '{"x":1}', { responseTopic: 'reply/rri/1' }, 'reply/rri/1'), 2000, 'reply');
    expect(envelopeOf(reply).Result).toEqual({ x: 1 });
    const other = await peers.tcp(h.tcpPort);
    expect((await other.connect({ clientId: 'no-rri' })).properties?.responseInformation).toBeUndefined();
  });

  test.each(['tcp', 'websocket'] as const)('MQTT.js v5 over %s gets CONNACK 0x00 with the properties', async (network) => {
    const c = mqtt.connect(network === 'tcp' ? h.tcpUrl : h.wsUrl, mqtt5({ clientId: `mqttjs-${network}`, reconnectPeriod: 0 }));
    conns.clients.push(c);
    const ack = await within(new Promise<IConnackPacket>((resolve) => c.once('connect', resolve)), 3000, 'CONNACK');
    expect(ack.reasonCode).toBe(0);
    expect(ack.properties).toMatchObject({ receiveMaximum: 7, maximumPacketSize: 4000, topicAliasMaximum: 16, retainAvailable: false });
  });
});

describe('CONNECT v5 properties (rule 1)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await gateWith({ maxUserProperties: 2, maxUserPropertyBytes: 40 });
  });
  afterAll(() => h.stop());

  test('Maximum Packet Size: a push larger than the client allows is dropped and counted (MQTT-3.1.2-25), smaller ones still arrive', async () => {
    const raw = await peers.tcp(h.tcpPort);
    const session = nextSession(h);
    await raw.connect({ clientId: 'small', properties: { maximumPacketSize: 200 } });
    const id = (await session).sessionId;
    const before = h.gate.stats().droppedOversize;
    expect(h.gate.send(id, 'push/big', Buffer.alloc(500, 0x61))).toBe(false);
    expect(h.gate.stats().droppedOversize).toBe(before + 1);
    expect(h.gate.send(id, 'push/small', 'ok')).toBe(true);
    const got = (await within(raw.next('publish'), 2000, 'small push')) as IPublishPacket;
    expect(got.topic).toBe('push/small');
    // A reply over the limit becomes an Error envelope that fits (MQTT-3.1.2-24): the connection stays up.
    raw.send({
      cmd: 'publish',
      topic: 'svc/HD_echo',
      payload: Buffer.from(JSON.stringify({ p: 'x'.repeat(400) })),
      qos: 0,
      dup: false,
      retain: false,
      properties: { responseTopic: 'r' },
    });
    await within(
      (async () => {
        while (h.gate.stats().droppedOversize < before + 2) await new Promise((r) => setImmediate(r));
      })(),
      2000,
      'the oversize reply counted',
    );
    const error = (await within(raw.next('publish'), 2000, 'error reply')) as IPublishPacket;
    expect(error.topic).toBe('r');
    expect(JSON.parse(error.payload.toString())).toMatchObject({
      Error: expect.stringMatching(/^reply too large: \d+ bytes exceeds the client's Maximum Packet Size 200$/),
      Result: null,
    });
    expect(h.gate.send(id, 'push/small', 'still')).toBe(true);
    expect(((await within(raw.next('publish'), 2000, 'second push')) as IPublishPacket).payload.toString()).toBe('still');
  });

  test('a Session Expiry Interval is kept: DISCONNECT may change a non-zero one, not a zero one (MQTT 5.0 §3.14.2.2.2)', async () => {
    const kept = await peers.tcp(h.tcpPort);
    await kept.connect({ clientId: 'sei-300', properties: { sessionExpiryInterval: 300 } });
    kept.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 10 } });
    await within(kept.closed, 2000, 'clean close');
    expect(kept.packets.filter((p) => p.cmd === 'disconnect')).toEqual([]);

    const zero = await peers.tcp(h.tcpPort);
    await zero.connect({ clientId: 'sei-0' });
    zero.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 10 } });
    expect((await within(zero.disconnected(), 2000, 'DISCONNECT')).reasonCode).toBe(0x82);
  });

  test('CONNECT User Properties over maxUserProperties or maxUserPropertyBytes get CONNACK 0x97 with a Reason String', async () => {
    const many = await peers.tcp(h.tcpPort);
    const ack = await many.connect({ clientId: 'up-many', properties: { userProperties: { a: '1', b: '2', c: '3' } } });
    expect(ack.reasonCode).toBe(0x97);
    expect(ack.properties?.reasonString).toMatch(/maxUserProperties 2/);
    await within(many.closed, 2000, 'close');
    const big = await peers.tcp(h.tcpPort);
    const ack2 = await big.connect({ clientId: 'up-big', properties: { userProperties: { a: 'x'.repeat(50) } } });
    expect(ack2.reasonCode).toBe(0x97);
    expect(ack2.properties?.reasonString).toMatch(/maxUserPropertyBytes 40/);
  });

  test('Request Problem Information 0: a refused PUBLISH gets its reason code without a Reason String (MQTT-3.1.2-29)', async () => {
    const quiet = await peers.connected(h.tcpPort, { clientId: 'rpi-0', properties: { requestProblemInformation: false } });
    const refuse = { userProperties: { a: '1', b: '2', c: '3' } };
    quiet.send({
      cmd: 'publish',
      topic: 'svc/HD_echo',
      payload: Buffer.from('{}'),
      qos: 1,
      messageId: 5,
      dup: false,
      retain: false,
      properties: refuse,
    });
    const ack = (await within(quiet.next('puback'), 2000, 'PUBACK')) as { reasonCode: number; properties?: object };
    expect(ack.reasonCode).toBe(0x97);
    expect(ack.properties).toBeUndefined();
    const loud = await peers.connected(h.tcpPort, { clientId: 'rpi-1' });
    loud.send({
      cmd: 'publish',
      topic: 'svc/HD_echo',
      payload: Buffer.from('{}'),
      qos: 1,
      messageId: 5,
      dup: false,
      retain: false,
      properties: refuse,
    });
    const ack2 = (await within(loud.next('puback'), 2000, 'PUBACK')) as { reasonCode: number; properties?: { reasonString?: string } };
    expect(ack2.reasonCode).toBe(0x97);
    expect(ack2.properties?.reasonString).toMatch(/maxUserProperties/);
  });
});

describe('authentication (rules 1 and 2)', () => {
  let h: Harness;
  const seen: ConnectInfo[] = [];
  beforeAll(async () => {
    h = await gateWith({
      authenticate: (info) => {
        seen.push(info);
        if (info.username === 'throws') throw new Error('hook down');
        if (info.authenticationMethod === 'token') return info.authenticationData?.toString() === 'good';
        if (info.username === 'bad') return { returnCode: 4 };
        if (info.username === 'custom') return { reasonCode: 0x9f, reasonString: 'slow down' };
        return info.username !== 'nobody';
      },
    });
  });
  afterAll(() => h.stop());

  async function connack(fields: Parameters<typeof peers.connected>[1]): Promise<IConnackPacket> {
    const raw = await peers.tcp(h.tcpPort);
    return raw.connect(fields);
  }

  test('the hook sees the protocol level and the CONNECT User Properties', async () => {
    expect((await connack({ clientId: 'up', username: 'u', properties: { userProperties: { tenant: 'acme', tag: ['a', 'b'] } } })).reasonCode).toBe(
      0,
    );
    expect(seen.at(-1)).toMatchObject({ protocolVersion: 5, userProperties: { tenant: 'acme', tag: ['a', 'b'] } });
  });

  test.each([
    ['bad user name or password', 'bad', 0x86],
    ['not authorized', 'nobody', 0x87],
    ['server unavailable (hook throws)', 'throws', 0x88],
    ["the hook's own code", 'custom', 0x9f],
  ])('refusal: %s → its CONNACK reason code with a Reason String', async (_name, username, code) => {
    const ack = await connack({ clientId: `refused-${username}`, username });
    expect(ack.reasonCode).toBe(code);
    expect(typeof ack.properties?.reasonString).toBe('string');
  });

  test('an Authentication Method is accepted only when the hook accepts it, else 0x8C; no AUTH exchange', async () => {
    expect(
      (await connack({ clientId: 'am-ok', properties: { authenticationMethod: 'token', authenticationData: Buffer.from('good') } })).reasonCode,
    ).toBe(0);
    expect(
      (await connack({ clientId: 'am-no', properties: { authenticationMethod: 'token', authenticationData: Buffer.from('bad') } })).reasonCode,
    ).toBe(0x8c);
  });

  test('without an authenticate hook an Authentication Method gets 0x8C (Bad authentication method)', async () => {
    const open = await gateWith({});
    try {
      const raw = await peers.tcp(open.tcpPort);
      const ack = await raw.connect({ clientId: 'am', properties: { authenticationMethod: 'SCRAM-SHA-1' } });
      expect(ack.reasonCode).toBe(0x8c);
      expect(ack.properties?.reasonString).toMatch(/SCRAM-SHA-1/);
      await within(raw.closed, 2000, 'close');
    } finally {
      await open.stop();
    }
  });
});
