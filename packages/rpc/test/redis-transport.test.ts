import {
  DeadlineError,
  isSessionData,
  makeSessionData,
  NoServerError,
  RpcError,
  TransportClosedError,
  type CallContext,
  type RpcValue,
} from '@mqgate/rpc';
import { RedisTransport, RedisUnavailableError } from '@mqgate/rpc/redis';
import { Redis } from 'ioredis';
import { startTcpProxy } from '@mqgate/test-support';
import { deferred, RedisKit, sleep, waitFor, waitForServers } from './fixtures/redis-test-kit';

const kit = new RedisKit();

beforeAll(() => kit.start());
afterAll(() => kit.stop());
beforeEach(() => kit.fresh('rpc'));
afterEach(() => kit.closeAll());

/** A caller and a server transport, the server serving `m@1` with `handler`. */
async function pair(handler: Parameters<RedisTransport['serve']>[1], serverOptions = {}) {
  const server = kit.make(serverOptions);
  const caller = kit.make();
  const handle = await server.serve({ serverId: 'm@1', moduleType: 'm' }, handler);
  await waitForServers(caller, 'm', 1);
  return { server, caller, handle };
}

describe('RedisTransport calls', () => {
  it('delivers args and context and resolves with the result, keeping every value type', async () => {
    let seen: { args: RpcValue[]; ctx: CallContext } | undefined;
    const { caller } = await pair((fn, args, ctx) => {
      seen = { args, ctx };
      return fn === 'echo' ? args : (args[Number(fn)] as RpcValue);
    });
    const session = makeSessionData({ userId: 'u1', sessionId: 's1', serverId: 'gate@1', settings: { room: 'r1' }, topic: 'm/HD_x/1' });
    const args: RpcValue[] = [
      null,
      true,
      false,
      0,
      -2.5,
      'héllo',
      Buffer.from('bytes'),
      Uint8Array.from([7, 8]),
      session,
      { a: { b: [1, 'x'] } },
      [1, 2, 3],
    ];
    const before = Date.now();
    const echoed = (await caller.call({ moduleType: 'm' }, 'echo', args, { timeout: 2000 })) as RpcValue[];

    expect(seen?.ctx.fn).toBe('echo');
    expect(seen?.ctx.deadline).toBeGreaterThanOrEqual(before + 2000);
    expect(seen?.ctx.deadline).toBeLessThanOrEqual(Date.now() + 2000);
    // On the server.
    const got = seen?.args as RpcValue[];
    expect(got.slice(0, 6)).toEqual([null, true, false, 0, -2.5, 'héllo']);
    expect(Buffer.isBuffer(got[6]) && got[6].toString()).toBe('bytes');
    expect(Buffer.isBuffer(got[7]) && [...(got[7] as Buffer)]).toEqual([7, 8]);
    expect(isSessionData(got[8])).toBe(true);
    expect(got[8]).toEqual(session);
    expect(got.slice(9)).toEqual([{ a: { b: [1, 'x'] } }, [1, 2, 3]]);
    // Back at the caller (the echoed array holds bytes and a session, so it travels as a typed list).
    expect(echoed.slice(0, 6)).toEqual([null, true, false, 0, -2.5, 'héllo']);
    expect(Buffer.isBuffer(echoed[6])).toBe(true);
    expect(isSessionData(echoed[8])).toBe(true);
    expect(echoed[8]).toEqual(session);
    // Each value as a result on its own.
    for (let i = 0; i < args.length; i++) {
      const result = await caller.call({ moduleType: 'm' }, String(i), args);
      if (args[i] instanceof Uint8Array) {
        expect(Buffer.isBuffer(result)).toBe(true);
        expect([...(result as Buffer)]).toEqual([...(args[i] as Uint8Array)]);
      } else {
        expect(result).toEqual(args[i]);
      }
    }
    const back = await caller.call({ moduleType: 'm' }, '8', args);
    expect(isSessionData(back)).toBe(true);
  });

  it('turns an undefined result into null', async () => {
    const { caller } = await pair(() => undefined);
    await expect(caller.call({ moduleType: 'm' }, 'f', [])).resolves.toBeNull();
  });

  it('carries a handler error code and message to the caller; plain errors become REMOTE', async () => {
    const { caller, server } = await pair((fn) => {
      if (fn === 'coded') throw new RpcError('no such session', 'NO_SESSION');
      return Promise.reject(new Error('plain failure'));
    });
    const coded: unknown = await caller.call({ moduleType: 'm' }, 'coded', []).catch((e: unknown) => e);
    expect(coded).toBeInstanceOf(RpcError);
    expect(coded).toMatchObject({ code: 'NO_SESSION', message: 'no such session' });
    await expect(caller.call({ serverId: 'm@1' }, 'plain', [])).rejects.toMatchObject({ code: 'REMOTE', message: 'plain failure' });
    expect(server.stats().handlerErrors).toBe(2);
  });

  it('rejects at once with NoServerError when nothing serves the type or server id', async () => {
    const caller = kit.make();
    await caller.ready();
    const nextTurn = new Promise((resolve) => setImmediate(() => resolve('too late')));
    const p = caller.call({ moduleType: 'nobody' }, 'f', [], { timeout: 60_000 });
    await expect(Promise.race([p, nextTurn])).rejects.toBeInstanceOf(NoServerError);
    await expect(p).rejects.toMatchObject({ code: 'NO_SERVER', message: 'Service(type:nobody) not found' });
    await expect(caller.call({ serverId: 'x@1' }, 'f', [])).rejects.toBeInstanceOf(NoServerError);
    await expect(caller.call({}, 'f', [])).rejects.toBeInstanceOf(NoServerError);
    await expect(caller.callNR({ moduleType: 'nobody' }, 'f', [])).rejects.toBeInstanceOf(NoServerError);
    expect(caller.stats().pending).toBe(0);
  });

  it('rejects an argument that cannot be encoded with code ENCODE, without sending it', async () => {
    let calls = 0;
    const { caller } = await pair(() => ++calls);
    await expect(caller.call({ moduleType: 'm' }, 'f', [10n as unknown as RpcValue])).rejects.toMatchObject({ code: 'ENCODE' });
    await expect(caller.call({ moduleType: 'm' }, 'f', [])).resolves.toBe(1);
  });

  it('rejects with DeadlineError at the deadline when the handler does not answer', async () => {
    const { caller } = await pair(() => new Promise<RpcValue>(() => undefined));
    const started = Date.now();
    const err: unknown = await caller.call({ moduleType: 'm' }, 'slow', [], { timeout: 300 }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(DeadlineError);
    expect((err as DeadlineError).message).toMatch(/deadline exceeded: slow got no reply within 300 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(295);
    expect(elapsed).toBeLessThan(1000);
    expect(caller.stats()).toMatchObject({ deadlines: 1, pending: 0 });
  });

  it('drops and counts a reply that arrives after the deadline', async () => {
    const done = deferred();
    const { caller } = await pair(async () => {
      await sleep(300);
      done.resolve();
      return 'late';
    });
    await expect(caller.call({ moduleType: 'm' }, 'f', [], { timeout: 100 })).rejects.toBeInstanceOf(DeadlineError);
    await done.promise;
    await waitFor(() => caller.stats().lateReplies === 1, 'the late reply');
    expect(caller.stats().replies).toBe(0);
  });

  it('drops unrun a request whose deadline passed before a server could start it', async () => {
    const gate = deferred();
    const invoked: string[] = [];
    const { caller, server } = await pair(
      async (fn) => {
        invoked.push(fn);
        if (fn === 'block') await gate.promise;
        return fn;
      },
      { maxConcurrent: 1 },
    );
    const blocked = caller.call({ moduleType: 'm' }, 'block', [], { timeout: 5000 });
    await waitFor(() => invoked.length === 1, 'the blocking call to start');
    // The only server is at maxConcurrent: this one waits on the type's list past its deadline.
    await expect(caller.call({ moduleType: 'm' }, 'victim', [], { timeout: 200 })).rejects.toBeInstanceOf(DeadlineError);
    gate.resolve();
    await expect(blocked).resolves.toBe('block');
    await expect(caller.call({ moduleType: 'm' }, 'after', [])).resolves.toBe('after');
    expect(invoked).toEqual(['block', 'after']);
    expect(server.stats()).toMatchObject({ expiredDropped: 1, served: 2 });
  });

  it('fire-and-forget: callNR resolves once handed over and the handler runs', async () => {
    const got: RpcValue[][] = [];
    const { caller } = await pair((_fn, args) => {
      got.push(args);
      throw new Error('errors of a callNR are dropped');
    });
    await expect(caller.callNR({ moduleType: 'm' }, 'notify', ['a', 1])).resolves.toBeUndefined();
    await expect(caller.callNR({ serverId: 'm@1' }, 'notify', ['b', 2])).resolves.toBeUndefined();
    await waitFor(() => got.length === 2, 'both notifications');
    expect(got).toEqual(
      expect.arrayContaining([
        ['a', 1],
        ['b', 2],
      ]),
    );
    expect(caller.stats()).toMatchObject({ callsNR: 2, pending: 0, lateReplies: 0 });
  });

  it('the calls of one turn go in one push and their replies in one command, each still one list element and one message, in order', async () => {
    const ran: number[] = [];
    const { caller } = await pair((_fn, args) => {
      ran.push(args[0] as number);
      return args[0];
    });
    const stats = new Redis(kit.redis.url);
    try {
      const calls = async (): Promise<Record<string, number>> => {
        const info = await stats.info('commandstats');
        const out: Record<string, number> = {};
        for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]] = Number(m[2]);
        return out;
      };
      const before = await calls();
      const n = 50;
      const results = await Promise.all(Array.from({ length: n }, (_, i) => caller.call({ moduleType: 'm' }, 'f', [i])));
      const after = await calls();
      expect(results).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(ran).toEqual(Array.from({ length: n }, (_, i) => i));
      // One RPUSH of 50 elements (was 50 RPUSHes); one EVALSHA for the pushes and one for the
      // replies, plus the registry's own scripts (was 50 EVALSHA and 50 PUBLISH).
      expect((after.rpush ?? 0) - (before.rpush ?? 0)).toBe(1);
      expect((after.evalsha ?? 0) - (before.evalsha ?? 0)).toBeLessThanOrEqual(10);
      expect(caller.stats()).toMatchObject({ calls: n, replies: n, pending: 0, lateReplies: 0 });
    } finally {
      stats.disconnect();
    }
  });
});

