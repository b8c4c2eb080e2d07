/**
 * Session persistence through a StorageHandler (mqant §2: Query + merge on Bind, Storage on
 * every change while bound, Delete on explicit logout only), with real MQTT clients against
 * the gate and a counting decorator around a real MemoryStorage.
 */
import { once } from 'node:events';
import type { IClientOptions, MqttClient } from 'mqtt';
import { Session } from '@mqgate/client';
import type { GateOptions } from '@mqgate/gate';
import type { RpcValue, SessionData } from '@mqgate/rpc';
import { CountingStorage, waitUntil } from './helpers/counting-storage';
import { mqttConnect, startGate, type Harness } from './helpers/harness';

// ---------------------------------------------------------------- fixture (file-local)

/** A session as the test module saw it. */
interface View {
  userId: string;
  sessionId: string;
  settings: Record<string, string>;
}
type Outcome = { ok: true; value: unknown } | { ok: false; code: string; message: string };
interface RunResult {
  results: Outcome[];
  session: View;
}
/** A Session verb the test module runs: [verb, ...args]. */
type Step = [string, ...unknown[]];

function view(d: SessionData): View {
  return { userId: d.userId, sessionId: d.sessionId, settings: { ...d.settings } };
}

async function runStep(s: Session, [verb, ...a]: Step): Promise<Outcome> {
  try {
    let value: unknown = null;
    switch (verb) {
      case 'bind': await s.bind(a[0] as string); break;
      case 'unbind': await s.unbind((a[0] ?? {}) as { delete?: boolean }); break;
      case 'set': await s.set(a[0] as string, a[1] as string); break;
      case 'setPush': await s.setPush(a[0] as string, a[1] as string); break;
      case 'setBatch': await s.setBatch(a[0] as Record<string, string>); break;
      case 'remove': await s.remove(a[0] as string); break;
      case 'setLocal': s.setLocal(a[0] as string, a[1] as string); break;
      case 'removeLocal': s.removeLocal(a[0] as string); break;
      case 'push': await s.push(); break;
      case 'update': await s.update(); break;
      case 'isConnect': value = await s.isConnect(a[0] as string); break;
      default: throw new Error(`unknown step ${verb}`);
    }
    return { ok: true, value };
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { ok: false, code: e.code ?? '', message: e.message };
  }
}

interface Env {
  h: Harness;
  store: CountingStorage;
  peers: Peer[];
  peer(opts?: IClientOptions): Promise<Peer>;
}

let msgSeq = 0;

class Peer {
  private waiters: Array<{ topic: string; resolve: (b: Buffer) => void }> = [];
  sid = '';
  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      this.waiters = this.waiters.filter((w) => (w.topic === topic ? (w.resolve(payload), false) : true));
    });
  }
  /** Publishes a request; the promise resolves with the reply's Result (rejects on an Error reply). */
  request(handler: string, body: unknown = {}): Promise<unknown> {
    const topic = `m/${handler}/${++msgSeq}`;
    const reply = new Promise<Buffer>((resolve) => this.waiters.push({ topic, resolve }));
    this.client.publish(topic, JSON.stringify(body));
    return reply.then((b) => {
      const env = JSON.parse(b.toString('utf8')) as { Error: string; Result: unknown };
      if (env.Error !== '') throw new Error(`reply error: ${env.Error}`);
      return env.Result;
    });
  }
  run(steps: Step[], parallel = false): Promise<RunResult> {
    return this.request('HD_run', { steps, parallel }) as Promise<RunResult>;
  }
  snap(): Promise<View> {
    return this.request('HD_snap') as Promise<View>;
  }
  /** Destroys the socket: no DISCONNECT packet. */
  kill(): void {
    this.client.stream.destroy();
  }
  async end(): Promise<void> {
    if (this.client.connected) await this.client.endAsync();
    else this.client.end(true);
  }
}

function ok(r: Outcome): void {
  if (!r.ok) throw new Error(`expected success, got ${r.code}: ${r.message}`);
}

const envs: Env[] = [];

async function setup(options: GateOptions = {}, withStore = true): Promise<Env> {
  const store = new CountingStorage();
  const h = await startGate({ ...(withStore ? { storage: store } : {}), ...options });
  await h.serve('m', async (fn, args) => {
    const data = args[0] as SessionData;
    const body = args[1] as { steps?: Step[]; parallel?: boolean };
    switch (fn) {
      case 'HD_snap':
        return view(data) as unknown as RpcValue;
      case 'HD_echo':
        return 'pong';
      case 'HD_run': {
        const s = new Session(data, h.transport);
        const steps = body.steps ?? [];
        const results: Outcome[] = [];
        if (body.parallel) results.push(...(await Promise.all(steps.map((st) => runStep(s, st)))));
        else for (const st of steps) results.push(await runStep(s, st));
        return { results, session: view(s.toData()) } as unknown as RpcValue;
      }
      default:
        throw new Error(`no handler ${fn}`);
    }
  });
  const env: Env = {
    h,
    store,
    peers: [],
    async peer(opts = {}) {
      const p = new Peer(await mqttConnect(h.tcpUrl, opts));
      env.peers.push(p);
      p.sid = (await p.snap()).sessionId;
      return p;
    },
  };
  envs.push(env);
  return env;
}

afterEach(async () => {
  for (const env of envs.splice(0)) {
    await Promise.all(env.peers.map((p) => p.end()));
    await env.h.stop();
    await env.store.close();
  }
});

// ---------------------------------------------------------------- Bind and restore

