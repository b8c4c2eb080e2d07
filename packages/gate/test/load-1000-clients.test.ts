/**
 * Load: 1,000 concurrent MQTT.js clients over TCP, 5 requests each (distinct msgids, QoS 0/1/2
 * mixed) to an echo handler. Every reply must reach the right client exactly once with the right body;
 * afterwards every session is gone.
 */
import type { MqttClient } from 'mqtt';
import type { SessionData } from '@mqgate/rpc';
import { startGate, mqttConnect, type Harness } from './helpers/harness';

const CLIENTS = 1000;
const REQUESTS = 5;
const BATCH = 100;

interface Received {
  topic: string;
  payload: Buffer;
}

let h: Harness;
const clients: MqttClient[] = [];

beforeAll(async () => {
  // A bulk loopback load (1000 clients from 127.0.0.1 at once): the per-address limits at the door are off here, not in the defaults.
  h = await startGate({ websocket: false, maxConnectionsPerIp: 0, connectRate: false });
  await h.serve('load', (fn, args) => {
    const body = args[1] as { client: number; seq: number };
    if (fn === 'HD_fence') return 'fence';
    return { client: body.client, seq: body.seq };
  });
});

afterAll(async () => {
  for (const c of clients.splice(0)) c.end(true);
  await h.stop();
});

test(`${CLIENTS} concurrent clients x ${REQUESTS} requests: every reply arrives exactly once at the right client`, async () => {
  const started = Date.now();
  const disconnectReasons: string[] = [];
  let onAllGone!: () => void;
  const allGone = new Promise<void>((r) => (onAllGone = r));
  const onDisconnect = (_s: SessionData, reason: string) => {
    disconnectReasons.push(reason);
    if (disconnectReasons.length === CLIENTS) onAllGone();
  };
  h.gate.on('disconnect', onDisconnect);

  // Connect in batches to stay clear of the listen backlog.
  const inbox: Received[][] = [];
  for (let base = 0; base < CLIENTS; base += BATCH) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(BATCH, CLIENTS - base) }, (_, k) => mqttConnect(h.tcpUrl, { clientId: `load-${base + k}`, keepalive: 120 })),
    );
    for (const c of batch) {
      const i = clients.length;
      clients.push(c);
      inbox[i] = [];
      c.on('message', (topic, payload) => inbox[i].push({ topic, payload }));
    }
  }
  expect(clients).toHaveLength(CLIENTS);
  expect(h.gate.counts().total).toBe(CLIENTS);

  // Every client sends its 5 requests, then a fence request; the fence reply comes after
  // any reply (or duplicate) of the first five on that connection.
  const done = clients.map(
    (c, i) =>
      new Promise<void>((resolve) => {
        const fence = `load/HD_fence/c${i}-fence`;
        let sentFence = false;
        c.on('message', (topic) => {
          if (!sentFence && inbox[i].filter((m) => m.topic.startsWith('load/HD_echo/')).length >= REQUESTS) {
            sentFence = true;
            c.publish(fence, '{}', { qos: 0 });
          }
          if (topic === fence) resolve();
        });
      }),
  );
  clients.forEach((c, i) => {
    for (let s = 0; s < REQUESTS; s++) c.publish(`load/HD_echo/c${i}-${s}`, JSON.stringify({ client: i, seq: s }), { qos: (s % 3) as 0 | 1 | 2 });
  });
  await Promise.all(done);

  let total = 0;
  for (let i = 0; i < CLIENTS; i++) {
    const msgs = inbox[i];
    const topics = msgs.map((m) => m.topic);
    const expected = Array.from({ length: REQUESTS }, (_, s) => `load/HD_echo/c${i}-${s}`);
    // Exactly the 5 replies (each once, any order), then the fence, nothing else.
    expect(topics.slice(0, REQUESTS).sort()).toEqual(expected.sort());
    expect(topics.slice(REQUESTS)).toEqual([`load/HD_fence/c${i}-fence`]);
    for (const m of msgs.slice(0, REQUESTS)) {
      const seq = Number(m.topic.slice(m.topic.lastIndexOf('-') + 1));
      const env = JSON.parse(m.payload.toString('utf8'));
      if (env.Error !== '' || env.Result?.client !== i || env.Result?.seq !== seq) {
        throw new Error(`client ${i} got a wrong reply on ${m.topic}: ${m.payload.toString()}`);
      }
      total++;
    }
  }
  expect(total).toBe(CLIENTS * REQUESTS);
  expect(h.gate.stats().outstanding).toBe(0);

  // Everyone leaves; every session is removed.
  await Promise.all(clients.splice(0).map((c) => c.endAsync()));
  await allGone;
  h.gate.off('disconnect', onDisconnect);
  expect(disconnectReasons).toHaveLength(CLIENTS);
  expect(new Set(disconnectReasons)).toEqual(new Set(['client disconnect']));
  expect(h.gate.counts()).toEqual({ total: 0, bound: 0, guests: 0, detached: 0 });
  expect(Date.now() - started).toBeLessThan(30_000);
}, 60_000);
