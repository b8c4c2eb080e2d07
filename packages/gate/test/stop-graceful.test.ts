/**
 * Graceful stop: refuse new connections, stop reading requests, let requests in flight
 * finish (up to stopTimeout), kick every client on gate/kick with the reason, close.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { KICK_TOPIC, STOP_REASON } from '@mqgate/gate';
import type { RpcValue, SessionData } from '@mqgate/rpc';
import { startGate, mqttConnect, RawClient, type Harness } from './helpers/harness';
import { RecordingPeer } from './helpers/peer';
import { disconnectOf, turns } from './helpers/waiters';

// ---------------------------------------------------------------- helpers (file-local)

/** Resolves on a TCP connect, rejects with the socket error (ECONNREFUSED when nobody listens). */
function tcpConnect(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1', () => {
      s.destroy();
      resolve();
    });
    s.once('error', reject);
  });
}

// ---------------------------------------------------------------- fixture

const harnesses: Harness[] = [];
const peers: RecordingPeer[] = [];
const cleanups: Array<() => void> = [];

afterEach(async () => {
  for (const p of peers.splice(0)) p.client.end(true);
  for (const c of cleanups.splice(0)) c();
  await Promise.all(harnesses.splice(0).map((h) => h.stop()));
});

async function setup(options: Parameters<typeof startGate>[0]) {
  const h = await startGate(options);
  harnesses.push(h);
  let entered!: () => void;
  const enteredP = new Promise<void>((r) => (entered = r));
  let release!: (v: RpcValue) => void;
  const released = new Promise<RpcValue>((r) => (release = r));
  cleanups.push(() => release({ cleanup: true }));
  const calls: string[] = [];
  await h.serve('slow', async (fn) => {
    calls.push(fn);
    if (fn !== 'HD_slow') return { fast: true };
    entered();
    return released;
  });
  const connected = once(h.gate, 'connect');
  const p = await RecordingPeer.open(h.tcpUrl);
  peers.push(p);
  const [snap] = (await connected) as [SessionData];
  return { h, p, sid: snap.sessionId, enteredP, release, calls };
}

// ---------------------------------------------------------------- tests