describe('RedisTransport addressing', () => {
  it('shares calls to a type between its servers (competing consumers)', async () => {
    // maxConcurrent 4: a server takes at most 4 calls at a time, so one server cannot take all
    // 40 in a burst however the two blocking reads happen to be scheduled.
    const a = kit.make({ maxConcurrent: 4 });
    const b = kit.make({ maxConcurrent: 4 });
    const caller = kit.make();
    const count = { a: 0, b: 0 };
    await a.serve({ serverId: 'w@a', moduleType: 'w' }, async () => {
      count.a++;
      await sleep(20);
      return 'a';
    });
    await b.serve({ serverId: 'w@b', moduleType: 'w' }, async () => {
      count.b++;
      await sleep(20);
      return 'b';
    });
    await waitForServers(caller, 'w', 2);
    const results = await Promise.all(Array.from({ length: 40 }, () => caller.call({ moduleType: 'w' }, 'f', [])));
    expect(results.filter((r) => r === 'a').length).toBe(count.a);
    expect(count.a + count.b).toBe(40);
    expect(count.a).toBeGreaterThan(0);
    expect(count.b).toBeGreaterThan(0);
  });

  it('a server at maxConcurrent takes no more work; the other server of the type does it all', async () => {
    const busy = kit.make({ maxConcurrent: 1 });
    const free = kit.make();
    const caller = kit.make();
    const gate = deferred();
    let busyCalls = 0;
    await busy.serve({ serverId: 'w@busy', moduleType: 'w' }, async () => {
      busyCalls++;
      await gate.promise;
      return 'busy';
    });
    await waitForServers(caller, 'w', 1);
    const first = caller.call({ moduleType: 'w' }, 'f', []);
    await waitFor(() => busyCalls === 1, 'the busy server to take one call');
    await free.serve({ serverId: 'w@free', moduleType: 'w' }, () => 'free');
    await waitForServers(caller, 'w', 2);
    const results = await Promise.all(Array.from({ length: 30 }, () => caller.call({ moduleType: 'w' }, 'f', [], { timeout: 3000 })));
    expect(results).toEqual(Array(30).fill('free'));
    expect(busyCalls).toBe(1);
    expect(busy.stats().running).toBe(1);
    gate.resolve();
    await expect(first).resolves.toBe('busy');
  });

  it('a serverId address reaches exactly that server', async () => {
    const a = kit.make();
    const b = kit.make();
    const caller = kit.make();
    await a.serve({ serverId: 'w@1', moduleType: 'w' }, () => 'w@1');
    await b.serve({ serverId: 'w@2', moduleType: 'w' }, () => 'w@2');
    await waitForServers(caller, 'w', 2);
    const results = await Promise.all(Array.from({ length: 20 }, () => caller.call({ serverId: 'w@2' }, 'f', [])));
    expect(new Set(results)).toEqual(new Set(['w@2']));
    expect(a.stats().served).toBe(0);
    expect(b.stats().served).toBe(20);
  });
  // Sticky keys (the same server from every caller, keys spread): describeRpcTransport, conformance-redis.test.ts.
});

