/**
 * Users across gates in one process: two gates on one transport sharing one user index,
 * the duplicate-login policies, and the UserDirectory (isConnect, sendToUser, kickUser,
 * broadcast, counts). The same code runs across processes with RedisTransport and
 * RedisUserIndex (tested in the demo package).
 */
import type { MqttClient } from 'mqtt';
import {
  GateFunctions,
  InProcessTransport,
  MemoryUserIndex,
  UserDirectory,
  silentLogger,
  type DuplicateLoginPolicy,
  type SessionData,
} from '@mqgate/rpc';
import { detachedKey } from '@mqgate/rpc/internal';
import { Gate } from '@mqgate/gate';
import { mqttConnect, request } from './helpers/harness';
import { closeOf } from './helpers/waiters';

interface Pair {
  a: Gate;
  b: Gate;
  transport: InProcessTransport;
  index: MemoryUserIndex;
  users: UserDirectory;
  urlA: string;
  urlB: string;
  stop(): Promise<void>;
}

async function twoGates(duplicateLogin: DuplicateLoginPolicy): Promise<Pair> {
  const transport = new InProcessTransport();
  const index = new MemoryUserIndex();
  const opts = { tcp: { port: 0, host: '127.0.0.1' }, websocket: false as const, userIndex: index, duplicateLogin };
  const a = new Gate({ ...opts, serverId: 'gate@a' });
  const b = new Gate({ ...opts, serverId: 'gate@b' });
  await a.start({ transport, logger: silentLogger, userIndex: index });
  await b.start({ transport, logger: silentLogger, userIndex: index });
  // user/HD_login binds through the session service of the session's own gate
  await transport.serve({ serverId: 'user@1', moduleType: 'user' }, async (_fn, args) => {
    const s = args[0] as SessionData;
    const body = args[1] as { userId: string };
    const answer = (await transport.call({ serverId: s.serverId }, GateFunctions.Bind, [s.sessionId, body.userId])) as SessionData;
    return { userId: answer.userId, sessionId: answer.sessionId };
  });
  return {
    a,
    b,
    transport,
    index,
    users: new UserDirectory(transport, index),
    urlA: `mqtt://127.0.0.1:${a.addresses().tcp!.port}`,
    urlB: `mqtt://127.0.0.1:${b.addresses().tcp!.port}`,
    stop: async () => {
      await Promise.all([a.stop(), b.stop()]);
      await transport.close();
    },
  };
}

