/**
 * The reconnect path end to end (issue: pluggable session persistence): real demo processes,
 * real MQTT clients, a real Redis (REDIS_URL, or a throwaway redis-server the tests start).
 */
import Redis from 'ioredis';
import type { MqttClient } from 'mqtt';
import { decodeSession } from '@mqgate/rpc';
import { startRedisServer, uniquePrefix, type RedisUnderTest } from '@mqgate/test-support';
import { sharedRedis } from './helpers/redis';
import { call, connect, ok } from './helpers/client';
import { startDemo, type DemoProcess } from './helpers/demo-process';

const shared = sharedRedis();
const demos: DemoProcess[] = [];
const clients: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await Promise.all(demos.splice(0).map((d) => d.kill()));
});

async function demo(env: Record<string, string>): Promise<DemoProcess> {
  const d = await startDemo(env);
  demos.push(d);
  return d;
}
async function client(url: string): Promise<MqttClient> {
  const c = await connect(url);
  clients.push(c);
  return c;
}
/** Drops the connection without DISCONNECT, as a network failure would. */
async function dropConnection(c: MqttClient): Promise<void> {
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
  c.stream.destroy();
  await closed;
}
async function loginAndSet(url: string, userId: string, settings: Record<string, string>): Promise<MqttClient> {
  const c = await client(url);
  await ok(c, 'user/HD_login', { userId });
  for (const [key, value] of Object.entries(settings)) await ok(c, 'user/HD_set', { key, value });
  return c;
}
async function loginAgain(url: string, userId: string): Promise<{ login: Record<string, unknown>; get: Record<string, unknown> }> {
  const c = await client(url);
  const login = await ok(c, 'user/HD_login', { userId });
  const get = await ok(c, 'user/HD_get');
  return { login, get };
}
/** Polls until `check` passes or `ms` elapse (for time-based behaviour: expiry, retries). */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('case 1 (memory, the default): login, set, drop, reconnect, login: settings are back', async () => {
  const d = await demo({ REDIS_URL: '' });
  const c = await loginAndSet(d.tcpUrl, 'erin', { color: 'blue', level: '7' });
  await dropConnection(c);
  const { login, get } = await loginAgain(d.wsUrl, 'erin');
  expect(login).toEqual({ userId: 'erin', settings: expect.objectContaining({ color: 'blue', level: '7' }) });
  expect(get).toMatchObject({ userId: 'erin', network: 'websocket', settings: { color: 'blue', level: '7' } });
});

test('case 1 (Redis): the settings come back, stored as mqant SessionImp bytes under the prefix', async () => {
  const prefix = uniquePrefix('reconnect1');
  const d = await demo({ REDIS_URL: shared.redis.url, MQGATE_TRANSPORT_PREFIX: prefix });
  const c = await loginAndSet(d.tcpUrl, 'frank', { color: 'green' });
  const stored = await shared.db.getBuffer(`${prefix}session:frank`);
  expect(stored).not.toBeNull();
  expect(decodeSession(stored!)).toMatchObject({ userId: 'frank', settings: { color: 'green' } });
  await dropConnection(c);
  const { get } = await loginAgain(d.tcpUrl, 'frank');
  expect(get).toMatchObject({ userId: 'frank', settings: { color: 'green' } });
});

test('case 2: the same across a restart of the demo process', async () => {
  const prefix = uniquePrefix('reconnect2');
  const env = { REDIS_URL: shared.redis.url, MQGATE_TRANSPORT_PREFIX: prefix };
  const first = await demo(env);
  const c = await loginAndSet(first.tcpUrl, 'gina', { theme: 'dark' });
  await dropConnection(c);
  expect(await first.stop('SIGTERM')).toBe(0);
  const second = await demo(env);
  const { get } = await loginAgain(second.tcpUrl, 'gina');
  expect(get).toMatchObject({ userId: 'gina', settings: { theme: 'dark' } });
});

test('case 3: two gate processes on one Redis: log in on one, reconnect to the other', async () => {
  const prefix = uniquePrefix('reconnect3');
  const env = { REDIS_URL: shared.redis.url, MQGATE_TRANSPORT_PREFIX: prefix };
  const [a, b] = await Promise.all([demo(env), demo(env)]);
  const c = await loginAndSet(a.tcpUrl, 'hank', { seat: '12' });
  await dropConnection(c);
  const { get } = await loginAgain(b.wsUrl, 'hank');
  expect(get).toMatchObject({ userId: 'hank', network: 'websocket', settings: { seat: '12' } });
});

