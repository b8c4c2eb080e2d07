/**
 * The session snapshot a module receives with each request (mqant SessionImp fields,
 * mqant.md §1.1) and the gate's session events.
 */
import { once } from 'node:events';
import type { IClientOptions } from 'mqtt';
import type { SessionData } from '@mqgate/rpc';
import { startGate, RawClient, type Harness } from './helpers/harness';
import { RecordingPeer } from './helpers/peer';

// ---------------------------------------------------------------- helpers (file-local)

/** A recording peer that can ask the `snap` module for the snapshot it received. */
class Peer extends RecordingPeer {
  /** Request; resolves with the reply envelope and the snapshot the module received. */
  async snap(topic: string): Promise<{ trace: string; session: SessionData }> {
    this.client.publish(topic, '{}', { qos: 0 });
    const env = JSON.parse((await this.next((m) => m.topic === topic)).payload.toString()) as { Trace: string; Error: string };
    expect(env.Error).toBe('');
    const session = seen.get(topic);
    if (!session) throw new Error(`the module did not see ${topic}`);
    return { trace: env.Trace, session };
  }
}

// ---------------------------------------------------------------- fixture

let h: Harness;
const peers: Peer[] = [];
/** Snapshot received by the module, by request topic. */
const seen = new Map<string, SessionData>();
const notified: SessionData[] = [];
let notifyWaiter: (() => void) | undefined;

beforeAll(async () => {
  // More than connectRate's burst of 200 connections open in this file; admission is tested elsewhere.
  h = await startGate({ connectRate: false });
  await h.serve('snap', (fn, args) => {
    const s = args[0] as SessionData;
    if (fn === 'HD_note') {
      notified.push(s);
      notifyWaiter?.();
      return null;
    }
    seen.set(s.topic, s);
    return { ok: true };
  });
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.end()));
  while (h.gate.counts().total > 0) await once(h.gate, 'disconnect');
});

afterAll(() => h.stop());

async function peer(opts: IClientOptions = {}, url = h.tcpUrl): Promise<Peer> {
  const p = await Peer.open(url, opts);
  peers.push(p);
  return p;
}

let n = 0;
const t = (prefix = 'snap/HD_get') => `${prefix}/${++n}`;

// ---------------------------------------------------------------- snapshot fields

test('sessionId is 32 hex chars, stable within a connection, unique per connection', async () => {
  const a = await peer();
  const b = await peer();
  const a1 = (await a.snap(t())).session;
  const a2 = (await a.snap(t())).session;
  const b1 = (await b.snap(t())).session;
  expect(a1.sessionId).toMatch(/^[0-9a-f]{32}$/);
  expect(b1.sessionId).toMatch(/^[0-9a-f]{32}$/);
  expect(a2.sessionId).toBe(a1.sessionId);
  expect(b1.sessionId).not.toBe(a1.sessionId);
});

test('a reconnect with the same client id gets a new sessionId and traceId', async () => {
  const first = await peer({ clientId: 'snapshot-reconnect' });
  const s1 = (await first.snap(t())).session;
  const gone = once(h.gate, 'disconnect');
  await first.end();
  await gone;
  const second = await peer({ clientId: 'snapshot-reconnect' });
  const s2 = (await second.snap(t())).session;
  expect(s2.sessionId).toMatch(/^[0-9a-f]{32}$/);
  expect(s2.sessionId).not.toBe(s1.sessionId);
  expect(s2.traceId).not.toBe(s1.traceId);
});

test('session and trace ids of 200 connections (past a refill of the 4 KiB random pool): all distinct, 32 and 16 hex chars', async () => {
  const seen: SessionData[] = [];
  const onConnect = (s: SessionData) => seen.push(s);
  h.gate.on('connect', onConnect);
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      const c = await RawClient.open(h.tcpPort);
      await c.connect({ clientId: `ids-${i}` });
      clients.push(c);
    }
  } finally {
    h.gate.off('connect', onConnect);
    for (const c of clients) c.destroy();
  }
  expect(seen).toHaveLength(200);
  for (const s of seen) {
    expect(s.sessionId).toMatch(/^[0-9a-f]{32}$/);
    expect(s.traceId).toMatch(/^[0-9a-f]{16}$/);
  }
  const ids = seen.flatMap((s) => [s.sessionId, s.traceId]);
  expect(new Set(ids).size).toBe(400);
});

