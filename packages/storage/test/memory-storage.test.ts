import { decodeSession, makeSessionData } from '@mqgate/rpc';
import { MemoryStorage, StorageError } from '@mqgate/storage';
import { describeStorageHandler } from '@mqgate/storage/conformance';

describeStorageHandler('MemoryStorage', async ({ ttl }) => {
  const handler = new MemoryStorage({ ttl });
  return { handler, cleanup: () => handler.close() };
});

async function waitFor(cond: () => boolean, limitMs: number): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

describe('MemoryStorage', () => {
  it('defaults to a 24 h ttl', async () => {
    const store = new MemoryStorage();
    expect(store.ttl).toBe(86_400_000);
    expect(store.sweepInterval).toBe(60_000);
    await store.close();
  });

  it('rejects a ttl or sweepInterval that is not a positive integer', () => {
    expect(() => new MemoryStorage({ ttl: 0 })).toThrow(RangeError);
    expect(() => new MemoryStorage({ ttl: 1.5 })).toThrow(/ttl must be a positive integer/);
    expect(() => new MemoryStorage({ sweepInterval: -1 })).toThrow(/sweepInterval/);
  });

  it('the sweep removes expired entries nobody queries, and close() stops it', async () => {
    const store = new MemoryStorage({ ttl: 50, sweepInterval: 20 });
    try {
      await store.storage(makeSessionData({ userId: 'swept' }));
      expect(store.size).toBe(1);
      expect(await waitFor(() => store.size === 0, 2000)).toBe(true);

      await store.close();
      await store.storage(makeSessionData({ userId: 'not-swept' }));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(store.size).toBe(1); // expired, but no sweep runs any more
      expect(await store.query('not-swept')).toBeNull(); // never returned all the same
      expect(store.size).toBe(0); // and dropped by the query
    } finally {
      await store.close();
    }
  });

  it('keeps copies: mutating the returned bytes does not change what is stored', async () => {
    const store = new MemoryStorage();
    try {
      await store.storage(makeSessionData({ userId: 'u', settings: { a: '1' } }));
      const first = (await store.query('u')) as Uint8Array;
      first.fill(0);
      const second = (await store.query('u')) as Uint8Array;
      expect(second).not.toBe(first);
      expect(decodeSession(second).settings).toEqual({ a: '1' });
    } finally {
      await store.close();
    }
  });

  it('rejects with a StorageError for an empty user id, whatever the operation', async () => {
    const store = new MemoryStorage();
    try {
      const guest = makeSessionData({ userId: '' });
      for (const [op, call] of [
        ['storage', () => store.storage(guest)],
        ['delete', () => store.delete(guest)],
        ['query', () => store.query('')],
        ['heartbeat', () => store.heartbeat(guest)],
      ] as const) {
        const err = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(StorageError);
        expect((err as StorageError).operation).toBe(op);
        expect((err as StorageError).message).toBe(`${op}("") failed: userId is empty (guest sessions are not stored)`);
      }
      expect(store.size).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('holds at most maxEntries: the entry written or heartbeaten longest ago goes first, and is counted', async () => {
    const store = new MemoryStorage({ maxEntries: 3 });
    try {
      expect(new MemoryStorage().maxEntries).toBe(100_000);
      expect(() => new MemoryStorage({ maxEntries: 0 })).toThrow(/maxEntries/);
      for (const u of ['a', 'b', 'c']) await store.storage(makeSessionData({ userId: u }));
      await store.heartbeat(makeSessionData({ userId: 'a' })); // a is now the newest
      await store.storage(makeSessionData({ userId: 'd' })); // b, the oldest, goes
      expect(store.size).toBe(3);
      expect(store.evicted).toBe(1);
      expect(await store.query('b')).toBeNull();
      for (const u of ['a', 'c', 'd']) expect(await store.query(u)).not.toBeNull();
      // rewriting a held entry never evicts
      await store.storage(makeSessionData({ userId: 'c', settings: { k: 'v' } }));
      expect([store.size, store.evicted]).toEqual([3, 1]);
    } finally {
      await store.close();
    }
  });
});
