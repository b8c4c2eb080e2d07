/**
 * An empty Redis restart under the split demo (a `mqgate` gate process and a modules process
 * on one throwaway redis-server, killed and started again empty on the same port): every
 * server's registry entry is written again as soon as its transport's connections are back,
 * so a login (gate → user module → the gate service's Session.bind) works again at once,
 * not a registry interval (10 s) later. Real processes, real Redis, a real MQTT client.
 */
import Redis from 'ioredis';
import { startRedisServer, uniquePrefix, type RedisUnderTest } from '@mqgate/test-support';
import { call, ok } from './helpers/client';
import { eventually, Tracker } from './helpers/split';

const ALL = ['chat', 'echo', 'gate', 'user'];

jest.setTimeout(90_000);

let own: RedisUnderTest;
let db: Redis;
const procs = new Tracker();

beforeAll(async () => {
  own = await startRedisServer();
  db = new Redis(own.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 100 });
  db.on('error', () => undefined);
});
afterAll(async () => {
  await procs.cleanup();
  db.disconnect();
  await own.stop();
});

/** The module types registered in Redis under `prefix`. */
async function registeredTypes(prefix: string): Promise<string[]> {
  const info = await db.hgetall(`${prefix}{registry}:info`).catch(() => ({}));
  return Object.values(info)
    .map((json) => (JSON.parse(json) as { moduleType: string }).moduleType)
    .sort();
}

/** Logs in, retrying while the answer is NO_SERVER (the caches catching up); resolves with the failures seen. */
async function loginUntilOk(c: Parameters<typeof call>[0], userId: string, ms: number): Promise<string[]> {
  const failures: string[] = [];
  for (const until = Date.now() + ms; ;) {
    const r = await call(c, 'user/HD_login', { userId });
    if (!r.Error) return failures;
    failures.push(r.Error);
    if (!r.Error.startsWith('NO_SERVER') || Date.now() > until) throw new Error(`login failed: ${failures.join(' | ')}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

test('after an empty Redis restart every server writes its registry entry again once reconnected, and a login works (well within the 10 s registryInterval)', async () => {
  const prefix = uniquePrefix('split-restart');
  const env = { REDIS_URL: own.url, MQGATE_TRANSPORT_PREFIX: prefix };
  const [gate] = await Promise.all([procs.gate(env), procs.modules(env)]);
  await db.connect();
  const c = await procs.client(gate.tcpUrl);
  await ok(c, 'user/HD_login', { userId: 'before' });
  expect(await registeredTypes(prefix)).toEqual(ALL);

  // Back at once, and after an outage long enough for the reconnect backoff to reach its 2 s cap.
  for (const [i, outage] of [0, 2500].entries()) {
    await own.stop();
    await new Promise((res) => setTimeout(res, outage));
    await own.restart();
    await eventually(async () => (await registeredTypes(prefix)).length === ALL.length, 5000, 'every server registered again');
    expect(await registeredTypes(prefix)).toEqual(ALL);
    const failures = await loginUntilOk(c, `after-${i}`, 5000);
    expect(failures.every((f) => f.startsWith('NO_SERVER'))).toBe(true);
    expect(await ok(c, 'echo/HD_echo', { i })).toEqual({ i });
  }
});
