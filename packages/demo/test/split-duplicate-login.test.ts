/**
 * Duplicate logins racing across two gate processes (one Redis user index), many times,
 * under each policy: exactly the sessions the policy allows stay bound, the others are kicked
 * (kick-old, allow with a cap) or rejected (reject-new).
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { uniquePrefix } from '@mqgate/test-support';
import { sharedRedis } from './helpers/redis';
import { call, ok, type Envelope } from './helpers/client';
import type { DemoProcess } from './helpers/demo-process';
import { closed, eventually, nextKick, Tracker, within } from './helpers/split';

const ITERATIONS = 25;

const shared = sharedRedis();

interface Counts {
  total: { total: number; bound: number; guests: number };
}

interface Racer {
  client: MqttClient;
  gateId: string;
  /** The login reply, or 'closed' when the connection closed first. */
  reply: Envelope | 'closed';
  /** gate/kick pushes it got. */
  kicks: { reason: string }[];
}

/**
 * Two gate processes (`a`, `b`) and one modules process on a fresh prefix, with a
 * duplicate-login policy; killed after the describe.
 */
function cluster(label: string, env: Record<string, string>) {
  const procs = new Tracker();
  const prefix = uniquePrefix(label);
  const tag = randomBytes(3).toString('hex');
  const ids = { a: `gate-a-${tag}`, b: `gate-b-${tag}` };
  const gates: { a?: DemoProcess; b?: DemoProcess } = {};
  beforeAll(async () => {
    const common = { REDIS_URL: shared.redis.url, MQGATE_TRANSPORT_PREFIX: prefix, ...env };
    [gates.a, gates.b] = await Promise.all([
      procs.gate({ ...common, MQGATE_SERVER_ID: ids.a }),
      procs.gate({ ...common, MQGATE_SERVER_ID: ids.b }),
      procs.modules(common),
    ]);
  });
  afterEach(() => procs.closeClients());
  afterAll(() => procs.cleanup());

  /**
   * Connects one client per entry (gate and network), then sends every login for `userId` in
   * the same tick; resolves once every client has its reply or has been closed.
   */
  async function race(userId: string, where: ['a' | 'b', 'tcp' | 'ws'][]): Promise<Racer[]> {
    const racers: Racer[] = await Promise.all(
      where.map(async ([g, net]) => {
        const gate = gates[g]!;
        const client = await procs.client(net === 'tcp' ? gate.tcpUrl : gate.wsUrl);
        const racer: Racer = { client, gateId: ids[g], reply: 'closed', kicks: [] };
        client.on('message', (topic, payload) => {
          if (topic === 'gate/kick') racer.kicks.push(JSON.parse(payload.toString()) as { reason: string });
        });
        return racer;
      }),
    );
    await within(
      Promise.all(
        racers.map(async (r) => {
          r.reply = await Promise.race([call(r.client, 'user/HD_login', { userId }), closed(r.client).then(() => 'closed' as const)]);
        }),
      ),
      5000,
      'every login answered or its connection closed',
    );
    return racers;
  }

  /** Index fields of the user in Redis: `serverId|sessionId`, sorted. */
  async function indexed(userId: string): Promise<string[]> {
    return (await shared.db.hkeys(`${prefix}user:{${userId}}`)).sort();
  }

  return { race, indexed };
}

/** What a survivor must look like: connected, bound to `userId`, in the index, never kicked. */
async function expectBound(r: Racer, userId: string): Promise<string> {
  expect(r.client.connected).toBe(true);
  expect(r.kicks).toEqual([]);
  const got = await ok<{ userId: string; sessionId: string }>(r.client, 'user/HD_get');
  expect(got.userId).toBe(userId);
  return `${r.gateId}|${got.sessionId}`;
}

/** Waits for the loser's gate/kick and close (both must come: the survivor's bind waited for the kick). */
async function expectKicked(r: Racer): Promise<void> {
  if (r.kicks.length === 0) await within(nextKick(r.client), 5000, 'the loser gets gate/kick');
  await within(closed(r.client), 5000, "the loser's connection closes");
  expect(r.kicks).toEqual([{ reason: expect.stringMatching(/logged in elsewhere/) }]);
  expect(r.client.connected).toBe(false);
}

describe('MQGATE_DUPLICATE_LOGIN_POLICY=kick-old: two logins of one user racing on two gates', () => {
  const { race, indexed } = cluster('split-dup-kick', { MQGATE_DUPLICATE_LOGIN_POLICY: 'kick-old' });

  test(`exactly one stays bound, the other is kicked and closed (${ITERATIONS} races)`, async () => {
    const survivors = { a: 0, b: 0 };
    for (let i = 0; i < ITERATIONS; i++) {
      const userId = `kick-${i}`;
      const [ra, rb] = await race(userId, [
        ['a', i % 2 ? 'tcp' : 'ws'],
        ['b', i % 2 ? 'ws' : 'tcp'],
      ]);
      // The loser is the one kicked. Its kick is in flight or done once both replies are in;
      // the survivor's reply came after the kick was carried out.
      const loser = await within(
        Promise.race([ra, rb].map((r) => (r.kicks.length ? Promise.resolve(r) : nextKick(r.client).then(() => r)))),
        5000,
        `iteration ${i}: one of the two is kicked`,
      );
      const survivor = loser === ra ? rb : ra;
      await expectKicked(loser);
      expect(survivor.reply).toEqual({ Trace: expect.any(String), Error: '', Result: { userId, settings: {} } });
      const field = await expectBound(survivor, userId);
      const counts = await ok<Counts>(survivor.client, 'user/HD_count');
      expect(counts.total).toEqual({ total: 1, bound: 1, guests: 0, detached: 0 });
      expect(await indexed(userId)).toEqual([field]);
      expect(survivor.kicks).toEqual([]); // still, after two more round trips
      survivors[survivor === ra ? 'a' : 'b']++;
      await Promise.all([ra, rb].map((r) => r.client.endAsync()));
    }
    expect(survivors.a + survivors.b).toBe(ITERATIONS);
  });

  test('the same on one gate: two logins racing on gate A (10 races)', async () => {
    for (let i = 0; i < 10; i++) {
      const userId = `kick-one-gate-${i}`;
      const racers = await race(userId, [
        ['a', 'tcp'],
        ['a', 'ws'],
      ]);
      const loser = await within(
        Promise.race(racers.map((r) => (r.kicks.length ? Promise.resolve(r) : nextKick(r.client).then(() => r)))),
        5000,
        `iteration ${i}: one of the two is kicked`,
      );
      const survivor = racers.find((r) => r !== loser)!;
      await expectKicked(loser);
      expect(survivor.reply).toEqual({ Trace: expect.any(String), Error: '', Result: { userId, settings: {} } });
      const field = await expectBound(survivor, userId);
      expect((await ok<Counts>(survivor.client, 'user/HD_count')).total).toEqual({ total: 1, bound: 1, guests: 0, detached: 0 });
      expect(await indexed(userId)).toEqual([field]);
      await Promise.all(racers.map((r) => r.client.endAsync()));
    }
  });
});

