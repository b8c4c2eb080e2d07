/**
 * Resume's limits and loose ends: the maxDetached cap (oldest dropped, freed,
 * out of the user index, counted, warned); a session handed over to gate B while B's new
 * connection closes is detached again on B, findable from every gate, its token still good;
 * the stored record's resume expiry is the detach time + window (not the last write), so
 * gate B's fallback to the store works after gate A died. Two gates in one process on the
 * in-process transport, real sockets, MQTT.js clients.
 */
import { decodeSession, silentLogger, type LiveGate, type Logger, type UserLocation } from '@mqgate/rpc';
import { detachedKey } from '@mqgate/rpc/internal';
import { MemoryStorage } from '@mqgate/storage';
import { DEFAULTS, Gate, resolveOptions, type GateOptions } from '@mqgate/gate';
import { ResumePeer, loginAndDrop } from './helpers/resume-peer';
import { resumeRig } from './helpers/resume-rig';
import { waitUntil } from './helpers/waiters';

const EXPIRED = 'resume token expired or already used: log in again';
const rig = resumeRig();
const url = rig.url;
const LIVE: LiveGate[] = [
  { serverId: 'gate@a', startedAt: 0 },
  { serverId: 'gate@b', startedAt: 0 },
];

const gate = (serverId: string, options: GateOptions = {}): Promise<Gate> => rig.gate(serverId, options);

async function open(g: Gate): Promise<ResumePeer> {
  const c = await ResumePeer.open(url(g));
  rig.track(c);
  return c;
}

/** Logs `userId` in on `g`, drops the connection; resolves once `g` holds it detached. */
async function detached(g: Gate, userId: string): Promise<{ token: string; sessionId: string }> {
  return loginAndDrop(g, await open(g), userId);
}

describe('maxDetached', () => {
  test('default 10 000, 0 = no cap, a negative or fractional value is a RangeError naming it', () => {
    expect(DEFAULTS.maxDetached).toBe(10_000);
    expect(resolveOptions({}).maxDetached).toBe(10_000);
    expect(resolveOptions({ maxDetached: 0 }).maxDetached).toBe(0);
    expect(() => resolveOptions({ maxDetached: -1 })).toThrow(/maxDetached/);
    expect(() => resolveOptions({ maxDetached: 1.5 })).toThrow(RangeError);
  });

  test('at the cap the oldest detached session is dropped: freed, out of the user rig.index, counted, warned once per interval', async () => {
    const warns: Array<[Record<string, unknown>, string]> = [];
    const logger: Logger = { ...silentLogger, warn: (fields, msg) => void warns.push([fields as Record<string, unknown>, msg]) };
    const a = await gate('gate@a', { maxDetached: 2, metricsPort: 0, metricsHost: '127.0.0.1', logger });
    const first = await detached(a, 'u1');
    const second = await detached(a, 'u2');
    expect(a.counts().detached).toBe(2);
    const third = await detached(a, 'u3');
    expect(a.counts().detached).toBe(2);
    await waitUntil('u1 out of the index', async () => (await rig.index.locate(detachedKey('u1'), LIVE)).length === 0);
    expect(await rig.index.locate(detachedKey('u2'), LIVE)).toHaveLength(1);
    await detached(a, 'u4'); // drops u2
    const limitWarns = warns.filter(([f]) => f.kind === 'limit:maxDetached');
    expect(limitWarns).toHaveLength(1); // the second within the interval is suppressed
    expect(limitWarns[0][0]).toMatchObject({ maxDetached: 2, userId: 'u1', sessionId: first.sessionId });
    expect((await a.metrics!.registry.getSingleMetric('mqgate_detached_dropped_total')!.get()).values[0].value).toBe(2);
    const c = await open(a);
    expect((await c.resume(first.token)).Error).toBe(EXPIRED);
    expect((await c.resume(second.token)).Error).toBe(EXPIRED);
    expect((await c.resume(third.token)).Result).toMatchObject({ sessionId: third.sessionId, userId: 'u3' });
    expect(a.counts()).toMatchObject({ bound: 1, detached: 1 });
  });
});

