/**
 * The demo split in processes: gate processes (MQGATE_ROLE=gate) and module processes
 * (MQGATE_ROLE=modules) joined by a real Redis, real MQTT clients. Requests cross
 * gate → Redis → module → Redis → gate; module processes die and come back.
 */
import type { MqttClient } from 'mqtt';
import { CLIENT_TEXTS } from '@mqgate/rpc';
import { uniquePrefix } from '@mqgate/test-support';
import { sharedRedis } from './helpers/redis';
import { call, nextMessage, ok } from './helpers/client';
import type { DemoProcess } from './helpers/demo-process';
import { eventually, isAlive, Tracker, type ModulesProcess } from './helpers/split';

const shared = sharedRedis();

/** The registry's servers as Redis holds them: moduleType → pids of their processes. */
async function registeredPids(prefix: string): Promise<Record<string, number[]>> {
  const info = await shared.db.hgetall(`${prefix}{registry}:info`);
  const out: Record<string, number[]> = {};
  for (const json of Object.values(info)) {
    const s = JSON.parse(json) as { moduleType: string; meta: { pid: string } };
    (out[s.moduleType] ??= []).push(Number(s.meta.pid));
  }
  for (const list of Object.values(out)) list.sort((a, b) => a - b);
  return out;
}

describe('a request crosses gate process → Redis → module process and back', () => {
  const procs = new Tracker();
  const prefix = uniquePrefix('split-rpc');
  const lonePrefix = uniquePrefix('split-rpc-lone');
  let gate: DemoProcess;
  let modules: ModulesProcess;
  let lone: DemoProcess;

  beforeAll(async () => {
    const env = { REDIS_URL: shared.redis.url, MQGATE_TRANSPORT_PREFIX: prefix };
    [gate, modules, lone] = await Promise.all([
      procs.gate(env),
      procs.modules(env),
      procs.gate({ REDIS_URL: shared.redis.url, MQGATE_TRANSPORT_PREFIX: lonePrefix }),
    ]);
  });
  afterAll(() => procs.cleanup());

  test('the gate process serves only the gate; user, chat and echo are served by the modules process', async () => {
    expect(await registeredPids(prefix)).toEqual({
      gate: [gate.child.pid],
      user: [modules.child.pid],
      chat: [modules.child.pid],
      echo: [modules.child.pid],
    });
    // a gate process with no module process on its prefix answers every request with an Error
    const c = await procs.client(lone.tcpUrl);
    const reply = await call(c, 'echo/HD_echo', { hi: 1 });
    expect(reply).toEqual({ Trace: expect.any(String), Error: 'Service(type:echo) not found', Result: null });
    expect((await call(c, 'user/HD_login', { userId: 'nobody' })).Error).toBe('Service(type:user) not found');
  });

  describe.each([
    ['TCP', 'tcp'],
    ['WebSocket', 'websocket'],
  ] as const)('over %s', (name, network) => {
    let c: MqttClient;
    beforeAll(async () => {
      c = await procs.client(network === 'tcp' ? gate.tcpUrl : gate.wsUrl);
    });

    test('echo: a JSON object as Result, bytes raw', async () => {
      expect(await call(c, 'echo/HD_echo', { hi: [1, 'two'], network })).toEqual({
        Trace: expect.any(String),
        Error: '',
        Result: { hi: [1, 'two'], network },
      });
      const bytes = Buffer.from([0, 1, 2, 250, 255]);
      const reply = nextMessage(c, 'echo/HD_echo/raw');
      c.publish('echo/HD_echo/raw', bytes);
      expect(Buffer.compare(await reply, bytes)).toBe(0);
    });

    test('login, set, HD_get, HD_online: the module changes the session on the gate over Redis', async () => {
      const userId = `split-${name}`;
      expect(await ok(c, 'user/HD_login', { userId })).toEqual({ userId, settings: {} });
      expect(await ok(c, 'user/HD_set', { key: 'color', value: name })).toEqual({ settings: { color: name } });
      expect(await ok(c, 'user/HD_get')).toEqual({
        userId,
        sessionId: expect.stringMatching(/^[0-9a-f]{32}$/),
        network,
        ip: '127.0.0.1',
        settings: { color: name },
      });
      expect(await ok(c, 'user/HD_online', { userId })).toEqual({ userId, online: true });
      // a handler's error comes back in the envelope
      expect((await call(c, 'user/HD_login', {})).Error).toMatch(/"userId" must be a string/);
    });
  });
});

