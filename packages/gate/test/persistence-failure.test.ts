/**
 * Session persistence when the store fails: the live session keeps every change, the verb
 * rejects with code STORAGE, the gate emits `storageError`, counts it, keeps the connection,
 * retries with backoff until the store takes the change, and never overwrites stored data
 * with a session whose restore (Query at Bind) has not happened yet. Real MQTT clients; the
 * broken store is a CountingStorage switched to `failing`.
 */
import { once } from 'node:events';
import { CLIENT_TEXTS } from '@mqgate/rpc';
import type { StorageFailure } from '@mqgate/gate';
import type { CountingStorage } from './helpers/counting-storage';
import type { Harness } from './helpers/harness';
import { ok, startPersistenceApp, stopPersistenceApps } from './helpers/persistence-app';
import { waitUntil } from './helpers/waiters';

afterEach(stopPersistenceApps);

/** Records the gate's storageError events. */
function failures(h: Harness): StorageFailure[] {
  const list: StorageFailure[] = [];
  h.gate.on('storageError', (f) => list.push(f));
  return list;
}

function failedWrites(store: CountingStorage, userId: string): number[] {
  return store.calls.filter((c) => c.op === 'storage' && c.userId === userId && c.ok === false).map((c) => c.at);
}

// ---------------------------------------------------------------- a write fails

test('failing store: set rejects STORAGE_UNAVAILABLE with its client text, the value stays live, storageError is emitted and counted, the connection keeps working, and the gate stores it once the store is back (backoff, no client action)', async () => {
  const { h, store, peer } = await startPersistenceApp({ storageRetryDelay: 50 });
  const events = failures(h);
  const p = await peer();
  (
    await p.run([
      ['bind', 'u1'],
      ['set', 'a', '1'],
    ])
  ).results.forEach(ok); // acknowledged while healthy
  expect(await store.stored('u1')).toEqual({ a: '1' });

  store.failing = true;
  const r = await p.run([['set', 'b', '2']]);
  expect(r.results[0]).toMatchObject({ ok: false, code: 'STORAGE_UNAVAILABLE' });
  const msg = (r.results[0] as { message: string }).message;
  // A client text: the code, what is true, and nothing of the cause (it is in the log and the event).
  expect(msg).toBe(CLIENT_TEXTS.STORAGE_UNAVAILABLE);
  expect(msg).not.toContain('store down');
  expect(msg).not.toContain(p.sid.slice(0, 8));
  // The live session keeps the value: the handler's refreshed copy, the next request's copy, the gate's.
  expect(r.session.settings).toEqual({ a: '1', b: '2' });
  expect((await p.snap()).settings).toEqual({ a: '1', b: '2' });
  expect(h.gate.getSession(p.sid)?.settings).toEqual({ a: '1', b: '2' });

  expect(events.length).toBeGreaterThanOrEqual(1);
  expect(events[0]).toMatchObject({ operation: 'storage', userId: 'u1', sessionId: p.sid });
  expect(events[0].error).toBeInstanceOf(Error);
  expect(events[0].error.message).toContain('store down');
  expect(h.gate.stats().storage?.errors).toBeGreaterThanOrEqual(1);

  // The connection stays open and requests that do not touch the store keep working.
  expect(p.client.connected).toBe(true);
  expect(await p.request('HD_echo')).toBe('pong');
  expect(h.gate.counts()).toEqual({ total: 1, bound: 1, guests: 0, detached: 0 });

  // Retries back off: 50, 100, 200 ms between attempts (timers never fire early; late is fine).
  await waitUntil('4 failed write attempts', () => failedWrites(store, 'u1').length >= 4, 5000);
  const at = failedWrites(store, 'u1');
  const gaps = at.slice(1, 4).map((t, i) => t - at[i]);
  expect(gaps[0]).toBeGreaterThanOrEqual(45);
  expect(gaps[1]).toBeGreaterThanOrEqual(90);
  expect(gaps[2]).toBeGreaterThanOrEqual(180);
  expect(h.gate.stats().storage?.errors).toBe(store.calls.filter((c) => c.ok === false).length);
  expect(await store.stored('u1')).toEqual({ a: '1' }); // nothing reached the store meanwhile

  store.failing = false;
  await waitUntil('the store holds b=2', async () => (await store.stored('u1'))?.b === '2', 5000);
  // Nothing acknowledged earlier is missing.
  expect(await store.stored('u1')).toEqual({ a: '1', b: '2' });
  expect(p.client.connected).toBe(true);
});

