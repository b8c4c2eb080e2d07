// Over 400 lines on purpose: describeRpcTransport is one suite, every behaviour a transport must
// have in one file so that a new transport runs it whole (like describeStorageHandler).
import { DeadlineError, NoServerError, RpcError, TransportClosedError } from './errors';
import type { RpcHandler, RpcTransport, RpcValue, ServerInfo } from './transport';

/**
 * `@mqgate/rpc/conformance`: {@link describeRpcTransport}, the one suite every
 * {@link RpcTransport} passes (in-process, Redis, NATS), and {@link describeUserIndex}
 * (user-index-conformance.ts) for {@link UserIndex} implementations. Both use jest's
 * globals (`describe`, `it`, `expect`...) and add no runtime dependency; the main entry of
 * @mqgate/rpc never loads this file.
 */
export { describeUserIndex, type UserIndexFactory, type UserIndexUnderTest } from './user-index-conformance';

/** Options of one transport a fixture makes. */
export interface TransportOptionsUnderTest {
  /**
   * Calls one server runs at once; at this many it takes no new work for its module type
   * (other servers of the type get it) and holds calls addressed to it until a call ends.
   * Default the transport's own default.
   */
  maxConcurrent?: number;
}

/** What an {@link RpcTransportFactory} resolves: a way to make transports on one backend. */
export interface RpcTransportUnderTest {
  /**
   * A transport on this fixture's backend (one Redis prefix, one NATS subject prefix...):
   * what one transport serves, every other transport made here can call. A transport that
   * cannot span instances (InProcessTransport) returns the same instance every time,
   * made with the options of the first call. The suite closes what it made.
   */
  make(options?: TransportOptionsUnderTest): RpcTransport | Promise<RpcTransport>;
  /** Called once after each test, after the suite closed the transports (stop timers, remove keys). */
  cleanup?: () => Promise<void>;
}

/** Makes a fresh fixture; called before each test. */
export type RpcTransportFactory = () => Promise<RpcTransportUnderTest>;

/** Tuning of {@link describeRpcTransport}. */
export interface RpcConformanceOptions {
  /**
   * ms a server may take to appear in (or leave) another transport's `servers()` after
   * `serve` (or its handle's `close`) resolved. Default 5 000.
   */
  membershipMs?: number;
}

interface Ctx {
  /** A new transport, ready (see {@link RpcTransportUnderTest.make}). */
  make(options?: TransportOptionsUnderTest): Promise<RpcTransport>;
  /** Serves `serverId` (type = the part before `@`) and waits until `seenBy` lists it. */
  serve(t: RpcTransport, serverId: string, handler: RpcHandler, seenBy?: RpcTransport[]): Promise<{ close(): Promise<void> }>;
  membershipMs: number;
}

/**
 * Registers a jest `describe` block, `RpcTransport conformance: <name>`, checking the
 * contract the gate and modules rely on. Call it at the top level of a test file:
 *
 * ```ts
 * import { describeRpcTransport } from '@mqgate/rpc/conformance';
 * describeRpcTransport('MyTransport', async () => {
 *   const prefix = uniquePrefix('conf');
 *   return { make: (o) => new MyTransport({ prefix, ...o }) };
 * });
 * ```
 *
 * It checks: call/reply (args, context, every value type, undefined → null), callNR (runs,
 * drops results and errors, NoServerError without a server), error codes and messages,
 * deadlines at both ends (the caller's DeadlineError on time; a call held past its deadline
 * never starts), NoServerError (`Service(type:x) not found`, at once) for a type and a
 * serverId, sticky keys (the same server from two transports, keys spread), `type@id`
 * routing, competing consumers (work spreads; a server at `maxConcurrent` takes no new
 * work of its type), join/leave (`servers()` and the optional events), close semantics
 * (pending and later calls reject with CLOSED; a closed server handle lets running calls
 * finish and takes no more), a 768 KiB binary payload and a 200 KB unicode string, and 1,000
 * concurrent calls with nothing lost or duplicated. Takes a few seconds.
 */
