/**
 * Resume at scale: 1,000 bound sessions on gate A drop at once; while detached
 * each gets pushes (`send`, `broadcast`, `sendToUser`); then all reconnect and resume at
 * once, half on gate A and half on gate B (one process, one InProcessTransport, one
 * MemoryUserIndex: B takes its half over by the handOver verb). Every session resumes exactly
 * once, as itself, with its missed pushes in order; afterwards no session is detached, 1,000
 * are bound, and every used token is refused. Raw mqtt-packet TCP clients (lighter than
 * MQTT.js at this count).
 */
import { InProcessTransport, MemoryUserIndex, UserDirectory, gateClient, silentLogger, type SessionData } from '@mqgate/rpc';
import { detachedKey } from '@mqgate/rpc/internal';
import { Gate, type GateOptions } from '@mqgate/gate';
import type { IPublishPacket } from 'mqtt-packet';
import { RawClient } from './helpers/harness';
import { waitUntil, within } from './helpers/waiters';

const CLIENTS = 1000;
/** Connections opened at a time (the listen backlog is 511). */
const BATCH = 100;
let clientSeq = 0;
const EXPIRED = 'resume token expired or already used: log in again';

/**
 * Every gate option of this test, in one place. 1,000+ connections come from 127.0.0.1 in
 * bursts: per-IP connection caps and connect rates (maxConnectionsPerIp, connectRate, flapping
 * detection) must be off here once they are on by default.
 */
const GATE_OPTIONS: GateOptions = {
  tcp: { port: 0, host: '127.0.0.1' },
  websocket: false,
  // A bulk loopback load: 2,000 connections from 127.0.0.1 within a second, so the
  // per-address limits at the door (on by default) are off here.
  maxConnectionsPerIp: 0,
  connectRate: false,
  flapping: false,
};

interface TokenPush {
  sessionId: string;
  userId: string;
  token: string;
  expiresAt: number;
}

let transport: InProcessTransport;
let index: MemoryUserIndex;
let a: Gate;
let b: Gate;
const sockets: RawClient[] = [];

beforeAll(async () => {
  transport = new InProcessTransport();
  index = new MemoryUserIndex();
  a = new Gate({ ...GATE_OPTIONS, serverId: 'gate@a', userIndex: index });
  b = new Gate({ ...GATE_OPTIONS, serverId: 'gate@b', userIndex: index });
  await a.start({ transport, logger: silentLogger, userIndex: index });
  await b.start({ transport, logger: silentLogger, userIndex: index });
  await transport.serve({ serverId: 'user@1', moduleType: 'user' }, async (_fn, args) => {
    const s = args[0] as SessionData;
    const { userId } = args[1] as { userId: string };
    const bound = await gateClient(transport, s.serverId).bind(s.sessionId, userId);
    return { userId: bound.userId, sessionId: bound.sessionId };
  });
});

afterAll(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all([a.stop(), b.stop()]);
  await transport.close();
});

const portOf = (g: Gate): number => g.addresses().tcp!.port;
const publish = (c: RawClient, topic: string, body: unknown): void =>
  c.send({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(body)), qos: 0, retain: false, dup: false });
const text = (p: IPublishPacket): string => p.payload.toString();

/** Opens `n` raw clients (CONNECT, CONNACK 0) to `port`, BATCH at a time. */
async function openMany(port: number, n: number): Promise<RawClient[]> {
  const out: RawClient[] = [];
  for (let base = 0; base < n; base += BATCH) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(BATCH, n - base) }, async () => {
        const c = await RawClient.open(port);
        sockets.push(c);
        expect((await c.connect({ keepalive: 600, clientId: `resume-${++clientSeq}` })).returnCode).toBe(0);
        return c;
      }),
    );
    out.push(...batch);
  }
  return out;
}

