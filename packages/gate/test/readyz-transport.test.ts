/**
 * `/readyz` sees a Redis transport outage directly: while the transport's Redis
 * connection is down the probe answers 503 with `transport: false` (read from
 * RpcTransport.healthy on every probe, not from the last call), and 200 again once it is
 * back. The outage is a TCP proxy in front of a real Redis, cut and restored.
 */
import { MemoryUserIndex, silentLogger } from '@mqgate/rpc';
import { RedisTransport } from '@mqgate/rpc/redis';
import { getRedis, startTcpProxy, uniquePrefix, type Interruptible, type RedisUnderTest } from '@mqgate/test-support';
import { Gate } from '@mqgate/gate';
import { waitUntil } from './helpers/waiters';

let redis: RedisUnderTest;
let proxy: Interruptible;
let transport: RedisTransport;
let gate: Gate;

beforeAll(async () => {
  redis = await getRedis();
  proxy = await startTcpProxy(redis.url);
  transport = new RedisTransport({ url: proxy.url, prefix: uniquePrefix('readyz'), registryTtl: 2000, logger: silentLogger });
  gate = new Gate({ tcp: { port: 0, host: '127.0.0.1' }, websocket: false, metricsPort: 0, metricsHost: '127.0.0.1' });
  await gate.start({ transport, logger: silentLogger, userIndex: new MemoryUserIndex() });
});
afterAll(async () => {
  await gate?.stop();
  await transport?.close();
  await proxy?.stop();
  await redis?.stop().catch(() => undefined); // not owned with REDIS_URL
});

async function probe(): Promise<{ status: number; body: { transport: boolean } }> {
  const r = await fetch(`http://127.0.0.1:${gate.addresses().metrics!.port}/readyz`);
  return { status: r.status, body: (await r.json()) as { transport: boolean } };
}

test('a Redis outage turns /readyz 503 (transport false) at once (under 2 s), and 200 again after it', async () => {
  expect(await probe()).toEqual({ status: 200, body: expect.objectContaining({ transport: true }) });
  const cut = Date.now();
  await proxy.stop();
  await waitUntil('/readyz 503 during the outage', async () => (await probe()).status === 503, 5000, 20);
  expect(Date.now() - cut).toBeLessThan(2000); // the registry heartbeat is 1 s: not waiting for it
  expect((await probe()).body).toMatchObject({ transport: false, listeners: true, accepting: true });
  await proxy.restart();
  await waitUntil('/readyz 200 after the outage', async () => (await probe()).status === 200, 15_000, 50);
  expect((await probe()).body.transport).toBe(true);
});