export function describeRpcTransport(name: string, factory: RpcTransportFactory, options: RpcConformanceOptions = {}): void {
  const membershipMs = options.membershipMs ?? 5_000;
  describe(`RpcTransport conformance: ${name}`, () => {
    let fixture: RpcTransportUnderTest | undefined;
    let made: RpcTransport[] = [];
    const ctx: Ctx = {
      membershipMs,
      async make(o) {
        if (!fixture) throw new Error('describeRpcTransport: no fixture (the factory failed)');
        const t = await fixture.make(o);
        if (!made.includes(t)) made.push(t);
        await t.ready?.();
        return t;
      },
      async serve(t, serverId, handler, seenBy = []) {
        const moduleType = serverId.split('@')[0];
        const handle = await t.serve({ serverId, moduleType }, handler);
        for (const o of [t, ...seenBy]) await untilListed(o, moduleType, serverId, true, membershipMs);
        return handle;
      },
    };
    beforeEach(async () => {
      fixture = await factory();
    });
    afterEach(async () => {
      const all = made;
      made = [];
      await Promise.all(all.map((t) => t.close()));
      await fixture?.cleanup?.();
      fixture = undefined;
    });

    callTests(ctx);
    routingTests(ctx);
    lifecycleTests(ctx);
    volumeTests(ctx);
  });
}

/** An app's own error code (deliberately not one of mqgate's ERROR_CODES): it must reach the caller unchanged. */
const APP_CODE = 'ROOM_GONE';

function callTests(ctx: Ctx): void {
  it('call delivers fn, args and deadline and resolves with the result, keeping value types', async () => {
    const server = await ctx.make();
    const caller = await ctx.make();
    const seen: { fn: string; args: RpcValue[]; deadline: number }[] = [];
    await ctx.serve(
      server,
      'echo@1',
      (fn, args, c) => {
        seen.push({ fn, args, deadline: c.deadline });
        return args;
      },
      [caller],
    );
    const args: RpcValue[] = [
      null,
      true,
      false,
      0,
      -1.5,
      2 ** 53 - 1,
      '',
      'héllo ✓',
      new Uint8Array([0, 1, 255]),
      [1, 'two', null],
      { a: { b: [1, 2] }, s: 'x' },
    ];
    const before = Date.now();
    const result = await caller.call({ moduleType: 'echo' }, 'HD_echo', args, { timeout: 4000 });
    expect(seen).toHaveLength(1);
    expect(seen[0].fn).toBe('HD_echo');
    expect(seen[0].deadline).toBeGreaterThanOrEqual(before + 3000);
    expect(seen[0].deadline).toBeLessThanOrEqual(Date.now() + 4000);
    const back = result as RpcValue[];
    expect(back.slice(0, 8)).toEqual(args.slice(0, 8));
    expect(Buffer.from(back[8] as Uint8Array).equals(Buffer.from([0, 1, 255]))).toBe(true);
    expect(back.slice(9)).toEqual(args.slice(9));
  });

  it('an undefined result arrives as null', async () => {
    const t = await ctx.make();
    await ctx.serve(t, 'u@1', () => undefined);
    await expect(t.call({ moduleType: 'u' }, 'f', [])).resolves.toBeNull();
  });

  it('a handler error reaches the caller with its code and message; a plain Error becomes REMOTE', async () => {
    const server = await ctx.make();
    const caller = await ctx.make();
    await ctx.serve(
      server,
      'err@1',
      (fn) => {
        if (fn === 'coded') throw new RpcError('no such room', APP_CODE);
        if (fn === 'async') return Promise.reject(new Error('async boom'));
        throw new Error('plain boom');
      },
      [caller],
    );
    await expect(caller.call({ moduleType: 'err' }, 'coded', [])).rejects.toMatchObject({ code: APP_CODE, message: 'no such room' });
    const plain = await caller.call({ moduleType: 'err' }, 'plain', []).catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(RpcError);
    expect(plain).toMatchObject({ code: 'REMOTE', message: 'plain boom' });
    await expect(caller.call({ moduleType: 'err' }, 'async', [])).rejects.toMatchObject({ code: 'REMOTE', message: 'async boom' });
  });

  it('callNR runs the handler and drops its result and errors; without a server it rejects with NoServerError', async () => {
    const server = await ctx.make();
    const caller = await ctx.make();
    const got: RpcValue[] = [];
    let signal!: () => void;
    const twoRuns = new Promise<void>((resolve) => (signal = resolve));
    await ctx.serve(
      server,
      'nr@1',
      (fn, args) => {
        got.push(args[0]);
        if (got.length === 2) signal();
        if (fn === 'fail') throw new Error('dropped');
        return 'dropped too';
      },
      [caller],
    );
    await expect(caller.callNR({ moduleType: 'nr' }, 'fail', ['a'])).resolves.toBeUndefined();
    await expect(caller.callNR({ serverId: 'nr@1' }, 'ok', ['b'])).resolves.toBeUndefined();
    await within(twoRuns, 5000, 'two fire-and-forget calls to run');
    expect(got.sort()).toEqual(['a', 'b']);
    await expect(caller.callNR({ moduleType: 'nobody' }, 'f', [])).rejects.toBeInstanceOf(NoServerError);
  });

  it('the caller rejects with DeadlineError at its deadline when the handler does not answer', async () => {
    const t = await ctx.make();
    await ctx.serve(t, 'slow@1', () => new Promise<RpcValue>(() => undefined));
    const started = Date.now();
    const err = await t.call({ moduleType: 'slow' }, 'hang', [], { timeout: 300 }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(DeadlineError);
    expect((err as RpcError).code).toBe('DEADLINE');
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(1500);
  });

  it('a server does not start a call whose deadline passed while it waited', async () => {
    const t = await ctx.make({ maxConcurrent: 1 });
    const ran: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    await ctx.serve(t, 'one@1', async (fn) => {
      ran.push(fn);
      if (fn === 'hold') await gate;
      return fn;
    });
    const held = t.call({ serverId: 'one@1' }, 'hold', [], { timeout: 5000 });
    await until(() => ran.length === 1, 5000, 'the first call to start');
    const expired = t.call({ serverId: 'one@1' }, 'expired', [], { timeout: 150 }).catch((e: unknown) => e);
    expect(await expired).toBeInstanceOf(DeadlineError);
    release();
    await expect(held).resolves.toBe('hold');
    await expect(t.call({ serverId: 'one@1' }, 'after', [])).resolves.toBe('after');
    expect(ran).toEqual(['hold', 'after']);
  });

  it('NoServerError (`Service(type:x) not found`, code NO_SERVER) at once for a type or a serverId nobody serves', async () => {
    const t = await ctx.make();
    await ctx.serve(t, 'here@1', () => 'here');
    for (const to of [{ moduleType: 'missing' }, { serverId: 'here@2' }, { moduleType: 'missing', key: 'k' }]) {
      const started = Date.now();
      const err = await t.call(to, 'f', []).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NoServerError);
      expect(err).toMatchObject({ code: 'NO_SERVER', message: `Service(type:${to.moduleType ?? to.serverId}) not found` });
      expect(Date.now() - started).toBeLessThan(1000);
    }
  });
}

