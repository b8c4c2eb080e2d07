/**
 * Resume across gate processes over a real Redis (a session resumes on any gate of the app): a client drops its
 * connection to gate A, reconnects to gate B, sends `gate/HD_resume/1 {"token"}` and gets
 * its userId, settings and the whisper it missed, without logging in; and after gate A was
 * SIGKILLed, B falls back to the stored record (settings back, `recovered: false`).
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { getRedis, uniquePrefix, type RedisUnderTest } from '@mqgate/test-support';
import { call, nextMessage, ok } from './helpers/client';
import { closed, eventually, Tracker, within } from './helpers/split';

let redis: RedisUnderTest;
const procs = new Tracker();

beforeAll(async () => {
  redis = await getRedis();
});
afterEach(() => procs.cleanup());
afterAll(async () => {
  if (redis.owned) await redis.stop();
});

async function twoGates(label: string, extra: Record<string, string> = {}) {
  const tag = randomBytes(3).toString('hex');
  const env = { REDIS_URL: redis.url, MQGATE_TRANSPORT_PREFIX: uniquePrefix(label), ...extra };
  const [a, b] = await Promise.all([
    procs.gate({ ...env, MQGATE_SERVER_ID: `gate-a-${tag}` }),
    procs.gate({ ...env, MQGATE_SERVER_ID: `gate-b-${tag}` }),
    procs.modules(env),
  ]);
  return { a, b };
}

/** Logs in on `url`, sets a setting; resolves with the client and its resume token. */
async function loginWithToken(url: string, userId: string): Promise<{ c: MqttClient; token: string }> {
  const c = await procs.client(url);
  const tokenPush = nextMessage(c, 'gate/session');
  expect(await ok(c, 'user/HD_login', { userId })).toMatchObject({ userId });
  const token = (JSON.parse((await within(tokenPush, 5000, 'the token push')).toString()) as { token: string }).token;
  // settings changes resolve once stored: the stored record holds the token's hash by now
  expect(await ok(c, 'user/HD_set', { key: 'seat', value: '12' })).toEqual({ settings: { seat: '12' } });
  return { c, token };
}

test('a client drops its connection to gate A and resumes on gate B with its settings and the whisper it missed', async () => {
  const { a, b } = await twoGates('split-resume');
  const { c, token } = await loginWithToken(a.tcpUrl, 'rosa');
  const gone = closed(c);
  c.stream.destroy();
  await gone;
  const other = await procs.client(b.tcpUrl);
  await ok(other, 'user/HD_login', { userId: 'sam' });
  await eventually(
    async () => (await ok<{ total: { detached?: number } }>(other, 'user/HD_count')).total.detached === 1,
    5000,
    'gate A holds the session detached',
  );
  expect(await ok(other, 'chat/HD_whisper', { to: 'rosa', text: 'while away' })).toEqual({ delivered: 1 });
  const again = await procs.client(b.wsUrl);
  const whisper = nextMessage(again, 'chat/onWhisper');
  const reply = await call(again, 'gate/HD_resume/1', { token });
  expect(reply.Error).toBe('');
  expect(reply.Result).toMatchObject({ userId: 'rosa', settings: { seat: '12' }, recovered: true, replayed: 1, lost: 0 });
  expect(JSON.parse((await within(whisper, 5000, 'the replayed whisper')).toString())).toEqual({ from: 'sam', text: 'while away' });
  expect(await ok(again, 'user/HD_get')).toMatchObject({ userId: 'rosa', network: 'websocket', settings: { seat: '12' } });
});

test('gate A SIGKILLed: gate B resumes from the stored record, settings back, recovered false; the token is then used', async () => {
  const { a, b } = await twoGates('split-resume-kill', { MQGATE_TRANSPORT_TIMEOUT: '2000' });
  const { c, token } = await loginWithToken(a.tcpUrl, 'tess');
  const gone = closed(c);
  await a.kill();
  await within(gone, 5000, "the killed gate's client sees its connection close");
  const again = await procs.client(b.tcpUrl);
  // Until gate B knows gate A is gone (its heartbeat stops: about a second), a resume is
  // answered "try again" and changes nothing (A might still hold the session, and a token
  // resumes once): the client tries again, as told.
  let reply = await call(again, 'gate/HD_resume/1', { token });
  for (let i = 2; /try again/.test(reply.Error) && i <= 20; i++) {
    await new Promise((r) => setTimeout(r, 250));
    reply = await call(again, `gate/HD_resume/${i}`, { token });
  }
  expect(reply.Error).toBe('');
  expect(reply.Result).toMatchObject({ userId: 'tess', settings: { seat: '12' }, recovered: false, replayed: 0, lost: 0 });
  expect(await ok(again, 'user/HD_get')).toMatchObject({ userId: 'tess', settings: { seat: '12' } });
  const third = await procs.client(b.tcpUrl);
  expect((await call(third, 'gate/HD_resume/2', { token })).Error).toBe('resume token expired or already used: log in again');
});