test('Bind with nothing stored: one query, then one write; the Bind answer carries the live settings', async () => {
  const { h, store, peer } = await setup();
  const p = await peer();
  const r = await p.run([['set', 'x', '1'], ['bind', 'u1']]);
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
  const { h, store, peer } = await setup();
  await store.preload('u1', { a: '1', b: '2' });
  const p = await peer();
  const g = await p.run([['set', 'b', 'live'], ['setBatch', { g: 'guest' }]]);
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
  const { store, peer } = await setup();
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
  (await p.run([['set', 'k1', 'v1b'], ['remove', 'nope']])).results.forEach(ok);
  expect(store.count('storage')).toBe(writes);
});

test('coalescing: 5 set() calls issued in the same tick cost ONE write, and all 5 resolve', async () => {
  const { h, store, peer } = await setup();
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
  const { h, store, peer } = await setup();
  const p = await peer();
  (await p.run([['bind', 'u1']])).results.forEach(ok);
  const before = store.count('storage');
  store.hold();
  let firstDone = false;
  let laterDone = 0;
  const first = p.run([['set', 'k', '1']]).then((r) => ((firstDone = true), r));
  await waitUntil('the first write is in progress', () => store.inFlight('storage') === 1);
  const later = [p.run([['set', 'k', '2']]), p.run([['setBatch', { k: '3', other: 'x' }]])].map((pr) =>
    pr.then((r) => (laterDone++, r)),
  );
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
  expect(store.calls.filter((c) => c.op === 'storage').slice(-2).map((c) => c.settings?.k)).toEqual(['1', '3']);
  expect(store.count('storage') - before).toBe(2);
  expect(await store.stored('u1')).toEqual({ k: '3', other: 'x' });
});

// ---------------------------------------------------------------- unbind, delete, disconnect

test('a plain unbind keeps what is stored; unbind({delete:true}) deletes it', async () => {
  const { store, peer } = await setup();
  const p = await peer();
  (await p.run([['bind', 'u1'], ['set', 'k', 'v'], ['unbind']])).results.forEach(ok);
  expect(store.count('delete')).toBe(0);
  expect(await store.stored('u1')).toEqual({ k: 'v' });

  (await p.run([['bind', 'u1'], ['unbind', { delete: true }]])).results.forEach(ok);
  expect(store.calls.filter((c) => c.op === 'delete').map((c) => [c.userId, c.ok])).toEqual([['u1', true]]);
  expect(await store.stored('u1')).toBeNull();
});

test('deleteOnUnbind: true deletes on a plain unbind', async () => {
  const { store, peer } = await setup({ deleteOnUnbind: true });
  const p = await peer();
  (await p.run([['bind', 'u1'], ['set', 'k', 'v']])).results.forEach(ok);
  expect(await store.stored('u1')).toEqual({ k: 'v' });
  (await p.run([['unbind']])).results.forEach(ok);
  expect(store.calls.filter((c) => c.op === 'delete').map((c) => [c.userId, c.ok])).toEqual([['u1', true]]);
  expect(await store.stored('u1')).toBeNull();
});

test('a disconnect (socket destroyed, no DISCONNECT) neither writes nor deletes', async () => {
  const { h, store, peer } = await setup();
  const p = await peer();
  (await p.run([['bind', 'u1'], ['set', 'k', 'v']])).results.forEach(ok);
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

test('after unbind, changes are not persisted', async () => {
  const { store, peer } = await setup();
  const p = await peer();
  (await p.run([['bind', 'u1'], ['set', 'k', 'v'], ['unbind']])).results.forEach(ok);
  const calls = store.count();
  const r = await p.run([['set', 'k', 'after'], ['setBatch', { z: '1' }], ['remove', 'k']]);
  r.results.forEach(ok);
  expect(r.session).toMatchObject({ userId: '', settings: { z: '1' } });
  expect(store.count()).toBe(calls);
  expect(await store.stored('u1')).toEqual({ k: 'v' });
});

test('a set issued in the same tick as an unbind, and acknowledged, is stored (a resolved verb means stored)', async () => {
  const { store, peer } = await setup();
  const p = await peer();
  (await p.run([['bind', 'u1'], ['set', 'k', 'before']])).results.forEach(ok);
  // Both verbs reach the gate before the next write runs: set first, unbind second.
  const r = await p.run([['set', 'k', 'acked'], ['unbind']], true);
  r.results.forEach(ok);
  // The Set was made while bound and resolved successfully, so the store must have it.
  expect({ setResolved: r.results[0].ok, stored: (await store.stored('u1'))?.k }).toEqual({ setResolved: true, stored: 'acked' });
});

test('rebinding the connection to another user: u1 data stays as it was, u2 is restored and stored', async () => {
  const { store, peer } = await setup();
  await store.preload('u2', { q: 'u2-stored', p: 'u2-old' });
  const p = await peer();
  (await p.run([['bind', 'u1'], ['set', 'p', 'u1-val']])).results.forEach(ok);
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
  const { h, store, peer } = await setup({}, false);
  const p = await peer();
  const r = await p.run([['set', 'a', '1'], ['bind', 'u1'], ['set', 'b', '2'], ['unbind', { delete: true }], ['bind', 'u1']]);
  r.results.forEach(ok);
  expect(r.session).toMatchObject({ userId: 'u1', settings: { a: '1', b: '2' } });
  expect(h.gate.persistence).toBeUndefined();
  expect(h.gate.stats().storage).toBeUndefined();
  expect(store.count()).toBe(0);
});

test('reconnect within one gate: login u1, set k=v, socket destroyed, new client binds u1 → k=v is back', async () => {
  const { h, store, peer } = await setup();
  const p1 = await peer();
  (await p1.run([['bind', 'u1'], ['set', 'k', 'v']])).results.forEach(ok);
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
