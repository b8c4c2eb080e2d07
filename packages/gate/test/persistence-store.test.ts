/**
 * Session persistence through a StorageHandler (mqant §2: Query + merge on Bind, Storage on
 * every change while bound, Delete on explicit logout only), with real MQTT clients against
 * the gate and a counting decorator around a real MemoryStorage.
 */
import { once } from 'node:events';
import { decodeSession, type SessionData } from '@mqgate/rpc';
import { ok, startPersistenceApp, stopPersistenceApps, type Step } from './helpers/persistence-app';
import { waitUntil } from './helpers/waiters';

afterEach(stopPersistenceApps);

// ---------------------------------------------------------------- Bind and restore

test('Bind with nothing stored: one query, then one write; the Bind answer carries the live settings', async () => {
  const { h, store, peer } = await startPersistenceApp();
  const p = await peer();
  const r = await p.run([
    ['set', 'x', '1'],
    ['bind', 'u1'],
  ]);
  r.results.forEach(ok);
  expect(r.session.userId).toBe('u1');
  expect(r.session.settings).toEqual({ x: '1' });
  expect(store.calls.map((c) => [c.op, c.userId, c.ok])).toEqual([
    ['query', 'u1', true],
    ['storage', 'u1', true],
  ]);
  expect(await store.stored('u1')).toEqual({ x: '1' });
  expect(h.gate.stats().storage).toMatchObject({ queries: 1, writes: 1, heartbeats: 0, deletes: 0, errors: 0 });
});

test('Restore: stored {a,b} merged at Bind, the live key wins, guest changes are not persisted; the store holds the merged map', async () => {
  const { h, store, peer } = await startPersistenceApp();
  await store.preload('u1', { a: '1', b: '2' });
  const p = await peer();
  const g = await p.run([
    ['set', 'b', 'live'],
    ['setBatch', { g: 'guest' }],
  ]);
  g.results.forEach(ok);
  expect(store.count()).toBe(0); // a guest is never stored
  const r = await p.run([['bind', 'u1']]);
  r.results.forEach(ok);
  expect(r.session.settings).toEqual({ a: '1', b: 'live', g: 'guest' });
  // What the next request's handler sees (HD-visible session) and the gate's own copy.
  expect((await p.snap()).settings).toEqual({ a: '1', b: 'live', g: 'guest' });
  expect(h.gate.getSession(p.sid)?.settings).toEqual({ a: '1', b: 'live', g: 'guest' });
  expect(await store.stored('u1')).toEqual({ a: '1', b: 'live', g: 'guest' });
  expect([store.count('query', 'u1'), store.count('storage', 'u1')]).toEqual([1, 1]);
});

// ---------------------------------------------------------------- changes while bound

test('every change while bound is stored before its verb resolves: set, setPush, setBatch, push of local edits, remove', async () => {
  const { store, peer } = await startPersistenceApp();
  const p = await peer();
  (await p.run([['bind', 'u1']])).results.forEach(ok);

  (await p.run([['set', 'k1', 'v1']])).results.forEach(ok);
  expect(await store.stored('u1')).toEqual({ k1: 'v1' });

  (await p.run([['setPush', 'k2', 'v2']])).results.forEach(ok);
  expect(await store.stored('u1')).toEqual({ k1: 'v1', k2: 'v2' });

  (await p.run([['setBatch', { k3: 'v3', k1: 'v1b' }]])).results.forEach(ok);
  expect(await store.stored('u1')).toEqual({ k1: 'v1b', k2: 'v2', k3: 'v3' });

  const pushed = await p.run([['setLocal', 'k4', 'v4'], ['removeLocal', 'k2'], ['push']]);
  pushed.results.forEach(ok);
  expect(pushed.session.settings).toEqual({ k1: 'v1b', k3: 'v3', k4: 'v4' });
  expect(await store.stored('u1')).toEqual({ k1: 'v1b', k3: 'v3', k4: 'v4' });

  (await p.run([['remove', 'k3']])).results.forEach(ok);
  expect(await store.stored('u1')).toEqual({ k1: 'v1b', k4: 'v4' });

  // A change that changes nothing costs nothing.
  const writes = store.count('storage');
  (
    await p.run([
      ['set', 'k1', 'v1b'],
      ['remove', 'nope'],
    ])
  ).results.forEach(ok);
  expect(store.count('storage')).toBe(writes);
});