test('stop() with a request in flight: refuses new connections, delivers the reply, then kicks and closes', async () => {
  const { h, p, sid, enteredP, release, calls } = await setup({ stopTimeout: 10_000 });
  const reasonP = disconnectOf(h, () => sid);
  p.publish('slow/HD_slow/1', '{}');
  await enteredP;

  let stopResolved = false;
  const stopping = h.gate.stop().then(() => {
    stopResolved = true;
  });

  // New connections are refused while stopping (both listeners).
  await expect(tcpConnect(h.tcpPort)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  await expect(tcpConnect(h.wsPort)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  await expect(mqttConnect(h.tcpUrl, { connectTimeout: 2000 })).rejects.toBeDefined();

  // A request sent on the existing connection after stop() began is not taken.
  p.publish('slow/HD_fast/late', '{}');
  await turns(20);
  expect(stopResolved).toBe(false);
  expect(p.msgs).toEqual([]);
  expect(h.gate.counts().total).toBe(1);

  release({ done: true });
  const reply = await p.next((m) => m.topic === 'slow/HD_slow/1');
  expect(JSON.parse(reply.payload.toString())).toEqual({ Trace: expect.any(String), Error: '', Result: { done: true } });
  const kick = await p.next((m) => m.topic === KICK_TOPIC);
  expect(JSON.parse(kick.payload.toString())).toEqual({ reason: 'server shutting down' });
  expect(STOP_REASON).toBe('server shutting down');
  await p.closed;
  await stopping;
  expect(stopResolved).toBe(true);

  // The reply came before the kick, and the late request was never dispatched nor answered.
  expect(p.msgs.map((m) => m.topic)).toEqual(['slow/HD_slow/1', KICK_TOPIC]);
  expect(calls).toEqual(['HD_slow']);
  expect(await reasonP).toContain('server shutting down');
  expect(h.gate.counts().total).toBe(0);
  // Idempotent.
  await expect(h.gate.stop()).resolves.toBeUndefined();
});

test('stop() resolves promptly once its clients are closed, even when a client sent a packet after stop() began', async () => {
  // A client that keeps talking while the gate drains (here one PINGREQ, as a keepalive
  // would) must not delay stop() once the gate has kicked it and the client has closed.
  const h = await startGate({ stopTimeout: 10_000 });
  harnesses.push(h);
  let entered!: () => void;
  const enteredP = new Promise<void>((r) => (entered = r));
  let release!: (v: RpcValue) => void;
  const released = new Promise<RpcValue>((r) => (release = r));
  cleanups.push(() => release(null));
  await h.serve('slow', () => {
    entered();
    return released;
  });
  const raw = await RawClient.open(h.tcpPort);
  cleanups.push(() => raw.destroy());
  expect((await raw.connect({ clientId: 'stop-pinger' })).returnCode).toBe(0);
  raw.send({ cmd: 'publish', topic: 'slow/HD_slow/1', payload: Buffer.from('{}'), qos: 0, dup: false, retain: false });
  await enteredP;
  let stopResolvedAt = 0;
  const stopping = h.gate.stop().then(() => {
    stopResolvedAt = Date.now();
  });
  raw.send({ cmd: 'pingreq' });
  await turns(20);
  release({ done: true });
  const reply = (await raw.next('publish', (p) => (p as { topic: string }).topic === 'slow/HD_slow/1')) as { payload: Buffer };
  expect(JSON.parse(reply.payload.toString()).Result).toEqual({ done: true });
  const kick = (await raw.next('publish', (p) => (p as { topic: string }).topic === KICK_TOPIC)) as { payload: Buffer };
  expect(JSON.parse(kick.payload.toString())).toEqual({ reason: STOP_REASON });
  await raw.closed;
  const clientClosedAt = Date.now();
  expect(h.gate.counts().total).toBe(0);
  await stopping;
  // Without the PINGREQ this gap is a few ms; the bound is generous.
  expect(stopResolvedAt - clientClosedAt).toBeLessThan(1000);
});

test('stop() kicks idle clients at once and resolves', async () => {
  const h = await startGate({});
  harnesses.push(h);
  const ps = [await RecordingPeer.open(h.tcpUrl), await RecordingPeer.open(h.tcpUrl)];
  peers.push(...ps);
  expect(h.gate.counts().total).toBe(2);
  await h.gate.stop();
  for (const p of ps) {
    const kick = await p.next((m) => m.topic === KICK_TOPIC);
    expect(JSON.parse(kick.payload.toString())).toEqual({ reason: STOP_REASON });
    await p.closed;
  }
  expect(h.gate.counts().total).toBe(0);
});

test('stop() with an idle WebSocket client kicks it and resolves promptly', async () => {
  const h = await startGate({});
  harnesses.push(h);
  const p = await RecordingPeer.open(h.wsUrl);
  peers.push(p);
  expect(h.gate.counts().total).toBe(1);
  const t0 = Date.now();
  await h.gate.stop();
  const elapsed = Date.now() - t0;
  const kick = await p.next((m) => m.topic === KICK_TOPIC);
  expect(JSON.parse(kick.payload.toString())).toEqual({ reason: STOP_REASON });
  await p.closed;
  expect(h.gate.counts().total).toBe(0);
  // Nothing is in flight: the same stop over TCP takes a few ms. The bound is generous.
  expect(elapsed).toBeLessThan(1000);
});

test('stopTimeout 300: a handler that does not resolve does not hold stop() up', async () => {
  const { h, p, sid, enteredP, release } = await setup({ stopTimeout: 300, handlerTimeout: 20_000 });
  const reasonP = disconnectOf(h, () => sid);
  p.publish('slow/HD_slow/1', '{}');
  await enteredP;
  const t0 = Date.now();
  await h.gate.stop();
  const elapsed = Date.now() - t0;
  expect(elapsed).toBeGreaterThanOrEqual(250);
  expect(elapsed).toBeLessThan(5000);
  const kick = await p.next((m) => m.topic === KICK_TOPIC);
  expect(JSON.parse(kick.payload.toString())).toEqual({ reason: STOP_REASON });
  await p.closed;
  expect(await reasonP).toContain(STOP_REASON);
  // The handler's request never got a reply (the connection was closed first).
  expect(p.msgs.map((m) => m.topic)).toEqual([KICK_TOPIC]);
  // Let the abandoned handler finish so no transport timer outlives the test; its late result goes nowhere.
  release({ late: true });
});
