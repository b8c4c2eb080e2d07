/**
 * The client's address and network (reference/mqtt-layer.md §6.3 item 11): the socket's
 * peer, X-Forwarded-For only from trusted proxies (right-most untrusted hop).
 */
import type * as mqtt from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import type { ConnectInfo } from '@mqgate/gate';
import type { SessionData } from '@mqgate/rpc';
import { startGate, mqttConnect, request, RawClient, type Harness } from './helpers/harness';
import { RawWs } from './helpers/raw-ws';

const VERSIONS = [3, 4] as const;
const mqttOpts = (v: 3 | 4): mqtt.IClientOptions => ({ protocolVersion: v, protocolId: v === 3 ? 'MQIsdp' : 'MQTT' });

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Module handler: the session as the module sees it. */
const whoami = async (fn: string, args: unknown[]) => {
  const s = args[0] as SessionData;
  return fn === 'HD_whoami' ? { ip: s.ip, network: s.network } : null;
};

let plain: Harness;
let behindProxy: Harness;
const authSeen: ConnectInfo[] = [];
const raws: Array<RawClient | RawWs> = [];
const clients: mqtt.MqttClient[] = [];

beforeAll(async () => {
  plain = await startGate();
  await plain.serve('svc', whoami);
  behindProxy = await startGate({
    trustedProxies: ['127.0.0.1'],
    authenticate: (info) => {
      authSeen.push(info);
      return true;
    },
  });
  await behindProxy.serve('svc', whoami);
});

beforeEach(() => {
  authSeen.length = 0;
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  for (const r of raws.splice(0)) {
    r.destroy();
    await r.closed;
  }
});

afterAll(async () => {
  await plain.stop();
  await behindProxy.stop();
});

function nextSession(h: Harness): Promise<SessionData> {
  return new Promise((resolve) => h.gate.once('connect', resolve));
}

/** Connects a raw WebSocket with the given X-Forwarded-For, returns what the gate and a module see. */
async function viaWs(h: Harness, xff?: string): Promise<{ event: SessionData; module: { ip: string; network: string } }> {
  const event = nextSession(h);
  const ws = await RawWs.open(`ws://127.0.0.1:${h.wsPort}/mqtt`, { headers: xff === undefined ? {} : { 'X-Forwarded-For': xff } });
  raws.push(ws);
  expect((await within(ws.connect({ clientId: `xff-${xff ?? 'none'}` }), 2000, 'CONNACK')).returnCode).toBe(0);
  ws.send({ cmd: 'publish', topic: 'svc/HD_whoami/1', payload: Buffer.from('{}'), qos: 0, dup: false, retain: false });
  const reply = (await within(ws.next('publish'), 2000, 'reply')) as IPublishPacket;
  return { event: await event, module: JSON.parse(reply.payload.toString()).Result };
}

describe.each(VERSIONS)('MQTT.js at level %i', (v) => {
  test('over TCP: ip 127.0.0.1, network tcp, in the connect event and in the module', async () => {
    const event = nextSession(plain);
    const c = await mqttConnect(plain.tcpUrl, { ...mqttOpts(v), clientId: `tcp-addr-${v}` });
    clients.push(c);
    expect(await event).toMatchObject({ ip: '127.0.0.1', network: 'tcp' });
    expect((await within(request(c, 'svc/HD_whoami/1', '{}'), 2000, 'reply')).Result).toEqual({ ip: '127.0.0.1', network: 'tcp' });
  });

  test('over WebSocket: ip 127.0.0.1, network websocket, in the connect event and in the module', async () => {
    const event = nextSession(plain);
    const c = await mqttConnect(plain.wsUrl, { ...mqttOpts(v), clientId: `ws-addr-${v}` });
    clients.push(c);
    expect(await event).toMatchObject({ ip: '127.0.0.1', network: 'websocket' });
    expect((await within(request(c, 'svc/HD_whoami/1', '{}'), 2000, 'reply')).Result).toEqual({ ip: '127.0.0.1', network: 'websocket' });
  });
});

test('raw TCP client: ip 127.0.0.1, network tcp', async () => {
  const event = nextSession(plain);
  const raw = await RawClient.open(plain.tcpPort);
  raws.push(raw);
  expect((await raw.connect({ clientId: 'raw-tcp-addr' })).returnCode).toBe(0);
  expect(await event).toMatchObject({ ip: '127.0.0.1', network: 'tcp' });
});

describe('X-Forwarded-For', () => {
  test('ignored when the peer is not a trusted proxy', async () => {
    const seen = await viaWs(plain, '203.0.113.9');
    expect(seen.event).toMatchObject({ ip: '127.0.0.1', network: 'websocket' });
    expect(seen.module).toEqual({ ip: '127.0.0.1', network: 'websocket' });
  });

  test('without the header, a trusted peer is the client itself', async () => {
    const seen = await viaWs(behindProxy);
    expect(seen.event.ip).toBe('127.0.0.1');
    expect(seen.module.ip).toBe('127.0.0.1');
  });

  test.each([
    ['203.0.113.9', '203.0.113.9'],
    // The left-most entry is whatever the client claimed: the right-most untrusted hop wins.
    ['198.51.100.1, 203.0.113.9', '203.0.113.9'],
    ['198.51.100.1,203.0.113.9', '203.0.113.9'],
    // Trusted hops are skipped from the right.
    ['203.0.113.9, 127.0.0.1', '203.0.113.9'],
    ['2001:db8::1', '2001:db8::1'],
  ])('from a trusted proxy, "%s" gives %s (event, module and authenticate hook)', async (xff, expected) => {
    const seen = await viaWs(behindProxy, xff);
    expect(seen.event).toMatchObject({ ip: expected, network: 'websocket' });
    expect(seen.module).toEqual({ ip: expected, network: 'websocket' });
    expect(authSeen).toHaveLength(1);
    expect(authSeen[0]).toMatchObject({ remoteAddress: expected, network: 'websocket' });
  });

  test('TCP has no header: a trusted gate still reports the socket peer', async () => {
    const event = nextSession(behindProxy);
    const c = await mqttConnect(behindProxy.tcpUrl, { clientId: 'tcp-behind' });
    clients.push(c);
    expect(await event).toMatchObject({ ip: '127.0.0.1', network: 'tcp' });
    expect(authSeen[0]).toMatchObject({ remoteAddress: '127.0.0.1', network: 'tcp' });
  });
});
