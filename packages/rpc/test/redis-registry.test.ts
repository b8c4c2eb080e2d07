import type { ServerInfo } from '@mqgate/rpc';
import { RedisRegistry, rpcListKeys } from '@mqgate/rpc/redis';
import { Redis } from 'ioredis';
import { deferred, RedisKit, sleep, waitFor, waitForServers } from './fixtures/redis-test-kit';

const kit = new RedisKit();
let raw: Redis;

beforeAll(async () => {
  await kit.start();
  raw = new Redis(kit.redis.url);
});
afterAll(async () => {
  await raw.quit();
  await kit.stop();
});
beforeEach(() => kit.fresh('registry'));
afterEach(() => kit.closeAll());

/** Records the events of a transport. */
function record(t: { on(e: 'serverJoined' | 'serverLeft', l: (i: ServerInfo) => void): unknown }) {
  const events: string[] = [];
  const infos: ServerInfo[] = [];
  t.on('serverJoined', (i) => {
    events.push(`+${i.serverId}`);
    infos.push(i);
  });
  t.on('serverLeft', (i) => events.push(`-${i.serverId}`));
  return { events, infos };
}

/** Every key under the test's prefix (SCAN, test only). */
async function keysUnderPrefix(): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await raw.scan(cursor, 'MATCH', `${kit.prefix}*`, 'COUNT', 1000);
    cursor = next;
    out.push(...batch);
  } while (cursor !== '0');
  return out.sort();
}