describe('MQGATE_DUPLICATE_LOGIN_POLICY=reject-new: two logins of one user racing on two gates', () => {
  const { race, indexed } = cluster('split-dup-reject', { MQGATE_DUPLICATE_LOGIN_POLICY: 'reject-new' });

  test(`exactly one succeeds, the other gets the policy's Error and stays a guest (${ITERATIONS} races)`, async () => {
    for (let i = 0; i < ITERATIONS; i++) {
      const userId = `reject-${i}`;
      const racers = await race(userId, [
        ['a', i % 2 ? 'tcp' : 'ws'],
        ['b', i % 2 ? 'ws' : 'tcp'],
      ]);
      const replies = racers.map((r) => r.reply);
      expect(replies).not.toContain('closed');
      const winners = racers.filter((r) => (r.reply as Envelope).Error === '');
      const losers = racers.filter((r) => (r.reply as Envelope).Error !== '');
      expect(winners).toHaveLength(1);
      expect(losers).toHaveLength(1);
      const [winner] = winners;
      const [loser] = losers;
      expect(winner.reply).toEqual({ Trace: expect.any(String), Error: '', Result: { userId, settings: {} } });
      expect(loser.reply).toEqual({
        Trace: expect.any(String),
        Error: 'DUPLICATE_LOGIN: the user is already logged in and the duplicate login policy rejects a new session',
        Result: null,
      });
      const field = await expectBound(winner, userId);
      // the rejected one is still connected, a guest, never kicked
      expect(loser.client.connected).toBe(true);
      expect(await ok(loser.client, 'user/HD_get')).toMatchObject({ userId: '' });
      expect(loser.kicks).toEqual([]);
      expect((await ok<Counts>(loser.client, 'user/HD_count')).total).toEqual({ total: 2, bound: 1, guests: 1, detached: 0 });
      expect(await indexed(userId)).toEqual([field]);
      // once the winner has left, the other may log in. MQTT has no DISCONNECT ack: endAsync()
      // resolves when our socket is closed, and the winner's gate unbinds (drops the index
      // entry) when it has processed the disconnect, a moment later. Wait for that.
      await winner.client.endAsync();
      await eventually(async () => (await indexed(userId)).length === 0, 5000, `iteration ${i}: the winner's gate unbinds ${userId}`);
      expect(await ok(loser.client, 'user/HD_login', { userId })).toEqual({ userId, settings: {} });
      expect(await indexed(userId)).toEqual([`${loser.gateId}|${((await ok(loser.client, 'user/HD_get')) as { sessionId: string }).sessionId}`]);
      await loser.client.endAsync();
    }
  });
});

describe('MQGATE_DUPLICATE_LOGIN_POLICY=allow with MQGATE_DUPLICATE_LOGIN_MAX_SESSIONS_PER_USER=2: three logins racing on two gates', () => {
  const { race, indexed } = cluster('split-dup-allow', { MQGATE_DUPLICATE_LOGIN_POLICY: 'allow', MQGATE_DUPLICATE_LOGIN_MAX_SESSIONS_PER_USER: '2' });

  test(`exactly two stay bound, the third is kicked (${ITERATIONS} races)`, async () => {
    for (let i = 0; i < ITERATIONS; i++) {
      const userId = `allow-${i}`;
      const racers = await race(
        userId,
        i % 2
          ? [
              ['a', 'tcp'],
              ['b', 'tcp'],
              ['a', 'ws'],
            ]
          : [
              ['b', 'ws'],
              ['a', 'tcp'],
              ['b', 'tcp'],
            ],
      );
      const loser = await within(
        Promise.race(racers.map((r) => (r.kicks.length ? Promise.resolve(r) : nextKick(r.client).then(() => r)))),
        5000,
        `iteration ${i}: one of the three is kicked`,
      );
      await expectKicked(loser);
      const survivors = racers.filter((r) => r !== loser);
      const fields: string[] = [];
      for (const s of survivors) {
        expect(s.reply).toEqual({ Trace: expect.any(String), Error: '', Result: { userId, settings: {} } });
        fields.push(await expectBound(s, userId));
      }
      expect((await ok<Counts>(survivors[0].client, 'user/HD_count')).total).toEqual({ total: 2, bound: 2, guests: 0, detached: 0 });
      expect(await indexed(userId)).toEqual(fields.sort());
      await Promise.all(racers.map((r) => r.client.endAsync()));
    }
  });
});