test('case 4: expiry: with a short ttl and no traffic the data is gone; with traffic it stays', async () => {
  const prefix = uniquePrefix('reconnect4');
  const ttl = 1500;
  const d = await demo({
    REDIS_URL: shared.redis.url,
    MQGATE_TRANSPORT_PREFIX: prefix,
    MQGATE_STORAGE_TTL: String(ttl),
    MQGATE_GATE_HEARTBEAT_INTERVAL: '300',
  });
  // Stays: a connected client whose keepalive pings are its only traffic.
  const live = await connect(d.tcpUrl, { keepalive: 1 });
  clients.push(live);
  await ok(live, 'user/HD_login', { userId: 'ivy' });
  await ok(live, 'user/HD_set', { key: 'k', value: 'v' });
  // Gone: a user who left.
  const gone = await loginAndSet(d.tcpUrl, 'jack', { k: 'v' });
  await dropConnection(gone);
  const started = Date.now();
  await eventually(async () => (await shared.db.exists(`${prefix}session:jack`)) === 0, ttl + 3000, 'jack expired');
  expect(Date.now() - started).toBeGreaterThan(ttl / 2);
  // ivy outlived jack by far and is still stored, heartbeats refreshing her expiry
  await eventually(async () => Date.now() - started > 2 * ttl, 3 * ttl, 'two ttls passed');
  expect(await shared.db.exists(`${prefix}session:ivy`)).toBe(1);
  const pttl = await shared.db.pttl(`${prefix}session:ivy`);
  expect(pttl).toBeGreaterThan(0);
  expect(pttl).toBeLessThanOrEqual(ttl);
  // and after a reconnect her settings are back, jack's are not
  await dropConnection(live);
  expect((await loginAgain(d.tcpUrl, 'ivy')).get).toMatchObject({ settings: { k: 'v' } });
  expect((await loginAgain(d.tcpUrl, 'jack')).get).toMatchObject({ settings: {} });
});

describe('case 5: Redis stopped while clients are connected', () => {
  let own: RedisUnderTest;
  let ownDb: Redis;
  beforeAll(async () => {
    own = await startRedisServer(); // never a shared server
    ownDb = new Redis(own.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  });
  afterAll(async () => {
    ownDb.disconnect();
    await own.stop();
  });

  test('requests keep working, changes reject clearly, and after the restart nothing acknowledged is missing', async () => {
    const prefix = uniquePrefix('reconnect5');
    const d = await demo({ REDIS_URL: own.url, MQGATE_TRANSPORT_PREFIX: prefix });
    const c = await loginAndSet(d.tcpUrl, 'kate', { acked: 'before' });

    await own.stop();
    // requests that do not touch storage keep working
    expect(await ok(c, 'echo/HD_echo', { during: 'outage' })).toEqual({ during: 'outage' });
    expect(await ok(c, 'user/HD_get')).toMatchObject({ userId: 'kate', settings: { acked: 'before' } });
    // a settings change rejects with the clear error, and is live all the same
    const failed = await call(c, 'user/HD_set', { key: 'pending', value: 'during' });
    expect(failed.Error).toBe('STORAGE_UNAVAILABLE: the change is live on the gate and will be stored when the store is back');
    expect(await ok(c, 'user/HD_get')).toMatchObject({ settings: { acked: 'before', pending: 'during' } });
    // the gate process is alive and the client still connected
    expect(d.child.exitCode).toBeNull();
    expect(c.connected).toBe(true);

    await own.restart();
    // the pending state is persisted without any client action, and the acknowledged value is intact
    await eventually(
      async () => {
        const bytes = await ownDb.getBuffer(`${prefix}session:kate`).catch(() => null);
        return bytes !== null && decodeSession(bytes).settings.pending === 'during';
      },
      20_000,
      'the pending change stored after the restart',
    );
    const stored = decodeSession((await ownDb.getBuffer(`${prefix}session:kate`))!);
    expect(stored.settings).toMatchObject({ acked: 'before', pending: 'during' });
    // and a reconnect gets everything back
    await dropConnection(c);
    expect((await loginAgain(d.tcpUrl, 'kate')).get).toMatchObject({ settings: { acked: 'before', pending: 'during' } });
  }, 60_000);
});
