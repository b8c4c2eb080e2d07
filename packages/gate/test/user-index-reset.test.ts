/**
 * Redis restarted empty (no persistence) loses the cross-gate user
 * index; the gates see its epoch change (`mqgate:user-index:epoch`, gate option
 * userIndexCheckInterval) and put their bound sessions' entries back, so that within one
 * interval every user is online again, a whisper reaches its target and reject-new refuses
 * a second login. Two gates in one process on the in-process transport, each with its own
 * RedisUserIndex client on a throwaway redis-server that the test kills and restarts empty.
 */
import { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { GateFunctions, InProcessTransport, UserDirectory, silentLogger, type SessionData } from '@mqgate/rpc';
import { RedisUserIndex } from '@mqgate/rpc/redis';
import { Gate } from '@mqgate/gate';
import { startRedisServer, uniquePrefix, type RedisUnderTest } from '@mqgate/test-support';
import { mqttConnect, request } from './helpers/harness';
import { nextMessage, waitUntil } from './helpers/waiters';

jest.setTimeout(60_000);

const INTERVAL = 300;
let redis: RedisUnderTest;
const stops: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  for (const s of stops.splice(0).reverse()) await s();
  await redis.stop();
});

let seq = 0;
const login = (c: MqttClient, userId: string) => request(c, `user/HD_login/${++seq}`, JSON.stringify({ userId }));

test('an empty Redis restart: within one userIndexCheckInterval all 40 users are online again, a whisper reaches its target, reject-new refuses a second login', async () => {
  const prefix = uniquePrefix('index-reset');
  const indexes = [0, 1, 2].map(() => new RedisUserIndex({ url: redis.url, prefix }));
  stops.push(() => Promise.all(indexes.map((i) => i.close())));
  const transport = new InProcessTransport();
  const opts = {
    tcp: { port: 0, host: '127.0.0.1' },
    websocket: false as const,
    duplicateLogin: { policy: 'reject-new' as const },
    userIndexCheckInterval: INTERVAL,
  };
  const gates = [new Gate({ ...opts, serverId: 'gate@a', userIndex: indexes[0] }), new Gate({ ...opts, serverId: 'gate@b', userIndex: indexes[1] })];
  for (const g of gates) await g.start({ transport, logger: silentLogger, userIndex: indexes[2] });
  stops.push(async () => {
    await Promise.all(gates.map((g) => g.stop()));
    await transport.close();
  });
  await transport.serve({ serverId: 'user@1', moduleType: 'user' }, async (_fn, args) => {
    const s = args[0] as SessionData;
    const body = args[1] as { userId: string };
    const answer = (await transport.call({ serverId: s.serverId }, GateFunctions.Bind, [s.sessionId, body.userId])) as SessionData;
    return { userId: answer.userId };
  });
  const users = new UserDirectory(transport, indexes[2]);
  const urls = gates.map((g) => `mqtt://127.0.0.1:${g.addresses().tcp!.port}`);
  const clients: MqttClient[] = [];
  stops.push(() => Promise.all(clients.map((c) => c.endAsync(true))));
  for (let i = 0; i < 40; i++) clients.push(await mqttConnect(urls[i % 2]));
  for (const [i, c] of clients.entries()) expect((await login(c, `u${i}`)).Error).toBe('');
  const onlineCount = async () => (await Promise.all(clients.map((_, i) => users.isConnect(`u${i}`)))).filter(Boolean).length;
  expect(await onlineCount()).toBe(40);
  // Both gates have looked at the epoch once (the first look only records it).
  await new Promise((r) => setTimeout(r, 2 * INTERVAL));

  await redis.stop();
  await redis.restart(); // empty: persistence is off
  const back = Date.now();
  await waitUntil('all 40 users online again', async () => (await onlineCount().catch(() => 0)) === 40, 15_000, 50);
  const took = Date.now() - back;
  // One interval, plus the reconnection of the clients (ioredis backs off up to 2 s) and a loaded machine.
  expect(took).toBeLessThan(INTERVAL + 2000 + 3000);
  expect(gates[0].counts().bound + gates[1].counts().bound).toBe(40);

  // A whisper reaches its target, on whichever gate it is.
  const got = nextMessage(clients[7], 'chat/whisper');
  expect(await users.sendToUser('u7', 'chat/whisper', Buffer.from('psst'))).toBe(1);
  expect((await got).toString()).toBe('psst');

  // reject-new refuses a second login of a user bound before the restart, on either gate.
  for (const url of urls) {
    const second = await mqttConnect(url);
    clients.push(second);
    const reply = await login(second, 'u8');
    expect(reply.Error).toMatch(/^DUPLICATE_LOGIN: /);
  }
  expect(gates[0].counts().bound + gates[1].counts().bound).toBe(40);
});