test('coalescing: 5 set() calls issued in the same tick cost ONE write, and all 5 resolve', async () => {
  const { h, store, peer } = await startPersistenceApp();
  const p = await peer();
  (await p.run([['bind', 'u1']])).results.forEach(ok);
  const before = store.count('storage');
  const r = await p.run(
    [1, 2, 3, 4, 5].map((i) => ['set', `k${i}`, `v${i}`] as Step),
    true,
  );
  expect(r.results).toEqual(Array(5).fill({ ok: true, value: null }));
  expect(store.count('storage') - before).toBe(1);
  expect(await store.stored('u1')).toEqual({ k1: 'v1', k2: 'v2', k3: 'v3', k4: 'v4', k5: 'v5' });
  expect(h.gate.stats().storage?.writes).toBe(store.count('storage'));
});

test('a change issued while a write is in progress gets the next write; order preserved, the last value is stored', async () => {
  const { h, store, peer } = await startPersistenceApp();
  const p = await peer();
  (await p.run([['bind', 'u1']])).results.forEach(ok);
  const before = store.count('storage');
  store.hold();
  let firstDone = false;
  let laterDone = 0;
  const first = p.run([['set', 'k', '1']]).then((r) => ((firstDone = true), r));
  await waitUntil('the first write is in progress', () => store.inFlight('storage') === 1);
  const later = [p.run([['set', 'k', '2']]), p.run([['setBatch', { k: '3', other: 'x' }]])].map((pr) => pr.then((r) => (laterDone++, r)));
  // Both later changes are live on the gate while the first write is still held.
  await waitUntil('later changes live on the gate', () => {
    const s = h.gate.getSession(p.sid)?.settings;
    return s?.k === '3' && s?.other === 'x';
  });
  expect([firstDone, laterDone, store.inFlight('storage')]).toEqual([false, 0, 1]);
  store.release();
  const results = await Promise.all([first, ...later]);
  for (const r of results) r.results.forEach(ok);
  // The held write carried k=1; the changes made during it share one more write.
  expect(
    store.calls
      .filter((c) => c.op === 'storage')
      .slice(-2)
      .map((c) => c.settings?.k),
  ).toEqual(['1', '3']);
  expect(store.count('storage') - before).toBe(2);
  expect(await store.stored('u1')).toEqual({ k: '3', other: 'x' });
});

// ---------------------------------------------------------------- unbind, delete, disconnect

test('a plain unbind keeps what is stored; unbind({delete:true}) deletes it', async () => {
  const { store, peer } = await startPersistenceApp();
  const p = await peer();
  (await p.run([['bind', 'u1'], ['set', 'k', 'v'], ['unbind']])).results.forEach(ok);
  expect(store.count('delete')).toBe(0);
  expect(await store.stored('u1')).toEqual({ k: 'v' });

  (
    await p.run([
      ['bind', 'u1'],
      ['unbind', { delete: true }],
    ])
  ).results.forEach(ok);
  expect(store.calls.filter((c) => c.op === 'delete').map((c) => [c.userId, c.ok])).toEqual([['u1', true]]);
  expect(await store.stored('u1')).toBeNull();
});

test('deleteOnUnbind: true deletes on a plain unbind', async () => {
  const { store, peer } = await startPersistenceApp({ deleteOnUnbind: true });
  const p = await peer();
  (
    await p.run([
      ['bind', 'u1'],
      ['set', 'k', 'v'],
    ])
  ).results.forEach(ok);
  expect(await store.stored('u1')).toEqual({ k: 'v' });
  (await p.run([['unbind']])).results.forEach(ok);
  expect(store.calls.filter((c) => c.op === 'delete').map((c) => [c.userId, c.ok])).toEqual([['u1', true]]);
  expect(await store.stored('u1')).toBeNull();
});