const clients: MqttClient[] = [];
async function client(url: string): Promise<MqttClient> {
  const c = await mqttConnect(url);
  clients.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

function kicked(c: MqttClient): Promise<{ reason: string; closed: Promise<void> }> {
  const closed = closeOf(c);
  return new Promise((resolve) => {
    c.on('message', (topic, body) => {
      if (topic === 'gate/kick') resolve({ reason: (JSON.parse(body.toString()) as { reason: string }).reason, closed });
    });
  });
}

let seq = 0;
const login = (c: MqttClient, userId: string) => request(c, `user/HD_login/${++seq}`, JSON.stringify({ userId }));

describe('kick-old', () => {
  let p: Pair;
  beforeAll(async () => {
    p = await twoGates({ policy: 'kick-old' });
  });
  afterAll(() => p.stop());

  test('a login on gate B closes the older session on gate A before the bind completes', async () => {
    const first = await client(p.urlA);
    expect((await login(first, 'amy')).Error).toBe('');
    const kick = kicked(first);
    const second = await client(p.urlB);
    const reply = await login(second, 'amy');
    expect(reply.Error).toBe('');
    const k = await kick;
    expect(k.reason).toMatch(/logged in elsewhere/);
    await k.closed;
    expect(await p.users.locate('amy')).toEqual([
      { serverId: 'gate@b', sessionId: (reply.Result as { sessionId: string }).sessionId, since: expect.any(Number) },
    ]);
    expect(p.a.counts().bound).toBe(0);
    expect(p.b.counts().bound).toBe(1);
  });

  test('two logins racing on two gates end with exactly one session, many times', async () => {
    for (let i = 0; i < 30; i++) {
      const userId = `racer-${i}`;
      const [x, y] = await Promise.all([client(p.urlA), client(p.urlB)]);
      const closes = [x, y].map(closeOf);
      const replies = await Promise.all([login(x, userId), login(y, userId)]);
      // both binds answered; the index holds exactly one session, and the other client is closed
      const where = await p.users.locate(userId);
      expect(where).toHaveLength(1);
      const survivors = replies.filter(
        (r, n) => r.Error === '' && (r.Result as { sessionId: string }).sessionId === where[0].sessionId && [x, y][n].connected,
      );
      expect(survivors).toHaveLength(1);
      await Promise.race(closes);
      expect([x, y].filter((c) => c.connected)).toHaveLength(1);
      expect(p.a.counts().bound + p.b.counts().bound).toBe(1);
      await Promise.all([x, y].map((c) => c.endAsync(true)));
      clients.splice(0);
    }
  });
});

describe('reject-new', () => {
  let p: Pair;
  beforeAll(async () => {
    p = await twoGates({ policy: 'reject-new' });
  });
  afterAll(() => p.stop());

  test('a second login fails with a clear error and the first session is untouched', async () => {
    const first = await client(p.urlA);
    expect((await login(first, 'bea')).Error).toBe('');
    const second = await client(p.urlB);
    const reply = await login(second, 'bea');
    expect(reply.Error).toMatch(/already logged in.*reject/);
    expect(first.connected).toBe(true);
    expect(await p.users.isConnect('bea')).toBe(true);
    expect(p.b.counts().bound).toBe(0);
  });

  test('two logins racing: exactly one bind succeeds, many times', async () => {
    for (let i = 0; i < 30; i++) {
      const [x, y] = await Promise.all([client(p.urlA), client(p.urlB)]);
      const replies = await Promise.all([login(x, `rr-${i}`), login(y, `rr-${i}`)]);
      expect(replies.filter((r) => r.Error === '')).toHaveLength(1);
      expect(replies.filter((r) => /DUPLICATE|already logged in/.test(r.Error))).toHaveLength(1);
      expect(await p.users.locate(`rr-${i}`)).toHaveLength(1);
    }
  });

  test('after the first session disconnects, the user can log in again', async () => {
    const first = await client(p.urlA);
    expect((await login(first, 'cid')).Error).toBe('');
    const gone = new Promise((resolve) => p.a.once('disconnect', resolve));
    first.stream.destroy();
    await gone;
    const again = await client(p.urlB);
    expect((await login(again, 'cid')).Error).toBe('');
  });
});

describe('allow with maxSessionsPerUser', () => {
  let p: Pair;
  beforeAll(async () => {
    p = await twoGates({ policy: 'allow', maxSessionsPerUser: 2 });
  });
  afterAll(() => p.stop());

  test('several sessions up to the cap; past it the oldest is kicked', async () => {
    const one = await client(p.urlA);
    await login(one, 'dan');
    const two = await client(p.urlB);
    await login(two, 'dan');
    expect(await p.users.locate('dan')).toHaveLength(2);
    const kick = kicked(one);
    const three = await client(p.urlB);
    expect((await login(three, 'dan')).Error).toBe('');
    expect((await kick).reason).toMatch(/logged in elsewhere/);
    expect((await p.users.locate('dan')).map((l) => l.serverId).sort()).toEqual(['gate@b', 'gate@b']);
    expect(two.connected).toBe(true);
  });
});

describe('UserDirectory across gates', () => {
  let p: Pair;
  beforeAll(async () => {
    p = await twoGates({ policy: 'allow' });
  });
  afterAll(() => p.stop());

  test('isConnect, sendToUser, kickUser, broadcast and counts reach every gate', async () => {
    const onA = await client(p.urlA);
    const onB = await client(p.urlB);
    const guest = await client(p.urlB);
    await login(onA, 'eve');
    await login(onB, 'eve');
    expect(await p.users.isConnect('eve')).toBe(true);
    expect(await p.users.isConnect('nobody')).toBe(false);

    const got = [onA, onB].map((c) => new Promise<string>((resolve) => c.once('message', (_t, m) => resolve(m.toString()))));
    expect(await p.users.sendToUser('eve', 'mail/new', { n: 1 })).toBe(2);
    expect(await Promise.all(got)).toEqual(['{"n":1}', '{"n":1}']);

    const all = [onA, onB, guest].map((c) => new Promise<string>((resolve) => c.once('message', (t) => resolve(t))));
    expect(await p.users.broadcast('news', 'hello')).toBe(3);
    expect(await Promise.all(all)).toEqual(['news', 'news', 'news']);

    expect(await p.users.counts()).toEqual({
      total: { total: 3, bound: 2, guests: 1, detached: 0 },
      gates: { 'gate@a': { total: 1, bound: 1, guests: 0, detached: 0 }, 'gate@b': { total: 2, bound: 1, guests: 1, detached: 0 } },
    });

    const kicks = [kicked(onA), kicked(onB)];
    expect(await p.users.kickUser('eve', 'banned')).toBe(2);
    expect((await Promise.all(kicks)).map((k) => k.reason)).toEqual(['banned', 'banned']);
    await Promise.all((await Promise.all(kicks)).map((k) => k.closed));
    expect(await p.users.isConnect('eve')).toBe(false);
    expect(guest.connected).toBe(true);
  });

  test('sendToUser pushes once to a session the index lists both bound and detached (the moment of a detach)', async () => {
    const c = await client(p.urlA);
    await login(c, 'dora');
    const [where] = await p.users.locate('dora');
    await p.index.claim(detachedKey('dora'), where, { policy: 'allow' }, p.users.gates());
    const got: string[] = [];
    const last = new Promise<void>((resolve) =>
      c.on('message', (_t, m) => {
        got.push(m.toString());
        if (m.toString() === '{"n":3}') resolve();
      }),
    );
    expect(await p.users.sendToUser('dora', 'mail/new', { n: 2 })).toBe(1);
    // pushes keep their order on one connection: a second copy of n 2 would come before n 3
    expect(await p.users.sendToUser('dora', 'mail/new', { n: 3 })).toBe(1);
    await last;
    expect(got).toEqual(['{"n":2}', '{"n":3}']);
  });
});