test('serverId is the gate serverId, network tcp, ip without port, unbound, no settings', async () => {
  const p = await peer();
  const { session } = await p.snap(t());
  expect(session.serverId).toBe(h.gate.serverId);
  expect(session.serverId).not.toBe('');
  expect(session.network).toBe('tcp');
  expect(session.ip).toBe('127.0.0.1');
  expect(session.userId).toBe('');
  expect(session.settings).toEqual({});
});

test('network is websocket over WebSocket', async () => {
  const p = await peer({}, h.wsUrl);
  const { session } = await p.snap(t());
  expect(session.network).toBe('websocket');
  expect(session.serverId).toBe(h.gate.serverId);
});

test('traceId is constant per connection (and is the reply Trace); spanId differs per request', async () => {
  const a = await peer();
  const b = await peer();
  const results = [];
  for (let i = 0; i < 5; i++) results.push(await a.snap(t()));
  const traceIds = new Set(results.map((r) => r.session.traceId));
  expect(traceIds.size).toBe(1);
  const [traceId] = [...traceIds];
  expect(traceId).not.toBe('');
  for (const r of results) expect(r.trace).toBe(traceId);
  const spans = results.map((r) => r.session.spanId);
  for (const s of spans) expect(s).not.toBe('');
  expect(new Set(spans).size).toBe(spans.length);
  const other = await b.snap(t());
  expect(other.session.traceId).not.toBe(traceId);
  expect(spans).not.toContain(other.session.spanId);
});

test('topic equals the request topic, for requests and for notifies', async () => {
  const p = await peer();
  const plain = t();
  expect((await p.snap(plain)).session.topic).toBe(plain);
  const deep = `snap/HD_get/x/y/${++n}`;
  expect((await p.snap(deep)).session.topic).toBe(deep);
  const arrived = new Promise<void>((resolve) => (notifyWaiter = resolve));
  p.client.publish('snap/HD_note', '{}', { qos: 0 });
  await arrived;
  notifyWaiter = undefined;
  expect(notified[notified.length - 1].topic).toBe('snap/HD_note');
});

// ---------------------------------------------------------------- events

test("'connect' is emitted with the session snapshot before its first request is handled", async () => {
  const connected = once(h.gate, 'connect');
  const p = await peer();
  const [snap] = (await connected) as [SessionData];
  expect(snap.sessionId).toMatch(/^[0-9a-f]{32}$/);
  expect(snap.serverId).toBe(h.gate.serverId);
  expect(snap.network).toBe('tcp');
  expect(snap.topic).toBe('');
  const { session } = await p.snap(t());
  expect(session.sessionId).toBe(snap.sessionId);
  expect(session.traceId).toBe(snap.traceId);
  expect(h.gate.getSession(snap.sessionId)?.sessionId).toBe(snap.sessionId);
});

test("'disconnect' on a clean DISCONNECT: reason 'client disconnect', the session is gone", async () => {
  const p = await peer();
  const sid = (await p.snap(t())).session.sessionId;
  const gone = once(h.gate, 'disconnect');
  await p.end();
  const [snap, reason] = (await gone) as [SessionData, string];
  expect(snap.sessionId).toBe(sid);
  expect(reason).toBe('client disconnect');
  expect(h.gate.getSession(sid)).toBeUndefined();
  expect(h.gate.counts().total).toBe(0);
});

test("'disconnect' when the socket is destroyed without DISCONNECT: reason 'connection lost'", async () => {
  const connected = once(h.gate, 'connect');
  const raw = await RawClient.open(h.tcpPort);
  expect((await raw.connect({ clientId: 'snapshot-raw-lost' })).returnCode).toBe(0);
  const [snap] = (await connected) as [SessionData];
  expect(h.gate.counts().total).toBe(1);
  const gone = once(h.gate, 'disconnect');
  raw.destroy();
  const [lost, reason] = (await gone) as [SessionData, string];
  expect(lost.sessionId).toBe(snap.sessionId);
  expect(reason).toMatch(/^connection lost/);
  expect(h.gate.counts()).toEqual({ total: 0, bound: 0, guests: 0, detached: 0 });
});

test('an event snapshot is a copy: later changes to the session do not alter it', async () => {
  const connected = once(h.gate, 'connect');
  const p = await peer();
  const [snap] = (await connected) as [SessionData];
  await h.transport.call({ serverId: h.gate.serverId }, 'Set', [snap.sessionId, 'k', 'v']);
  await h.transport.call({ serverId: h.gate.serverId }, 'Bind', [snap.sessionId, 'u-copy']);
  expect(snap.settings).toEqual({});
  expect(snap.userId).toBe('');
  const { session } = await p.snap(t());
  expect(session.settings).toEqual({ k: 'v' });
  expect(session.userId).toBe('u-copy');
});
