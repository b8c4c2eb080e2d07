/**
 * Several gate processes behind one set of module processes, over a real Redis: users on
 * one gate reached from another (sendToUser, broadcast, counts, kickUser), and a gate that
 * crashes (its users vanish from the index, its clients move to the other gate).
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { getRedis, uniquePrefix, type RedisUnderTest } from '@mqgate/test-support';
import { call, nextMessage, ok } from './helpers/client';
import type { DemoProcess } from './helpers/demo-process';
import { closed, eventually, isAlive, nextKick, Tracker, within } from './helpers/split';

let redis: RedisUnderTest;
const procs = new Tracker();

beforeAll(async () => {
  redis = await getRedis();
});
afterEach(() => procs.cleanup());
afterAll(async () => {
  if (redis.owned) await redis.stop();
});

interface Counts {
  total: { total: number; bound: number; guests: number };
  gates: Record<string, { total: number; bound: number; guests: number }>;
}

/** Two gate processes (server ids `a`, `b`) and one modules process on a fresh prefix. */
async function twoGates(label: string, extra: Record<string, string> = {}) {
  const tag = randomBytes(3).toString('hex');
  const env = { REDIS_URL: redis.url, MQGATE_TRANSPORT_PREFIX: uniquePrefix(label), ...extra };
  const ids = { a: `gate-a-${tag}`, b: `gate-b-${tag}` };
  const [a, b, modules] = await Promise.all([
    procs.gate({ ...env, MQGATE_SERVER_ID: ids.a }),
    procs.gate({ ...env, MQGATE_SERVER_ID: ids.b }),
    procs.modules(env),
  ]);
  return { a, b, modules, ids, env };
}

async function login(url: string, userId: string): Promise<MqttClient> {
  const c = await procs.client(url);
  expect(await ok(c, 'user/HD_login', { userId })).toMatchObject({ userId });
  return c;
}

/** The parsed body of the next push on `topic`. */
async function nextJson(c: MqttClient, topic: string): Promise<unknown> {
  return JSON.parse((await within(nextMessage(c, topic), 5000, `a push on ${topic}`)).toString());
}

describe('users on one gate reached from another gate', () => {
  let a: DemoProcess;
  let b: DemoProcess;
  let ids: { a: string; b: string };
  beforeEach(async () => {
    ({ a, b, ids } = await twoGates('split-gates'));
  });

  test('whisper: X on gate A → Y on gate B gets chat/onWhisper', async () => {
    const x = await login(a.tcpUrl, 'x');
    const y = await login(b.wsUrl, 'y');
    const atY = nextJson(y, 'chat/onWhisper');
    let xGotWhisper = false;
    x.on('message', (t) => (xGotWhisper ||= t === 'chat/onWhisper'));
    expect(await ok(x, 'chat/HD_whisper', { to: 'y', text: 'psst' })).toEqual({ delivered: 1 });
    expect(await atY).toEqual({ from: 'x', text: 'psst' });
    // the sender got nothing (checked after a round trip on its connection)
    expect(await ok(x, 'user/HD_get')).toMatchObject({ userId: 'x' });
    expect(xGotWhisper).toBe(false);
    // and back, the other way round
    const atX = nextJson(x, 'chat/onWhisper');
    expect(await ok(y, 'chat/HD_whisper', { to: 'x', text: 'hi' })).toEqual({ delivered: 1 });
    expect(await atX).toEqual({ from: 'y', text: 'hi' });
    // nobody is "z": nothing delivered
    expect(await ok(x, 'chat/HD_whisper', { to: 'z', text: 'anyone?' })).toEqual({ delivered: 0 });
  });

  test('a user on both gates gets a whisper on both', async () => {
    const x = await login(a.tcpUrl, 'x');
    const [y1, y2] = await Promise.all([login(a.wsUrl, 'y'), login(b.tcpUrl, 'y')]);
    const got = Promise.all([nextJson(y1, 'chat/onWhisper'), nextJson(y2, 'chat/onWhisper')]);
    expect(await ok(x, 'chat/HD_whisper', { to: 'y', text: 'both' })).toEqual({ delivered: 2 });
    expect(await got).toEqual([
      { from: 'x', text: 'both' },
      { from: 'x', text: 'both' },
    ]);
  });

  test('shout reaches clients on both gates; HD_count shows both gates', async () => {
    const x = await login(a.tcpUrl, 'x');
    const guest = await procs.client(a.wsUrl);
    const y = await login(b.tcpUrl, 'y');
    const counts = await ok<Counts>(guest, 'user/HD_count');
    expect(counts).toEqual({
      total: { total: 3, bound: 2, guests: 1, detached: 0 },
      gates: { [ids.a]: { total: 2, bound: 1, guests: 1, detached: 0 }, [ids.b]: { total: 1, bound: 1, guests: 0, detached: 0 } },
    });
    const got = Promise.all([x, guest, y].map((c) => nextJson(c, 'chat/onMessage')));
    expect(await ok(x, 'chat/HD_shout', { text: 'hello all' })).toEqual({ delivered: 3 });
    expect(await got).toEqual([
      { from: 'x', text: 'hello all' },
      { from: 'x', text: 'hello all' },
      { from: 'x', text: 'hello all' },
    ]);
    // HD_say stays on the sender's gate
    const sid = (await ok<{ sessionId: string }>(guest, 'user/HD_get')).sessionId;
    let yGotSay = false;
    y.on('message', (t) => (yGotSay ||= t === 'chat/onMessage'));
    const atX = nextJson(x, 'chat/onMessage');
    expect(await ok(guest, 'chat/HD_say', { text: 'local' })).toEqual({ delivered: 2 });
    expect(await atX).toEqual({ from: sid, text: 'local' });
    expect(await ok(y, 'user/HD_get')).toMatchObject({ userId: 'y' }); // a round trip after the say
    expect(yGotSay).toBe(false);
  });

  test('kickUser across gates: Y on both gates kicks Y; both get gate/kick and are closed, others stay', async () => {
    const [y1, y2] = await Promise.all([login(a.tcpUrl, 'y'), login(b.wsUrl, 'y')]);
    const other = await login(b.tcpUrl, 'w');
    expect(await ok(other, 'user/HD_online', { userId: 'y' })).toEqual({ userId: 'y', online: true });
    const kicks = Promise.all([nextKick(y1), nextKick(y2)]);
    const closes = Promise.all([closed(y1), closed(y2)]);
    // y1 asks; its own session is closed too, so its reply may never come
    const reply = call(y1, 'user/HD_kick', { userId: 'y', reason: 'bye' });
    expect(await within(kicks, 5000, 'both kicks')).toEqual([{ reason: 'bye' }, { reason: 'bye' }]);
    await within(closes, 5000, 'both connections closed');
    expect(y1.connected || y2.connected).toBe(false);
    void reply.catch(() => undefined);
    // the others stay, and y is gone from every gate
    expect(other.connected).toBe(true);
    expect(await ok<Counts>(other, 'user/HD_count')).toMatchObject({ total: { total: 1, bound: 1, guests: 0 } });
    expect(await ok(other, 'user/HD_online', { userId: 'y' })).toEqual({ userId: 'y', online: false });
    // and one may only kick oneself
    expect((await call(other, 'user/HD_kick', { userId: 'x', reason: 'no' })).Error).toMatch(/log in as that user/);
  });
});

