/**
 * SessionPersistence on its own: the effects of the state machine (store calls, timers,
 * retries, orphans, per-user write chains) against a CountingStorage (a MemoryStorage that
 * can be made to fail or hold writes) and a FakeClock, so no test sleeps. The real-socket
 * persistence tests and the real-Redis reconnect tests cover the same paths end to end.
 */
import { silentLogger as silent, type Logger } from '@mqgate/rpc';
import type { MqttConnection } from '../src/protocol/connection';
import { GateSession } from '../src/session/session';
import { SessionPersistence, UNSTORED_LOG_CAP, logUnstored, type StorageFailure } from '../src/persistence/persistence';
import { CountingStorage } from './helpers/counting-storage';
import { FakeClock, eventually } from './helpers/fake-clock';
import { turns } from './helpers/waiters';

const INTERVAL = 1000;

let store: CountingStorage;
let clock: FakeClock;
let persistence: SessionPersistence;
let failures: StorageFailure[];
let logs: Array<[level: string, msg: string]>;

beforeEach(() => {
  store = new CountingStorage();
  clock = new FakeClock();
  logs = [];
  const logger: Logger = {
    debug: () => undefined,
    info: (_f, msg) => void logs.push(['info', msg]),
    warn: (_f, msg) => void logs.push(['warn', msg]),
    error: (_f, msg) => void logs.push(['error', msg]),
  };
  persistence = new SessionPersistence(store, { heartbeatInterval: INTERVAL, retryInitialDelay: 50, retryMaxDelay: 200, clock }, () => logger);
  failures = [];
  persistence.on('storageError', (f) => failures.push(f));
});

afterEach(async () => {
  persistence.close();
  await store.close();
});

/** A gate session on a stand-in connection, bound to `userId` (as the SessionManager does before bound()). */
function session(userId: string, settings: Record<string, string> = {}): GateSession {
  const conn = { wire: { remoteAddress: '10.0.0.1', network: 'tcp', userAgent: '' }, clientId: `c-${userId}`, lastSeen: clock.now() };
  const s = new GateSession(conn as unknown as MqttConnection<GateSession>, 'gate-1');
  s.userId = userId;
  s.settings = Object.freeze({ ...settings });
  return s;
}

/** A settings change as SessionManager.changeSettings makes it. */
function change(s: GateSession, set: Record<string, string>): Promise<void> {
  s.settings = Object.freeze({ ...s.settings, ...set });
  return persistence.changed(s);
}

/**
 * Two bound sessions whose change {k: their user id} failed to store, both retrying: the
 * one returned (u1) still connected, the other (u2) closed since, an orphan. The store works again.
 */
async function retryingLiveAndOrphan(): Promise<GateSession> {
  const live = await retrying('u1', { k: 'u1' });
  persistence.closed(await retrying('u2', { k: 'u2' }));
  return live;
}

/** A session bound to `userId` whose change `set` failed to store (it is retrying); the store works again. */
async function retrying(userId: string, set: Record<string, string>): Promise<GateSession> {
  const s = session(userId);
  await persistence.bound(s);
  store.failing = true;
  await expect(change(s, set)).rejects.toThrow('store down');
  store.failing = false;
  return s;
}

/** Holds the store's writes and makes a change: resolves once its write is in flight, with the change's promise. */
async function heldChange(s: GateSession, set: Record<string, string>): Promise<{ stored: Promise<void> }> {
  store.hold();
  const stored = change(s, set);
  await eventually('the write is in flight', () => store.inFlight('storage') === 1);
  return { stored };
}

function phase(s: GateSession): string | undefined {
  return persistence.stateOf(s)?.phase.kind;
}

test('bind: query, merge (live keys win), one write; the store holds the merged map', async () => {
  await store.preload('u1', { a: 'stored', b: 'stored' });
  const s = session('u1', { b: 'live' });
  await persistence.bound(s);
  expect(store.calls.map((c) => [c.op, c.ok])).toEqual([
    ['query', true],
    ['storage', true],
  ]);
  expect({ ...s.settings }).toEqual({ a: 'stored', b: 'live' });
  expect(await store.stored('u1')).toEqual({ a: 'stored', b: 'live' });
  expect(phase(s)).toBe('clean');
  expect(persistence.stats).toEqual({ queries: 1, writes: 1, heartbeats: 0, deletes: 0, errors: 0 });
});