test("an empty Redis restart before the gate ever read the epoch: the first look that succeeds puts every entry back, the detached sessions' too; reject-new holds", async () => {
  const prefix = uniquePrefix('index-first-look');
  // The epoch key holds a list: every look fails (WRONGTYPE) until the restart empties Redis, as a
  // gate whose first looks failed (or had not run yet) when Redis lost its entries.
  const seeding = new Redis(redis.url);
  await seeding.rpush(`${prefix}user-index:epoch`, 'not a string');
  await seeding.quit();
  const index = new RedisUserIndex({ url: redis.url, prefix });
  const reader = new RedisUserIndex({ url: redis.url, prefix });
  stops.push(() => Promise.all([index.close(), reader.close()]));
  const transport = new InProcessTransport();
  const warns: string[] = [];
  const logger = { ...silentLogger, warn: (f: object) => void warns.push(String((f as { kind?: string }).kind)) };
  const gate = new Gate({
    tcp: { port: 0, host: '127.0.0.1' },
    websocket: false,
    duplicateLogin: { policy: 'reject-new' },
    userIndexCheckInterval: INTERVAL,
    serverId: 'gate@first',
    userIndex: index,
  });
  await gate.start({ transport, logger, userIndex: reader });
  stops.push(async () => {
    await gate.stop();
    await transport.close();
  });
  await transport.serve({ serverId: 'user@1', moduleType: 'user' }, async (_fn, args) => {
    const s = args[0] as SessionData;
    const answer = (await transport.call({ serverId: s.serverId }, GateFunctions.Bind, [
      s.sessionId,
      (args[1] as { userId: string }).userId,
    ])) as SessionData;
    return { userId: answer.userId };
  });
  const users = new UserDirectory(transport, reader);
  const url = `mqtt://127.0.0.1:${gate.addresses().tcp!.port}`;
  const clients: MqttClient[] = [];
  stops.push(() => Promise.all(clients.map((c) => c.endAsync(true))));
  for (let i = 0; i < 6; i++) clients.push(await mqttConnect(url));
  for (const [i, c] of clients.entries()) expect((await login(c, `f${i}`)).Error).toBe('');
  // Three connections drop without DISCONNECT: their sessions wait detached for a resume.
  for (const c of clients.slice(0, 3)) (c as unknown as { stream: { destroy(): void } }).stream.destroy();
  await waitUntil('3 detached sessions', async () => gate.counts().detached === 3, 5000, 20);
  await waitUntil('a failed epoch look', async () => warns.includes('user-index-check'), 5000, 20);

  await redis.stop();
  await redis.restart(); // empty: persistence is off
  const onlineCount = async () => (await Promise.all(clients.map((_, i) => users.isConnect(`f${i}`)))).filter(Boolean).length;
  await waitUntil('all 6 users online again (3 of them detached)', async () => (await onlineCount().catch(() => 0)) === 6, 15_000, 50);
  const second = await mqttConnect(url);
  clients.push(second);
  expect((await login(second, 'f1')).Error).toMatch(/^DUPLICATE_LOGIN: /); // a detached session's user
  expect((await login(second, 'f4')).Error).toMatch(/^DUPLICATE_LOGIN: /); // a connected one's
});

test('an empty Redis restart keeps the shared bans: the ban sync sees the epoch change and writes back what it knew, instead of lifting them', async () => {
  const prefix = uniquePrefix('index-bans');
  const index = new RedisUserIndex({ url: redis.url, prefix });
  const reader = new RedisUserIndex({ url: redis.url, prefix });
  stops.push(() => Promise.all([index.close(), reader.close()]));
  const transport = new InProcessTransport();
  const gate = new Gate({ tcp: { port: 0, host: '127.0.0.1' }, websocket: false, banSyncInterval: 200, serverId: 'gate@bans', userIndex: index });
  await gate.start({ transport, logger: silentLogger, userIndex: reader });
  stops.push(async () => {
    await gate.stop();
    await transport.close();
  });
  await gate.ban({ userId: 'mallory' }, 60_000);
  await gate.ban({ clientId: 'flooder' }, 60_000);
  const listed = async () => (await reader.bans(10)).map((b) => `${b.kind}:${b.value}`).sort();
  expect(await listed()).toEqual(['clientId:flooder', 'userId:mallory']);

  await redis.stop();
  await redis.restart(); // empty: persistence is off
  await waitUntil('the shared bans back in Redis', async () => (await listed().catch(() => [])).length === 2, 10_000, 50);
  expect(await listed()).toEqual(['clientId:flooder', 'userId:mallory']);
  // Two more syncs: the gate still holds both (an empty read would have lifted them).
  await new Promise((r) => setTimeout(r, 500));
  expect(
    gate
      .bans()
      .map((b) => `${b.kind}:${b.value}`)
      .sort(),
  ).toEqual(['clientId:flooder', 'userId:mallory']);
});
