/**
 * The demo split in processes over NATS (MQGATE_TRANSPORT_TYPE=nats): gate processes and a
 * modules process joined by a real nats-server, with the user index and sessions in a real
 * Redis, driven by real MQTT clients. The cross-gate features (whisper, shout, online, kick,
 * duplicate-login policies) and a module process that dies.
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { getNats, getRedis, uniquePrefix, type NatsUnderTest, type RedisUnderTest } from '@mqgate/test-support';
import { call, nextMessage, ok } from './helpers/client';
import type { DemoProcess } from './helpers/demo-process';
import { closed, nextKick, Tracker, within } from './helpers/split';

let redis: RedisUnderTest;
let nats: NatsUnderTest;

beforeAll(async () => {
  [redis, nats] = await Promise.all([getRedis(), getNats()]);
});
afterAll(async () => {
  if (redis?.owned) await redis.stop();
  if (nats?.owned) await nats.stop();
});

/**
 * A fresh prefix whose NATS subject form is the same for the demo's modules (non-word runs
 * become `.`) and for `mqgate gate` (a trailing `:` dropped): no `:` but the last.
 */
const subjectSafePrefix = (label: string) => uniquePrefix(label).replace(/:(?=.)/g, '-');

/** Two gate processes and one modules process over NATS on a fresh prefix. */
function cluster(label: string, extra: Record<string, string> = {}) {
  const procs = new Tracker();
  const tag = randomBytes(3).toString('hex');
  const ids = { a: `gate-a-${tag}`, b: `gate-b-${tag}` };
  const s = {} as { a: DemoProcess; b: DemoProcess; procs: Tracker; ids: typeof ids; env: Record<string, string> };
  beforeAll(async () => {
    const env = {
      MQGATE_TRANSPORT_TYPE: 'nats',
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
      MQGATE_TRANSPORT_PREFIX: subjectSafePrefix(label),
      ...extra,
    };
    const [a, b] = await Promise.all([
      procs.gate({ ...env, MQGATE_SERVER_ID: ids.a }),
      procs.gate({ ...env, MQGATE_SERVER_ID: ids.b }),
      procs.modules(env),
    ]);
    Object.assign(s, { a, b, procs, ids, env });
  });
  afterEach(() => procs.closeClients());
  afterAll(() => procs.cleanup());
  return s;
}

async function login(procs: Tracker, url: string, userId: string): Promise<MqttClient> {
  const c = await procs.client(url);
  expect(await ok(c, 'user/HD_login', { userId })).toMatchObject({ userId });
  return c;
}

async function nextJson(c: MqttClient, topic: string): Promise<unknown> {
  return JSON.parse((await within(nextMessage(c, topic), 5000, `a push on ${topic}`)).toString());
}

describe('MQGATE_TRANSPORT_TYPE=nats: users on one gate reached from another', () => {
  const s = cluster('split-nats');

  test('whisper from gate A to gate B and back', async () => {
    const x = await login(s.procs, s.a.tcpUrl, 'x');
    const y = await login(s.procs, s.b.wsUrl, 'y');
    const atY = nextJson(y, 'chat/onWhisper');
    expect(await ok(x, 'chat/HD_whisper', { to: 'y', text: 'psst' })).toEqual({ delivered: 1 });
    expect(await atY).toEqual({ from: 'x', text: 'psst' });
    const atX = nextJson(x, 'chat/onWhisper');
    expect(await ok(y, 'chat/HD_whisper', { to: 'x', text: 'hi' })).toEqual({ delivered: 1 });
    expect(await atX).toEqual({ from: 'y', text: 'hi' });
    expect(await ok(x, 'chat/HD_whisper', { to: 'z', text: 'anyone?' })).toEqual({ delivered: 0 });
  });

  test('shout reaches both gates; HD_count counts both gates', async () => {
    const x = await login(s.procs, s.a.tcpUrl, 'x');
    const guest = await s.procs.client(s.a.wsUrl);
    const y = await login(s.procs, s.b.tcpUrl, 'y');
    expect(await ok(guest, 'user/HD_count')).toEqual({
      total: { total: 3, bound: 2, guests: 1, detached: 0 },
      gates: { [s.ids.a]: { total: 2, bound: 1, guests: 1, detached: 0 }, [s.ids.b]: { total: 1, bound: 1, guests: 0, detached: 0 } },
    });
    const got = Promise.all([x, guest, y].map((c) => nextJson(c, 'chat/onMessage')));
    expect(await ok(x, 'chat/HD_shout', { text: 'hello all' })).toEqual({ delivered: 3 });
    expect(await got).toEqual(Array(3).fill({ from: 'x', text: 'hello all' }));
  });

  test('HD_online and a kick across gates', async () => {
    const [y1, y2] = await Promise.all([login(s.procs, s.a.tcpUrl, 'y'), login(s.procs, s.b.wsUrl, 'y')]);
    const other = await login(s.procs, s.b.tcpUrl, 'w');
    expect(await ok(other, 'user/HD_online', { userId: 'y' })).toEqual({ userId: 'y', online: true });
    const kicks = Promise.all([nextKick(y1), nextKick(y2)]);
    const closes = Promise.all([closed(y1), closed(y2)]);
    void call(y1, 'user/HD_kick', { userId: 'y', reason: 'bye' }).catch(() => undefined);
    expect(await within(kicks, 5000, 'both kicks')).toEqual([{ reason: 'bye' }, { reason: 'bye' }]);
    await within(closes, 5000, 'both connections closed');
    expect(await ok(other, 'user/HD_online', { userId: 'y' })).toEqual({ userId: 'y', online: false });
  });
});

