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
import { IN_FLIGHT_SETTLED } from '../src/persistence/stop-unstored';
import { waitUntil } from './helpers/waiters';
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

type Line = [Record<string, unknown>, string];

/** A logger keeping the error lines and the info lines (fields and message). */
function errorLog(): { logger: Logger; errors: Line[]; infos: Line[] } {
  const errors: Line[] = [];
  const infos: Line[] = [];
  const none = () => undefined;
  const keep = (into: Line[]) => (f: object, msg: string) => void into.push([f as Record<string, unknown>, msg]);
  return { errors, infos, logger: { debug: none, info: keep(infos), warn: none, error: keep(errors) } };
}

/** A gate whose RedisStorage goes through a proxy the test can take down; `n` clients bound as u0..u(n-1) with a=1 stored. */
async function setup(n: number, stopTimeout: number, commandTimeout = 500) {
  const proxy: Interruptible = await startTcpProxy(redis.url);
  cleanups.push(() => proxy.stop());
  const prefix = uniquePrefix('stop-unstored');
  const storage = new RedisStorage({ url: proxy.url, prefix, commandTimeout });
  cleanups.push(() => storage.close());
  const { logger, errors, infos } = errorLog();
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
  return { env, proxy, peers, errors, infos, stored };
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
  // A write in flight at the deadline is judged when the store answers it (here: fails it, at its commandTimeout).
  const lostLines = () => errors.filter(([, msg]) => msg.includes('it is lost'));
  await waitUntil('every unstored change logged', async () => lostLines().length >= failing.length, 5000, 20);
  const lost = lostLines();
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

/** Busy Lua on its own connection: Redis answers nobody for `ms` (a real stall), then takes what waited. */
const STALL = `local s = redis.call('TIME') local e = s[1] * 1000000 + s[2] + ARGV[1] * 1000
while true do local t = redis.call('TIME') if t[1] * 1000000 + t[2] >= e then break end end return 1`;

test('Redis stalled longer than stopTimeout: stop() resolves about then; only the changes Redis did not take are logged as lost, the writes in flight it took after the stall are counted stored', async () => {
  const { env, peers, errors, infos, stored } = await setup(30, 800, 10_000);
  const staller = new Redis(redis.url);
  cleanups.push(() => staller.quit());
  await staller.ping(); // connected: the stall starts before the writes below reach Redis
  const writes = env.h.gate.stats().storage!.writes;
  const stall = staller.eval(STALL, 0, 2500);
  for (const p of peers) void p.run([['set', 'b', '2']]).catch(() => undefined); // answered or cut by the stop
  await waitUntil('30 writes in flight', async () => env.h.gate.stats().storage!.writes - writes >= 30, 5000, 10);
  const started = Date.now();
  await env.h.gate.stop();
  expect(Date.now() - started).toBeLessThan(800 + 1500);
  await stall;
  await waitUntil('the writes in flight to settle', async () => infos.some(([, msg]) => msg === IN_FLIGHT_SETTLED), 15_000, 20);
  const notStored: string[] = [];
  for (let i = 0; i < 30; i++) if ((await stored(`u${i}`))?.b !== '2') notStored.push(`u${i}`);
  const lost = errors.filter(([, msg]) => msg.includes('it is lost')).map(([f]) => String(f.userId));
  expect(lost.sort()).toEqual(notStored.sort()); // the log names exactly what Redis lacks
  const [settled] = infos.filter(([, msg]) => msg === IN_FLIGHT_SETTLED);
  expect(settled[0]).toMatchObject({ stored: 30 - notStored.length, lost: expect.any(Number) });
  expect(settled[0].inFlight).toBeGreaterThan(0);
});