test('after a recovery the backoff starts again from storageRetryDelay', async () => {
  const { store, peer } = await startPersistenceApp({ storageRetryDelay: 50 });
  const p = await peer();
  (await p.run([['bind', 'u1']])).results.forEach(ok);
  store.failing = true;
  expect((await p.run([['set', 'b', '1']])).results[0]).toMatchObject({ ok: false, code: 'STORAGE_UNAVAILABLE' });
  await waitUntil('4 failed attempts', () => failedWrites(store, 'u1').length >= 4);
  store.failing = false;
  await waitUntil('stored', async () => (await store.stored('u1'))?.b === '1');

  store.failing = true;
  const before = failedWrites(store, 'u1').length;
  expect((await p.run([['set', 'c', '1']])).results[0]).toMatchObject({ ok: false, code: 'STORAGE_UNAVAILABLE' });
  await waitUntil('2 more failed attempts', () => failedWrites(store, 'u1').length >= before + 2);
  const at = failedWrites(store, 'u1').slice(before);
  // 50 ms again, not the 800 ms that carrying on the earlier episode's backoff would give.
  expect(at[1] - at[0]).toBeLessThan(400);
  store.failing = false;
  await waitUntil('stored', async () => (await store.stored('u1'))?.c === '1');
  expect(await store.stored('u1')).toEqual({ b: '1', c: '1' });
});

// ---------------------------------------------------------------- the query at Bind fails

test('failing query at Bind: bind resolves with a STORAGE_UNAVAILABLE warning, the session is bound; once the store is back the stored keys are merged before the first write, never overwritten', async () => {
  const { h, store, peer } = await startPersistenceApp({ storageRetryDelay: 50 });
  const events = failures(h);
  await store.preload('u1', { a: '1', b: '2' });
  const p = await peer();
  (await p.run([['set', 'b', 'live']])).results.forEach(ok);

  store.failing = true;
  const r = await p.run([
    ['bind', 'u1'],
    ['isConnect', 'u1'],
    ['set', 'c', '3'],
  ]);
  // Bound on the gate: Session.bind resolves, with the client text as a warning (not an error).
  expect(r.results[0]).toEqual({ ok: true, value: { warning: CLIENT_TEXTS.STORAGE_UNAVAILABLE_BIND } });
  expect(r.results[1]).toEqual({ ok: true, value: true });
  expect(r.results[2]).toMatchObject({ ok: false, code: 'STORAGE_UNAVAILABLE' }); // live, not stored yet
  expect(r.session).toMatchObject({ userId: 'u1', settings: { b: 'live', c: '3' } });
  expect(h.gate.getSession(p.sid)?.userId).toBe('u1');
  expect(h.gate.counts().bound).toBe(1);
  expect(events[0]).toMatchObject({ operation: 'query', userId: 'u1', sessionId: p.sid });
  expect(store.calls.filter((c) => c.ok === true)).toEqual([]);
  // While unrestored, nothing but queries is attempted: no write may replace the stored map.
  expect(new Set(store.calls.map((c) => c.op))).toEqual(new Set(['query']));

  const recoveredAt = store.calls.length;
  store.failing = false;
  await waitUntil('the store holds c=3', async () => (await store.stored('u1'))?.c === '3', 5000);
  expect(await store.stored('u1')).toEqual({ a: '1', b: 'live', c: '3' });
  const after = store.calls.slice(recoveredAt).filter((c) => c.ok);
  expect(after[0].op).toBe('query');
  for (const c of store.calls.filter((x) => x.op === 'storage' && x.ok)) expect(c.settings).toMatchObject({ a: '1' });
  // The live session now has the stored key the connection lacked.
  expect((await p.snap()).settings).toEqual({ a: '1', b: 'live', c: '3' });
});

// ---------------------------------------------------------------- closed connections, stop

test('a connection closed with unstored changes: the gate keeps retrying and stores them once the store is back', async () => {
  const { h, store, peer } = await startPersistenceApp({ storageRetryDelay: 50 });
  const p = await peer();
  (
    await p.run([
      ['bind', 'u1'],
      ['set', 'a', '1'],
    ])
  ).results.forEach(ok);
  store.failing = true;
  expect((await p.run([['set', 'b', '2']])).results[0]).toMatchObject({ ok: false, code: 'STORAGE_UNAVAILABLE' });
  const gone = once(h.gate, 'disconnect');
  p.kill();
  await gone;
  await waitUntil('a retry after the disconnect', () => failedWrites(store, 'u1').length >= 3);
  store.failing = false;
  await waitUntil('the store holds b=2', async () => (await store.stored('u1'))?.b === '2', 5000);
  expect(await store.stored('u1')).toEqual({ a: '1', b: '2' });
});

