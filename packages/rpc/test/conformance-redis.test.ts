import { describeRpcTransport, describeUserIndex } from '@mqgate/rpc/conformance';
import { RedisTransport, RedisUserIndex } from '@mqgate/rpc/redis';
import { getRedis, uniquePrefix, type RedisUnderTest } from '@mqgate/test-support';

let redis: RedisUnderTest;
beforeAll(async () => {
  redis = await getRedis();
});
afterAll(async () => {
  if (redis?.owned) await redis.stop();
});

describeRpcTransport('RedisTransport', async () => {
  const prefix = uniquePrefix('conformance');
  return { make: (o) => new RedisTransport({ url: redis.url, prefix, ...o }) };
});

describeUserIndex('RedisUserIndex', async () => {
  const prefix = uniquePrefix('user-index');
  const index = new RedisUserIndex({ url: redis.url, prefix });
  const other = new RedisUserIndex({ url: redis.url, prefix });
  return { index, other, cleanup: async () => void (await Promise.all([index.close(), other.close()])) };
});
