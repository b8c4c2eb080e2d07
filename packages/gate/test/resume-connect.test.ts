/**
 * Resume at CONNECT (MQTT-native persistent sessions: Clean Session 0 / Clean Start 0 resumes the user's detached session). A CONNECT with
 * Clean Session 0 (3.1.1) / Clean Start 0 (5) and the client id of a detached session
 * resumes it (CONNACK Session Present 1, buffered pushes after the CONNACK, then a new token
 * on `gate/session`) only when the authenticate hook named that session's user with
 * `{ userId }`, or a JWT did; otherwise Session Present 0 and the session stays detached for
 * its token. Clean Session 1 / Clean Start 1 of an identified user discards it (MQTT-3.1.2-6).
 * Also across two gates (handOver), and the JWT token push after the CONNACK. Real sockets,
 * MQTT.js clients at 3.1.1 and 5.
 */
import * as mqtt from 'mqtt';
import { SignJWT } from 'jose';
import { UserDirectory } from '@mqgate/rpc';
import { detachedKey } from '@mqgate/rpc/internal';
import { Gate, type GateOptions } from '@mqgate/gate';
import { ResumePeer } from './helpers/resume-peer';
import { resumeRig } from './helpers/resume-rig';
import { waitUntil } from './helpers/waiters';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const rig = resumeRig();
const url = rig.url;

/** The hook of these tests: the User Name is the user, except `anon` (accepted, not identified). */
const byUsername: GateOptions['authenticate'] = (info) => (info.username === 'anon' ? true : { userId: info.username ?? '' });

function gate(serverId: string, options: GateOptions = {}): Promise<Gate> {
  return rig.gate(serverId, { authenticate: byUsername, ...options });
}

