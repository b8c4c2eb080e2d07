/**
 * Request scheduling: the handler deadline, per-connection backpressure at maxInflight
 * (instead of mqant's "the work queue is full!"), and the `ordered` option.
 */
import type { IClientOptions } from 'mqtt';
import type { GateOptions } from '@mqgate/gate';
import type { RpcValue } from '@mqgate/rpc';
import { startGate, RawClient, type Harness } from './helpers/harness';
import { parseEnvelope, RecordingPeer } from './helpers/peer';

// ---------------------------------------------------------------- helpers (file-local)

/** A count that can be awaited. */
class Counter {
  n = 0;
  private waiters: Array<{ target: number; resolve: () => void }> = [];
  inc(): void {
    this.n++;
    this.waiters = this.waiters.filter((w) => (this.n >= w.target ? (w.resolve(), false) : true));
  }
  reach(target: number): Promise<void> {
    if (this.n >= target) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ target, resolve }));
  }
}

function gate(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

function seqOf(args: RpcValue[]): number {
  return (args[1] as { seq: number }).seq;
}

// ---------------------------------------------------------------- fixture

const harnesses: Harness[] = [];
const peers: RecordingPeer[] = [];
const raws: RawClient[] = [];

async function gateWith(options: GateOptions): Promise<Harness> {
  const h = await startGate(options);
  harnesses.push(h);
  return h;
}

async function peer(h: Harness, opts: IClientOptions = {}): Promise<RecordingPeer> {
  const p = await RecordingPeer.open(h.tcpUrl, opts);
  peers.push(p);
  return p;
}

/** A PINGREQ → PINGRESP round trip on a separate connection: a bounded chance for the gate's event loop to run. */
async function pingRoundTrips(h: Harness, n: number): Promise<void> {
  const raw = await RawClient.open(h.tcpPort);
  raws.push(raw);
  await raw.connect({ clientId: `pinger-${Math.random().toString(16).slice(2)}` });
  for (let i = 0; i < n; i++) {
    raw.send({ cmd: 'pingreq' });
    await raw.next('pingresp');
  }
}

/**
 * Serves `moduleType` with a handler that holds every request until the test calls its
 * entry in `releases` (in arrival order), then replies {seq}; `entered` counts the calls.
 */
async function serveHeld(h: Harness, moduleType: string): Promise<{ entered: Counter; releases: Array<() => void> }> {
  const entered = new Counter();
  const releases: Array<() => void> = [];
  await h.serve(moduleType, async (_fn, args) => {
    entered.inc();
    await new Promise<void>((r) => releases.push(r));
    return { seq: seqOf(args) };
  });
  return { entered, releases };
}

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.end()));
  for (const r of raws.splice(0)) r.destroy();
  await Promise.all(harnesses.splice(0).map((h) => h.stop()));
});

// ---------------------------------------------------------------- deadline

test('handlerTimeout: a handler that never resolves gets a deadline Error reply', async () => {
  const h = await gateWith({ handlerTimeout: 200 });
  const entered = new Counter();
  await h.serve('hang', (fn) => {
    if (fn === 'HD_ok') return { ok: true };
    entered.inc();
    return new Promise<RpcValue>(() => undefined);
  });
  const p = await peer(h);
  const t0 = Date.now();
  const env = await p.request('hang/HD_forever/1', '{}');
  const elapsed = Date.now() - t0;
  expect(entered.n).toBe(1);
  expect(env.Error).toMatch(/^DEADLINE: no reply in time/);
  expect(env.Result).toBeNull();
  expect(elapsed).toBeGreaterThanOrEqual(150);
  expect(elapsed).toBeLessThan(5000);
  // The connection keeps working after a deadline.
  expect(await p.request('hang/HD_ok/2', '{}')).toEqual({ Trace: env.Trace, Error: '', Result: { ok: true } });
});

