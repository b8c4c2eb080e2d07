import {
  InProcessTransport,
  MemoryUserIndex,
  REPLY_PROPERTIES_TAG,
  UserDirectory,
  makeSessionData,
  silentLogger,
  type AppContext,
  type Logger,
  type RpcValue,
} from '@mqgate/rpc';
import { ModuleHost, Session, defineModule, replyWithProperties, type Handler, type HandlerContext, type ModuleContext } from '@mqgate/client';
import { FakeGate } from './helpers/fake-gate';

let transport: InProcessTransport;
let gate: FakeGate;
let ctx: AppContext;

beforeEach(async () => {
  transport = new InProcessTransport();
  gate = await FakeGate.start(transport);
  ctx = { transport, logger: silentLogger, userIndex: new MemoryUserIndex() };
});

afterEach(async () => {
  await transport.close();
});

function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Calls a handler the way the gate forwards a request: [session, payload]. */
function request(fn: string, payload: RpcValue, to = { moduleType: 'chat' }): Promise<RpcValue> {
  return transport.call(to, fn, [gate.connect({ topic: `chat/${fn}` }), payload]);
}

describe('defineModule', () => {
  it('returns a frozen definition with a copy of the handlers', () => {
    const handlers: Record<`HD_${string}`, Handler> = { HD_a: () => 1 };
    const def = defineModule({ type: 'chat', handlers });
    handlers.HD_b = () => 2;
    expect(Object.keys(def.handlers)).toEqual(['HD_a']);
    expect(Object.isFrozen(def)).toBe(true);
    expect(Object.isFrozen(def.handlers)).toBe(true);
  });

  it.each([
    ['a name without HD_', { type: 'chat', handlers: { login: () => 1 } }, /handler name "login" must start with "HD_"/],
    ['a bare HD_', { type: 'chat', handlers: { HD_: () => 1 } }, /handler name "HD_"/],
    ['a non-function handler', { type: 'chat', handlers: { HD_x: 'nope' } }, /handler HD_x must be a function, got a string/],
    ['an empty type', { type: '', handlers: {} }, /type must be a non-empty string/],
    ['a type with /', { type: 'a/b', handlers: {} }, /without "\/" or "@", got "a\/b"/],
    ['a type with @', { type: 'a@b', handlers: {} }, /without "\/" or "@", got "a@b"/],
    ['a non-function hook', { type: 'chat', handlers: {}, onStop: 1 }, /onStop must be a function/],
  ])('rejects %s', (_what, spec, message) => {
    expect(() => defineModule(spec as unknown as Parameters<typeof defineModule>[0])).toThrow(TypeError);
    expect(() => defineModule(spec as unknown as Parameters<typeof defineModule>[0])).toThrow(message);
  });
});

