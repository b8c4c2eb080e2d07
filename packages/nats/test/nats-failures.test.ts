import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NatsTransport, NatsUnavailableError, type NatsTransportOptions } from '@mqgate/nats';
import { NoServerError, ServerLostError, type RpcValue, type ServerInfo } from '@mqgate/rpc';
import { freePort, getNats, startNatsServer, within, type NatsUnderTest } from '@mqgate/test-support';

// Module processes run the built package (npm test builds first).
const FIXTURE = join(__dirname, 'fixtures', 'nats-module-process.mjs');
const DIST = join(__dirname, '..', 'dist', 'index.js');

let nats: NatsUnderTest;
let prefix = '';
let transports: NatsTransport[] = [];
const children = new Set<ChildProcess>();

beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npx tsc -b packages/nats\` first`);
  nats = await getNats();
});
afterAll(async () => {
  if (nats?.owned) await nats.stop();
});
beforeEach(() => {
  prefix = `mqgate-test.${randomBytes(4).toString('hex')}`;
});
afterEach(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  await Promise.all(transports.map((t) => t.close()));
  transports = [];
});

function make(options: NatsTransportOptions = {}): NatsTransport {
  const t = new NatsTransport({ servers: nats.url, prefix, reconnectTimeWait: 100, ...options });
  transports.push(t);
  return t;
}

/** Resolves when `t` emits `event` for `serverId`. */
function membership(t: NatsTransport, event: 'serverJoined' | 'serverLeft', serverId: string): Promise<ServerInfo> {
  return new Promise((resolve) => {
    const on = (info: ServerInfo) => {
      if (info.serverId !== serverId) return;
      t.off(event, on);
      resolve(info);
    };
    t.on(event, on);
  });
}

/** Starts the fixture module process serving `serverId`; resolves once it printed "ready". */
async function moduleProcess(serverId: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; lines: string[] }> {
  const child = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, NATS_URL: nats.url, PREFIX: prefix, SERVER_ID: serverId, MODULE_TYPE: serverId.split('@')[0], ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const lines: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  await within(
    new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (c: Buffer) => {
        lines.push(...c.toString().split('\n').filter(Boolean));
        if (lines.includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`module process exited (${code}): ${stderr}`)));
    }),
    10_000,
    `${serverId} to serve`,
  );
  return { child, lines };
}

describe('NatsTransport and a module process that dies', () => {
  it('SIGKILLed module: new calls fail at once with NoServerError (not at their deadline), and it leaves the registry within the TTL', async () => {
    const caller = make();
    await caller.ready();
    const joined = membership(caller, 'serverJoined', 'echo@1');
    const mod = await moduleProcess('echo@1', { REGISTRY_TTL: '800' });
    await joined;
    await expect(caller.call({ moduleType: 'echo' }, 'echo', ['hi'])).resolves.toBe('hi');
    const left = membership(caller, 'serverLeft', 'echo@1');
    const exited = new Promise((resolve) => mod.child.once('exit', resolve));
    mod.child.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    // The registry may still list it (no heartbeat missed yet): NATS answers no responders at once
    // (NoServerError); a call NATS still handed to the dying connection fails by the probe (ServerLostError).
    for (const to of [{ serverId: 'echo@1' }, { moduleType: 'echo' }, { moduleType: 'echo', key: 'user-1' }]) {
      await expect(caller.call(to, 'echo', ['x'], { timeout: 10_000 })).rejects.toMatchObject({ code: 'NO_SERVER' });
    }
    expect(Date.now() - killedAt).toBeLessThan(1000);
    await within(left, 2000, 'echo@1 to leave the registry');
    expect(caller.servers('echo')).toEqual([]);
  });

  it('SIGKILLed module with 200 calls in flight: they fail within about 1 s with code NO_SERVER ("module unavailable"), not at their 10 s deadline; a new process takes new calls', async () => {
    const caller = make();
    await caller.ready();
    const joined = membership(caller, 'serverJoined', 'proc@1');
    const mod = await moduleProcess('proc@1');
    await joined;
    // 200 calls in flight: to the type, to the server id and by sticky key.
    const inFlight = Array.from({ length: 200 }, (_, i) => {
      const to = i % 3 === 0 ? { moduleType: 'proc' } : i % 3 === 1 ? { serverId: 'proc@1' } : { moduleType: 'proc', key: `k${i}` };
      return caller.call(to, 'hang', [], { timeout: 10_000 }).catch((e: unknown) => e);
    });
    await within(
      new Promise<void>((resolve) => {
        const check = () => (mod.lines.filter((l) => l === 'started hang').length === 200 ? resolve() : setTimeout(check, 10));
        check();
      }),
      10_000,
      'the calls to be in the module',
    );
    const exited = new Promise((resolve) => mod.child.once('exit', resolve));
    mod.child.kill('SIGKILL');
    const killedAt = Date.now();
    await exited;
    const errors = await Promise.all(inFlight);
    expect(Date.now() - killedAt).toBeLessThan(1600);
    for (const err of errors) {
      expect(err).toBeInstanceOf(ServerLostError);
      expect(err).toMatchObject({ code: 'NO_SERVER' });
      expect((err as Error).message).toMatch(/^module unavailable: server proc@1 \(type proc\) .+ while call hang was in flight/);
    }
    expect(caller.servers('proc')).toEqual([]);
    // New calls fail at once, and a new process of the type takes them.
    await expect(caller.call({ moduleType: 'proc' }, 'echo', [1])).rejects.toBeInstanceOf(NoServerError);
    const rejoined = membership(caller, 'serverJoined', 'proc@2');
    await moduleProcess('proc@2');
    await rejoined;
    await expect(caller.call({ moduleType: 'proc' }, 'echo', [2], { timeout: 3000 })).resolves.toBe(2);
  });

  it('a clean stop (SIGTERM) removes the server from every registry at once', async () => {
    const caller = make();
    await caller.ready();
    const joined = membership(caller, 'serverJoined', 'echo@2');
    const mod = await moduleProcess('echo@2');
    await joined;
    const left = membership(caller, 'serverLeft', 'echo@2');
    const stoppedAt = Date.now();
    mod.child.kill('SIGTERM');
    await within(left, 1000, 'the leave event');
    expect(Date.now() - stoppedAt).toBeLessThan(1000);
  });
});