test('coalescing: the changes of one tick share one write, and each resolves once it is stored', async () => {
  const s = session('u1');
  await persistence.bound(s);
  const writes = store.count('storage');
  const pending = [1, 2, 3, 4, 5].map((i) => change(s, { [`k${i}`]: `v${i}` }));
  expect(new Set(pending).size).toBe(1);
  expect(phase(s)).toBe('dirty');
  await Promise.all(pending);
  expect(store.count('storage') - writes).toBe(1);
  expect(await store.stored('u1')).toEqual({ k1: 'v1', k2: 'v2', k3: 'v3', k4: 'v4', k5: 'v5' });
  expect(phase(s)).toBe('clean');
});

test('a change made while a write is in flight gets the next write, behind it', async () => {
  const s = session('u1');
  await persistence.bound(s);
  const { stored: first } = await heldChange(s, { k: '1' });
  const second = change(s, { k: '2' });
  expect(persistence.stateOf(s)?.phase).toEqual({ kind: 'writing', again: true });
  store.release();
  await Promise.all([first, second]);
  expect(
    store.calls
      .filter((c) => c.op === 'storage')
      .slice(-2)
      .map((c) => c.settings?.k),
  ).toEqual(['1', '2']);
});

test('retry with backoff: the delay doubles from retryInitialDelay to retryMaxDelay, then resets after a success', async () => {
  const s = session('u1');
  await persistence.bound(s);
  store.failing = true;
  await expect(change(s, { k: 'v' })).rejects.toThrow('store down');
  expect(phase(s)).toBe('retrying');
  const delays = [clock.pending()];
  for (let attempt = 2; attempt <= 5; attempt++) {
    clock.advance(clock.pending()[0] - 1);
    expect(store.count('storage')).toBe(attempt); // a timer never fires early
    clock.advance(1);
    await eventually(`failed attempt ${attempt}`, () => store.calls.filter((c) => c.ok === false).length === attempt);
    delays.push(clock.pending());
  }
  expect(delays).toEqual([[50], [100], [200], [200], [200]]);
  expect(failures.map((f) => f.operation)).toEqual(Array(5).fill('storage'));
  expect(persistence.stats.errors).toBe(5);
  expect(logs.filter(([level]) => level === 'warn')).toHaveLength(1); // once per episode

  store.failing = false;
  clock.advance(200);
  await eventually('stored', async () => (await store.stored('u1'))?.k === 'v');
  expect(phase(s)).toBe('clean');
  expect(clock.pending()).toEqual([]);
  expect(logs.filter(([level]) => level === 'info')).toHaveLength(1); // the recovery

  store.failing = true;
  await expect(change(s, { k: 'w' })).rejects.toThrow('store down');
  expect(clock.pending()).toEqual([50]); // a new episode starts again from the initial delay
});

test('a change while retrying is the next attempt: the timer is cancelled, and re-armed only if it fails', async () => {
  const s = await retrying('u1', { a: '1' });
  await change(s, { b: '2' });
  expect(clock.pending()).toEqual([]);
  expect(await store.stored('u1')).toEqual({ a: '1', b: '2' });
});

test('a failed query at bind is retried before any write: stored keys are merged, never overwritten', async () => {
  await store.preload('u1', { a: 'stored', b: 'stored' });
  store.failing = true;
  const s = session('u1', { b: 'live' });
  await expect(persistence.bound(s)).rejects.toThrow('store down');
  await expect(change(s, { c: 'live' })).rejects.toThrow('store down'); // the next attempt: a query again
  expect(clock.pending()).toEqual([100]);
  clock.advance(100);
  await eventually('a third query', () => store.calls.filter((c) => c.ok === false).length === 3);
  expect(new Set(store.calls.map((c) => c.op))).toEqual(new Set(['query']));
  expect(persistence.stateOf(s)).toMatchObject({ phase: { kind: 'retrying' }, restored: false });

  store.failing = false;
  clock.advance(clock.pending()[0]);
  await eventually('stored', () => phase(s) === 'clean');
  expect(store.calls.filter((c) => c.ok).map((c) => c.op)).toEqual(['query', 'storage']);
  expect(await store.stored('u1')).toEqual({ a: 'stored', b: 'live', c: 'live' });
  expect({ ...s.settings }).toEqual({ a: 'stored', b: 'live', c: 'live' });
});

