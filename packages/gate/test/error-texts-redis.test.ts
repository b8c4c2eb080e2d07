/**
 * What an MQTT client gets when the gate's Redis is down. Short,
 * stable client texts starting with their code (rpc CLIENT_TEXTS), never a session id, the
 * store's address or an ioredis state; a login made on the gate while the store failed
 * answers with its Result and a `warning`; a change answers within one store attempt; the
 * full cause is in the gate's log with the trace id. MQTT.js clients, a module using
 * @mqgate/client's Session like the demo's user module, a real redis-server behind the
 * test-support TCP proxy (stopped: connections dropped and refused).
 */
import type { MqttClient } from 'mqtt';
import { Session } from '@mqgate/client';
import { CLIENT_TEXTS, type Logger, type RpcValue, type SessionData } from '@mqgate/rpc';
import { RedisUserIndex } from '@mqgate/rpc/redis';
import { RedisStorage } from '@mqgate/storage';
import { startRedisServer, startTcpProxy, uniquePrefix, type Interruptible, type RedisUnderTest } from '@mqgate/test-support';
import { mqttConnect, request, startGate, type Harness } from './helpers/harness';

jest.setTimeout(60_000);

let redis: RedisUnderTest;
const cleanups: Array<() => Promise<unknown>> = [];
beforeAll(async () => {
  redis = await startRedisServer();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => redis.stop());

type Line = { level: string; fields: Record<string, unknown>; msg: string };

/** A gate (options as given, plus a capturing logger) serving `user` HD_login / HD_set the way the demo does. */
async function gateWith(options: Parameters<typeof startGate>[0]): Promise<{ h: Harness; logs: Line[]; client: MqttClient }> {
  const logs: Line[] = [];
  const put = (level: string) => (fields: object, msg: string) => void logs.push({ level, fields: fields as Record<string, unknown>, msg });
  const logger: Logger = { debug: put('debug'), info: put('info'), warn: put('warn'), error: put('error') };
  const h = await startGate({ ...options, logger });
  cleanups.push(() => h.stop());
  await h.serve('user', async (fn, args) => {
    const s = new Session(args[0] as SessionData, h.transport);
    const body = args[1] as { userId?: string; key?: string; value?: string };
    if (fn === 'HD_login') {
      const { warning } = await s.bind(body.userId as string);
      return { userId: s.userId, settings: { ...s.settings }, ...(warning !== undefined && { warning }) } as RpcValue;
    }
    await s.set(body.key as string, body.value as string);
    return { settings: { ...s.settings } } as RpcValue;
  });
  const client = await mqttConnect(h.tcpUrl);
  cleanups.push(() => client.endAsync(true));
  return { h, logs, client };
}

let seq = 0;
async function timed(c: MqttClient, handler: string, body: object) {
  const started = Date.now();
  const reply = await request(c, `user/${handler}/${++seq}`, JSON.stringify(body));
  return { reply, ms: Date.now() - started };
}

/** Nothing of the internals: no session id, no address, no connection state, no duration. */
function expectNoInternals(text: string, sessionId: string): void {
  for (const leak of [sessionId.slice(0, 8), '127.0.0.1', String(new URL(redis.url).port), 'reconnecting', 'ECONNREFUSED', ' ms', 'Session.']) {
    expect(text).not.toContain(leak);
  }
}

async function proxyTo(): Promise<Interruptible> {
  const proxy = await startTcpProxy(redis.url);
  cleanups.push(() => proxy.stop());
  return proxy;
}

test('session store down: the login answers its Result with a warning at about commandTimeout; a set answers STORAGE_UNAVAILABLE within one store attempt, though a retry was in flight; causes only in the log, with the trace id', async () => {
  const proxy = await proxyTo();
  const storage = new RedisStorage({ url: proxy.url, prefix: uniquePrefix('texts') }); // commandTimeout: the default 2000 ms
  cleanups.push(() => storage.close());
  const { h, logs, client } = await gateWith({ storage, storageRetryDelay: 300, stopTimeout: 1000 });
  await proxy.stop();

  const login = await timed(client, 'HD_login', { userId: 'u1' });
  expect(login.reply.Error).toBe('');
  expect(login.reply.Result).toEqual({ userId: 'u1', settings: {}, warning: CLIENT_TEXTS.STORAGE_UNAVAILABLE_BIND });
  expect(login.ms).toBeGreaterThanOrEqual(1800);
  expect(login.ms).toBeLessThan(2000 + 1500);
  const sid = h.gate.sessionsOfUser('u1')[0].sessionId;
  expectNoInternals(JSON.stringify(login.reply.Result), sid);

  // The bind's first retry starts 300 ms after its failure and holds the store for up to 2 s:
  // a set made meanwhile hears when that attempt fails, not after it and then its own.
  await new Promise((r) => setTimeout(r, 600));
  const set = await timed(client, 'HD_set', { key: 'k', value: 'v' });
  expect(set.reply).toEqual({ Trace: expect.any(String), Error: CLIENT_TEXTS.STORAGE_UNAVAILABLE, Result: null });
  expect(set.ms).toBeLessThan(2000 + 600);
  expectNoInternals(set.reply.Error, sid);
  expect(h.gate.getSession(sid)?.settings).toEqual({ k: 'v' }); // live on the gate, as the text says

  // The cause, in full, is in the log at warn, with the session id and the request's trace id.
  const causes = logs.filter(
    (l) => l.level === 'warn' && l.fields.sessionId === sid && String(l.fields.error).includes('Redis not ready within 2000 ms'),
  );
  expect(causes.length).toBeGreaterThanOrEqual(2);
  for (const l of causes) expect(l.fields).toMatchObject({ userId: 'u1', traceId: set.reply.Trace });
  expect(causes.map((l) => l.fields.kind)).toEqual(expect.arrayContaining(['storage-bind', 'storage-change']));
});

test('user index down: the login is refused with the USER_INDEX client text, nothing bound; the cause is logged', async () => {
  const proxy = await proxyTo();
  const userIndex = new RedisUserIndex({ url: proxy.url, prefix: uniquePrefix('texts-index') });
  cleanups.push(() => userIndex.close());
  const { h, logs, client } = await gateWith({ userIndex });
  await proxy.stop();
  const login = await timed(client, 'HD_login', { userId: 'u2' });
  expect(login.reply).toEqual({ Trace: expect.any(String), Error: CLIENT_TEXTS.USER_INDEX, Result: null });
  expect(login.ms).toBeLessThan(2000 + 1500); // the index client fails at its next reconnect attempt, ≤ 2 s
  expect(h.gate.counts().bound).toBe(0);
  const cause = logs.find((l) => l.level === 'warn' && l.fields.kind === 'user-index-claim');
  expect(cause?.fields).toMatchObject({ userId: 'u2', traceId: login.reply.Trace, sessionId: expect.any(String) });
  expectNoInternals(login.reply.Error, String(cause?.fields.sessionId));
});