describe('NatsTransport during a NATS outage', () => {
  let own: NatsUnderTest;
  beforeEach(async () => {
    own = await startNatsServer();
  });
  afterEach(async () => {
    await own.stop();
  });

  it('fails calls fast with "NATS is unreachable" while it is down (in flight ones too), then reconnects and works again', async () => {
    const server = make({ servers: own.url });
    const caller = make({ servers: own.url });
    let hang = false;
    await server.serve({ serverId: 'm@1', moduleType: 'm' }, (fn, args): RpcValue | Promise<RpcValue> => {
      if (fn === 'hang') {
        hang = true;
        return new Promise<RpcValue>(() => undefined);
      }
      return args[0];
    });
    await caller.ready();
    await within(new Promise<void>((r) => (caller.servers('m').length ? r() : caller.once('serverJoined', () => r()))), 5000, 'm@1 to join');
    await expect(caller.call({ moduleType: 'm' }, 'echo', [1])).resolves.toBe(1);
    const inFlight = caller.call({ moduleType: 'm' }, 'hang', [], { timeout: 10_000 }).catch((e: unknown) => e);
    while (!hang) await new Promise((r) => setTimeout(r, 5));
    const down = Date.now();
    await own.stop();
    const err = await inFlight;
    expect(err).toBeInstanceOf(NatsUnavailableError);
    expect(Date.now() - down).toBeLessThan(2000);
    const t0 = Date.now();
    const during = await caller.call({ moduleType: 'm' }, 'echo', [2], { timeout: 10_000 }).catch((e: unknown) => e);
    expect(during).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/^NATS is unreachable \(nats:\/\/127\.0\.0\.1:\d+\)/) });
    expect(Date.now() - t0).toBeLessThan(200);
    await own.restart();
    const back = await within(
      retryUntilOk(() => caller.call({ moduleType: 'm' }, 'echo', [3], { timeout: 1000 })),
      10_000,
      'calls to work again',
    );
    expect(back).toBe(3);
  });

  it('started while NATS is down: calls fail fast as unreachable; once NATS is up it connects by itself', async () => {
    await own.stop();
    const t = make({ servers: own.url });
    const err = await retryUntilError(() => t.call({ moduleType: 'm' }, 'f', [], { timeout: 5000 }));
    expect(err).toMatchObject({ code: 'UNAVAILABLE' });
    await own.restart();
    await within(t.ready(), 10_000, 'ready after NATS came up');
    await expect(t.call({ moduleType: 'nobody' }, 'f', [])).rejects.toBeInstanceOf(NoServerError);
  });

  it('connects through a URL list whose first server is down', async () => {
    const dead = `nats://127.0.0.1:${await freePort()}`;
    const t = make({ servers: [dead, own.url], connection: { noRandomize: true } });
    await within(t.ready(), 5000, 'ready over the second URL');
    await t.serve({ serverId: 'l@1', moduleType: 'l' }, () => 'listed');
    await expect(t.call({ serverId: 'l@1' }, 'f', [])).resolves.toBe('listed');
  });
});

async function retryUntilOk<T>(f: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await f();
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** The first rejection of `f` (the first attempt may wait for the first connection attempt). */
async function retryUntilError(f: () => Promise<unknown>): Promise<unknown> {
  return f().then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
}
