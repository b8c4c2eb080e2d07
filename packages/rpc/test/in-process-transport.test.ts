import {
  DeadlineError,
  InProcessTransport,
  NoServerError,
  RpcError,
  TransportClosedError,
  type CallContext,
  type RpcHandler,
  type RpcValue,
} from '@mqgate/rpc';

let t: InProcessTransport;

beforeEach(() => {
  t = new InProcessTransport();
});

afterEach(async () => {
  jest.useRealTimers();
  await t.close();
});

/** A handler that answers with its own server id. */
function whoAmI(id: string): RpcHandler {
  return () => id;
}

describe('InProcessTransport', () => {
  it('delivers a call with its args and context and resolves with the result', async () => {
    let seen: { args: RpcValue[]; ctx: CallContext } | undefined;
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, (fn, args, ctx) => {
      seen = { args, ctx };
      return { fn, sum: (args[0] as number) + (args[1] as number) };
    });
    const before = Date.now();
    await expect(t.call({ moduleType: 'm' }, 'add', [2, 3], { timeout: 500 })).resolves.toEqual({ fn: 'add', sum: 5 });
    expect(seen?.args).toEqual([2, 3]);
    expect(seen?.ctx.fn).toBe('add');
    expect(seen?.ctx.deadline).toBeGreaterThanOrEqual(before + 500);
    expect(seen?.ctx.deadline).toBeLessThanOrEqual(Date.now() + 500);
  });

  it('runs the handler asynchronously, never inside the caller', async () => {
    let ran = false;
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, () => {
      ran = true;
      return null;
    });
    const p = t.call({ serverId: 'm@1' }, 'f', []);
    expect(ran).toBe(false);
    await expect(p).resolves.toBeNull();
    expect(ran).toBe(true);
  });

  it('turns an undefined result into null', async () => {
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, () => undefined);
    await expect(t.call({ serverId: 'm@1' }, 'f', [])).resolves.toBeNull();
  });

  it('carries a handler error code and message to the caller; plain errors become REMOTE', async () => {
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, (fn) => {
      if (fn === 'coded') throw new RpcError('no such session', 'NO_SESSION');
      return Promise.reject(new Error('plain failure'));
    });
    const coded: unknown = await t.call({ serverId: 'm@1' }, 'coded', []).catch((e: unknown) => e);
    expect(coded).toBeInstanceOf(RpcError);
    expect(coded).toMatchObject({ code: 'NO_SESSION', message: 'no such session' });
    await expect(t.call({ serverId: 'm@1' }, 'plain', [])).rejects.toMatchObject({ code: 'REMOTE', message: 'plain failure' });
  });

  it('rejects at once with NoServerError when nothing serves the address', async () => {
    const nextTurn = new Promise((resolve) => setImmediate(() => resolve('too late')));
    const p = t.call({ moduleType: 'nobody' }, 'f', [], { timeout: 60_000 });
    await expect(Promise.race([p, nextTurn])).rejects.toBeInstanceOf(NoServerError);
    await expect(p).rejects.toMatchObject({ code: 'NO_SERVER', message: 'Service(type:nobody) not found' });
    await expect(t.call({ serverId: 'x@1' }, 'f', [])).rejects.toBeInstanceOf(NoServerError);
  });

  it('rejects with DeadlineError when the handler does not answer in time', async () => {
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, () => new Promise<RpcValue>(() => undefined));
    const started = Date.now();
    const err: unknown = await t.call({ serverId: 'm@1' }, 'hang', [], { timeout: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineError);
    expect(err).toMatchObject({ code: 'DEADLINE', message: 'deadline exceeded: hang got no reply within 50 ms' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  });

  it('one deadline timer serves calls of different timeouts: each fails at its own deadline, in deadline order', async () => {
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, () => new Promise<RpcValue>(() => undefined));
    const started = Date.now();
    const order: string[] = [];
    const at = (name: string, p: Promise<unknown>): Promise<{ e: unknown; ms: number }> =>
      p.then(
        () => ({ e: undefined, ms: -1 }),
        (e: unknown) => {
          order.push(name);
          return { e, ms: Date.now() - started };
        },
      );
    const long = at('long', t.call({ serverId: 'm@1' }, 'long', [], { timeout: 400 }));
    const short = at('short', t.call({ serverId: 'm@1' }, 'short', [], { timeout: 40 })); // an earlier deadline, listed later
    const mid = at('mid', t.call({ serverId: 'm@1' }, 'mid', [], { timeout: 120 }));
    const [l, s1, m] = await Promise.all([long, short, mid]);
    expect(order).toEqual(['short', 'mid', 'long']);
    expect(s1).toMatchObject({ e: { code: 'DEADLINE', message: 'deadline exceeded: short got no reply within 40 ms' } });
    expect(s1.ms).toBeGreaterThanOrEqual(35);
    expect(s1.ms).toBeLessThan(400);
    expect(m.ms).toBeGreaterThanOrEqual(115);
    expect(l).toMatchObject({ e: { message: 'deadline exceeded: long got no reply within 400 ms' } });
    expect(l.ms).toBeGreaterThanOrEqual(395);
  });

  it('holds no timer once its calls have settled (a finished app can exit)', async () => {
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, () => 'ok');
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    await Promise.all(Array.from({ length: 20 }, () => t.call({ serverId: 'm@1' }, 'f', [], { timeout: 60_000 })));
    expect(timers()).toBe(before);
  });

  it('does not start a call whose deadline passed before it reached the server', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const handler = jest.fn(() => 'ran');
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, handler);
    const p = t.call({ serverId: 'm@1' }, 'late', [], { timeout: 50 });
    // The clock jumps past the deadline before the dispatch turn (a blocked event loop).
    jest.setSystemTime(1_000_100);
    await expect(p).rejects.toBeInstanceOf(DeadlineError);
    expect(handler).not.toHaveBeenCalled();
  });

  it('callNR hands the call over, drops the result and errors, and rejects only for a missing server', async () => {
    let received!: (args: RpcValue[]) => void;
    const arrived = new Promise<RpcValue[]>((r) => (received = r));
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, (_fn, args) => {
      received(args);
      throw new Error('ignored');
    });
    await expect(t.callNR({ serverId: 'm@1' }, 'push', ['x', 1])).resolves.toBeUndefined();
    await expect(arrived).resolves.toEqual(['x', 1]);
    await expect(t.callNR({ moduleType: 'nobody' }, 'push', [])).rejects.toBeInstanceOf(NoServerError);
  });

  it('rotates calls to a module type across its servers', async () => {
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, whoAmI('m@1'));
    await t.serve({ serverId: 'm@2', moduleType: 'm' }, whoAmI('m@2'));
    const got: RpcValue[] = [];
    for (let i = 0; i < 4; i++) got.push(await t.call({ moduleType: 'm' }, 'f', []));
    expect(new Set(got)).toEqual(new Set(['m@1', 'm@2']));
    expect(got[0]).not.toBe(got[1]);
    expect(got[0]).toBe(got[2]);
  });

  it('sends the same sticky key to the same server', async () => {
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, whoAmI('m@1'));
    await t.serve({ serverId: 'm@2', moduleType: 'm' }, whoAmI('m@2'));
    for (const key of ['user-1', 'user-2', 'user-3']) {
      const got = new Set<RpcValue>();
      for (let i = 0; i < 5; i++) got.add(await t.call({ moduleType: 'm', key }, 'f', []));
      expect(got.size).toBe(1);
    }
  });

  it('refuses a second server with the same id', async () => {
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, whoAmI('a'));
    await expect(t.serve({ serverId: 'm@1', moduleType: 'other' }, whoAmI('b'))).rejects.toMatchObject({ code: 'DUPLICATE_SERVER' });
    expect(t.servers()).toEqual([{ serverId: 'm@1', moduleType: 'm' }]);
  });

  it('a closed server handle stops taking calls', async () => {
    const h = await t.serve({ serverId: 'm@1', moduleType: 'm' }, whoAmI('m@1'));
    await h.close();
    await expect(t.call({ serverId: 'm@1' }, 'f', [])).rejects.toBeInstanceOf(NoServerError);
    expect(t.servers('m')).toEqual([]);
  });

  it('close() rejects later calls and serves', async () => {
    await t.serve({ serverId: 'm@1', moduleType: 'm' }, whoAmI('m@1'));
    await t.close();
    await expect(t.call({ serverId: 'm@1' }, 'f', [])).rejects.toBeInstanceOf(TransportClosedError);
    await expect(t.callNR({ serverId: 'm@1' }, 'f', [])).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(t.serve({ serverId: 'm@2', moduleType: 'm' }, whoAmI('m@2'))).rejects.toMatchObject({ code: 'CLOSED' });
    expect(t.servers()).toEqual([]);
  });
});