test('a session closed with unstored changes is an orphan: its snapshot at close is retried until stored, then released', async () => {
  const s = session('u1');
  await persistence.bound(s);
  store.failing = true;
  await expect(change(s, { a: '1' })).rejects.toThrow('store down');
  persistence.closed(s);
  expect(persistence.stateOf(s)).toBeUndefined();
  s.settings = Object.freeze({ a: '1', late: 'not the user' }); // after close: not the user's
  expect(await persistence.changed(s)).toBeUndefined();
  clock.advance(50);
  await eventually('a retry after the close', () => store.calls.filter((c) => c.ok === false).length === 2);
  store.failing = false;
  clock.advance(100);
  await eventually('stored', async () => (await store.stored('u1'))?.a === '1');
  expect(await store.stored('u1')).toEqual({ a: '1' });
  expect(clock.pending()).toEqual([]);
  // Released: a later bind of u1 merges nothing from it (only what the store holds).
  const again = session('u1');
  await persistence.bound(again);
  expect({ ...again.settings }).toEqual({ a: '1' });
});

test("an orphan is merged into the user's next bind, live keys winning, and its retries stop", async () => {
  const s1 = session('u1');
  await persistence.bound(s1);
  await change(s1, { a: '1' });
  store.failing = true;
  await expect(change(s1, { b: '2', c: 'old' })).rejects.toThrow('store down');
  persistence.closed(s1);

  const s2 = session('u1', { c: 'new' });
  await expect(persistence.bound(s2)).rejects.toThrow('store down');
  expect({ ...s2.settings }).toEqual({ a: '1', b: '2', c: 'new' }); // the orphan's snapshot under the live keys
  expect(clock.pending()).toEqual([50]); // s2's retry only: the orphan's timer was cancelled
  store.failing = false;
  clock.advance(50);
  await eventually('stored', () => phase(s2) === 'clean');
  expect(await store.stored('u1')).toEqual({ a: '1', b: '2', c: 'new' });
  expect({ ...s2.settings }).toEqual({ a: '1', b: '2', c: 'new' });
  expect(store.calls.filter((c) => c.op === 'storage' && c.ok).map((c) => c.settings)).toEqual([{}, { a: '1' }, { a: '1', b: '2', c: 'new' }]);
});

test('a plain unbind awaits the write scheduled in its tick, and stores nothing after it', async () => {
  const s = session('u1');
  await persistence.bound(s);
  const set = change(s, { k: 'acked' });
  await persistence.unbound(s, 'u1', false);
  await set;
  expect(await store.stored('u1')).toEqual({ k: 'acked' });
  expect(persistence.stateOf(s)).toBeUndefined();
  const calls = store.count();
  s.userId = '';
  await change(s, { k: 'guest' });
  expect(store.count()).toBe(calls);
  expect(store.count('delete')).toBe(0);
});

test('unbind with delete (logout): the write in flight finishes, then the stored session is deleted; a failed delete throws and is reported', async () => {
  const s = session('u1');
  await persistence.bound(s);
  const { stored: set } = await heldChange(s, { k: 'v' });
  const unbound = persistence.unbound(s, 'u1', true);
  await turns(5);
  expect(store.count('delete')).toBe(0); // waits for the write in flight
  store.release();
  await Promise.all([set, unbound]);
  expect(store.calls.map((c) => c.op).slice(-2)).toEqual(['storage', 'delete']);
  expect(await store.stored('u1')).toBeNull();
  expect(persistence.stats.deletes).toBe(1);

  const s2 = session('u2');
  await persistence.bound(s2);
  store.failing = true;
  await expect(persistence.unbound(s2, 'u2', true)).rejects.toThrow('store down');
  expect(failures.map((f) => [f.operation, f.userId])).toEqual([['delete', 'u2']]);
  expect(clock.pending()).toEqual([]); // a delete is not retried
});

