/**
 * Bans across gates: two gates sharing a RedisUserIndex on a real Redis server.
 * A ban made on gate A reaches gate B within banSyncInterval: B kicks its live session of
 * the banned user and refuses the user's Bind and the banned client id's CONNECT; an unban
 * on A lifts it on B.
 */
import { GateFunctions, InProcessTransport, RpcError, silentLogger, type SessionData } from '@mqgate/rpc';
import { RedisUserIndex } from '@mqgate/rpc/redis';
import { Gate } from '@mqgate/gate';
import { getRedis, uniquePrefix, type RedisUnderTest } from '@mqgate/test-support';
import { Connections } from './helpers/connections';
import { waitUntil, within } from './helpers/waiters';

let redis: RedisUnderTest;
beforeAll(async () => {
  redis = await getRedis();
});
afterAll(async () => {
  if (redis?.owned) await redis.stop();
});

const conns = new Connections();
afterEach(() => conns.closeAll());

test('a ban on one gate reaches the other through the shared user index: kick, Bind BANNED, CONNACK 5; unban lifts it', async () => {
  const prefix = uniquePrefix('bans');
  const transport = new InProcessTransport();
  const indexA = new RedisUserIndex({ url: redis.url, prefix });
  const indexB = new RedisUserIndex({ url: redis.url, prefix });
  const opts = { tcp: { port: 0, host: '127.0.0.1' }, websocket: false as const, banSyncInterval: 100 };
  const a = new Gate({ ...opts, serverId: 'gate@a', userIndex: indexA });
  const b = new Gate({ ...opts, serverId: 'gate@b', userIndex: indexB });
  await a.start({ transport, logger: silentLogger, userIndex: indexA });
  await b.start({ transport, logger: silentLogger, userIndex: indexB });
  try {
    const portB = b.addresses().tcp!.port;
    const onB: SessionData[] = [];
    b.on('connect', (s) => onB.push(s));
    const bind = (sessionId: string, userId: string) => transport.call({ serverId: 'gate@b' }, GateFunctions.Bind, [sessionId, userId]);
    const live = await conns.connectedRaw(portB, 'phone');
    await waitUntil('connected on B', () => onB.length === 1);
    await bind(onB[0].sessionId, 'eve');

    await a.ban({ userId: 'eve' }, 60_000);
    await a.ban({ clientId: 'stolen' }, 60_000);
    await within(live.closed, 5000, "B kicks eve's live session");
    await waitUntil('B holds both bans', () => b.bans().length === 2, 5000);
    const other = await conns.connectedRaw(portB, 'tablet');
    await waitUntil('connected on B', () => onB.length === 2);
    const err = await bind(onB[1].sessionId, 'eve').catch((e: unknown) => e);
    expect((err as RpcError).code).toBe('BANNED');
    const refused = await conns.raw(portB);
    expect((await refused.connect({ clientId: 'stolen' })).returnCode).toBe(5);

    await a.unban({ userId: 'eve' });
    await waitUntil('B lifts the ban', () => b.bans().every((x) => x.value !== 'eve'), 5000);
    await expect(bind(onB[1].sessionId, 'eve')).resolves.toBeDefined();
    other.destroy();
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await transport.close();
    await Promise.all([indexA.close(), indexB.close()]);
  }
});
