/**
 * The gate's session service (rpc gate-api.ts), called over the transport by a module while
 * it handles a client request, as mqant modules do with `session.Bind(...)` etc.
 */
import { once } from 'node:events';
import type { IClientOptions } from 'mqtt';
import { KICK_TOPIC } from '@mqgate/gate';
import { RpcError, type RpcValue, type SessionData } from '@mqgate/rpc';
import { mqttOpts, startGate, type Harness } from './helpers/harness';
import { RecordingPeer, type Envelope } from './helpers/peer';

// ---------------------------------------------------------------- helpers (file-local)

/** What HD_call returns: the session service's result, or its error code and message. */
type Outcome = { ok: true; result: unknown } | { ok: false; code: string; message: string };

let msgSeq = 0;

/** A recording peer that knows its session id and has the `svc` module call the session service. */
class Peer extends RecordingPeer {
  sid = '';

  /** A request with a fresh msgid under `prefix` (e.g. `svc/HD_call`). */
  override async request(prefix: string, body: string | Buffer = ''): Promise<Envelope> {
    return super.request(`${prefix}/${++msgSeq}`, body);
  }

  /** Has the module call the session service: `fn(...args)`, with "$self" replaced by this session's id. */
  async svc(fn: string, args: unknown[]): Promise<Outcome> {
    const env = await this.request('svc/HD_call', JSON.stringify({ fn, args }));
    expect(env.Error).toBe('');
    return env.Result as Outcome;
  }
}

function ok(o: Outcome): unknown {
  if (!o.ok) throw new Error(`expected success, got ${o.code}: ${o.message}`);
  return o.result;
}

function substitute(v: unknown, sid: string): unknown {
  if (typeof v === 'string') return v.split('$self').join(sid);
  if (Array.isArray(v)) return v.map((x) => substitute(x, sid));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x, sid)]));
  return v;
}

// ---------------------------------------------------------------- fixture

let h: Harness;
const peers: Peer[] = [];
/** Snapshots the svc module received, by request topic. */
const seen = new Map<string, SessionData>();
/** Hooks for the stale-snapshot Push scenario. */
let holdB: Promise<void> = Promise.resolve();

async function call(session: SessionData, fn: string, args: RpcValue[]): Promise<Outcome> {
  try {
    return { ok: true, result: await h.transport.call({ serverId: session.serverId }, fn, args) };
  } catch (err) {
    const e = err as RpcError;
    return { ok: false, code: e.code, message: e.message };
  }
}

beforeAll(async () => {
  h = await startGate();
  await h.serve('svc', async (fn, args) => {
    const session = args[0] as SessionData;
    seen.set(session.topic, session);
    const body = args[1] as Record<string, unknown>;
    switch (fn) {
      case 'HD_snap':
        return { ...session };
      case 'HD_call':
        return call(session, body.fn as string, substitute(body.args, session.sessionId) as RpcValue[]);
      case 'HD_sendBytes':
        return call(session, 'Send', [session.sessionId, body.topic as string, Buffer.from(body.hex as string, 'hex')]);
      default:
        throw new Error(`svc has no handler ${fn}`);
    }
  });
  // Two more modules for the "module A sets, module B pushes" scenario.
  await h.serve('modA', (_fn, args) => call(args[0] as SessionData, 'Set', [(args[0] as SessionData).sessionId, 'a', 'from-A']));
  await h.serve('modB', async (_fn, args) => {
    const session = args[0] as SessionData;
    await holdB;
    const outcome = await call(session, 'Push', [session.sessionId, { b: 'from-B' }]);
    return { staleSettings: { ...session.settings }, outcome };
  });
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.end()));
  while (h.gate.counts().total > 0) await once(h.gate, 'disconnect');
});

afterAll(() => h.stop());

/** The MQTT.js protocol level of this pass over the file's cases (every case runs at 3.1.1 and at 5). */
let level: 4 | 5 = 4;

async function peer(opts: IClientOptions = {}): Promise<Peer> {
  const p = await Peer.open(h.tcpUrl, { ...mqttOpts(level), ...opts });
  p.sid = ((await p.request('svc/HD_snap', '{}')).Result as SessionData).sessionId;
  peers.push(p);
  return p;
}

