/**
 * Client id takeover (reference/mqtt-layer.md §6.3 item 7; MQTT-3.1.4-2): a second CONNECT
 * with the same client id closes the older connection, which is told why on `gate/kick`.
 */
import type * as mqtt from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import type { SessionData } from '@mqgate/rpc';
import { KICK_TOPIC } from '@mqgate/gate';
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

let h: Harness;
const raws: Array<RawClient | RawWs> = [];
const clients: mqtt.MqttClient[] = [];

beforeAll(async () => {
  h = await startGate();
  await h.serve('svc', async (fn, args) => (fn === 'HD_echo' ? args[1] : null));
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  for (const r of raws.splice(0)) {
    r.destroy();
    await r.closed;
  }
});

afterAll(() => h.stop());

async function openMqtt(opts: mqtt.IClientOptions, url = h.tcpUrl): Promise<mqtt.MqttClient> {
  const c = await mqttConnect(url, opts);
  clients.push(c);
  return c;
}

function nextSession(): Promise<SessionData> {
  return new Promise((resolve) => h.gate.once('connect', resolve));
}

function disconnectOf(sessionId: string): Promise<string> {
  return new Promise((resolve) => {
    const on = (s: SessionData, reason: string) => {
      if (s.sessionId !== sessionId) return;
      h.gate.off('disconnect', on);
      resolve(reason);
    };
    h.gate.on('disconnect', on);
  });
}

describe.each(VERSIONS)('MQTT.js at level %i', (v) => {
  test('the first connection gets a gate/kick push with {reason}, then is closed; the second keeps working', async () => {
    const clientId = `same-${v}`;
    const firstSession = nextSession();
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
    const reason = disconnectOf(firstId);

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
  const first = await RawClient.open(h.tcpPort);
  raws.push(first);
  expect((await first.connect({ clientId: 'raw-same' })).returnCode).toBe(0);
  const second = await RawClient.open(h.tcpPort);
  raws.push(second);
  expect((await second.connect({ clientId: 'raw-same' })).returnCode).toBe(0);
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
  const closed = new Promise<void>((resolve) => tcp.once('close', () => resolve()));
  const ws = await RawWs.open(`ws://127.0.0.1:${h.wsPort}/mqtt`);
  raws.push(ws);
  expect((await ws.connect({ clientId: 'cross-net' })).returnCode).toBe(0);
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
  const raw = await RawClient.open(h.tcpPort);
  raws.push(raw);
  raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'holder', keepalive: 60 }, 5);
  expect(((await within(raw.next('connack'), 2000, 'CONNACK')) as { returnCode: number }).returnCode).toBe(1);
  await within(raw.closed, 2000, 'refused connection closed');
  expect((await within(request(holder, 'svc/HD_echo/h', '{"h":1}'), 2000, 'reply')).Result).toEqual({ h: 1 });
  expect(holder.connected).toBe(true);
});