test('a disconnect (socket destroyed, no DISCONNECT) with resume off neither writes nor deletes', async () => {
  const { h, store, peer } = await startPersistenceApp({ resumeWindow: 0 });
  const p = await peer();
  (
    await p.run([
      ['bind', 'u1'],
      ['set', 'k', 'v'],
    ])
  ).results.forEach(ok);
  const calls = store.count();
  const gone = once(h.gate, 'disconnect');
  p.kill();
  const [, reason] = (await gone) as [SessionData, string];
  expect(reason).toMatch(/connection lost/);
  // A round trip through the gate on another connection, so anything it scheduled has run.
  const other = await peer();
  expect(await other.request('HD_echo')).toBe('pong');
  expect(store.count()).toBe(calls);
  expect(await store.stored('u1')).toEqual({ k: 'v' });
});

test('with resume on, a disconnect that detaches the session writes its record once (resume expiry = detach time + window), deletes nothing', async () => {
  const { h, store, peer } = await startPersistenceApp({ resumeWindow: 60_000 });
  const p = await peer();
  (
    await p.run([
      ['bind', 'u1'],
      ['set', 'k', 'v'],
    ])
  ).results.forEach(ok);
  const before = store.calls.length;
  const gone = once(h.gate, 'disconnect');
  p.kill();
  await gone;
  const dropped = Date.now();
  const other = await peer();
  expect(await other.request('HD_echo')).toBe('pong');
  await waitUntil('the record rewritten', () => store.calls.slice(before).some((c) => c.op === 'storage'));
  expect(store.calls.slice(before).map((c) => [c.op, c.userId])).toEqual([['storage', 'u1']]);
  expect(await store.stored('u1')).toEqual({ k: 'v' });
  const record = decodeSession((await store.query('u1'))!);
  expect(record.resume?.expiresAt).toBeGreaterThanOrEqual(dropped - 1000 + 60_000);
  expect(record.resume?.expiresAt).toBeLessThanOrEqual(Date.now() + 60_000);
});

test('after unbind, changes are not persisted', async () => {
  const { store, peer } = await startPersistenceApp();
  const p = await peer();
  (await p.run([['bind', 'u1'], ['set', 'k', 'v'], ['unbind']])).results.forEach(ok);
  const calls = store.count();
  const r = await p.run([
    ['set', 'k', 'after'],
    ['setBatch', { z: '1' }],
    ['remove', 'k'],
  ]);
  r.results.forEach(ok);
  expect(r.session).toMatchObject({ userId: '', settings: { z: '1' } });
  expect(store.count()).toBe(calls);
  expect(await store.stored('u1')).toEqual({ k: 'v' });
});

test('a set issued in the same tick as an unbind, and acknowledged, is stored (a resolved verb means stored)', async () => {
  const { store, peer } = await startPersistenceApp();
  const p = await peer();
  (
    await p.run([
      ['bind', 'u1'],
      ['set', 'k', 'before'],
    ])
  ).results.forEach(ok);
  // Both verbs reach the gate before the next write runs: set first, unbind second.
  const r = await p.run([['set', 'k', 'acked'], ['unbind']], true);
  r.results.forEach(ok);
  // The Set was made while bound and resolved successfully, so the store must have it.
  expect({ setResolved: r.results[0].ok, stored: (await store.stored('u1'))?.k }).toEqual({ setResolved: true, stored: 'acked' });
});