function live(sid: string): SessionData {
  const s = h.gate.getSession(sid);
  if (!s) throw new Error(`session ${sid} is not live`);
  return s;
}

describe.each([4, 5] as const)('MQTT.js at level %i', (v) => {
  beforeAll(() => {
    level = v;
  });

  // ---------------------------------------------------------------- Bind / UnBind

  test('Bind: emits bind, counts().bound goes 0 → 1, the snapshot carries the userId', async () => {
    const p = await peer();
    expect(h.gate.counts()).toEqual({ total: 1, bound: 0, guests: 1, detached: 0 });
    const bindEvent = once(h.gate, 'bind');
    const result = ok(await p.svc('Bind', ['$self', 'u1'])) as SessionData;
    expect(result.userId).toBe('u1');
    expect(result.sessionId).toBe(p.sid);
    const [snap, userId] = (await bindEvent) as [SessionData, string];
    expect(userId).toBe('u1');
    expect(snap.sessionId).toBe(p.sid);
    expect(snap.userId).toBe('u1');
    expect(h.gate.counts()).toEqual({ total: 1, bound: 1, guests: 0, detached: 0 });
    expect(live(p.sid).userId).toBe('u1');
    expect(h.gate.sessionsOfUser('u1').map((s) => s.sessionId)).toEqual([p.sid]);
    // The next request's snapshot carries it too.
    const snap2 = (await p.request('svc/HD_snap')).Result as SessionData;
    expect(snap2.userId).toBe('u1');
  });

  test('UnBind: emits unbind with the old userId; rebinding unbinds the previous user first', async () => {
    const p = await peer();
    ok(await p.svc('Bind', ['$self', 'u2']));
    const events: Array<[string, string]> = [];
    const onUnbind = (s: SessionData, u: string) => events.push(['unbind', `${s.userId}|${u}`]);
    const onBind = (s: SessionData, u: string) => events.push(['bind', `${s.userId}|${u}`]);
    h.gate.on('unbind', onUnbind);
    h.gate.on('bind', onBind);
    try {
      ok(await p.svc('Bind', ['$self', 'u3']));
      const result = ok(await p.svc('UnBind', ['$self'])) as SessionData;
      expect(result.userId).toBe('');
    } finally {
      h.gate.off('unbind', onUnbind);
      h.gate.off('bind', onBind);
    }
    expect(events).toEqual([
      ['unbind', '|u2'],
      ['bind', 'u3|u3'],
      ['unbind', '|u3'],
    ]);
    expect(h.gate.counts().bound).toBe(0);
    expect(h.gate.sessionsOfUser('u2')).toEqual([]);
    expect(h.gate.sessionsOfUser('u3')).toEqual([]);
    expect(live(p.sid).userId).toBe('');
    // UnBind of an unbound session is a no-op, not an error.
    expect((ok(await p.svc('UnBind', ['$self'])) as SessionData).userId).toBe('');
  });

  // ---------------------------------------------------------------- settings

  test('Set writes one key; the gate and later snapshots see it', async () => {
    const p = await peer();
    const result = ok(await p.svc('Set', ['$self', 'room', 'lobby'])) as SessionData;
    expect(result.settings).toEqual({ room: 'lobby' });
    expect(live(p.sid).settings).toEqual({ room: 'lobby' });
    expect(((await p.request('svc/HD_snap')).Result as SessionData).settings).toEqual({ room: 'lobby' });
    // An empty value is a value.
    expect((ok(await p.svc('Set', ['$self', 'room', ''])) as SessionData).settings).toEqual({ room: '' });
  });

  test('Push changes only the keys sent: module A sets a, module B (holding a stale snapshot) pushes {b}, a survives', async () => {
    const p = await peer();
    let releaseB!: () => void;
    holdB = new Promise<void>((r) => (releaseB = r));
    try {
      // B's request is dispatched first, so its snapshot predates A's Set.
      p.publish('modB/HD_push/1', '{}');
      const a = await p.request('modA/HD_set');
      expect((a.Result as Outcome).ok).toBe(true);
      expect(live(p.sid).settings).toEqual({ a: 'from-A' });
      releaseB();
      const bMsg = await p.next((m) => m.topic === 'modB/HD_push/1');
      const b = JSON.parse(bMsg.payload.toString()).Result as { staleSettings: Record<string, string>; outcome: Outcome };
      expect(b.staleSettings).toEqual({}); // B never saw a
      expect((ok(b.outcome) as SessionData).settings).toEqual({ a: 'from-A', b: 'from-B' });
      expect(live(p.sid).settings).toEqual({ a: 'from-A', b: 'from-B' });
    } finally {
      releaseB();
      holdB = Promise.resolve();
    }
    // Push overwrites a key it names, and several at once.
    const r = ok(await p.svc('Push', ['$self', { a: 'A2', c: 'C' }])) as SessionData;
    expect(r.settings).toEqual({ a: 'A2', b: 'from-B', c: 'C' });
  });

  test.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty'])(
    'Set / Push with the key %s: stored like any other string key, or refused with BAD_ARGUMENT, never a silent success that drops it',
    async (key) => {
      const p = await peer();
      const viaSet = await p.svc('Set', ['$self', key, 'x']);
      if (viaSet.ok) {
        expect(Object.getOwnPropertyDescriptor((viaSet.result as SessionData).settings, key)?.value).toBe('x');
        expect(Object.getOwnPropertyDescriptor(live(p.sid).settings, key)?.value).toBe('x');
      } else {
        expect(viaSet.code).toBe('BAD_ARGUMENT');
      }
      // Push of a JSON-decoded map holding that key (as a module decoding a client body would).
      const viaPush = await p.svc('Push', ['$self', JSON.parse(`{${JSON.stringify(key)}:"y","other":"z"}`)]);
      if (viaPush.ok) {
        expect(Object.getOwnPropertyDescriptor((viaPush.result as SessionData).settings, key)?.value).toBe('y');
        expect((viaPush.result as SessionData).settings.other).toBe('z');
      } else {
        expect(viaPush.code).toBe('BAD_ARGUMENT');
      }
    },
  );

  test('Remove deletes one key, or a list of keys; a missing key is not an error', async () => {
    const p = await peer();
    ok(await p.svc('Push', ['$self', { a: '1', b: '2', c: '3', d: '4' }]));
    expect((ok(await p.svc('Remove', ['$self', 'a'])) as SessionData).settings).toEqual({ b: '2', c: '3', d: '4' });
    expect((ok(await p.svc('Remove', ['$self', ['b', 'c']])) as SessionData).settings).toEqual({ d: '4' });
    expect((ok(await p.svc('Remove', ['$self', 'nope'])) as SessionData).settings).toEqual({ d: '4' });
    expect(live(p.sid).settings).toEqual({ d: '4' });
  });

  test('Update returns the live session, newer than the snapshot the module holds', async () => {
    const p = await peer();
    const other = await peer();
    // Another session's module changes p's session; p's next module call sees it through Update.
    ok(await other.svc('Set', [p.sid, 'from', 'other']));
    ok(await other.svc('Bind', [p.sid, 'u-upd']));
    const updated = ok(await p.svc('Update', ['$self'])) as SessionData;
    expect(updated.sessionId).toBe(p.sid);
    expect(updated.userId).toBe('u-upd');
    expect(updated.settings).toEqual({ from: 'other' });
    expect(updated.serverId).toBe(h.gate.serverId);
  });

  // ---------------------------------------------------------------- pushes

  test('Send: the client receives a push on an arbitrary topic without subscribing', async () => {
    const p = await peer();
    const bytes = Buffer.from([0x00, 0xff, 0x10, 0x7b]);
    const env = await p.request('svc/HD_sendBytes', JSON.stringify({ topic: 'Login/Success', hex: bytes.toString('hex') }));
    expect(env.Result).toEqual({ ok: true, result: null });
    const push = await p.next((m) => m.topic === 'Login/Success');
    expect(push.payload.equals(bytes)).toBe(true);
    expect(push.qos).toBe(0);
    // A string body goes out as UTF-8; a leading-slash topic (mqant's /gate/send/test) works too.
    expect(ok(await p.svc('Send', ['$self', '/gate/send/test', 'héllo']))).toBeNull();
    expect((await p.next((m) => m.topic === '/gate/send/test')).payload.toString('utf8')).toBe('héllo');
  });

  test('SendBatch: comma-separated ids, unknown ids skipped, returns how many got it', async () => {
    const a = await peer();
    const b = await peer();
    const c = await peer();
    const n = ok(await a.svc('SendBatch', [`${a.sid},${b.sid},deadbeefdeadbeefdeadbeefdeadbeef,`, 'batch/topic', 'hi all']));
    expect(n).toBe(2);
    expect((await a.next((m) => m.topic === 'batch/topic')).payload.toString()).toBe('hi all');
    expect((await b.next((m) => m.topic === 'batch/topic')).payload.toString()).toBe('hi all');
    // c was not in the batch: a later push to c arrives, and nothing before it.
    ok(await a.svc('Send', [c.sid, 'marker', 'm']));
    await c.next((m) => m.topic === 'marker');
    expect(c.msgs.map((m) => m.topic).filter((t) => t !== 'marker' && !t.startsWith('svc/'))).toEqual([]);
    // Only unknown ids: 0, no error.
    expect(ok(await a.svc('SendBatch', ['nope1,nope2', 'batch/topic', 'x']))).toBe(0);
  });

  test('BroadCast: every client of the gate gets it; returns the count', async () => {
    const ps = [await peer(), await peer(), await peer()];
    const total = h.gate.counts().total;
    expect(total).toBe(3);
    const n = ok(await ps[0].svc('BroadCast', ['news/all', '{"v":1}']));
    expect(n).toBe(total);
    for (const p of ps) {
      const m = await p.next((x) => x.topic === 'news/all');
      expect(JSON.parse(m.payload.toString())).toEqual({ v: 1 });
      expect(m.qos).toBe(0);
    }
  });

  test('IsConnect: true for a bound user on this gate, false (not an error) otherwise; sessionId is ignored', async () => {
    const p = await peer();
    expect(ok(await p.svc('IsConnect', ['$self', 'u-is']))).toBe(false);
    ok(await p.svc('Bind', ['$self', 'u-is']));
    expect(ok(await p.svc('IsConnect', ['$self', 'u-is']))).toBe(true);
    expect(ok(await p.svc('IsConnect', ['unrelated-session-id', 'u-is']))).toBe(true);
    expect(ok(await p.svc('IsConnect', ['$self', 'nobody']))).toBe(false);
  });

  // ---------------------------------------------------------------- Close

  test("Close with a reason: the client gets gate/kick {reason} then is closed; 'disconnect' carries the reason", async () => {
    const p = await peer();
    const bystander = await peer();
    const disconnected = new Promise<[SessionData, string]>((resolve) => {
      const on = (s: SessionData, reason: string) => {
        if (s.sessionId !== p.sid) return;
        h.gate.off('disconnect', on);
        resolve([s, reason]);
      };
      h.gate.on('disconnect', on);
    });
    // The bystander's module closes p's session.
    expect(ok(await bystander.svc('Close', [p.sid, 'you were idle']))).toBeNull();
    const kick = await p.next((m) => m.topic === KICK_TOPIC);
    expect(KICK_TOPIC).toBe('gate/kick');
    expect(JSON.parse(kick.payload.toString('utf8'))).toEqual({ reason: 'you were idle' });
    await p.closed;
    const [snap, reason] = await disconnected;
    expect(snap.sessionId).toBe(p.sid);
    expect(reason).toContain('you were idle');
    expect(h.gate.getSession(p.sid)).toBeUndefined();
    expect(h.gate.getSession(bystander.sid)).toBeDefined();
  });

  test('Close of its own session from inside the request: kick arrives, no reply, connection closes', async () => {
    const p = await peer();
    const gone = once(h.gate, 'disconnect');
    p.publish('svc/HD_call/self-close', JSON.stringify({ fn: 'Close', args: ['$self', 'bye'] }));
    const kick = await p.next((m) => m.topic === KICK_TOPIC);
    expect(JSON.parse(kick.payload.toString())).toEqual({ reason: 'bye' });
    await p.closed;
    const [, reason] = (await gone) as [SessionData, string];
    expect(reason).toContain('bye');
    // After the opening HD_snap reply, only the kick: no reply to the request that closed it.
    expect(p.msgs.map((m) => m.topic).filter((t) => !t.startsWith('svc/HD_snap/'))).toEqual([KICK_TOPIC]);
  });

  test('Close without a reason closes with no kick message', async () => {
    const p = await peer();
    const other = await peer();
    const gone = once(h.gate, 'disconnect');
    expect(ok(await other.svc('Close', [p.sid]))).toBeNull();
    await p.closed;
    await gone;
    expect(p.msgs.filter((m) => m.topic === KICK_TOPIC)).toEqual([]);
  });

  // ---------------------------------------------------------------- errors

  describe('unknown session id → NO_SESSION', () => {
    const UNKNOWN = '0123456789abcdef0123456789abcdef';
    test.each([
      ['Update', [UNKNOWN]],
      ['Bind', [UNKNOWN, 'u']],
      ['UnBind', [UNKNOWN]],
      ['Push', [UNKNOWN, { k: 'v' }]],
      ['Set', [UNKNOWN, 'k', 'v']],
      ['Remove', [UNKNOWN, 'k']],
      ['Send', [UNKNOWN, 'a/b', 'x']],
      ['Close', [UNKNOWN, 'r']],
    ] as Array<[string, unknown[]]>)('%s', async (fn, args) => {
      const p = await peer();
      const o = await p.svc(fn, args);
      expect(o).toMatchObject({ ok: false, code: 'NO_SESSION' });
    });

    test('called directly on the transport, the rejection is an RpcError with code NO_SESSION', async () => {
      const call = h.transport.call({ serverId: h.gate.serverId }, 'Bind', [UNKNOWN, 'u1']);
      await expect(call).rejects.toBeInstanceOf(RpcError);
      await expect(call).rejects.toMatchObject({ code: 'NO_SESSION' });
    });

    test('the id of a session that has disconnected is unknown too', async () => {
      const p = await peer();
      const other = await peer();
      const gone = once(h.gate, 'disconnect');
      await p.end();
      await gone;
      expect(await other.svc('Set', [p.sid, 'k', 'v'])).toMatchObject({ ok: false, code: 'NO_SESSION' });
      expect(await other.svc('Send', [p.sid, 'a', 'x'])).toMatchObject({ ok: false, code: 'NO_SESSION' });
    });
  });

  describe('bad arguments → BAD_ARGUMENT, and the gate keeps serving', () => {
    test.each([
      ['Bind with a number as userId', 'Bind', ['$self', 42]],
      ['Bind with an empty userId', 'Bind', ['$self', '']],
      ['Bind with a numeric sessionId', 'Bind', [12345, 'u']],
      ['Set with a non-string value', 'Set', ['$self', 'k', 5]],
      ['Set with an object value', 'Set', ['$self', 'k', { x: 1 }]],
      ['Push with a non-string value', 'Push', ['$self', { k: 1 }]],
      ['Push with an array', 'Push', ['$self', ['k']]],
      ['Remove with an empty list', 'Remove', ['$self', []]],
      ['Send to a wildcard topic (+)', 'Send', ['$self', 'a/+/b', 'x']],
      ['Send to a wildcard topic (#)', 'Send', ['$self', 'a/#', 'x']],
      ['Send without a body', 'Send', ['$self', 'a/b']],
      ['SendBatch to a wildcard topic', 'SendBatch', ['$self', '#', 'x']],
      ['BroadCast to a wildcard topic', 'BroadCast', ['news/+', 'x']],
      ['IsConnect with a number as userId', 'IsConnect', ['$self', 7]],
      ['Close with a non-string reason', 'Close', ['$self', 3]],
      ['UnBind with a non-boolean delete flag', 'UnBind', ['$self', 'yes']],
    ] as Array<[string, string, unknown[]]>)('%s', async (_name, fn, args) => {
      const p = await peer();
      const o = await p.svc(fn, args);
      expect(o).toMatchObject({ ok: false, code: 'BAD_ARGUMENT' });
      // Nothing changed, the connection is alive and the gate still serves.
      const snap = (await p.request('svc/HD_snap')).Result as SessionData;
      expect(snap.userId).toBe('');
      expect(snap.settings).toEqual({});
      expect(h.gate.getSession(p.sid)).toBeDefined();
      expect(p.msgs.filter((m) => !m.topic.startsWith('svc/'))).toEqual([]);
    });
  });

  test('an unknown service function → NOT_FOUND', async () => {
    const p = await peer();
    expect(await p.svc('Frobnicate', ['$self'])).toMatchObject({ ok: false, code: 'NOT_FOUND' });
  });
});
