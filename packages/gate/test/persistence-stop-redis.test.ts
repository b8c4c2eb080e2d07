/**
 * A graceful stop during a session-store outage keeps the promise of
 * the STORAGE_UNAVAILABLE reply ("will be stored when the store is back"): stop() retries
 * the pending writes until stopTimeout, and names at error each user it could not store.
 * A real redis-server behind the test-support TCP proxy (stop: connections dropped and
 * refused; restart: back on the same port), a RedisStorage, 200 MQTT.js clients.
 */
import { Redis } from 'ioredis';
import { CLIENT_TEXTS, decodeSession, type Logger } from '@mqgate/rpc';
import { RedisStorage } from '@mqgate/storage';
import { startRedisServer, startTcpProxy, uniquePrefix, type Interruptible, type RedisUnderTest } from '@mqgate/test-support';
import { ok, startPersistenceApp, stopPersistenceApps, type Peer } from './helpers/persistence-app';

jest.setTimeout(90_000);

let redis: RedisUnderTest;
let db: Redis;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startRedisServer();
  db = new Redis(redis.url, { maxRetriesPerRequest: 1 });
});
afterEach(async () => {
  await stopPersistenceApps();
  for (const c of cleanups.splice(0)) await c();
});
afterAll(async () => {
  db.disconnect();
  await redis.stop();
});

/** A logger keeping the error lines (fields and message). */
function errorLog(): { logger: Logger; errors: Array<[Record<string, unknown>, string]> } {
  const errors: Array<[Record<string, unknown>, string]> = [];
  const none = () => undefined;
  return { errors, logger: { debug: none, info: none, warn: none, error: (f, msg) => void errors.push([f as Record<string, unknown>, msg]) } };
}

/** A gate whose RedisStorage goes through a proxy the test can take down; `n` clients bound as u0..u(n-1) with a=1 stored. */
async function setup(n: number, stopTimeout: number) {
  const proxy: Interruptible = await startTcpProxy(redis.url);
  cleanups.push(() => proxy.stop());
  const prefix = uniquePrefix('stop-unstored');
  const storage = new RedisStorage({ url: proxy.url, prefix, commandTimeout: 500 });
  cleanups.push(() => storage.close());
  const { logger, errors } = errorLog();
  const env = await startPersistenceApp({ storage, stopTimeout, storageRetryDelay: 100, storageRetryMaxDelay: 400, logger });
  const peers: Peer[] = [];
  for (let i = 0; i < n; i += 20) peers.push(...(await Promise.all(Array.from({ length: Math.min(20, n - i) }, () => env.peer()))));
  const results = await Promise.all(
    peers.map((p, i) =>
      p.run([
        ['bind', `u${i}`],
        ['set', 'a', '1'],
      ]),
    ),
  );
  for (const r of results) r.results.forEach(ok);
  const stored = async (userId: string): Promise<Record<string, string> | undefined> => {
    const bytes = await db.getBuffer(prefix + userId);
    return bytes ? { ...decodeSession(bytes).settings } : undefined;
  };
  expect(await stored(`u${n - 1}`)).toEqual({ a: '1' });
  return { env, proxy, peers, errors, stored };
}

/** Each peer sets b=2 while the store is down: every reply is STORAGE_UNAVAILABLE with its client text. */
async function setDuringOutage(peers: Peer[]): Promise<void> {
  const replies = await Promise.all(peers.map((p) => p.run([['set', 'b', '2']])));
  for (const r of replies) expect(r.results[0]).toEqual({ ok: false, code: 'STORAGE_UNAVAILABLE', message: CLIENT_TEXTS.STORAGE_UNAVAILABLE });
}

test('200 users set during a store outage, stop() during it, the store back before stopTimeout: all 200 changes stored, nothing logged as lost', async () => {
  const { env, proxy, peers, errors, stored } = await setup(200, 20_000);
  await proxy.stop();
  await setDuringOutage(peers);
  const stopping = env.h.gate.stop();
  // The outage lasts 3 s into the stop: longer than one last attempt, well under stopTimeout.
  await new Promise((r) => setTimeout(r, 3000));
  await proxy.restart();
  await stopping;
  const missing: string[] = [];
  for (let i = 0; i < 200; i++) if ((await stored(`u${i}`))?.b !== '2') missing.push(`u${i}`);
  expect(missing).toEqual([]);
  expect(errors).toEqual([]);
});

test('the outage outlasts stopTimeout: stop() resolves about then, and its error log names exactly the users whose last change is not stored', async () => {
  const { env, proxy, peers, errors, stored } = await setup(200, 2000);
  await proxy.stop();
  const failing = peers.filter((_, i) => i % 3 === 0); // 67 users change during the outage; the others' are stored
  await setDuringOutage(failing);
  const started = Date.now();
  await env.h.gate.stop();
  const took = Date.now() - started;
  expect(took).toBeGreaterThanOrEqual(1900);
  expect(took).toBeLessThan(2000 + 3000); // the deadline plus the end of the stop, on a loaded machine
  const lost = errors.filter(([, msg]) => msg.includes('it is lost'));
  expect(lost.map(([f]) => f.userId).sort()).toEqual(failing.map((p) => `u${peers.indexOf(p)}`).sort());
  for (const [f] of lost) {
    const p = peers[Number(String(f.userId).slice(1))];
    expect(f).toEqual({ userId: f.userId, sessionId: p.sid, lost: 'settings change', keys: 2 });
  }
  expect(errors).toHaveLength(lost.length); // no count line under the cap of 100
  await proxy.restart();
  // What the log names is what the store lacks: the others' last change is there.
  expect(await stored('u0')).toEqual({ a: '1' });
  expect(await stored('u1')).toEqual({ a: '1' });
});