test('rebinding the connection to another user: u1 data stays as it was, u2 is restored and stored', async () => {
  const { store, peer } = await startPersistenceApp();
  await store.preload('u2', { q: 'u2-stored', p: 'u2-old' });
  const p = await peer();
  (
    await p.run([
      ['bind', 'u1'],
      ['set', 'p', 'u1-val'],
    ])
  ).results.forEach(ok);
  expect(await store.stored('u1')).toEqual({ p: 'u1-val' });
  const u1Writes = store.count('storage', 'u1');

  const r = await p.run([['bind', 'u2']]);
  r.results.forEach(ok);
  // Settings stay with the connection (live wins) and u2's stored keys are merged in.
  expect(r.session).toMatchObject({ userId: 'u2', settings: { p: 'u1-val', q: 'u2-stored' } });
  expect(await store.stored('u2')).toEqual({ p: 'u1-val', q: 'u2-stored' });
  expect(store.count('query', 'u2')).toBe(1);

  (await p.run([['set', 'r', 'later']])).results.forEach(ok);
  expect(await store.stored('u2')).toEqual({ p: 'u1-val', q: 'u2-stored', r: 'later' });
  expect(await store.stored('u1')).toEqual({ p: 'u1-val' });
  expect(store.count('storage', 'u1')).toBe(u1Writes);
  expect(store.count('delete')).toBe(0);
});

test('a gate without storage: bind and set work, stats().storage is undefined', async () => {
  const { h, store, peer } = await startPersistenceApp({}, false);
  const p = await peer();
  const r = await p.run([
    ['set', 'a', '1'],
    ['bind', 'u1'],
    ['set', 'b', '2'],
    ['unbind', { delete: true }],
    ['bind', 'u1'],
  ]);
  r.results.forEach(ok);
  expect(r.session).toMatchObject({ userId: 'u1', settings: { a: '1', b: '2' } });
  expect(h.gate.persistence).toBeUndefined();
  expect(h.gate.stats().storage).toBeUndefined();
  expect(store.count()).toBe(0);
});

test('reconnect within one gate: login u1, set k=v, socket destroyed, new client binds u1 → k=v is back', async () => {
  const { h, store, peer } = await startPersistenceApp();
  const p1 = await peer();
  (
    await p1.run([
      ['bind', 'u1'],
      ['set', 'k', 'v'],
    ])
  ).results.forEach(ok);
  const gone = once(h.gate, 'disconnect');
  p1.kill();
  await gone;
  expect(h.gate.counts().total).toBe(0);

  const p2 = await peer();
  expect(p2.sid).not.toBe(p1.sid);
  expect((await p2.snap()).settings).toEqual({}); // a new connection starts as an empty guest
  const r = await p2.run([['bind', 'u1']]);
  r.results.forEach(ok);
  expect(r.session).toMatchObject({ userId: 'u1', settings: { k: 'v' } });
  expect((await p2.snap()).settings).toEqual({ k: 'v' });
  expect(store.count('query', 'u1')).toBe(2);
});

test('writes for one user never overlap: set, logout and login again within one store round trip land in order', async () => {
  const { h, store, peer } = await startPersistenceApp();
  const p = await peer();
  (await p.run([['bind', 'u9']])).results.forEach(ok);
  store.hold();
  const first = p.run([['set', 'k', 'old']]);
  await waitUntil('the first write is in progress', () => store.inFlight('storage') === 1);
  // logout and login again on the same connection, then a newer value, while that write is held
  const unbound = once(h.gate, 'unbind');
  const second = p.run([['unbind'], ['bind', 'u9'], ['set', 'k', 'new']]);
  let maxInFlight = 1;
  const watch = setInterval(() => (maxInFlight = Math.max(maxInFlight, store.inFlight('storage'))), 1);
  await unbound;
  await waitUntil('the new bind is under way', () => h.gate.sessionsOfUser('u9').length === 1);
  store.release();
  (await first).results.forEach(ok);
  (await second).results.forEach(ok);
  clearInterval(watch);
  expect(maxInFlight).toBe(1);
  expect(await store.stored('u9')).toMatchObject({ k: 'new' });
});