describe('a gate process killed (SIGKILL)', () => {
  test('its users vanish from the index within the registry TTL; its client moves to the other gate and gets its settings back', async () => {
    const { a, b, modules, ids } = await twoGates('split-gate-kill', { MQGATE_TRANSPORT_REGISTRY_TTL: '1000' });
    const u = await login(a.tcpUrl, 'ursula');
    expect(await ok(u, 'user/HD_set', { key: 'seat', value: '12' })).toEqual({ settings: { seat: '12' } });
    expect(await ok(u, 'user/HD_set', { key: 'theme', value: 'dark' })).toEqual({ settings: { seat: '12', theme: 'dark' } });
    const observer = await procs.client(b.tcpUrl);
    expect(await ok(observer, 'user/HD_online', { userId: 'ursula' })).toEqual({ userId: 'ursula', online: true });

    const uClosed = closed(u);
    await a.kill();
    await within(uClosed, 5000, "the killed gate's client sees its connection close");
    await eventually(
      async () => ((await ok(observer, 'user/HD_online', { userId: 'ursula' })) as { online: boolean }).online === false,
      3000,
      'ursula offline after her gate died',
    );
    // the dead gate is left out of the counts
    expect(await ok<Counts>(observer, 'user/HD_count')).toEqual({
      total: { total: 1, bound: 0, guests: 1, detached: 0 },
      gates: { [ids.b]: { total: 1, bound: 0, guests: 1, detached: 0 } },
    });

    // the client reconnects to the other gate and logs in: its settings are back
    const again = await procs.client(b.wsUrl);
    expect(await ok(again, 'user/HD_login', { userId: 'ursula' })).toEqual({ userId: 'ursula', settings: { seat: '12', theme: 'dark' } });
    expect(await ok(again, 'user/HD_get')).toMatchObject({ userId: 'ursula', network: 'websocket', settings: { seat: '12', theme: 'dark' } });
    expect(await ok(observer, 'user/HD_online', { userId: 'ursula' })).toEqual({ userId: 'ursula', online: true });
    expect(isAlive(b) && isAlive(modules)).toBe(true);
  });
});