test('a handler that resolves after its deadline: one deadline reply, no second (late) reply', async () => {
  const h = await gateWith({ handlerTimeout: 200 });
  const entered = new Counter();
  let release!: (v: RpcValue) => void;
  await h.serve('late', (fn) => {
    if (fn === 'HD_fence') return 'fence';
    entered.inc();
    return new Promise<RpcValue>((r) => (release = r));
  });
  const p = await peer(h);
  const env = await p.request('late/HD_slow/1', '{}');
  expect(env.Error).toMatch(/^DEADLINE: no reply in time/);
  release({ tooLate: true });
  await gate();
  expect((await p.request('late/HD_fence/2', '{}')).Result).toBe('fence');
  expect(p.msgs.map((m) => m.topic)).toEqual(['late/HD_slow/1', 'late/HD_fence/2']);
  expect(entered.n).toBe(1);
});

test('maxInflight 1: a hung handler holds its slot only until the deadline, then the next request runs', async () => {
  const h = await gateWith({ handlerTimeout: 200, maxInflight: 1 });
  const entered = new Counter();
  await h.serve('hung', (fn) => {
    entered.inc();
    if (fn === 'HD_next') return 'next';
    return new Promise<RpcValue>(() => undefined);
  });
  const p = await peer(h);
  p.publish('hung/HD_forever/1', '{}');
  p.publish('hung/HD_next/2', '{}');
  const second = parseEnvelope(await p.next((m) => m.topic === 'hung/HD_next/2'));
  expect(second).toEqual({ Trace: expect.any(String), Error: '', Result: 'next' });
  const first = parseEnvelope(await p.next((m) => m.topic === 'hung/HD_forever/1'));
  expect(first.Error).toMatch(/^DEADLINE: no reply in time/);
  expect(p.msgs.map((m) => m.topic)).toEqual(['hung/HD_forever/1', 'hung/HD_next/2']);
  expect(entered.n).toBe(2);
});

// ---------------------------------------------------------------- backpressure

test('maxInflight 3: only 3 handlers run, the rest wait (no "queue full" error), all 10 replies arrive exactly once', async () => {
  const LIMIT = 3;
  const TOTAL = 10;
  const h = await gateWith({ maxInflight: LIMIT });
  const entered = new Counter();
  const blocked: Array<{ seq: number; release: () => void }> = [];
  let released = 0;
  let active = 0;
  let maxActive = 0;
  let violations = 0;
  await h.serve('slow', async (fn, args) => {
    if (fn === 'HD_fast') return { fast: true };
    const seq = seqOf(args);
    active++;
    maxActive = Math.max(maxActive, active);
    entered.inc();
    if (entered.n > released + LIMIT) violations++;
    await new Promise<void>((release) => blocked.push({ seq, release }));
    active--;
    return { seq };
  });
  const p = await peer(h);
  for (let i = 0; i < TOTAL; i++) p.publish(`slow/HD_block/m${i}`, JSON.stringify({ seq: i }), 0);

  await entered.reach(LIMIT);
  // Give the gate a bounded chance to (wrongly) start a 4th: three PING round trips on another connection.
  await pingRoundTrips(h, 3);
  expect(entered.n).toBe(LIMIT);
  expect(active).toBe(LIMIT);
  expect(p.msgs).toHaveLength(0);

  for (let done = 0; done < TOTAL; done++) {
    await entered.reach(Math.min(TOTAL, LIMIT + done));
    const b = blocked.shift();
    expect(b).toBeDefined();
    released++;
    b!.release();
    const reply = await p.next((m) => m.topic === `slow/HD_block/m${b!.seq}`);
    expect(parseEnvelope(reply)).toEqual({ Trace: expect.any(String), Error: '', Result: { seq: b!.seq } });
    expect(active).toBeLessThanOrEqual(LIMIT);
  }

  expect(entered.n).toBe(TOTAL);
  expect(maxActive).toBe(LIMIT);
  expect(violations).toBe(0);
  // A last request on the same connection: anything late (a duplicate) would arrive before its reply.
  expect((await p.request('slow/HD_fast/final', '{}')).Result).toEqual({ fast: true });
  const topics = p.msgs.map((m) => m.topic);
  expect(topics).toHaveLength(TOTAL + 1);
  expect(new Set(topics).size).toBe(TOTAL + 1);
  expect(topics.slice(0, TOTAL).sort()).toEqual(Array.from({ length: TOTAL }, (_, i) => `slow/HD_block/m${i}`).sort());
  for (const m of p.msgs) {
    const env = parseEnvelope(m);
    expect(env.Error).toBe('');
    expect(JSON.stringify(env)).not.toMatch(/queue is full|queue full/i);
  }
});

