/**
 * StorageHandler heartbeats: only for bound sessions (mqant fires them for guests too), at
 * most once per heartbeatInterval per session, and only when the client showed traffic
 * (PINGREQ included) since the last one. Time-based, so bounded waits; each check compares
 * against a control session that shows the sweep did run in the same window.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { Session } from '@mqgate/client';
import type { RpcValue, SessionData } from '@mqgate/rpc';
import { CountingStorage, type StorageCall } from './helpers/counting-storage';
import { RawClient, mqttConnect, startGate, type Harness } from './helpers/harness';
import { waitUntil } from './helpers/waiters';

const INTERVAL = 200;

let h: Harness;
let store: CountingStorage;
const clients: MqttClient[] = [];
const raws: RawClient[] = [];
let msgSeq = 0;

beforeEach(async () => {
  store = new CountingStorage();
  // connectTimeout 400 makes the gate's sweep run every 100 ms, so a due heartbeat is not late.
  h = await startGate({ storage: store, heartbeatInterval: INTERVAL, connectTimeout: 400, maxIdle: 600_000 });
  await h.serve('m', async (fn, args) => {
    const data = args[0] as SessionData;
    const body = args[1] as { user?: string };
    if (fn === 'HD_bind') {
      const s = new Session(data, h.transport);
      await s.bind(body.user as string);
      return { userId: s.userId } as unknown as RpcValue;
    }
    if (fn === 'HD_echo') return 'pong';
    throw new Error(`no handler ${fn}`);
  });
});

afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  await Promise.all(clients.splice(0).map((c) => c.endAsync()));
  await h.stop();
  await store.close();
});

async function client(opts: IClientOptions = {}): Promise<MqttClient> {
  const c = await mqttConnect(h.tcpUrl, opts);
  clients.push(c);
  return c;
}

function request(c: MqttClient, handler: string, body: unknown = {}): Promise<unknown> {
  const topic = `m/${handler}/${++msgSeq}`;
  return new Promise((resolve, reject) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      c.off('message', onMessage);
      const env = JSON.parse(payload.toString('utf8')) as { Error: string; Result: unknown };
      if (env.Error !== '') reject(new Error(env.Error));
      else resolve(env.Result);
    };
    c.on('message', onMessage);
    c.publish(topic, JSON.stringify(body));
  });
}

async function bind(c: MqttClient, user: string): Promise<void> {
  expect(await request(c, 'HD_bind', { user })).toEqual({ userId: user });
}

/** Sends a request every `every` ms until `stop()` is called; resolves how many were answered. */
function traffic(c: MqttClient, every: number): { stop: () => Promise<number> } {
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      expect(await request(c, 'HD_echo')).toBe('pong');
      n++;
      await new Promise((r) => setTimeout(r, every));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return n;
    },
  };
}

function callsSince(mark: number, userId?: string, op?: StorageCall['op']): StorageCall[] {
  return store.calls.slice(mark).filter((c) => (userId === undefined || c.userId === userId) && (op === undefined || c.op === op));
}

test('a guest with traffic never causes a heartbeat (nor any store call), while a bound session with traffic does', async () => {
  const guest = await client();
  const ctl = await client();
  await bind(ctl, 'ctl');
  const mark = store.calls.length;
  const g = traffic(guest, 20);
  const t = traffic(ctl, 20);
  await waitUntil('2 heartbeats of the bound control session', () => callsSince(mark, 'ctl', 'heartbeat').length >= 2, 5000);
  const guestRequests = await g.stop();
  await t.stop();
  expect(guestRequests).toBeGreaterThan(5);
  expect(store.calls.filter((c) => c.userId !== 'ctl')).toEqual([]);
});

test('a bound session with constant traffic: heartbeats at most once per heartbeatInterval', async () => {
  const c = await client();
  await bind(c, 'u1');
  const mark = store.calls.length;
  const t0 = Date.now();
  const t = traffic(c, 10);
  await waitUntil('5 heartbeats', () => callsSince(mark, 'u1', 'heartbeat').length >= 5, 5000);
  await t.stop();
  const elapsed = Date.now() - t0;
  const calls = callsSince(mark, 'u1');
  expect(calls.length).toBeLessThanOrEqual(Math.floor(elapsed / INTERVAL) + 1);
  const beats = calls.filter((x) => x.op === 'heartbeat').map((x) => x.at);
  for (let i = 1; i < beats.length; i++) expect(beats[i] - beats[i - 1]).toBeGreaterThanOrEqual(INTERVAL - 5);
  expect(h.gate.stats().storage?.heartbeats).toBe(store.count('heartbeat'));
  expect(calls.every((x) => x.ok)).toBe(true);
});

test('an idle bound session whose client only sends PINGREQ (keepalive 1): at most one store call per interval, heartbeats driven by the pings', async () => {
  const c = await client({ keepalive: 1 });
  let pings = 0;
  c.on('packetsend', (p) => {
    if (p.cmd === 'pingreq') pings++;
  });
  await bind(c, 'u1');
  const mark = store.calls.length;
  const pingsAtMark = pings;
  const t0 = Date.now();
  await waitUntil('~2 s with the client idle', () => Date.now() - t0 >= 2100, 3000, 50);
  const elapsed = Date.now() - t0;
  const calls = callsSince(mark, 'u1');
  const beats = calls.filter((x) => x.op === 'heartbeat').length;
  const sent = pings - pingsAtMark;
  expect(sent).toBeGreaterThanOrEqual(1);
  expect(calls.length).toBeLessThanOrEqual(Math.floor(elapsed / INTERVAL) + 1);
  // Each heartbeat needs a packet seen since the previous one: no more heartbeats than pings.
  expect(beats).toBeGreaterThanOrEqual(1);
  expect(beats).toBeLessThanOrEqual(sent + 1);
  expect(c.connected).toBe(true);
});

test('a bound session with no traffic at all (keepalive 0) gets no heartbeat, while a pinging one does', async () => {
  const raw = await RawClient.open(h.tcpPort);
  raws.push(raw);
  expect((await raw.connect({ clientId: 'silent', keepalive: 0 })).returnCode).toBe(0);
  const topic = 'm/HD_bind/silent';
  raw.send({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify({ user: 'silent' })), qos: 0, dup: false, retain: false });
  const reply = (await raw.next('publish', (p) => (p as { topic: string }).topic === topic)) as { payload: Buffer };
  expect(JSON.parse(reply.payload.toString()).Result).toEqual({ userId: 'silent' });
  const silentCalls = store.count(undefined, 'silent');
  expect(silentCalls).toBe(2); // the Bind's query and write

  const ctl = await client({ keepalive: 1 });
  await bind(ctl, 'ctl');
  const mark = store.calls.length;
  await waitUntil('2 heartbeats of the pinging control session', () => callsSince(mark, 'ctl', 'heartbeat').length >= 2, 5000);
  expect(store.count(undefined, 'silent')).toBe(silentCalls);
  expect(h.gate.counts().bound).toBe(2);
});