describe('module processes die (SIGKILL) and come back', () => {
  const procs = new Tracker();
  afterEach(() => procs.cleanup());
  const envFor = (prefix: string) => ({
    REDIS_URL: shared.redis.url,
    MQGATE_TRANSPORT_PREFIX: prefix,
    MQGATE_TRANSPORT_TIMEOUT: '1500',
    MQGATE_TRANSPORT_REGISTRY_TTL: '1000',
  });

  test('the only module process killed: requests get an Error, the gate lives on; a new module process serves again', async () => {
    const env = envFor(uniquePrefix('split-kill-only'));
    const [gate, first] = await Promise.all([procs.gate(env), procs.modules(env)]);
    const c = await procs.client(gate.tcpUrl);
    expect(await ok(c, 'echo/HD_echo', { n: 1 })).toEqual({ n: 1 });

    await first.kill();
    // right after the crash: the gate notices while the call is in flight (NO_SERVER's client text),
    // or already has (not found), or (a slow machine) still believes in the module (deadline)
    const started = Date.now();
    const during = await call(c, 'echo/HD_echo', { n: 2 });
    expect([CLIENT_TEXTS.DEADLINE, CLIENT_TEXTS.NO_SERVER, 'Service(type:echo) not found']).toContain(during.Error);
    expect(during.Result).toBeNull();
    expect(Date.now() - started).toBeLessThan(1500 + 1000);
    // once the registry TTL (1 s) has passed, the answer is an immediate "not found"
    await eventually(async () => (await call(c, 'echo/HD_echo', { n: 3 })).Error === 'Service(type:echo) not found', 3000, 'echo not found');
    const t = Date.now();
    expect((await call(c, 'user/HD_login', { userId: 'u' })).Error).toBe('Service(type:user) not found');
    expect(Date.now() - t).toBeLessThan(1000);
    expect(isAlive(gate)).toBe(true);
    expect(c.connected).toBe(true);

    await procs.modules(env);
    expect(await ok(c, 'echo/HD_echo', { n: 4 })).toEqual({ n: 4 });
    expect(await ok(c, 'user/HD_login', { userId: 'back' })).toEqual({ userId: 'back', settings: {} });
    expect(await ok(c, 'user/HD_get')).toMatchObject({ userId: 'back' });
    expect(isAlive(gate)).toBe(true);
  });

  test('two module processes, one killed: the other takes the requests (competing consumers)', async () => {
    const prefix = uniquePrefix('split-kill-one');
    const env = envFor(prefix);
    const [gate, m1, m2] = await Promise.all([procs.gate(env), procs.modules(env), procs.modules(env)]);
    expect((await registeredPids(prefix)).echo).toEqual([m1.child.pid, m2.child.pid].sort((a, b) => a! - b!));
    const c = await procs.client(gate.wsUrl);
    // both serve: many requests at once all answered
    const before = await Promise.all(Array.from({ length: 20 }, (_, n) => ok(c, 'echo/HD_echo', { n })));
    expect(before).toEqual(Array.from({ length: 20 }, (_, n) => ({ n })));

    await m1.kill();
    // Requests made after the crash: the dead process holds nothing, so every one is served by
    // m2. A request may only be lost when Redis handed it to m1's connection before it noticed
    // the connection closed: a bounded retry covers that window.
    let retried = 0;
    for (let n = 0; n < 30; n++) {
      const route = n % 3 === 0 ? 'user/HD_login' : 'echo/HD_echo';
      const body = n % 3 === 0 ? { userId: `after-${n}` } : { n };
      let reply = await call(c, route, body);
      for (let attempt = 0; reply.Error !== '' && attempt < 2; attempt++) {
        retried++;
        reply = await call(c, route, body);
      }
      expect(reply).toEqual({ Trace: expect.any(String), Error: '', Result: n % 3 === 0 ? { userId: `after-${n}`, settings: {} } : { n } });
    }
    expect(retried).toBeLessThanOrEqual(2);
    // the registry drops the dead process within its TTL; m2 alone remains
    await eventually(async () => (await registeredPids(prefix)).echo?.join() === String(m2.child.pid), 3000, 'm1 gone from the registry');
    expect(await ok(c, 'echo/HD_echo', { last: true })).toEqual({ last: true });
    expect(isAlive(gate) && isAlive(m2)).toBe(true);
  });
});