// ---------------------------------------------------------------- ordered

test('ordered: true runs one request at a time per session, and replies come in request order', async () => {
  const N = 20;
  const h = await gateWith({ ordered: true });
  let active = 0;
  let maxActive = 0;
  const started: number[] = [];
  await h.serve('ord', async (_fn, args) => {
    const seq = seqOf(args);
    started.push(seq);
    active++;
    maxActive = Math.max(maxActive, active);
    // Earlier requests take longer: run concurrently they would finish (and reply) in reverse.
    const ticks = (N - seq) * 3 + Math.floor(Math.random() * 5);
    for (let i = 0; i < ticks; i++) await gate();
    active--;
    return { seq };
  });
  const p = await peer(h);
  for (let i = 0; i < N; i++) p.publish(`ord/HD_step/${i}`, JSON.stringify({ seq: i }));
  await p.next((m) => m.topic === `ord/HD_step/${N - 1}`);
  const order = p.msgs.map((m) => (parseEnvelope(m).Result as { seq: number }).seq);
  expect(order).toEqual(Array.from({ length: N }, (_, i) => i));
  expect(p.msgs.map((m) => m.topic)).toEqual(Array.from({ length: N }, (_, i) => `ord/HD_step/${i}`));
  expect(started).toEqual(Array.from({ length: N }, (_, i) => i));
  expect(maxActive).toBe(1);
});

test('ordered: true serializes per session only: another session is served while one is blocked', async () => {
  const h = await gateWith({ ordered: true });
  const entered = new Counter();
  let release!: () => void;
  const gateOpen = new Promise<void>((r) => (release = r));
  await h.serve('mix', async (fn) => {
    if (fn === 'HD_block') {
      entered.inc();
      await gateOpen;
      return 'blocked-done';
    }
    return 'free';
  });
  const a = await peer(h);
  const b = await peer(h);
  a.publish('mix/HD_block/1', '{}');
  await entered.reach(1);
  expect((await b.request('mix/HD_free/1', '{}')).Result).toBe('free');
  expect(a.msgs).toHaveLength(0);
  release();
  expect(parseEnvelope(await a.next((m) => m.topic === 'mix/HD_block/1')).Result).toBe('blocked-done');
});

test('without ordered, two requests of one session run concurrently', async () => {
  const h = await gateWith({});
  const { entered, releases } = await serveHeld(h, 'conc');
  const p = await peer(h);
  p.publish('conc/HD_x/0', '{"seq":0}');
  p.publish('conc/HD_x/1', '{"seq":1}');
  // Both handlers are entered before either is released.
  await entered.reach(2);
  expect(releases).toHaveLength(2);
  expect(p.msgs).toHaveLength(0);
  // Release the second first: its reply overtakes the first one's (mqant: out of order).
  releases[1]();
  expect(parseEnvelope(await p.next((m) => m.topic === 'conc/HD_x/1')).Result).toEqual({ seq: 1 });
  expect(p.msgs.map((m) => m.topic)).toEqual(['conc/HD_x/1']);
  releases[0]();
  expect(parseEnvelope(await p.next((m) => m.topic === 'conc/HD_x/0')).Result).toEqual({ seq: 0 });
});

test('with ordered, the second request is not entered while the first is held', async () => {
  const h = await gateWith({ ordered: true });
  const { entered, releases } = await serveHeld(h, 'seqd');
  const p = await peer(h);
  p.publish('seqd/HD_x/0', '{"seq":0}');
  p.publish('seqd/HD_x/1', '{"seq":1}');
  await entered.reach(1);
  await pingRoundTrips(h, 3);
  expect(entered.n).toBe(1);
  releases[0]();
  await entered.reach(2);
  releases[1]();
  await p.next((m) => m.topic === 'seqd/HD_x/1');
  expect(p.msgs.map((m) => m.topic)).toEqual(['seqd/HD_x/0', 'seqd/HD_x/1']);
});
