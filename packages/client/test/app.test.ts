import { InProcessTransport, type AppComponent, type AppContext } from '@mqgate/rpc';
import { App, ModuleHost, createApp, defineModule } from '@mqgate/client';

/** A component that records its lifecycle into a shared log. */
function component(name: string, log: string[], fail: { start?: Error; stop?: Error } = {}): AppComponent & { ctx?: AppContext } {
  const c: AppComponent & { ctx?: AppContext } = {
    name,
    async start(ctx) {
      c.ctx = ctx;
      log.push(`start ${name}`);
      if (fail.start) throw fail.start;
    },
    async stop() {
      log.push(`stop ${name}`);
      if (fail.stop) throw fail.stop;
    },
  };
  return c;
}

describe('App', () => {
  it('starts components in order, stops them in reverse, and emits started/stopped', async () => {
    const log: string[] = [];
    const app = createApp();
    app.on('started', () => log.push('event started'));
    app.on('stopped', () => log.push('event stopped'));
    const a = component('a', log);
    expect(app.use(a).use(component('b', log)).use(component('c', log))).toBe(app);
    await app.start();
    expect(a.ctx).toEqual({ transport: app.transport, logger: app.logger, userIndex: app.userIndex });
    await app.stop();
    expect(log).toEqual(['start a', 'start b', 'start c', 'event started', 'stop c', 'stop b', 'stop a', 'event stopped']);
  });

  it('stops the started components when one fails to start, and rethrows its error', async () => {
    const log: string[] = [];
    const boom = new Error('port in use');
    const app = createApp()
      .use(component('a', log))
      .use(component('b', log))
      .use(component('gate', log, { start: boom }))
      .use(component('d', log));
    const errors: unknown[] = [];
    app.on('error', (err, c) => errors.push([err, c?.name]));
    await expect(app.start()).rejects.toBe(boom);
    expect(log).toEqual(['start a', 'start b', 'start gate', 'stop b', 'stop a']);
    expect(errors).toEqual([[boom, 'gate']]);
    await app.stop();
    expect(log).toHaveLength(5);
    await expect(app.start()).rejects.toThrow(/starts only once/);
  });

  it('a failed start without an error listener still rejects normally', async () => {
    const app = createApp().use(component('x', [], { start: new Error('nope') }));
    await expect(app.start()).rejects.toThrow('nope');
  });

  it('stop() stops every component even when some fail, then throws one AggregateError', async () => {
    const log: string[] = [];
    const e1 = new Error('b failed');
    const app = createApp()
      .use(component('a', log))
      .use(component('b', log, { stop: e1 }))
      .use(component('c', log));
    await app.start();
    const err: unknown = await app.stop().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AggregateError);
    expect((err as AggregateError).errors).toEqual([e1]);
    expect((err as AggregateError).message).toMatch(/1 component\(s\) failed to stop: b/);
    expect(log.slice(3)).toEqual(['stop c', 'stop b', 'stop a']);
  });

  it('stop() is idempotent', async () => {
    const log: string[] = [];
    const app = createApp().use(component('a', log));
    await app.start();
    const first = app.stop();
    expect(app.stop()).toBe(first);
    await first;
    await app.stop();
    expect(log).toEqual(['start a', 'stop a']);
  });

  it('closes a transport it created, and leaves a given one open', async () => {
    const own = createApp();
    await own.start();
    await own.stop();
    await expect(own.transport.call({ moduleType: 'x' }, 'f', [])).rejects.toMatchObject({ code: 'CLOSED' });

    const shared = new InProcessTransport();
    const app = new App({ transport: shared });
    await app.start();
    await app.stop();
    await expect(shared.call({ moduleType: 'x' }, 'f', [])).rejects.toMatchObject({ code: 'NO_SERVER' });
    await shared.close();
  });

  it('module() runs a definition in a ModuleHost on the app transport', async () => {
    const app = createApp().module(defineModule({ type: 'chat', handlers: { HD_x: () => 1 } }), { serverId: 'chat@1' });
    expect(app.components[0]).toBeInstanceOf(ModuleHost);
    await app.start();
    expect(app.transport.servers('chat').map((s) => s.serverId)).toEqual(['chat@1']);
    await app.stop();
  });

  it('rejects non-components, duplicates, and use() after start()', async () => {
    const app = createApp();
    const a = component('a', []);
    expect(() => app.use({ name: 'x' } as unknown as AppComponent)).toThrow(TypeError);
    app.use(a);
    expect(() => app.use(a)).toThrow(/already added/);
    await app.start();
    expect(() => app.use(component('late', []))).toThrow(/before start/);
    await app.stop();
  });
});