describe('RedisTransport registry', () => {
  it('announces joins and leaves to other transports, with host, pid, version, startedAt and own meta', async () => {
    const observer = kit.make();
    await observer.ready();
    const seen = record(observer);
    const server = kit.make();
    const handle = await server.serve({ serverId: 'chat@1', moduleType: 'chat', meta: { zone: 'eu' } }, () => null);
    await server.serve({ serverId: 'user@1', moduleType: 'user' }, () => null);
    await waitFor(() => seen.events.length === 2, 'two joins');
    expect(seen.events.sort()).toEqual(['+chat@1', '+user@1']);
    const chat = seen.infos.find((i) => i.serverId === 'chat@1');
    expect(chat).toEqual({
      serverId: 'chat@1',
      moduleType: 'chat',
      meta: {
        host: expect.any(String),
        pid: String(process.pid),
        version: '0.1.0',
        startedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        heartbeat: '250',
        zone: 'eu',
      },
    });
    expect(handle.info).toEqual(chat);
    expect(observer.servers().map((i) => i.serverId)).toEqual(['chat@1', 'user@1']);
    expect(observer.servers('chat')).toEqual([chat]);

    await handle.close();
    await waitFor(() => seen.events.length === 3, 'the leave');
    expect(seen.events[2]).toBe('-chat@1');
    expect(observer.servers('chat')).toEqual([]);
    expect(server.servers('chat')).toEqual([]);
    expect(await raw.zrange(`${kit.prefix}{registry}:servers`, 0, -1)).toEqual(['user@1']);
    expect(await raw.hkeys(`${kit.prefix}{registry}:info`)).toEqual(['user@1']);
  });

  it('has the live servers in servers() once ready() resolves', async () => {
    const server = kit.make();
    await server.serve({ serverId: 'a@1', moduleType: 'a' }, () => null);
    const late = kit.make();
    expect(late.servers()).toEqual([]);
    await late.ready();
    expect(late.servers('a').map((i) => i.serverId)).toEqual(['a@1']);
  });

  it('keeps its layout in Redis: a ZSET of expiries, a HASH of infos, expiring request lists, nothing else', async () => {
    const server = kit.make({ maxConcurrent: 1, registryTtl: 5000, registryInterval: 1000 });
    const caller = kit.make();
    const gate = deferred();
    await server.serve({ serverId: 'm@1', moduleType: 'm' }, () => gate.promise.then(() => 'done'));
    await waitForServers(caller, 'm', 1);
    const now = (await raw.time()).map(Number);
    const redisNow = now[0] * 1000 + Math.floor(now[1] / 1000);
    const [member, score] = await raw.zrange(`${kit.prefix}{registry}:servers`, 0, -1, 'WITHSCORES');
    expect(member).toBe('m@1');
    expect(Number(score)).toBeGreaterThan(redisNow + 3000);
    expect(Number(score)).toBeLessThanOrEqual(redisNow + 5000);
    expect(JSON.parse((await raw.hget(`${kit.prefix}{registry}:info`, 'm@1')) as string)).toMatchObject({ serverId: 'm@1', moduleType: 'm' });
    // The registry keys themselves expire unless some server keeps refreshing them.
    for (const key of [`${kit.prefix}{registry}:servers`, `${kit.prefix}{registry}:info`]) {
      const keyTtl = await raw.pttl(key);
      expect(keyTtl).toBeGreaterThan(3000);
      expect(keyTtl).toBeLessThanOrEqual(5000);
    }

    const first = caller.call({ moduleType: 'm' }, 'f', [], { timeout: 3000 });
    await waitFor(() => server.stats().running === 1, 'the server to be busy');
    const queued = caller.call({ moduleType: 'm' }, 'f', [], { timeout: 3000 });
    const keys = rpcListKeys(kit.prefix, 'm', 'm@1');
    expect(keys).toEqual({ type: `${kit.prefix}rpc:{m}:type`, server: `${kit.prefix}rpc:{m}:server:m@1` });
    await waitFor(() => caller.stats().calls === 2, 'the second call');
    await sleep(50);
    expect(await raw.llen(keys.type)).toBe(1);
    const ttl = await raw.pttl(keys.type);
    expect(ttl).toBeGreaterThan(3000);
    expect(ttl).toBeLessThanOrEqual(3000 + 5000);
    expect(await keysUnderPrefix()).toEqual([`${kit.prefix}rpc:{m}:type`, `${kit.prefix}{registry}:info`, `${kit.prefix}{registry}:servers`]);
    gate.resolve();
    await expect(Promise.all([first, queued])).resolves.toEqual(['done', 'done']);
    await kit.closeAll();
    expect(await keysUnderPrefix()).toEqual([]);
  });

  it('drops a server that stops refreshing (a crash) when its TTL passes, from caches and from Redis', async () => {
    const observer = kit.make({ registryTtl: 1000, registryInterval: 300 });
    await observer.ready();
    const seen = record(observer);
    // A "server" that registers once and never refreshes, as a process killed right after.
    const ghost = new RedisRegistry(raw, kit.prefix, 1000, { joined: () => undefined, left: () => undefined });
    const info = { serverId: 'ghost@1', moduleType: 'ghost' };
    await ghost.register(info);
    await ghost.publishJoin(info);
    await waitFor(() => seen.events.includes('+ghost@1'), 'the join');
    const joinedAt = Date.now();
    await waitFor(() => seen.events.includes('-ghost@1'), 'the TTL expiry', 3000);
    const gone = Date.now() - joinedAt;
    expect(gone).toBeGreaterThan(600);
    expect(gone).toBeLessThan(1000 + 300 + 500);
    await expect(observer.call({ moduleType: 'ghost' }, 'f', [])).rejects.toMatchObject({ code: 'NO_SERVER' });
    // The next re-read (every 300 ms) also removes it from Redis.
    let left = -1;
    for (const until = Date.now() + 1000; left !== 0 && Date.now() < until; await sleep(20)) {
      left = (await raw.zcard(`${kit.prefix}{registry}:servers`)) + (await raw.hlen(`${kit.prefix}{registry}:info`));
    }
    expect(left).toBe(0);
  });

  it('keeps a refreshing server alive past many TTLs', async () => {
    const server = kit.make({ registryTtl: 600, registryInterval: 200 });
    const observer = kit.make({ registryTtl: 600, registryInterval: 200 });
    await server.serve({ serverId: 'a@1', moduleType: 'a' }, () => 'alive');
    await waitForServers(observer, 'a', 1);
    const seen = record(observer);
    await sleep(2000);
    expect(seen.events).toEqual([]);
    await expect(observer.call({ moduleType: 'a' }, 'f', [])).resolves.toBe('alive');
  });

  it('catches up by re-reading the registry: an entry removed without an event goes, and a live server puts itself back', async () => {
    const server = kit.make({ registryTtl: 1000, registryInterval: 200 });
    const observer = kit.make({ registryTtl: 1000, registryInterval: 200 });
    await server.serve({ serverId: 'a@1', moduleType: 'a' }, () => null);
    await waitForServers(observer, 'a', 1);
    const seen = record(observer);
    // Silently remove a stale entry of a server that does not exist (no event).
    const ghost = new RedisRegistry(raw, kit.prefix, 60_000, { joined: () => undefined, left: () => undefined });
    await ghost.register({ serverId: 'b@1', moduleType: 'b' });
    await waitForServers(observer, 'b', 1, 2000);
    await raw.zrem(`${kit.prefix}{registry}:servers`, 'b@1', 'a@1');
    await raw.hdel(`${kit.prefix}{registry}:info`, 'b@1', 'a@1');
    await waitFor(() => seen.events.includes('-b@1'), 'the silent removal to be noticed', 2000);
    expect(observer.servers('b')).toEqual([]);
    // a@1 lives: its next refresh finds its entry gone, writes it again and announces it.
    let score: string | null = null;
    for (const until = Date.now() + 2000; score === null && Date.now() < until; await sleep(20)) {
      score = await raw.zscore(`${kit.prefix}{registry}:servers`, 'a@1');
    }
    expect(score).not.toBeNull();
    expect(await raw.hget(`${kit.prefix}{registry}:info`, 'a@1')).not.toBeNull();
    await waitForServers(observer, 'a', 1, 1000);
    await sleep(500); // two more re-reads: it stays
    expect(observer.servers('a').map((i) => i.serverId)).toEqual(['a@1']);
  });
  it('re-reads the registry when a heartbeat names a server it does not hold (a missed join), not a registryInterval later', async () => {
    const observer = kit.make({ registryTtl: 120_000, registryInterval: 60_000 });
    await observer.ready();
    const seen = record(observer);
    // An entry written without its join event, as when the join went out while this
    // transport's subscriber was resubscribing after a Redis restart.
    const missed = new RedisRegistry(raw, kit.prefix, 60_000, { joined: () => undefined, left: () => undefined });
    await missed.register({ serverId: 'gate@1', moduleType: 'gate' });
    await raw.publish(observer.registryKeys.heartbeat, JSON.stringify(['gate@1']));
    await waitFor(() => seen.events.includes('+gate@1'), 'the heartbeat of an unknown server to re-read the registry');
    expect(observer.servers('gate').map((i) => i.serverId)).toEqual(['gate@1']);
  });
});
