import { decodeSession, encodeSession, makeSessionData } from '@mqgate/rpc';
import { RedisStorage, StorageError } from '@mqgate/storage';
import { describeStorageHandler } from '@mqgate/storage/conformance';
import { Redis } from 'ioredis';
import { getRedis, startTcpProxy, uniquePrefix, type Interruptible, type RedisUnderTest } from '@mqgate/test-support';

// A real Redis: REDIS_URL, or a throwaway redis-server started here. Every test works under
// its own key prefix, deletes the keys it made (or lets their short TTL expire them), and
// never flushes or scans the database.
let redis: RedisUnderTest;

beforeAll(async () => {
  redis = await getRedis();
}, 20_000);

afterAll(async () => {
  if (redis?.owned) await redis.stop();
});

describeStorageHandler('RedisStorage', async ({ ttl }) => {
  const handler = new RedisStorage({ url: redis.url, prefix: uniquePrefix('conformance'), ttl });
  return { handler, cleanup: () => handler.close() };
});

/** The error a promise rejects with; fails the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

/** A plain ioredis client for looking at what RedisStorage wrote. */
function inspector(): Redis {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  return client;
}

describe('RedisStorage', () => {
  it('stores one key per user, prefix + userId, holding the session bytes with PTTL ≈ ttl', async () => {
    const prefix = uniquePrefix('layout');
    const storage = new RedisStorage({ url: redis.url, prefix, ttl: 10_000 });
    const raw = inspector();
    const userId = 'user: 42 {x} 😀';
    const session = makeSessionData({ userId, settings: { room: 'r1' } });
    try {
      expect(storage.key(userId)).toBe(prefix + userId);
      await storage.storage(session);
      const stored = await raw.getBuffer(prefix + userId);
      expect(stored).not.toBeNull();
      expect((stored as Buffer).equals(Buffer.from(encodeSession(session)))).toBe(true);
      const pttl = await raw.pttl(prefix + userId);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(10_000);
      expect(pttl).toBeGreaterThan(8_000);

      // heartbeat restarts the TTL with PEXPIRE and leaves the value alone
      await raw.pexpire(prefix + userId, 3_000);
      await storage.heartbeat(makeSessionData({ userId, settings: { room: 'other' } }));
      expect(await raw.pttl(prefix + userId)).toBeGreaterThan(8_000);
      expect(decodeSession((await raw.getBuffer(prefix + userId)) as Buffer).settings).toEqual({ room: 'r1' });

      await storage.delete(session);
      expect(await raw.exists(prefix + userId)).toBe(0);
    } finally {
      await raw.del(prefix + userId);
      await storage.close();
      await raw.quit();
    }
  });

  it('uses an existing ioredis client and leaves it open on close()', async () => {
    const client = inspector();
    const prefix = uniquePrefix('own-client');
    const storage = new RedisStorage({ client, prefix, ttl: 10_000 });
    try {
      expect(storage.client).toBe(client);
      expect(storage.commandTimeout).toBeUndefined();
      await storage.storage(makeSessionData({ userId: 'u1', settings: { a: 'b' } }));
      expect(decodeSession((await storage.query('u1')) as Uint8Array).settings).toEqual({ a: 'b' });
      await storage.close();
      expect(client.status).toBe('ready');
      expect(await client.exists(`${prefix}u1`)).toBe(1);
      const err = await rejection(storage.query('u1'));
      expect(err).toBeInstanceOf(StorageError);
    } finally {
      await client.del(`${prefix}u1`);
      await client.quit();
    }
  });

  it('rejects bad options and empty user ids', async () => {
    const client = inspector();
    try {
      expect(() => new RedisStorage({ client, url: redis.url })).toThrow(TypeError);
      expect(() => new RedisStorage({ client, ttl: 0 })).toThrow(RangeError);
      expect(() => new RedisStorage({ client, ttl: 2.5 })).toThrow(/ttl must be a positive integer/);
      const storage = new RedisStorage({ client, prefix: uniquePrefix('guest') });
      const guest = makeSessionData({ userId: '' });
      for (const [op, call] of [
        ['storage', () => storage.storage(guest)],
        ['delete', () => storage.delete(guest)],
        ['query', () => storage.query('')],
        ['heartbeat', () => storage.heartbeat(guest)],
      ] as const) {
        const err = await rejection(call());
        expect(err).toBeInstanceOf(StorageError);
        expect((err as StorageError).operation).toBe(op);
        expect((err as StorageError).message).toBe(`${op}("") failed: userId is empty (guest sessions are not stored)`);
      }
    } finally {
      await client.quit();
    }
  });

  it('after close() every operation rejects with a StorageError; close() is idempotent', async () => {
    const storage = new RedisStorage({ url: redis.url, prefix: uniquePrefix('closed') });
    await storage.query('u1');
    await storage.close();
    await storage.close();
    expect(storage.client.status).toBe('end');
    const err = await rejection(storage.storage(makeSessionData({ userId: 'u1' })));
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).message).toMatch(/^storage\("u1"\) failed: Connection is closed\./);
  });

  describe('a Redis outage', () => {
    // An owned server is stopped and restarted; with REDIS_URL, a TCP proxy in front of it is.
    let target: Interruptible;
    let proxy: Interruptible | undefined;

    beforeAll(async () => {
      if (redis.owned) target = redis;
      else target = proxy = await startTcpProxy(redis.url);
    });
    afterAll(async () => {
      await proxy?.stop();
    });

    it('fails each call within commandTimeout with a StorageError, recovers when Redis is back, and never applies a failed write later', async () => {
      const connectionErrors: Error[] = [];
      const storage = new RedisStorage({
        url: target.url,
        prefix: uniquePrefix('outage'),
        ttl: 30_000,
        commandTimeout: 500,
        onError: (e) => connectionErrors.push(e),
      });
      // A second instance closed in the middle of the outage must not hang.
      const idle = new RedisStorage({ url: target.url, prefix: uniquePrefix('outage-idle'), commandTimeout: 500 });
      const userId = 'outage user';
      try {
        await storage.storage(makeSessionData({ userId, settings: { v: 'before' } }));
        await idle.query(userId);

        await target.stop();
        const timings: number[] = [];
        for (const [op, call] of [
          ['delete', () => storage.delete(makeSessionData({ userId }))],
          ['query', () => storage.query(userId)],
          ['heartbeat', () => storage.heartbeat(makeSessionData({ userId, settings: { v: 'during' } }))],
          ['storage', () => storage.storage(makeSessionData({ userId, settings: { v: 'during' } }))],
        ] as const) {
          const started = Date.now();
          const err = await rejection(call());
          timings.push(Date.now() - started);
          expect(err).toBeInstanceOf(StorageError);
          expect((err as StorageError).operation).toBe(op);
          expect((err as StorageError).userId).toBe(userId);
          expect((err as StorageError).message).toMatch(new RegExp(`^${op}\\("outage user"\\) failed: \\S`));
        }
        expect(Math.max(...timings)).toBeLessThan(1_500);
        expect(connectionErrors.length).toBeGreaterThan(0);
        expect(storage.client.status).not.toBe('ready');

        const closeStarted = Date.now();
        await idle.close();
        expect(Date.now() - closeStarted).toBeLessThan(1_500);

        await target.restart();
        // Reconnection backoff is capped at 2 s: retry for up to ~6 s.
        let recovered = false;
        for (let attempt = 0; attempt < 30 && !recovered; attempt++) {
          recovered = await storage.query(userId).then(
            () => true,
            () => new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 200)),
          );
        }
        expect(recovered).toBe(true);
        expect(storage.client.status).toBe('ready');
        // The writes that failed during the outage were not replayed on reconnection.
        // (An owned server restarts empty; through the proxy, the value from before the
        // outage is still there.)
        const after = await storage.query(userId);
        expect(after === null ? null : decodeSession(after).settings).toEqual(redis.owned ? null : { v: 'before' });

        await storage.storage(makeSessionData({ userId, settings: { v: 'after' } }));
        expect(decodeSession((await storage.query(userId)) as Uint8Array).settings).toEqual({ v: 'after' });
        await storage.delete(makeSessionData({ userId }));
        expect(await storage.query(userId)).toBeNull();
      } finally {
        await storage.close();
        await idle.close();
      }
    }, 20_000);
  });
});