describe('ModuleHost', () => {
  it('dispatches to the handler with a Session, the payload and the call context', async () => {
    let seen: { userId: string; topic: string; fn: string; deadline: number; serverId: string } | undefined;
    const def = defineModule({
      type: 'chat',
      handlers: {
        HD_say: async (session, payload, c) => {
          expect(session).toBeInstanceOf(Session);
          seen = { userId: session.userId, topic: session.topic, fn: c.fn, deadline: c.deadline, serverId: c.serverId };
          await session.bind('u1');
          return { echo: (payload as Record<string, unknown>).text, user: session.userId };
        },
      },
    });
    const host = new ModuleHost(def, { serverId: 'chat@1' });
    await host.start(ctx);
    const before = Date.now();
    await expect(request('HD_say', { text: 'hi' })).resolves.toEqual({ echo: 'hi', user: 'u1' });
    expect(seen).toMatchObject({ userId: '', topic: 'chat/HD_say', fn: 'HD_say', serverId: 'chat@1' });
    expect(seen?.deadline).toBeGreaterThanOrEqual(before + transport.defaultTimeout);
    expect(gate.callsTo('Bind')).toHaveLength(1);
    await host.stop();
  });

  it('serves under type@16-hex by default and hands hooks { transport, logger, serverId }', async () => {
    const hooks: Array<[string, ModuleContext]> = [];
    const def = defineModule({
      type: 'chat',
      handlers: { HD_x: () => undefined },
      onStart: (c) => void hooks.push(['start', c]),
      onStop: (c) => void hooks.push(['stop', c]),
    });
    const host = new ModuleHost(def);
    await host.start(ctx);
    expect(host.serverId).toMatch(/^chat@[0-9a-f]{16}$/);
    expect(transport.servers('chat')).toEqual([{ serverId: host.serverId, moduleType: 'chat' }]);
    await host.stop();
    expect(hooks.map(([n]) => n)).toEqual(['start', 'stop']);
    expect(hooks[0][1]).toEqual({ transport, logger: silentLogger, serverId: host.serverId, users: expect.any(UserDirectory) });
    expect(transport.servers('chat')).toEqual([]);
  });

  it('answers an unknown HD_ function with NOT_FOUND and a bad session with BAD_ARGUMENT', async () => {
    const host = new ModuleHost(defineModule({ type: 'chat', handlers: { HD_x: () => 1 } }));
    await host.start(ctx);
    await expect(request('HD_nope', {})).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'Method(HD_nope) not found in chat' });
    await expect(request('hasOwnProperty', {})).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(transport.call({ moduleType: 'chat' }, 'HD_x', [{ sessionId: 's' }, {}])).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await expect(request('HD_x', 'a string')).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    await host.stop();
  });

  it('passes bytes through both ways without copying, and undefined back as null', async () => {
    const out = Buffer.from('result bytes');
    let got: unknown;
    const host = new ModuleHost(
      defineModule({
        type: 'chat',
        handlers: {
          HD_bytes: (_s, payload) => {
            got = payload;
            return out;
          },
          HD_nothing: () => undefined,
        },
      }),
    );
    await host.start(ctx);
    const backing = new Uint8Array([0, 1, 2, 3, 4]);
    const input = backing.subarray(1, 4);
    await expect(request('HD_bytes', input)).resolves.toBe(out);
    expect(Buffer.isBuffer(got)).toBe(true);
    const buf = got as Buffer;
    expect([...buf]).toEqual([1, 2, 3]);
    expect(buf.buffer).toBe(backing.buffer);
    expect(buf.byteOffset).toBe(1);
    await expect(request('HD_nothing', {})).resolves.toBeNull();
    await host.stop();
  });

  it('rejects a result that is not JSON-serialisable with BAD_RESULT', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const host = new ModuleHost(
      defineModule({ type: 'chat', handlers: { HD_big: () => ({ n: [1, 2n] }), HD_cycle: () => cyclic, HD_date: () => ({ at: new Date(0) }) } }),
    );
    await host.start(ctx);
    await expect(request('HD_big', {})).rejects.toMatchObject({
      code: 'BAD_RESULT',
      message: expect.stringContaining('the result.n[1] is a bigint'),
    });
    await expect(request('HD_cycle', {})).rejects.toMatchObject({ code: 'BAD_RESULT', message: expect.stringContaining('refers back to itself') });
    await expect(request('HD_date', {})).resolves.toEqual({ at: new Date(0) });
    await host.stop();
  });

  it('passes a handler error on with its message', async () => {
    const host = new ModuleHost(defineModule({ type: 'chat', handlers: { HD_fail: () => Promise.reject(new Error('wrong password')) } }));
    await host.start(ctx);
    await expect(request('HD_fail', {})).rejects.toMatchObject({ code: 'REMOTE', message: 'wrong password' });
    await host.stop();
  });

  it('applies the host guest rule to every session', async () => {
    const host = new ModuleHost(defineModule({ type: 'chat', handlers: { HD_guest: (s) => s.isGuest() } }), {
      guestRule: (s) => s.get('vip') !== 'yes',
    });
    await host.start(ctx);
    const vip = makeSessionData({ ...gate.connect(), userId: '', settings: { vip: 'yes' } });
    await expect(transport.call({ moduleType: 'chat' }, 'HD_guest', [vip, {}])).resolves.toBe(false);
    await expect(request('HD_guest', {})).resolves.toBe(true);
    await host.stop();
  });

  it('stop() refuses new calls, waits for the call in flight, then runs onStop', async () => {
    const order: string[] = [];
    const entered = deferred();
    const finish = deferred();
    const host = new ModuleHost(
      defineModule({
        type: 'chat',
        handlers: {
          HD_slow: async () => {
            entered.resolve();
            await finish.promise;
            order.push('handler done');
            return 'done';
          },
        },
        onStop: () => void order.push('onStop'),
      }),
      { serverId: 'chat@1' },
    );
    await host.start(ctx);
    const call = request('HD_slow', {});
    await entered.promise;
    expect(host.activeCalls).toBe(1);

    let stopped = false;
    const stopping = host.stop().then(() => (stopped = true));
    await expect(request('HD_slow', {}, { moduleType: 'chat' })).rejects.toMatchObject({ code: 'NO_SERVER' });
    expect(stopped).toBe(false);
    expect(order).toEqual([]);

    finish.resolve();
    await expect(call).resolves.toBe('done');
    await stopping;
    expect(order).toEqual(['handler done', 'onStop']);
    expect(host.activeCalls).toBe(0);
    await expect(host.stop()).resolves.toBeUndefined();
  });

  it('stop() gives up on calls in flight after stopTimeout and warns', async () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (_f, msg) => void warnings.push(msg) };
    const entered = deferred();
    const host = new ModuleHost(
      defineModule({
        type: 'chat',
        handlers: {
          HD_hang: () => {
            entered.resolve();
            return new Promise(() => undefined);
          },
        },
      }),
      { stopTimeout: 30 },
    );
    await host.start({ transport, logger, userIndex: new MemoryUserIndex() });
    const call = transport.call({ moduleType: 'chat' }, 'HD_hang', [gate.connect(), {}], { timeout: 200 });
    await entered.promise;
    await host.stop();
    expect(warnings).toEqual(['stop timed out; abandoning calls in flight']);
    expect(host.activeCalls).toBe(1);
    await expect(call).rejects.toMatchObject({ code: 'DEADLINE' });
  });

  it('start() fails when the server id is taken and undoes onStart; it runs only once', async () => {
    const order: string[] = [];
    const def = defineModule({
      type: 'chat',
      handlers: {},
      onStart: () => void order.push('start'),
      onStop: () => void order.push('stop'),
    });
    await new ModuleHost(def, { serverId: 'chat@1' }).start(ctx);
    const second = new ModuleHost(def, { serverId: 'chat@1' });
    await expect(second.start(ctx)).rejects.toMatchObject({ code: 'DUPLICATE_SERVER' });
    expect(order).toEqual(['start', 'start', 'stop']);
    await expect(second.start(ctx)).rejects.toThrow(/start\(\) may be called only once/);
    await second.stop();
    expect(order).toEqual(['start', 'start', 'stop']);
  });

  it('validates its options', () => {
    const def = defineModule({ type: 'chat', handlers: {} });
    expect(() => new ModuleHost(def, { stopTimeout: -1 })).toThrow(/stopTimeout/);
    expect(() => new ModuleHost(def, { serverId: '' })).toThrow(/serverId/);
  });
});