describe('RedisTransport lifecycle', () => {
  it('close() rejects pending calls with TransportClosedError and later calls and serves too', async () => {
    const { caller } = await pair(() => new Promise<RpcValue>(() => undefined));
    const pending = caller.call({ moduleType: 'm' }, 'hang', [], { timeout: 10_000 }).catch((e: unknown) => e);
    await sleep(50);
    const started = Date.now();
    await caller.close();
    expect(await pending).toBeInstanceOf(TransportClosedError);
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(caller.call({ moduleType: 'm' }, 'f', [])).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(caller.serve({ serverId: 'x@1', moduleType: 'x' }, () => null)).rejects.toBeInstanceOf(TransportClosedError);
    await expect(caller.ready()).resolves.toBeUndefined();
  });

  it('closing a server handle deregisters it, answers requests queued for it with CLOSED, and lets running calls finish', async () => {
    const gate = deferred();
    const { caller, handle } = await pair(
      async () => {
        await gate.promise;
        return 'finished';
      },
      { maxConcurrent: 1 },
    );
    const running = caller.call({ serverId: 'm@1' }, 'f', [], { timeout: 5000 });
    await sleep(50);
    const queued = caller.call({ serverId: 'm@1' }, 'f', [], { timeout: 5000 });
    await sleep(50);
    const closing = handle.close();
    await expect(queued).rejects.toMatchObject({ code: 'CLOSED', message: 'server m@1 is closed' });
    gate.resolve();
    await closing;
    await expect(running).resolves.toBe('finished');
    await waitForServers(caller, 'm', 0);
    await expect(caller.call({ moduleType: 'm' }, 'f', [])).rejects.toBeInstanceOf(NoServerError);
  });

  it('refuses a second server with the same id on one transport', async () => {
    const t = kit.make();
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, () => null);
    await expect(t.serve({ serverId: 'm@1', moduleType: 'm' }, () => null)).rejects.toMatchObject({ code: 'DUPLICATE_SERVER' });
    await expect(t.serve({ serverId: 'm@2', moduleType: 'a{b' }, () => null)).rejects.toThrow(TypeError);
  });

  it('validates its options before connecting', () => {
    expect(() => new RedisTransport({ url: kit.redis.url, redis: {} as Redis })).toThrow(TypeError);
    expect(() => new RedisTransport({ registryTtl: 1000, registryInterval: 1000 })).toThrow(/registryInterval \(1000 ms\) must be below registryTtl/);
    expect(() => new RedisTransport({ defaultTimeout: 0 })).toThrow(RangeError);
    expect(() => new RedisTransport({ maxConcurrent: 1.5 })).toThrow(RangeError);
    expect(() => new RedisTransport({ registryTtl: -1 })).toThrow(RangeError);
  });

  it('uses a given ioredis client without closing it', async () => {
    const client = new Redis(kit.redis.url, { enableAutoPipelining: true });
    try {
      const t = kit.make({ url: undefined, redis: client });
      await t.serve({ serverId: 'm@1', moduleType: 'm' }, (_fn, args) => args[0]);
      await waitForServers(t, 'm', 1);
      await expect(t.call({ moduleType: 'm' }, 'f', ['given'])).resolves.toBe('given');
      await t.close();
      expect(client.status).toBe('ready');
      expect(await client.zcard(`${kit.prefix}{registry}:servers`)).toBe(0);
    } finally {
      await client.quit();
    }
  });
});