describe('MQGATE_TRANSPORT_TYPE=nats with MQGATE_DUPLICATE_LOGIN_POLICY=kick-old', () => {
  const s = cluster('split-nats-kick', { MQGATE_DUPLICATE_LOGIN_POLICY: 'kick-old' });

  test('two logins of one user racing on two gates: one is kicked and closed, the other stays bound (5 races)', async () => {
    for (let i = 0; i < 5; i++) {
      const userId = `kick-${i}`;
      const [ca, cb] = await Promise.all([s.procs.client(s.a.tcpUrl), s.procs.client(s.b.wsUrl)]);
      const kicked = Promise.race([ca, cb].map((c) => nextKick(c).then(() => c)));
      // The kicked one's reply may never come (its connection is closed): a reply or 'closed'.
      const replies = await within(
        Promise.all([ca, cb].map((c) => Promise.race([call(c, 'user/HD_login', { userId }), closed(c).then(() => 'closed' as const)]))),
        5000,
        `race ${i}: both logins answered or closed`,
      );
      const loser = await within(kicked, 5000, `race ${i}: a kick`);
      const survivor = loser === ca ? cb : ca;
      await within(closed(loser), 5000, `race ${i}: the kicked connection closed`);
      expect(replies[survivor === ca ? 0 : 1]).toEqual({ Trace: expect.any(String), Error: '', Result: { userId, settings: {} } });
      expect(await ok(survivor, 'user/HD_get')).toMatchObject({ userId });
      expect((await ok<{ total: { bound: number } }>(survivor, 'user/HD_count')).total.bound).toBe(1);
      await survivor.endAsync();
    }
  });
});

describe('MQGATE_TRANSPORT_TYPE=nats with MQGATE_DUPLICATE_LOGIN_POLICY=reject-new', () => {
  const s = cluster('split-nats-reject', { MQGATE_DUPLICATE_LOGIN_POLICY: 'reject-new' });

  test('two logins of one user racing on two gates: exactly one succeeds, the other gets the policy Error (5 races)', async () => {
    for (let i = 0; i < 5; i++) {
      const userId = `reject-${i}`;
      const [ca, cb] = await Promise.all([s.procs.client(s.a.wsUrl), s.procs.client(s.b.tcpUrl)]);
      const replies = await Promise.all([call(ca, 'user/HD_login', { userId }), call(cb, 'user/HD_login', { userId })]);
      expect(replies.filter((r) => r.Error === '')).toHaveLength(1);
      expect(replies.filter((r) => r.Error !== '').map((r) => r.Error)).toEqual([
        expect.stringMatching(/^DUPLICATE_LOGIN: .*rejects a new session$/),
      ]);
      await Promise.all([ca.endAsync(), cb.endAsync()]);
    }
  });
});

describe('MQGATE_TRANSPORT_TYPE=nats: the modules process dies', () => {
  const procs = new Tracker();
  afterAll(() => procs.cleanup());

  test('after a SIGKILL requests fail at once with "Service(type:echo) not found"; a new modules process serves again', async () => {
    const env = {
      MQGATE_TRANSPORT_TYPE: 'nats',
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
      MQGATE_TRANSPORT_PREFIX: subjectSafePrefix('split-nats-kill'),
    };
    const [gate, modules] = await Promise.all([procs.gate(env), procs.modules(env)]);
    const c = await procs.client(gate.tcpUrl);
    expect(await ok(c, 'echo/HD_echo', { n: 1 })).toEqual({ n: 1 });
    await modules.kill();
    const t0 = Date.now();
    expect(await call(c, 'echo/HD_echo', { n: 2 })).toMatchObject({ Error: 'Service(type:echo) not found', Result: null });
    expect(Date.now() - t0).toBeLessThan(1000);
    await procs.modules(env);
    expect(await ok(c, 'echo/HD_echo', { n: 3 })).toEqual({ n: 3 });
  });
});