test('a handler returning a thenable whose then throws fails that call and frees its slot (maxConcurrent 1: the next call runs)', async () => {
  const one = new InProcessTransport({ maxConcurrent: 1 });
  try {
    let calls = 0;
    let active = 0;
    let most = 0;
    await one.serve({ serverId: 's@1', moduleType: 's' }, ((fn: string) => {
      calls++;
      if (fn === 'bad')
        return {
          then: () => {
            throw new Error('then exploded');
          },
        } as unknown as Promise<RpcValue>;
      if (fn === 'twice')
        return {
          then: (ok: (v: RpcValue) => void) => {
            ok('first');
            ok('second');
            throw new Error('and then threw');
          },
        } as unknown as Promise<RpcValue>;
      active++;
      most = Math.max(most, active);
      return new Promise<RpcValue>((r) =>
        setImmediate(() => {
          active--;
          r('fine');
        }),
      );
    }) as RpcHandler);
    await expect(one.call({ moduleType: 's' }, 'bad', [], { timeout: 2000 })).rejects.toThrow('then exploded');
    await expect(one.call({ moduleType: 's' }, 'twice', [], { timeout: 2000 })).resolves.toBe('first');
    // Freed once each: with a lost slot this waits for its deadline; with a slot freed twice two would run at once.
    await expect(Promise.all([one.call({ moduleType: 's' }, 'ok', []), one.call({ moduleType: 's' }, 'ok', [])])).resolves.toEqual(['fine', 'fine']);
    expect(calls).toBe(4);
    expect(most).toBe(1);
  } finally {
    await one.close();
  }
});
