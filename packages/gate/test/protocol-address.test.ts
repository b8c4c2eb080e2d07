/**
 * The client's address and network (reference/mqtt-layer.md §6.3 item 11): the socket's
 * peer, X-Forwarded-For only from trusted proxies (right-most untrusted hop).
 */
import type { IPublishPacket } from 'mqtt-packet';
import type { ConnectInfo } from '@mqgate/gate';
import type { SessionData } from '@mqgate/rpc';
import { Connections } from './helpers/connections';
import { startGate, request, mqttOpts, VERSIONS, type Harness } from './helpers/harness';
import { nextSession, within } from './helpers/waiters';

/** Module handler: the session as the module sees it. */
const whoami = async (fn: string, args: unknown[]) => {
  const s = args[0] as SessionData;
  return fn === 'HD_whoami' ? { ip: s.ip, network: s.network } : null;
};

let plain: Harness;
let behindProxy: Harness;
const authSeen: ConnectInfo[] = [];
const conns = new Connections();

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

afterEach(() => conns.closeAll());

afterAll(async () => {
  await plain.stop();
  await behindProxy.stop();
});

/** Connects a raw WebSocket with the given X-Forwarded-For, returns what the gate and a module see. */
async function viaWs(h: Harness, xff?: string): Promise<{ event: SessionData; module: { ip: string; network: string } }> {
  const event = nextSession(h);
  const ws = await conns.ws(h.wsUrl, { headers: xff === undefined ? {} : { 'X-Forwarded-For': xff } });
  expect((await within(ws.connect({ clientId: `xff-${xff ?? 'none'}` }), 2000, 'CONNACK')).returnCode).toBe(0);
  ws.send({ cmd: 'publish', topic: 'svc/HD_whoami/1', payload: Buffer.from('{}'), qos: 0, dup: false, retain: false });
  const reply = (await within(ws.next('publish'), 2000, 'reply')) as IPublishPacket;
  return { event: await event, module: JSON.parse(reply.payload.toString()).Result };
}

describe.each(VERSIONS)('MQTT.js at level %i', (v) => {
  test('over TCP: ip 127.0.0.1, network tcp, in the connect event and in the module', async () => {
    const event = nextSession(plain);
    const c = await conns.mqtt(plain.tcpUrl, { ...mqttOpts(v), clientId: `tcp-addr-${v}` });
    expect(await event).toMatchObject({ ip: '127.0.0.1', network: 'tcp' });
    expect((await within(request(c, 'svc/HD_whoami/1', '{}'), 2000, 'reply')).Result).toEqual({ ip: '127.0.0.1', network: 'tcp' });
  });

  test('over WebSocket: ip 127.0.0.1, network websocket, in the connect event and in the module', async () => {
    const event = nextSession(plain);
    const c = await conns.mqtt(plain.wsUrl, { ...mqttOpts(v), clientId: `ws-addr-${v}` });
    expect(await event).toMatchObject({ ip: '127.0.0.1', network: 'websocket' });
    expect((await within(request(c, 'svc/HD_whoami/1', '{}'), 2000, 'reply')).Result).toEqual({ ip: '127.0.0.1', network: 'websocket' });
  });
});

test('raw TCP client: ip 127.0.0.1, network tcp', async () => {
  const event = nextSession(plain);
  await conns.connectedRaw(plain.tcpPort, 'raw-tcp-addr');
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
    await conns.mqtt(behindProxy.tcpUrl, { clientId: 'tcp-behind' });
    expect(await event).toMatchObject({ ip: '127.0.0.1', network: 'tcp' });
    expect(authSeen[0]).toMatchObject({ remoteAddress: '127.0.0.1', network: 'tcp' });
  });
});