describe('right after a gate process is killed (SIGKILL), within its registry TTL', () => {
  // A TTL well above the time these tests take after the kill, so the dead gate is still
  // registered while they run: the window every real crash has (20 s by default).
  const window = { MQGATE_TRANSPORT_REGISTRY_TTL: '10000', MQGATE_TRANSPORT_TIMEOUT: '1500' };

  test("kick-old: the killed gate's client logs in on the other gate at once, and the reply agrees with the session", async () => {
    const { a, b } = await twoGates('split-gate-kill-kick', { ...window, MQGATE_DUPLICATE_LOGIN_POLICY: 'kick-old' });
    const u = await login(a.tcpUrl, 'ursula');
    await ok(u, 'user/HD_set', { key: 'seat', value: '12' });
    const uClosed = closed(u);
    await a.kill();
    await within(uClosed, 5000, "the killed gate's client sees its connection close");

    const again = await procs.client(b.tcpUrl);
    const reply = await call(again, 'user/HD_login', { userId: 'ursula' });
    const session = await ok<{ userId: string; settings: Record<string, string> }>(again, 'user/HD_get');
    // Her old session is on a dead gate: displacing it must not fail the login (and a login
    // that reports failure must not leave the session bound).
    expect({ reply, boundTo: session.userId }).toEqual({
      reply: { Trace: expect.any(String), Error: '', Result: { userId: 'ursula', settings: { seat: '12' } } },
      boundTo: 'ursula',
    });
  });

  test('HD_online and HD_count agree within about a second: one liveness source (the heartbeat), not the registry TTL', async () => {
    const { a, b, ids } = await twoGates('split-gate-kill-agree', window);
    const u = await login(a.tcpUrl, 'ursula');
    const observer = await procs.client(b.tcpUrl);
    expect(await ok(observer, 'user/HD_online', { userId: 'ursula' })).toEqual({ userId: 'ursula', online: true });
    const uClosed = closed(u);
    await a.kill();
    const killedAt = Date.now();
    await within(uClosed, 5000, "the killed gate's client sees its connection close");
    await eventually(
      async () => ((await ok(observer, 'user/HD_online', { userId: 'ursula' })) as { online: boolean }).online === false,
      3000,
      'ursula offline after her gate died',
    );
    expect(Date.now() - killedAt).toBeLessThan(2500); // the TTL is 10 s
    // once she is offline, the counts have dropped the dead gate too (and stay so)
    for (let i = 0; i < 3; i++) {
      expect(await ok<Counts>(observer, 'user/HD_count')).toEqual({
        total: { total: 1, bound: 0, guests: 1, detached: 0 },
        gates: { [ids.b]: { total: 1, bound: 0, guests: 1, detached: 0 } },
      });
      expect(await ok(observer, 'user/HD_online', { userId: 'ursula' })).toEqual({ userId: 'ursula', online: false });
    }
  });

  test('HD_count and HD_shout on the surviving gate still answer, the dead gate left out', async () => {
    const { a, b, ids } = await twoGates('split-gate-kill-window', window);
    const dead = await login(a.tcpUrl, 'd');
    const o = await login(b.tcpUrl, 'o');
    const deadClosed = closed(dead);
    await a.kill();
    await within(deadClosed, 5000, "the killed gate's client sees its connection close");

    const count = await call(o, 'user/HD_count');
    const heard = nextJson(o, 'chat/onMessage');
    const shout = await call(o, 'chat/HD_shout', { text: 'anyone left?' });
    expect({ count, shout }).toEqual({
      count: {
        Trace: expect.any(String),
        Error: '',
        Result: { total: { total: 1, bound: 1, guests: 0, detached: 0 }, gates: { [ids.b]: { total: 1, bound: 1, guests: 0, detached: 0 } } },
      },
      shout: { Trace: expect.any(String), Error: '', Result: { delivered: 1 } },
    });
    expect(await heard).toEqual({ from: 'o', text: 'anyone left?' });
  });
});

describe('a gate process killed and restarted under the same MQGATE_SERVER_ID', () => {
  test('the users of its previous life are not online, and (reject-new) may log in again', async () => {
    const { a, b, ids, env } = await twoGates('split-gate-restart', {
      MQGATE_TRANSPORT_REGISTRY_TTL: '1000',
      MQGATE_DUPLICATE_LOGIN_POLICY: 'reject-new',
    });
    const u = await login(a.tcpUrl, 'ursula');
    const observer = await procs.client(b.tcpUrl);
    const uClosed = closed(u);
    await a.kill();
    await within(uClosed, 5000, "the killed gate's client sees its connection close");
    await eventually(
      async () => ((await ok(observer, 'user/HD_online', { userId: 'ursula' })) as { online: boolean }).online === false,
      3000,
      'ursula offline after her gate died',
    );

    const restarted = await procs.gate({ ...env, MQGATE_SERVER_ID: ids.a });
    expect(await ok<Counts>(observer, 'user/HD_count')).toMatchObject({
      total: { total: 1, bound: 0, guests: 1 },
      gates: { [ids.a]: { total: 0, bound: 0, guests: 0 } },
    });
    // nobody is bound anywhere, so ursula is not online...
    expect(await ok(observer, 'user/HD_online', { userId: 'ursula' })).toEqual({ userId: 'ursula', online: false });
    // ...and may log in, on either gate
    const again = await procs.client(restarted.tcpUrl);
    expect(await call(again, 'user/HD_login', { userId: 'ursula' })).toEqual({
      Trace: expect.any(String),
      Error: '',
      Result: { userId: 'ursula', settings: {} },
    });
  });
});