test('heartbeat: only when due (heartbeatInterval after the last write or heartbeat) and only after traffic', async () => {
  const s = session('u1');
  await persistence.bound(s); // the write restarts the heartbeat clock
  const t0 = clock.now();
  const conn = s.conn as { lastSeen: number };
  conn.lastSeen = t0 + 10;
  persistence.tick(s, t0 + INTERVAL - 1);
  expect(store.count('heartbeat')).toBe(0); // not due
  conn.lastSeen = t0;
  persistence.tick(s, t0 + INTERVAL);
  expect(store.count('heartbeat')).toBe(0); // no traffic since
  conn.lastSeen = t0 + 500;
  persistence.tick(s, t0 + INTERVAL);
  persistence.tick(s, t0 + INTERVAL); // in flight: no second one
  await eventually('the heartbeat', () => store.calls.some((c) => c.op === 'heartbeat' && c.ok));
  expect(store.count('heartbeat')).toBe(1);
  conn.lastSeen = t0 + INTERVAL + 1;
  persistence.tick(s, t0 + 2 * INTERVAL - 1);
  expect(store.count('heartbeat')).toBe(1); // due one interval after the last heartbeat
  persistence.tick(s, t0 + 2 * INTERVAL);
  await eventually('the second heartbeat', () => store.calls.filter((c) => c.op === 'heartbeat' && c.ok).length === 2);
  expect(persistence.stats.heartbeats).toBe(2);

  // A guest is never ticked into a heartbeat; a failed heartbeat is reported, not retried.
  const guest = session('');
  persistence.tick(guest, t0 + 10 * INTERVAL);
  store.failing = true;
  conn.lastSeen = t0 + 3 * INTERVAL;
  persistence.tick(s, t0 + 3 * INTERVAL);
  await eventually('the failed heartbeat', () => failures.length === 1);
  expect(failures[0]).toMatchObject({ operation: 'heartbeat', userId: 'u1' });
  expect(store.calls.filter((c) => c.userId === '')).toEqual([]);
  expect(clock.pending()).toEqual([]);
  expect(phase(s)).toBe('clean');
});

test('a tick due for a session with unstored changes writes instead of heartbeating', async () => {
  const s = await retrying('u1', { k: 'v' });
  (s.conn as { lastSeen: number }).lastSeen = clock.now() + 1;
  persistence.tick(s, clock.now() + INTERVAL);
  await eventually('stored', async () => (await store.stored('u1'))?.k === 'v');
  expect(store.count('heartbeat')).toBe(0);
  expect(clock.pending()).toEqual([]);
});

test('settle at stop: an attempt at once for live sessions and orphans with unstored changes, without waiting for their timers', async () => {
  const live = await retryingLiveAndOrphan();
  const writes = store.count('storage');
  expect(await persistence.settle(clock.now() + 1000)).toEqual([]);
  expect(store.count('storage') - writes).toBe(2);
  expect(await store.stored('u1')).toEqual({ k: 'u1' });
  expect(await store.stored('u2')).toEqual({ k: 'u2' });
  expect(clock.pending()).toEqual([]);
  expect(await persistence.settle(clock.now() + 1000)).toEqual([]); // nothing left to store
  expect(store.count('storage') - writes).toBe(2);
  expect(phase(live)).toBe('clean');
});

/** Runs settle(deadline) while moving the fake clock on 10 ms at a time; `during` runs after each step. */
async function settleDriven(deadlineIn: number, during: () => void = () => undefined) {
  let result: Awaited<ReturnType<SessionPersistence['settle']>> | undefined;
  void persistence.settle(clock.now() + deadlineIn).then((r) => (result = r));
  for (let i = 0; result === undefined && i < 1000; i++) {
    await turns(3);
    clock.advance(10);
    during();
  }
  return result;
}

test('settle retries every min(retryInitialDelay, 250) ms until the deadline, then returns exactly the sessions not stored (what was lost)', async () => {
  const live = await retryingLiveAndOrphan();
  const stored = session('u3');
  await persistence.bound(stored);
  store.failing = true;
  const writes = store.count('storage');
  const unstored = await settleDriven(500);
  // An attempt at once, then one per 50 ms (retryInitialDelay) for each of the two, for 500 ms.
  const attempts = store.count('storage') - writes;
  expect(attempts).toBeGreaterThanOrEqual(2 * 8);
  expect(attempts).toBeLessThanOrEqual(2 * 12);
  expect(unstored).toEqual([
    { userId: 'u1', sessionId: live.sessionId, lost: 'settings change', keys: 1 },
    { userId: 'u2', sessionId: expect.any(String), lost: "closed connection's changes", keys: 1 },
  ]);
  expect(clock.pending().length).toBeLessThanOrEqual(2); // only the entries' own retry timers
});