// MQTT 5: the request context in ctx.mqtt5, reply properties.
describe('handler context and reply properties', () => {
  test('ctx.mqtt5 carries the request context; a replyWithProperties result crosses the transport as the tagged list', async () => {
    const seen: Array<HandlerContext['mqtt5']> = [];
    const host = new ModuleHost(
      defineModule({
        type: 'm',
        handlers: {
          HD_x: (_s, payload, c) => {
            seen.push(c.mqtt5);
            return replyWithProperties(payload as Record<string, unknown>, { userProperties: { a: '1' }, contentType: 'text/x' });
          },
        },
      }),
    );
    await host.start(ctx);
    const mqtt5 = { userProperties: { k: ['1', '2'] }, contentType: 'application/json', correlationData: Buffer.from('c') };
    const result = await transport.call({ moduleType: 'm' }, 'HD_x', [gate.connect({ topic: 'm/HD_x', protocolVersion: 5, mqtt5 }), { q: 1 }]);
    expect(result).toEqual([REPLY_PROPERTIES_TAG, { userProperties: { a: '1' }, contentType: 'text/x' }, { q: 1 }]);
    await transport.call({ moduleType: 'm' }, 'HD_x', [gate.connect({ topic: 'm/HD_x', protocolVersion: 4 }), {}]);
    expect(seen).toEqual([mqtt5, undefined]);
    await host.stop();
  });

  test('replyWithProperties checks its arguments', () => {
    expect(() => replyWithProperties(null, { userProperties: { a: 1 as unknown as string } })).toThrow(TypeError);
    expect(() => replyWithProperties(null, { contentType: 5 as unknown as string })).toThrow(TypeError);
  });
});