/** Connects an MQTT.js client and resolves with it and its CONNACK's Session Present. */
async function connect(g: Gate, opts: mqtt.IClientOptions): Promise<{ c: ResumePeer; present: boolean }> {
  const client = mqtt.connect(url(g), { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  const c = new ResumePeer(client); // records from the first PUBLISH after the CONNACK
  rig.track(c);
  const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return { c, present: connack.sessionPresent };
}

const v5 = (v: 4 | 5): mqtt.IClientOptions => (v === 5 ? { protocolVersion: 5, properties: { sessionExpiryInterval: 60 } } : { protocolVersion: 4 });

/** Logs `userId` in on `g` with client id `clientId` (Clean Session 0), then drops the connection; resolves once `g` holds it detached. */
async function detached(g: Gate, userId: string, clientId: string, v: 4 | 5 = 4): Promise<{ sessionId: string; token: string }> {
  const { c, present } = await connect(g, { clientId, clean: false, username: userId, ...v5(v) });
  expect(present).toBe(false);
  const sessionId = ((await c.login(userId)).Result as { sessionId: string }).sessionId;
  const { token } = await c.tokenPush();
  const before = g.counts().detached ?? 0;
  await c.drop();
  await waitUntil('detached', () => g.counts().detached === before + 1);
  return { sessionId, token };
}

describe.each([4, 5] as const)('MQTT.js at level %i', (v) => {
  test('Clean Session 0 with the client id and the user the hook names: Session Present 1, the missed pushes after the CONNACK, then a new token', async () => {
    const a = await gate('gate@a');
    const { sessionId, token } = await detached(a, 'alice', 'dev-1', v);
    expect(a.send(sessionId, 'news/1', 'one')).toBe(true);
    expect(a.send(sessionId, 'news/2', 'two')).toBe(true);
    const events: unknown[] = [];
    a.on('resume', (s, info) => events.push([s.sessionId, s.userId, info]));
    const { c, present } = await connect(a, { clientId: 'dev-1', clean: false, username: 'alice', ...v5(v) });
    expect(present).toBe(true);
    const next = await c.tokenPush();
    expect(next).toMatchObject({ sessionId, userId: 'alice' });
    expect(next.token).not.toBe(token);
    expect(c.msgs.map((m) => [m.topic, m.payload.toString()])).toEqual([
      ['news/1', 'one'],
      ['news/2', 'two'],
      ['gate/session', expect.stringContaining(sessionId)],
    ]);
    expect(events).toEqual([[sessionId, 'alice', { recovered: true, replayed: 2, lost: 0, from: 'local' }]]);
    expect(a.counts()).toEqual({ total: 1, bound: 1, guests: 0, detached: 0 });
    expect(a.getSession(sessionId)?.userId).toBe('alice');
    // requests run as the resumed session; the old token is void (a new one was issued)
    expect(a.send(sessionId, 'live', 'x')).toBe(true);
    await c.next((m) => m.topic === 'live');
    const other = await connect(a, { clientId: 'other', username: 'anon', ...v5(v) });
    expect((await other.c.resume(token)).Error).toBe('resume token expired or already used: log in again');
    expect(await rig.index.locate('alice', [{ serverId: 'gate@a', startedAt: 0 }])).toEqual([expect.objectContaining({ sessionId })]);
  });

  test('no user named by the hook, or another user: Session Present 0, a fresh session, and the detached one still resumes by token', async () => {
    const a = await gate('gate@a');
    const { sessionId, token } = await detached(a, 'bob', 'dev-2', v);
    const anon = await connect(a, { clientId: 'dev-2', clean: false, username: 'anon', ...v5(v) });
    expect(anon.present).toBe(false);
    const mallory = await connect(a, { clientId: 'dev-2', clean: false, username: 'mallory', ...v5(v) });
    expect(mallory.present).toBe(false);
    expect(a.counts()).toMatchObject({ bound: 0, detached: 1 });
    const answer = await mallory.c.resume(token);
    expect(answer.Error).toBe('');
    expect(answer.Result).toMatchObject({ sessionId, userId: 'bob' });
  });

  test('Clean Session 1 / Clean Start 1 of the identified user discards its detached session of that client id (MQTT-3.1.2-6)', async () => {
    const a = await gate('gate@a');
    // two live logins of carl (a login discards detached sessions, not live ones), both dropped
    const one = await connect(a, { clientId: 'dev-3', clean: false, username: 'carl', ...v5(v) });
    await one.c.login('carl');
    const { token } = await one.c.tokenPush();
    const two = await connect(a, { clientId: 'dev-3b', clean: false, username: 'carl', ...v5(v) });
    await two.c.login('carl');
    const kept = await two.c.tokenPush();
    await Promise.all([one.c.drop(), two.c.drop()]);
    await waitUntil('both detached', () => a.counts().detached === 2);
    const { c, present } = await connect(a, { clientId: 'dev-3', clean: true, username: 'carl', ...v5(v) });
    expect(present).toBe(false);
    expect(a.counts()).toMatchObject({ guests: 1, detached: 1 });
    expect((await c.resume(token)).Error).toBe('resume token expired or already used: log in again');
    // the other client id's session stays
    expect((await c.resume(kept.token)).Result).toMatchObject({ sessionId: kept.sessionId, userId: 'carl' });
  });
});

test('a live session of the same client id and user on this gate is taken over and continues (Session Present 1)', async () => {
  const a = await gate('gate@a');
  const first = await connect(a, { clientId: 'dev-4', clean: false, username: 'dora' });
  const sessionId = ((await first.c.login('dora')).Result as { sessionId: string }).sessionId;
  await first.c.tokenPush();
  const { c, present } = await connect(a, { clientId: 'dev-4', clean: false, username: 'dora' });
  expect(present).toBe(true);
  await first.c.closed;
  expect((await c.tokenPush()).sessionId).toBe(sessionId);
  expect(a.counts()).toEqual({ total: 1, bound: 1, guests: 0, detached: 0 });
});

test('a session detached on gate A resumes at CONNECT on gate B (handOver), with the pushes sendToUser sent meanwhile', async () => {
  const a = await gate('gate@a');
  const b = await gate('gate@b');
  const { sessionId } = await detached(a, 'erin', 'dev-5');
  const users = new UserDirectory(rig.transport, rig.index);
  expect(await users.sendToUser('erin', 'chat/1', 'hello')).toBe(1);
  const events: unknown[] = [];
  b.on('resume', (s, info) => events.push([s.sessionId, s.serverId, info.from, info.replayed]));
  const { c, present } = await connect(b, { clientId: 'dev-5', clean: false, username: 'erin' });
  expect(present).toBe(true);
  const next = await c.tokenPush();
  expect(next.sessionId).toBe(sessionId);
  expect(c.msgs.map((m) => m.topic)).toEqual(['chat/1', 'gate/session']);
  expect(events).toEqual([[sessionId, 'gate@b', 'gate@a', 1]]);
  expect(a.counts().detached).toBe(0);
  expect(b.counts()).toMatchObject({ bound: 1, detached: 0 });
  expect(await users.locate('erin')).toEqual([expect.objectContaining({ serverId: 'gate@b', sessionId })]);
  expect(await users.sendToUser('erin', 'live', 'x')).toBe(1);
  await c.next((m) => m.topic === 'live');
  // its new token resumes it again after another drop
  await c.drop();
  await waitUntil('detached on B', () => b.counts().detached === 1);
  const d = await connect(a, { clientId: 'x', username: 'anon' });
  expect((await d.c.resume(next.token)).Result).toMatchObject({ sessionId, userId: 'erin' });
});

test('Clean Session 1 on gate B of the identified user discards the session of that client id detached on gate A', async () => {
  const a = await gate('gate@a');
  const b = await gate('gate@b');
  const { token } = await detached(a, 'gil', 'dev-6');
  const { c, present } = await connect(b, { clientId: 'dev-6', clean: true, username: 'gil' });
  expect(present).toBe(false);
  expect(a.counts().detached).toBe(0);
  expect(await rig.index.locate(detachedKey('gil'), [{ serverId: 'gate@a', startedAt: 0 }])).toEqual([]);
  expect((await c.resume(token)).Error).toBe('resume token expired or already used: log in again');
});

describe('JWT at CONNECT', () => {
  const jwt = (sub: string) =>
    new SignJWT({ exp: Math.floor(Date.now() / 1000) + 3600 })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(sub)
      .sign(new TextEncoder().encode(SECRET));

  test('a JWT session (bound before the CONNACK) gets its resume token right after the CONNACK', async () => {
    const a = await gate('gate@a', { jwt: { secret: SECRET }, authenticate: undefined });
    const { c } = await connect(a, { clientId: 'j-1', username: 'u', password: Buffer.from(await jwt('fay')) });
    const first = await c.tokenPush();
    expect(first).toMatchObject({ userId: 'fay', sessionId: a.sessionsOfUser('fay')[0].sessionId });
    expect(first.token).toMatch(/^r1\./);
    expect(c.msgs.map((m) => m.topic)).toEqual(['gate/session']);
    // the session is kept detached at a drop: it holds a token
    await c.drop();
    await waitUntil('detached', () => a.counts().detached === 1);
  });

  test('Clean Session 0 with the same client id and a token for the same user resumes at CONNECT (no bind); another user does not', async () => {
    const a = await gate('gate@a', { jwt: { secret: SECRET }, authenticate: undefined });
    const binds: string[] = [];
    a.on('bind', (_s, userId) => binds.push(userId));
    const one = await connect(a, { clientId: 'j-3', clean: false, username: 'u', password: Buffer.from(await jwt('gus')) });
    const { sessionId } = await one.c.tokenPush();
    await one.c.drop();
    await waitUntil('detached', () => a.counts().detached === 1);
    a.send(sessionId, 'missed', 'm');
    const other = await connect(a, { clientId: 'j-3', clean: false, username: 'u', password: Buffer.from(await jwt('hal')) });
    expect(other.present).toBe(false);
    expect(a.counts().detached).toBe(1);
    await other.c.end();
    const again = await connect(a, { clientId: 'j-3', clean: false, username: 'u', password: Buffer.from(await jwt('gus')) });
    expect(again.present).toBe(true);
    expect((await again.c.tokenPush()).sessionId).toBe(sessionId);
    expect(again.c.msgs.map((m) => m.topic)).toEqual(['missed', 'gate/session']);
    expect(binds).toEqual(['gus', 'hal']);
    expect(a.counts()).toMatchObject({ bound: 1, detached: 0 });
  });
});