test('settle: the store back before the deadline stores everything and returns []', async () => {
  await retryingLiveAndOrphan();
  store.failing = true;
  let steps = 0;
  const unstored = await settleDriven(5000, () => {
    if (++steps === 30) store.failing = false; // 300 ms into the stop
  });
  expect(unstored).toEqual([]);
  expect(steps).toBeLessThan(60);
  expect(await store.stored('u1')).toEqual({ k: 'u1' });
  expect(await store.stored('u2')).toEqual({ k: 'u2' });
});

test('logUnstored: one error line per user up to the cap, then one line with the count', () => {
  const lines: Array<[object, string]> = [];
  const logger: Logger = { ...silent, error: (f, msg) => void lines.push([f, msg]) };
  const u = (i: number) => ({ userId: `u${i}`, sessionId: `s${i}`, lost: 'settings change' as const, keys: 1 });
  logUnstored(logger, [u(1), u(2), u(3)], 2);
  expect(lines.map(([f]) => f)).toEqual([u(1), u(2), { unstored: 3, notListed: 1 }]);
  lines.length = 0;
  logUnstored(logger, [u(1)], 2);
  expect(lines).toHaveLength(1);
  expect(UNSTORED_LOG_CAP).toBe(100);
});

test('close stops everything: timers cancelled, no later write, retry, heartbeat or orphan', async () => {
  const live = await retryingLiveAndOrphan();
  expect(clock.pending()).toEqual([50, 50]);
  persistence.close();
  expect(clock.pending()).toEqual([]);
  const calls = store.count();
  await change(live, { k: '2' });
  (live.conn as { lastSeen: number }).lastSeen = clock.now() + 1;
  persistence.tick(live, clock.now() + INTERVAL);
  persistence.closed(live);
  expect(await persistence.settle(clock.now() + 1000)).toEqual([]); // nothing live is left to store
  const late = session('u3');
  await persistence.bound(late);
  clock.advance(10 * INTERVAL);
  await turns(5);
  expect(store.count()).toBe(calls);
  expect(persistence.stateOf(late)).toBeUndefined();
});

test('while the store is failing, a change made during a write in flight rejects when that write fails, not after its own attempt too', async () => {
  const s = await retrying('u1', { k: '1' });
  const pending: Array<(err?: Error) => void> = [];
  store.storage = () => new Promise<void>((resolve, reject) => pending.push((err) => (err ? reject(err) : resolve())));
  clock.advance(50); // the retry starts and hangs in the store
  await eventually('the retry in flight', () => pending.length === 1);
  let outcome: string | undefined;
  change(s, { k: '2' }).then(
    () => (outcome = 'stored'),
    (err: Error) => (outcome = err.message),
  );
  await turns(5);
  expect(outcome).toBeUndefined();
  pending[0](new Error('still down'));
  await eventually('the change answered', () => outcome !== undefined);
  expect(outcome).toBe('still down');
  // Its own write is scheduled behind the failed one, and still retried.
  await eventually('the next attempt', () => pending.length === 2);
  pending[1]();
  await eventually('clean again', () => phase(s) === 'clean');
});

test('writes for one user never overlap, whichever session they come from, and land in order', async () => {
  const s1 = session('u1');
  const s2 = session('u1');
  await persistence.bound(s1);
  await persistence.bound(s2);
  let inFlight = 0;
  let maxInFlight = 0;
  const storage = store.storage.bind(store);
  store.storage = async (data) => {
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    try {
      await storage(data);
    } finally {
      inFlight--;
    }
  };
  store.hold();
  const first = change(s1, { k: 'old' });
  await eventually('the first write is in flight', () => inFlight === 1);
  const second = change(s2, { k: 'new' });
  await turns(5);
  expect(inFlight).toBe(1); // the second waits for the first
  store.release();
  await Promise.all([first, second]);
  expect(maxInFlight).toBe(1);
  expect(
    store.calls
      .filter((c) => c.op === 'storage')
      .slice(-2)
      .map((c) => c.settings?.k),
  ).toEqual(['old', 'new']);
  expect(await store.stored('u1')).toEqual({ k: 'new' });
});