test('the new connection on gate B closes while A hands the session over: B holds it detached, findable from A, and the token still resumes it', async () => {
  // B's view of the index answers its first locate (the resume's) only once the client is gone.
  let release: (() => void) | undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  let holds = 1;
  const slow = {
    claim: rig.index.claim.bind(rig.index),
    release: rig.index.release.bind(rig.index),
    locate: async (userId: string, live: readonly LiveGate[]): Promise<UserLocation[]> => {
      if (holds-- > 0) await held;
      return rig.index.locate(userId, live);
    },
  };
  const a = await gate('gate@a');
  const b = await gate('gate@b', { userIndex: slow });
  const { token, sessionId } = await detached(a, 'ivy');
  a.send(sessionId, 'missed', 'one');
  const c = await open(b);
  const guestGone = new Promise<void>((resolve) => b.once('disconnect', () => resolve()));
  c.publish('gate/HD_resume/1', JSON.stringify({ token }));
  await waitUntil('B is asking the index', () => holds <= 0);
  await c.drop();
  await guestGone;
  release?.();
  await waitUntil('detached on B', () => b.counts().detached === 1);
  expect(a.counts().detached).toBe(0);
  await waitUntil('B in the index', async () => (await rig.index.locate(detachedKey('ivy'), LIVE)).some((l) => l.serverId === 'gate@b'));
  expect(await rig.index.locate(detachedKey('ivy'), LIVE)).toEqual([expect.objectContaining({ serverId: 'gate@b', sessionId })]);
  // resumed from A: found through the index on B, handed over back, the missed push kept
  const events: unknown[] = [];
  a.on('resume', (_s, info) => events.push(info));
  const d = await open(a);
  const answer = await d.resume(token);
  expect(answer.Error).toBe('');
  expect(answer.Result).toMatchObject({ sessionId, userId: 'ivy', replayed: 1, recovered: true });
  await d.next((m) => m.topic === 'missed');
  expect(events).toEqual([expect.objectContaining({ from: 'gate@b', replayed: 1 })]);
  expect(b.counts().detached).toBe(0);
});

test('the stored resume expiry is the detach time + window, not the last write: gate B resumes from the store after gate A died', async () => {
  const storage = new MemoryStorage();
  const window = 1500;
  const a = await gate('gate@a', { storage, resumeWindow: window });
  const b = await gate('gate@b', { storage, resumeWindow: window });
  const c = await open(a);
  const sessionId = ((await c.login('jo')).Result as { sessionId: string }).sessionId;
  const token = await c.token();
  const written = Date.now();
  // Time passes between the last write (the bind) and the drop: the point of this test.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const dropped = Date.now();
  await c.drop();
  await waitUntil('detached', () => a.counts().detached === 1);
  const stored = async () => decodeSession((await storage.query('jo'))!).resume?.expiresAt ?? 0;
  await waitUntil('record rewritten at detach', async () => (await stored()) >= dropped + window);
  expect(await stored()).toBeLessThanOrEqual(Date.now() + window);
  await a.stop();
  // past the expiry the last write would have given
  await waitUntil('past written + window', () => Date.now() > written + window + 50, 5000);
  const d = await open(b);
  const answer = await d.resume(token);
  expect(answer.Error).toBe('');
  expect(answer.Result).toMatchObject({ sessionId, userId: 'jo', recovered: false, replayed: 0 });
  await storage.close();
});

describe('bans and resume', () => {
  test('a ban of the user drops its detached session on this gate: the token no longer resumes it', async () => {
    const a = await gate('gate@a');
    const { token } = await detached(a, 'mallory');
    expect(a.counts().detached).toBe(1);
    await a.ban({ userId: 'mallory' }, 60_000);
    expect(a.counts().detached).toBe(0);
    const c = await open(a);
    expect((await c.resume(token)).Error).toBe('BANNED: the user is banned');
    await a.unban({ userId: 'mallory' });
    expect((await c.resume(token)).Error).toBe(EXPIRED); // dropped at the ban, not only refused
  });

  test('a resume of a banned user on another gate is refused with BANNED and the session stays where it was', async () => {
    // A reads the shared ban list rarely, so only B knows of the ban when the resume comes.
    const a = await gate('gate@a', { banSyncInterval: 3_600_000 });
    const b = await gate('gate@b', { banSyncInterval: 3_600_000 });
    const { token, sessionId } = await detached(a, 'mallory');
    await b.ban({ userId: 'mallory' }, 60_000);
    const c = await open(b);
    expect((await c.resume(token)).Error).toBe('BANNED: the user is banned');
    expect(a.counts().detached).toBe(1);
    expect(b.counts()).toMatchObject({ bound: 0, detached: 0 });
    await b.unban({ userId: 'mallory' });
    const r = await c.resume(token);
    expect(r.Result).toMatchObject({ sessionId, userId: 'mallory' });
  });
});