/** The publish packets a client got up to and including its next `gate/session` push, in order (taken). */
async function upToToken(c: RawClient): Promise<{ before: IPublishPacket[]; token: TokenPush }> {
  const push = (await c.next('publish', (p) => (p as IPublishPacket).topic === 'gate/session')) as IPublishPacket;
  const before = c.packets.splice(0).filter((p): p is IPublishPacket => p.cmd === 'publish');
  return { before, token: JSON.parse(text(push)) as TokenPush };
}

test(`${CLIENTS} sessions drop at once and resume at once, half on another gate: each exactly once, as itself, its pushes in order`, async () => {
  const users = Array.from({ length: CLIENTS }, (_, i) => `user-${i}`);

  // 1. 1,000 clients log in on gate A; each gets its reply, then its token.
  const first = await openMany(portOf(a), CLIENTS);
  first.forEach((c, i) => publish(c, 'user/HD_login/1', { userId: users[i] }));
  const logins = await within(Promise.all(first.map(upToToken)), 60_000, 'every login reply and token push');
  const sessionIds = logins.map((l, i) => {
    expect(l.before.map((p) => p.topic)).toEqual(['user/HD_login/1']);
    const reply = JSON.parse(text(l.before[0])) as { Error: string; Result: { userId: string; sessionId: string } };
    expect(reply.Error).toBe('');
    expect(reply.Result.userId).toBe(users[i]);
    expect(l.token).toMatchObject({ userId: users[i], sessionId: reply.Result.sessionId });
    return reply.Result.sessionId;
  });
  expect(new Set(sessionIds).size).toBe(CLIENTS);
  expect(a.counts()).toEqual({ total: CLIENTS, bound: CLIENTS, guests: 0, detached: 0 });

  // 2. Every socket destroyed at once (no DISCONNECT): every session detached on A.
  let gone = 0;
  const allGone = new Promise<void>((resolve) => a.on('disconnect', () => ++gone === CLIENTS && resolve()));
  for (const c of first) c.destroy();
  await within(allGone, 30_000, 'every connection closed on gate A');
  expect(a.counts()).toEqual({ total: 0, bound: 0, guests: 0, detached: CLIENTS });
  // B finds A's half through the user index: every entry moved to the detached key.
  const live = [
    { serverId: 'gate@a', startedAt: 0 },
    { serverId: 'gate@b', startedAt: 0 },
  ];
  await waitUntil(
    'every detached session in the user index',
    async () => (await Promise.all(users.map((u) => index.locate(detachedKey(u), live)))).every((l) => l.length === 1),
    30_000,
    50,
  );

  // 3. Pushes while detached, three kinds interleaved: send, broadcast, UserDirectory.sendToUser.
  const directory = new UserDirectory(transport, index);
  sessionIds.forEach((sid, i) => expect(a.send(sid, `own/${i}`, `first-${i}`)).toBe(true));
  expect(a.broadcast('all/news', 'to everyone')).toBe(CLIENTS);
  const delivered = await Promise.all(users.map((u, i) => directory.sendToUser(u, 'chat/onWhisper', { to: i })));
  expect(delivered).toEqual(users.map(() => 1));
  sessionIds.forEach((sid, i) => expect(a.send(sid, `own/${i}`, `last-${i}`)).toBe(true));
  const expectedPushes = (i: number): Array<[string, string]> => [
    [`own/${i}`, `first-${i}`],
    ['all/news', 'to everyone'],
    ['chat/onWhisper', JSON.stringify({ to: i })],
    [`own/${i}`, `last-${i}`],
  ];

  // 4. All reconnect (even-numbered to A, odd-numbered to B), then all resume at once.
  const resumed: Array<{ sessionId: string; userId: string; serverId: string; from: string }> = [];
  for (const g of [a, b])
    g.on('resume', (s, info) => resumed.push({ sessionId: s.sessionId, userId: s.userId, serverId: s.serverId, from: info.from }));
  const [onA, onB] = await Promise.all([openMany(portOf(a), CLIENTS / 2), openMany(portOf(b), CLIENTS / 2)]);
  const second = users.map((_, i) => (i % 2 === 0 ? onA[i / 2] : onB[(i - 1) / 2]));
  second.forEach((c, i) => publish(c, 'gate/HD_resume/1', { token: logins[i].token.token }));
  const resumes = await within(Promise.all(second.map(upToToken)), 60_000, 'every resume reply, replayed pushes and new token');

  resumes.forEach((r, i) => {
    const [reply, ...pushes] = r.before;
    expect(reply.topic).toBe('gate/HD_resume/1');
    const env = JSON.parse(text(reply)) as { Error: string; Result: unknown };
    expect({ i, error: env.Error, result: env.Result }).toEqual({
      i,
      error: '',
      result: { userId: users[i], sessionId: sessionIds[i], settings: {}, recovered: true, replayed: 4, lost: 0 },
    });
    expect({ i, pushes: pushes.map((p) => [p.topic, text(p)]) }).toEqual({ i, pushes: expectedPushes(i) });
    expect(r.token).toMatchObject({ userId: users[i], sessionId: sessionIds[i] });
    expect(r.token.token).not.toBe(logins[i].token.token);
  });

  // Exactly one resume per session, on the gate its client went to, as itself.
  expect(resumed).toHaveLength(CLIENTS);
  expect(new Set(resumed.map((x) => x.sessionId)).size).toBe(CLIENTS);
  const byId = new Map(resumed.map((x) => [x.sessionId, x]));
  sessionIds.forEach((sid, i) =>
    expect(byId.get(sid)).toEqual({
      sessionId: sid,
      userId: users[i],
      serverId: i % 2 === 0 ? 'gate@a' : 'gate@b',
      from: i % 2 === 0 ? 'local' : 'gate@a',
    }),
  );
  expect(a.counts()).toEqual({ total: CLIENTS / 2, bound: CLIENTS / 2, guests: 0, detached: 0 });
  expect(b.counts()).toEqual({ total: CLIENTS / 2, bound: CLIENTS / 2, guests: 0, detached: 0 });
  await waitUntil(
    'every user in the index once, on the gate it resumed on',
    async () => {
      const where = await Promise.all(users.map((u) => index.locate(u, live)));
      return where.every((l, i) => l.length === 1 && l[0].serverId === (i % 2 === 0 ? 'gate@a' : 'gate@b') && l[0].sessionId === sessionIds[i]);
    },
    30_000,
    50,
  );

  // 5. Every used token refused, on either gate (10 tokens per guest connection; a refusal changes nothing).
  const guests = [...(await openMany(portOf(a), 50)), ...(await openMany(portOf(b), 50))];
  const refusals = await Promise.all(
    guests.map(async (c, g) => {
      const mine = Array.from({ length: 10 }, (_, k) => g * 10 + k);
      for (const [k, i] of mine.entries()) publish(c, `gate/HD_resume/${k + 1}`, { token: logins[i].token.token });
      const replies = await Promise.all(mine.map((_, k) => c.next('publish', (p) => (p as IPublishPacket).topic === `gate/HD_resume/${k + 1}`)));
      return replies.map((p) => (JSON.parse(text(p as IPublishPacket)) as { Error: string }).Error);
    }),
  );
  expect(refusals.flat()).toEqual(users.map(() => EXPIRED));
  expect(resumed).toHaveLength(CLIENTS);
  expect(a.counts()).toEqual({ total: CLIENTS / 2 + 50, bound: CLIENTS / 2, guests: 50, detached: 0 });
  expect(b.counts()).toEqual({ total: CLIENTS / 2 + 50, bound: CLIENTS / 2, guests: 50, detached: 0 });
  // The resumed sessions are live: a push reaches each on its new connection.
  expect(await Promise.all(users.map((u) => directory.sendToUser(u, 'live', u)))).toEqual(users.map(() => 1));
  const live1 = await within(
    Promise.all(second.map((c) => c.next('publish', (p) => (p as IPublishPacket).topic === 'live'))),
    30_000,
    'a live push on every resumed connection',
  );
  expect(live1.map((p) => text(p as IPublishPacket))).toEqual(users);
}, 120_000);