function routingTests(ctx: Ctx): void {
  it('a `type@id` address reaches exactly that server', async () => {
    const a = await ctx.make();
    const b = await ctx.make();
    const caller = await ctx.make();
    await ctx.serve(a, 'w@1', () => 'w@1', [caller]);
    await ctx.serve(b, 'w@2', () => 'w@2', [caller]);
    const results = await Promise.all(Array.from({ length: 20 }, () => caller.call({ serverId: 'w@2' }, 'f', [])));
    expect(results).toEqual(Array(20).fill('w@2'));
  });

  it('a sticky key goes to the same server from every transport, and keys spread over the servers', async () => {
    const servers = [await ctx.make(), await ctx.make(), await ctx.make()];
    const callers = [await ctx.make(), await ctx.make()];
    for (const [i, t] of servers.entries()) await ctx.serve(t, `room@${i}`, () => `room@${i}`, callers);
    const keys = Array.from({ length: 30 }, (_, i) => `user-${i}`);
    const first = await Promise.all(keys.map((key) => callers[0].call({ moduleType: 'room', key }, 'f', [])));
    const again = await Promise.all(keys.map((key) => callers[0].call({ moduleType: 'room', key }, 'f', [])));
    const other = await Promise.all(keys.map((key) => callers[1].call({ moduleType: 'room', key }, 'f', [])));
    expect(again).toEqual(first);
    expect(other).toEqual(first);
    expect(new Set(first).size).toBeGreaterThan(1);
  });

  it('competing consumers: calls to a type spread over its servers, each runs once', async () => {
    const t = await ctx.make({ maxConcurrent: 4 });
    const count: Record<string, number> = { 'c@a': 0, 'c@b': 0 };
    for (const id of Object.keys(count)) {
      await ctx.serve(t, id, async () => {
        count[id]++;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return id;
      });
    }
    const results = await Promise.all(Array.from({ length: 40 }, () => t.call({ moduleType: 'c' }, 'f', [])));
    expect(count['c@a'] + count['c@b']).toBe(40);
    expect(results.filter((r) => r === 'c@a')).toHaveLength(count['c@a']);
    expect(count['c@a']).toBeGreaterThan(0);
    expect(count['c@b']).toBeGreaterThan(0);
  });

  it('a server at maxConcurrent takes no new work of its type: a free server of the type does it all', async () => {
    const t = await ctx.make({ maxConcurrent: 1 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let busyCalls = 0;
    await ctx.serve(t, 'b@busy', async () => {
      busyCalls++;
      await gate;
      return 'busy';
    });
    const first = t.call({ moduleType: 'b' }, 'f', [], { timeout: 8000 });
    await until(() => busyCalls === 1, 5000, 'the busy server to take one call');
    await ctx.serve(t, 'b@free', () => 'free');
    const results: RpcValue[] = [];
    for (let round = 0; round < 3; round++) {
      results.push(...(await Promise.all(Array.from({ length: 10 }, () => t.call({ moduleType: 'b' }, 'f', [], { timeout: 4000 })))));
    }
    expect(results).toEqual(Array(30).fill('free'));
    expect(busyCalls).toBe(1);
    release();
    await expect(first).resolves.toBe('busy');
  });
}

function lifecycleTests(ctx: Ctx): void {
  it('servers() and the membership events follow serve and a handle close, on every transport', async () => {
    const server = await ctx.make();
    const observer = await ctx.make();
    const events: string[] = [];
    const onJoin = (i: ServerInfo) => events.push(`+${i.serverId}`);
    const onLeave = (i: ServerInfo) => events.push(`-${i.serverId}`);
    observer.on?.('serverJoined', onJoin);
    observer.on?.('serverLeft', onLeave);
    const handle = await ctx.serve(server, 'life@1', () => 'alive', [observer]);
    expect(observer.servers('life')).toEqual([expect.objectContaining({ serverId: 'life@1', moduleType: 'life' })]);
    expect(observer.servers().map((s) => s.serverId)).toContain('life@1');
    await expect(observer.call({ serverId: 'life@1' }, 'f', [])).resolves.toBe('alive');
    await handle.close();
    await untilListed(observer, 'life', 'life@1', false, ctx.membershipMs);
    await untilListed(server, 'life', 'life@1', false, ctx.membershipMs);
    await expect(observer.call({ moduleType: 'life' }, 'f', [])).rejects.toBeInstanceOf(NoServerError);
    await expect(observer.call({ serverId: 'life@1' }, 'f', [])).rejects.toBeInstanceOf(NoServerError);
    if (typeof observer.on === 'function') {
      await until(() => events.includes('-life@1'), ctx.membershipMs, 'the serverLeft event');
      expect(events.filter((e) => e.endsWith('life@1'))).toEqual(['+life@1', '-life@1']);
      observer.off?.('serverJoined', onJoin);
      observer.off?.('serverLeft', onLeave);
    }
  });

  it('refuses a second server with the same id on one transport (DUPLICATE_SERVER)', async () => {
    const t = await ctx.make();
    await ctx.serve(t, 'dup@1', () => 1);
    await expect(t.serve({ serverId: 'dup@1', moduleType: 'dup' }, () => 2)).rejects.toMatchObject({ code: 'DUPLICATE_SERVER' });
    await expect(t.call({ serverId: 'dup@1' }, 'f', [])).resolves.toBe(1);
  });

  it('closing a server handle lets running calls finish and takes no more calls', async () => {
    const server = await ctx.make();
    const caller = await ctx.make();
    let started = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const handle = await ctx.serve(
      server,
      'drain@1',
      async () => {
        started++;
        await gate;
        return 'finished';
      },
      [caller],
    );
    const running = caller.call({ serverId: 'drain@1' }, 'f', [], { timeout: 5000 });
    await until(() => started === 1, 5000, 'the call to start');
    const closing = handle.close();
    release();
    await closing;
    await expect(running).resolves.toBe('finished');
    await untilListed(caller, 'drain', 'drain@1', false, ctx.membershipMs);
    await expect(caller.call({ serverId: 'drain@1' }, 'f', [])).rejects.toBeInstanceOf(NoServerError);
    expect(started).toBe(1);
  });

  it('close() rejects pending calls and later call, callNR and serve with CLOSED; it is idempotent', async () => {
    const server = await ctx.make();
    const caller = await ctx.make();
    let started = false;
    await ctx.serve(
      server,
      'hang@1',
      () => {
        started = true;
        return new Promise<RpcValue>(() => undefined);
      },
      [caller],
    );
    const pending = caller.call({ moduleType: 'hang' }, 'f', [], { timeout: 10_000 }).catch((e: unknown) => e);
    await until(() => started, 5000, 'the call to reach the handler');
    const t0 = Date.now();
    await caller.close();
    expect(await pending).toBeInstanceOf(TransportClosedError);
    expect(Date.now() - t0).toBeLessThan(2000);
    await expect(caller.call({ moduleType: 'hang' }, 'f', [])).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(caller.callNR({ moduleType: 'hang' }, 'f', [])).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(caller.serve({ serverId: 'x@1', moduleType: 'x' }, () => null)).rejects.toBeInstanceOf(TransportClosedError);
    await expect(caller.close()).resolves.toBeUndefined();
  });
}

function volumeTests(ctx: Ctx): void {
  it('a 768 KiB binary payload and a 200 KB unicode string cross unchanged, both ways', async () => {
    // Each message stays under 1 MiB, NATS's default max_payload.
    const server = await ctx.make();
    const caller = await ctx.make();
    await ctx.serve(server, 'big@1', (_fn, args) => (typeof args[0] === 'string' ? `${args[0]}!` : args[0]), [caller]);
    const bytes = new Uint8Array(768 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
    const back = await caller.call({ moduleType: 'big' }, 'f', [bytes], { timeout: 10_000 });
    expect(back).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(back as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
    const text = 'ü€😀\u0000'.repeat(20_000);
    await expect(caller.call({ moduleType: 'big' }, 'f', [text], { timeout: 10_000 })).resolves.toBe(`${text}!`);
  });

  it('1,000 concurrent calls: every one answered once, with its own result', async () => {
    const server = await ctx.make();
    const caller = await ctx.make();
    const seen = new Map<number, number>();
    await ctx.serve(
      server,
      'many@1',
      async (_fn, args) => {
        const n = args[0] as number;
        seen.set(n, (seen.get(n) ?? 0) + 1);
        await Promise.resolve();
        return n * 2;
      },
      [caller],
    );
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => caller.call({ moduleType: 'many' }, 'f', [i], { timeout: 15_000 })));
    expect(results).toEqual(Array.from({ length: 1000 }, (_, i) => i * 2));
    expect(seen.size).toBe(1000);
    expect([...seen.values()].every((c) => c === 1)).toBe(true);
  });
}

/** Waits until `t.servers(type)` does (listed) or does not list `serverId`, using membership events when `t` has them. */
async function untilListed(t: RpcTransport, moduleType: string, serverId: string, listed: boolean, ms: number): Promise<void> {
  const is = () => t.servers(moduleType).some((s) => s.serverId === serverId) === listed;
  if (is()) return;
  const what = `${serverId} to ${listed ? 'appear in' : 'leave'} servers(${moduleType})`;
  if (typeof t.on !== 'function') return until(is, ms, what);
  const event = listed ? 'serverJoined' : 'serverLeft';
  let listener!: () => void;
  const changed = new Promise<void>((resolve) => {
    listener = () => {
      if (is()) resolve();
    };
    t.on?.(event, listener);
  });
  try {
    if (!is()) await within(changed, ms, what);
  } finally {
    t.off?.(event, listener);
  }
}

/** Polls `cond` (every 5 ms) until true; rejects after `ms` naming `what`. For state no event announces. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