describe('RedisTransport during a Redis outage', () => {
  it('started while Redis is down: calls reject by their deadline, serve waits, close() ends it all', async () => {
    const proxy = await startTcpProxy(kit.redis.url);
    await proxy.stop(); // nothing listens on its port now
    const t = kit.make({ url: proxy.url });
    const ready = t.ready().catch((e: unknown) => e);
    const served = t.serve({ serverId: 'm@1', moduleType: 'm' }, () => null).catch((e: unknown) => e);
    const started = Date.now();
    const err: unknown = await t.call({ moduleType: 'm' }, 'f', [], { timeout: 300 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as Error).message).toMatch(
      /^Redis unavailable: call f not sent within 300 ms \(the registry was never read\) \(command connection \w+; last error: connect ECONNREFUSED/,
    );
    expect(t.servers()).toEqual([]);
    const closing = Date.now();
    await t.close();
    expect(Date.now() - closing).toBeLessThan(1500);
    expect(await ready).toBeInstanceOf(TransportClosedError);
    expect(await served).toBeInstanceOf(TransportClosedError);
  });

  it('rejects calls with a clear UNAVAILABLE error by their deadline, never crashes, and recovers', async () => {
    const proxy = await startTcpProxy(kit.redis.url);
    try {
      const server = kit.make({ url: proxy.url });
      const caller = kit.make({ url: proxy.url });
      await server.serve({ serverId: 'm@1', moduleType: 'm' }, () => 'ok');
      await waitForServers(caller, 'm', 1);
      await expect(caller.call({ moduleType: 'm' }, 'f', [])).resolves.toBe('ok');

      await proxy.stop();
      // A call in flight as the connection drops fails at once; later ones wait for the
      // connection until their deadline.
      for (let i = 0; i < 2; i++) {
        const started = Date.now();
        const err: unknown = await caller.call({ moduleType: 'm' }, 'f', [], { timeout: 400 }).catch((e: unknown) => e);
        expect(Date.now() - started).toBeLessThan(1000);
        expect(err).toBeInstanceOf(RedisUnavailableError);
        expect((err as RpcError).code).toBe('UNAVAILABLE');
        expect((err as Error).message).toMatch(
          /^Redis unavailable: call f (not sent within 400 ms|failed to send: the connection to Redis dropped before it answered)/,
        );
      }
      const err: unknown = await caller.call({ moduleType: 'm' }, 'f', [], { timeout: 300 }).catch((e: unknown) => e);
      expect((err as Error).message).toMatch(
        /^Redis unavailable: call f not sent within 300 ms \(command connection (reconnecting|connecting); last error: connect ECONNREFUSED/,
      );
      // No server known and the registry unreadable: the transport is unreachable, not the module unknown.
      const nobody: unknown = await caller.callNR({ moduleType: 'nobody' }, 'f', []).catch((e: unknown) => e);
      expect(nobody).toBeInstanceOf(RedisUnavailableError);
      expect((nobody as Error).message).toMatch(/^Redis unavailable: call f: no live server of nobody is known and the registry cannot be read/);

      await proxy.restart();
      await waitFor(() => caller.servers('m').length === 1, 'the cache after the outage');
      let result: unknown;
      const until = Date.now() + 10_000;
      while (result !== 'ok' && Date.now() < until) {
        result = await caller.call({ moduleType: 'm' }, 'f', [], { timeout: 500 }).catch((e: unknown) => e);
      }
      expect(result).toBe('ok');
    } finally {
      await kit.closeAll();
      await proxy.stop();
    }
  });

  it('down longer than the registry TTL: calls reject at once with UNAVAILABLE, not "Service(type:m) not found"', async () => {
    const proxy = await startTcpProxy(kit.redis.url);
    try {
      const server = kit.make({ url: proxy.url, registryTtl: 600, registryInterval: 200 });
      const caller = kit.make({ url: proxy.url, registryTtl: 600, registryInterval: 200 });
      await server.serve({ serverId: 'm@1', moduleType: 'm' }, () => 'ok');
      await waitForServers(caller, 'm', 1);
      await proxy.stop();
      await waitForServers(caller, 'm', 0, 3000); // the cache entry expired unrefreshed
      const started = Date.now();
      const err: unknown = await caller.call({ moduleType: 'm' }, 'f', [], { timeout: 5000 }).catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(100);
      expect(err).toBeInstanceOf(RedisUnavailableError);
      expect((err as RpcError).code).toBe('UNAVAILABLE');
      expect((err as Error).message).toMatch(
        /^Redis unavailable: call f: no live server of m is known and the registry cannot be read \(command connection \w+; last error: /,
      );
      await proxy.restart();
      await waitForServers(caller, 'm', 1, 10_000);
      await expect(caller.call({ moduleType: 'm' }, 'f', [], { timeout: 2000 })).resolves.toBe('ok');
    } finally {
      await kit.closeAll();
      await proxy.stop();
    }
  });
});
