/**
 * Resume across gates in one process (a session resumes on any gate of the app): two gates on one transport, one
 * user index and one StorageHandler. A session detached on gate A resumed on gate B through
 * the HandOver verb (pushes sent with sendToUser replayed); two resumes racing with one
 * token (exactly one wins); gate A gone: B falls back to the stored record.
 * Across processes over Redis: packages/demo/test/split-resume.test.ts.
 */
import { InProcessTransport, MemoryUserIndex, UserDirectory, gateClient, silentLogger, type SessionData } from '@mqgate/rpc';
import { MemoryStorage } from '@mqgate/storage';
import { Gate } from '@mqgate/gate';
import { ResumePeer } from './helpers/resume-peer';

let transport: InProcessTransport;
let index: MemoryUserIndex;
let storage: MemoryStorage;
let a: Gate;
let b: Gate;
const peers: ResumePeer[] = [];
const url = (g: Gate) => `mqtt://127.0.0.1:${g.addresses().tcp!.port}`;

beforeEach(async () => {
  transport = new InProcessTransport();
  index = new MemoryUserIndex();
  storage = new MemoryStorage();
  const opts = { tcp: { port: 0, host: '127.0.0.1' }, websocket: false as const, userIndex: index, storage };
  a = new Gate({ ...opts, serverId: 'gate@a' });
  b = new Gate({ ...opts, serverId: 'gate@b' });
  await a.start({ transport, logger: silentLogger, userIndex: index });
  await b.start({ transport, logger: silentLogger, userIndex: index });
  await transport.serve({ serverId: 'user@1', moduleType: 'user' }, async (fn, args) => {
    const s = args[0] as SessionData;
    const body = args[1] as { userId?: string; key?: string };
    const gate = gateClient(transport, s.serverId);
    if (fn === 'HD_set') return (await gate.set(s.sessionId, 'level', '7')).settings;
    const bound = await gate.bind(s.sessionId, body.userId as string);
    return { sessionId: bound.sessionId };
  });
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.client.endAsync(true)));
  await Promise.all([a.stop(), b.stop()]);
  await transport.close();
});

async function open(g: Gate): Promise<ResumePeer> {
  const c = await ResumePeer.open(url(g));
  peers.push(c);
  return c;
}

/** Logs `userId` in on gate A, sets a setting, drops the connection; resolves once A holds the session detached. */
async function detachedOnA(userId: string): Promise<{ token: string; sessionId: string }> {
  const c = await open(a);
  const sessionId = ((await c.login(userId)).Result as { sessionId: string }).sessionId;
  const token = await c.token();
  expect((await c.request('user/HD_set/9', '{}')).Result).toEqual({ level: '7' });
  const gone = new Promise<void>((resolve) => a.on('disconnect', (s) => s.sessionId === sessionId && resolve()));
  c.client.stream.destroy();
  await gone;
  expect(a.counts().detached).toBe(1);
  return { token, sessionId };
}

test('a session detached on gate A resumes on gate B with its settings and the pushes sendToUser sent meanwhile', async () => {
  const { token, sessionId } = await detachedOnA('ann');
  const users = new UserDirectory(transport, index);
  expect(await users.sendToUser('ann', 'chat/onWhisper', { text: 'one' })).toBe(1);
  expect(await users.sendToUser('ann', 'chat/onWhisper', { text: 'two' })).toBe(1);
  const events: unknown[] = [];
  b.on('resume', (s, info) => events.push([s.sessionId, s.serverId, info.from, info.replayed]));
  const d = await open(b);
  const answer = await d.resume(token);
  expect(answer.Error).toBe('');
  expect(answer.Result).toEqual({ userId: 'ann', sessionId, settings: { level: '7' }, recovered: true, replayed: 2, lost: 0 });
  await d.token();
  expect(d.msgs.filter((m) => m.topic === 'chat/onWhisper').map((m) => m.payload.toString())).toEqual(['{"text":"one"}', '{"text":"two"}']);
  expect(events).toEqual([[sessionId, 'gate@b', 'gate@a', 2]]);
  expect(a.counts().detached).toBe(0);
  expect(b.counts()).toMatchObject({ bound: 1, detached: 0 });
  expect(await users.locate('ann')).toEqual([expect.objectContaining({ serverId: 'gate@b', sessionId })]);
  // pushes reach it on B now
  expect(await users.sendToUser('ann', 'live', 'x')).toBe(1);
  await d.next((m) => m.topic === 'live');
});

test('two resumes racing with one token, on A and on B: exactly one wins', async () => {
  const { token } = await detachedOnA('ben');
  const onA = await open(a);
  const onB = await open(b);
  const answers = await Promise.all([onA.resume(token), onB.resume(token), onB.resume(token)]);
  const wins = answers.filter((x) => x.Error === '');
  expect(wins).toHaveLength(1);
  expect(answers.filter((x) => x.Error === 'resume token expired or already used: log in again')).toHaveLength(2);
  expect(a.counts().bound + b.counts().bound).toBe(1);
});

test('gate A gone: gate B resumes from the stored record (settings back, recovered false, replayed 0); the token then is used', async () => {
  const { token, sessionId } = await detachedOnA('cy');
  // A detached session is stored with its token's hash (SessionImp fields 13, 14).
  await a.stop();
  const d = await open(b);
  const answer = await d.resume(token);
  expect(answer.Error).toBe('');
  expect(answer.Result).toEqual({ userId: 'cy', sessionId, settings: { level: '7' }, recovered: false, replayed: 0, lost: 0 });
  await d.token();
  const e = await open(b);
  expect((await e.resume(token)).Error).toBe('resume token expired or already used: log in again');
  expect(b.getSession(sessionId)?.userId).toBe('cy');
});