test('a user reconnecting while the store is still down gets the unstored changes of the closed connection (live keys win)', async () => {
  const { h, store, peer } = await startPersistenceApp({ storageRetryDelay: 50 });
  const p1 = await peer();
  (
    await p1.run([
      ['bind', 'u1'],
      ['set', 'a', '1'],
    ])
  ).results.forEach(ok);
  store.failing = true;
  expect((await p1.run([['setBatch', { b: '2', c: 'old' }]])).results[0]).toMatchObject({ ok: false, code: 'STORAGE_UNAVAILABLE' });
  const gone = once(h.gate, 'disconnect');
  p1.kill();
  await gone;

  const p2 = await peer();
  (await p2.run([['set', 'c', 'new']])).results.forEach(ok);
  const r = await p2.run([['bind', 'u1']]);
  expect(r.results[0]).toEqual({ ok: true, value: { warning: CLIENT_TEXTS.STORAGE_UNAVAILABLE_BIND } });
  expect(r.session).toMatchObject({ userId: 'u1', settings: { b: '2', c: 'new' } });
  store.failing = false;
  await waitUntil('the store holds b=2', async () => (await store.stored('u1'))?.b === '2', 5000);
  expect(await store.stored('u1')).toEqual({ a: '1', b: '2', c: 'new' });
  expect((await p2.snap()).settings).toEqual({ a: '1', b: '2', c: 'new' });
});

test('stop() makes one last attempt to store unstored changes', async () => {
  // A retry delay longer than the test, so only stop's flush can store the change.
  const { h, store, peer } = await startPersistenceApp({ storageRetryDelay: 20_000 });
  const p = await peer();
  (await p.run([['bind', 'u1']])).results.forEach(ok);
  store.failing = true;
  expect((await p.run([['set', 'k', 'v']])).results[0]).toMatchObject({ ok: false, code: 'STORAGE_UNAVAILABLE' });
  store.failing = false;
  expect(await p.request('HD_echo')).toBe('pong');
  expect(await store.stored('u1')).toEqual({});
  await h.stop();
  expect(await store.stored('u1')).toEqual({ k: 'v' });
});

test('a failed delete at unbind({delete:true}) rejects STORAGE (client text) and is reported; the session is unbound all the same', async () => {
  const { h, store, peer } = await startPersistenceApp({ storageRetryDelay: 50 });
  const events = failures(h);
  const p = await peer();
  (
    await p.run([
      ['bind', 'u1'],
      ['set', 'k', 'v'],
    ])
  ).results.forEach(ok);
  store.failing = true;
  const r = await p.run([['unbind', { delete: true }]]);
  expect(r.results[0]).toEqual({ ok: false, code: 'STORAGE', message: CLIENT_TEXTS.STORAGE });
  expect(r.session.userId).toBe('');
  expect(h.gate.counts().bound).toBe(0);
  expect(events.map((e) => [e.operation, e.userId])).toEqual([['delete', 'u1']]);
  expect(p.client.connected).toBe(true);
});

test('a change that failed to store while bound is still stored after a plain unbind (the STORAGE_UNAVAILABLE error promised "will be stored when the store is back")', async () => {
  const { store, peer } = await startPersistenceApp({ storageRetryDelay: 50 });
  const p = await peer();
  (
    await p.run([
      ['bind', 'u1'],
      ['set', 'a', '1'],
    ])
  ).results.forEach(ok);
  store.failing = true;
  const r = await p.run([['set', 'b', '2']]);
  expect(r.results[0]).toMatchObject({ ok: false, code: 'STORAGE_UNAVAILABLE' });
  expect((r.results[0] as { message: string }).message).toContain('will be stored when the store is back');
  (await p.run([['unbind']])).results.forEach(ok); // a plain logout keeps the stored session
  store.failing = false;
  // A disconnect keeps retrying such a change (test above); a plain unbind should not lose it either.
  await waitUntil('the store holds b=2', async () => (await store.stored('u1'))?.b === '2', 2000);
  expect(await store.stored('u1')).toEqual({ a: '1', b: '2' });
});
