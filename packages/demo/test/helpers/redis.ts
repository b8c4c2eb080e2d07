import Redis from 'ioredis';
import { getRedis, type RedisUnderTest } from '@mqgate/test-support';

/** The Redis of a test file and a client to inspect it; filled in by beforeAll. */
export interface SharedRedis {
  redis: RedisUnderTest;
  db: Redis;
}

/**
 * Registers beforeAll/afterAll for a test file: the Redis the tests use (REDIS_URL, or a
 * throwaway redis-server) and an ioredis client on it; stops an owned server at the end.
 */
export function sharedRedis(): SharedRedis {
  const shared = {} as SharedRedis;
  beforeAll(async () => {
    shared.redis = await getRedis();
    shared.db = new Redis(shared.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await shared.db.connect();
  });
  afterAll(async () => {
    shared.db.disconnect();
    if (shared.redis.owned) await shared.redis.stop();
  });
  return shared;
}
