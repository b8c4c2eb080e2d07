/**
 * Per-connection input rates: `messageRate` (packets per second, any type) and
 * `byteRate` (bytes per second) as token buckets. At the limit the gate stops reading the
 * connection until its bucket has refilled (EMQX's messages_rate / bytes_rate): the client is
 * slowed to its rate by TCP flow control, never disconnected for it, and the others are served.
 *
 * Times are checked against what the bucket allows: a client can never be answered faster than
 * (sent - burst) / perSecond, which is exact; the upper bounds are generous (a loaded machine
 * only slows the gate further).
 */
import * as mqttPacket from 'mqtt-packet';
import { Gate, DEFAULTS, resolveOptions, type GateOptions } from '@mqgate/gate';
import type { Logger } from '@mqgate/rpc';
import { TokenBucket } from '../src/protocol/rate-limit';
import { startGate, RawClient, type Harness } from './helpers/harness';
import { RawWs } from './helpers/raw-ws';
import type { RawPeer } from './helpers/raw-peer';
import { within } from './helpers/waiters';

const PINGREQ = Buffer.from([0xc0, 0x00]);
const pings = (n: number) => Buffer.alloc(2 * n, PINGREQ);

/** A logger keeping the warn lines (the rate-limited runtime.warn writes to it). */
function warnLines(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const none = () => undefined;
  return { lines, logger: { debug: none, info: none, error: none, warn: (fields) => lines.push(fields as Record<string, unknown>) } };
}

/** Starts a gate with metrics (port 0) and the given rates; its warn lines are kept. */
async function gateWith(options: GateOptions): Promise<{ h: Harness; lines: Array<Record<string, unknown>> }> {
  const { logger, lines } = warnLines();
  const h = await startGate({ metricsPort: 0, metricsHost: '127.0.0.1', logger, ...options });
  return { h, lines };
}

/** Resolves with the ms from now until `n` packets of type `cmd` have arrived at the peer. */
async function timeFor(peer: RawPeer, cmd: mqttPacket.PacketCmd, n: number, send: () => void, deadline: number): Promise<number> {
  const t0 = Date.now();
  send();
  const all = (async () => {
    for (let i = 0; i < n; i++) await peer.next(cmd);
  })();
  await within(all, deadline, `${n} ${cmd.toUpperCase()}`);
  return Date.now() - t0;
}

const readPauses = async (h: Harness, reason: string): Promise<number> => {
  const m = await h.gate.metrics!.registry.getSingleMetric('mqgate_read_pauses_total')!.get();
  return m.values.find((v) => v.labels.reason === reason)?.value ?? 0;
};

describe('messageRate', () => {
  let h: Harness;
  let lines: Array<Record<string, unknown>>;
  const RATE = { perSecond: 200, burst: 50 };
  beforeAll(async () => {
    ({ h, lines } = await gateWith({ messageRate: RATE, byteRate: false }));
  });
  afterAll(() => h.stop());

  test('a client publishing above its rate is slowed to about the rate, is not disconnected, and another client is served meanwhile', async () => {
    const fast = await RawClient.open(h.tcpPort);
    await fast.connect({ clientId: 'fast' });
    const other = await RawClient.open(h.tcpPort);
    await other.connect({ clientId: 'other' });
    let disconnected = ''; // neither client may be closed meanwhile
    const onDisconnect = (_s: unknown, reason: string) => (disconnected ||= reason);
    h.gate.on('disconnect', onDisconnect);
    const N = 550; // 50 at once (the burst), then 500 at 200/s: at least 2.5 s
    const batch = Buffer.concat(
      Array.from({ length: N }, (_, i) =>
        mqttPacket.generate({
          cmd: 'publish',
          topic: 'nobody/HD_x',
          payload: Buffer.from('{}'),
          qos: 1,
          messageId: i + 1,
          dup: false,
          retain: false,
        }),
      ),
    );
    const pausesBefore = await readPauses(h, 'rate');
    const acked = timeFor(fast, 'puback', N, () => fast.sendBytes(batch), 20_000);
    // While the fast client is held to its rate, the other one is answered at once.
    for (let i = 0; i < 5; i++) {
      other.send({ cmd: 'pingreq' });
      await within(other.next('pingresp'), 1000, 'PINGRESP of the other client while the fast one is paused');
    }
    const ms = await acked;
    expect(ms).toBeGreaterThanOrEqual(((N - RATE.burst) / RATE.perSecond) * 1000 - 100);
    expect(ms).toBeLessThan(15_000);
    expect(disconnected).toBe('');
    h.gate.off('disconnect', onDisconnect);
    expect(h.gate.counts().total).toBeGreaterThanOrEqual(2);
    // Paused about every 50 ms of refill, counted by reason, and warned (kind limit:messageRate).
    expect((await readPauses(h, 'rate')) - pausesBefore).toBeGreaterThan(5);
    const warned = lines.find((l) => l.kind === 'limit:messageRate');
    expect(warned).toMatchObject({ clientId: 'fast', ip: '127.0.0.1', perSecond: 200, burst: 50 });
    // Still connected and served after it.
    fast.send({ cmd: 'pingreq' });
    await within(fast.next('pingresp'), 2000, 'PINGRESP after the burst');
    fast.destroy();
    other.destroy();
  });

  test('a PINGREQ flood over TCP is held to the rate', async () => {
    const c = await RawClient.open(h.tcpPort);
    await c.connect({ clientId: 'pinger-tcp' });
    const N = 450;
    const ms = await timeFor(c, 'pingresp', N, () => c.sendBytes(pings(N)), 20_000);
    expect(ms).toBeGreaterThanOrEqual(((N - RATE.burst) / RATE.perSecond) * 1000 - 100);
    expect(ms).toBeLessThan(15_000);
    c.destroy();
  });

  test('a PINGREQ flood over WebSocket is held to the rate, sent in one frame or in many', async () => {
    const ws = await RawWs.open(h.wsUrl);
    await ws.connect({ clientId: 'pinger-ws' });
    const N = 450;
    const ms = await timeFor(
      ws,
      'pingresp',
      N,
      () => {
        ws.sendBytes(pings(200)); // one frame of 200
        for (let i = 0; i < N - 200; i++) ws.sendBytes(PINGREQ); // and 250 frames of one
      },
      20_000,
    );
    expect(ms).toBeGreaterThanOrEqual(((N - RATE.burst) / RATE.perSecond) * 1000 - 100);
    expect(ms).toBeLessThan(15_000);
    expect(ws.isOpen).toBe(true);
    ws.destroy();
  });
});

test('byteRate slows a client sending large PUBLISHes', async () => {
  const RATE = { perSecond: 128 * 1024, burst: 16 * 1024 };
  const { h, lines } = await gateWith({ byteRate: RATE, messageRate: false });
  try {
    const c = await RawClient.open(h.tcpPort);
    await c.connect({ clientId: 'uploader' });
    const N = 24;
    const packets = Array.from({ length: N }, (_, i) =>
      mqttPacket.generate({
        cmd: 'publish',
        topic: 'nobody/HD_x',
        payload: Buffer.alloc(16 * 1024, 0x61),
        qos: 1,
        messageId: i + 1,
        dup: false,
        retain: false,
      }),
    );
    const bytes = packets.reduce((n, p) => n + p.length, 0);
    const ms = await timeFor(c, 'puback', N, () => c.sendBytes(Buffer.concat(packets)), 20_000);
    // Bytes are charged per read chunk (at most 64 KiB): the last chunk may be read on credit.
    expect(ms).toBeGreaterThanOrEqual(((bytes - RATE.burst - 64 * 1024) / RATE.perSecond) * 1000 - 100);
    expect(ms).toBeLessThan(15_000);
    expect(lines.find((l) => l.kind === 'limit:byteRate')).toMatchObject({ clientId: 'uploader' });
    c.send({ cmd: 'pingreq' });
    await within(c.next('pingresp'), 2000, 'PINGRESP after the upload');
    c.destroy();
  } finally {
    await h.stop();
  }
});

test('with messageRate and byteRate false there is no limit', async () => {
  const { h } = await gateWith({ messageRate: false, byteRate: false });
  try {
    const c = await RawClient.open(h.tcpPort);
    await c.connect({ clientId: 'unlimited' });
    const N = 20_000; // ≥ 18 s at the default messageRate
    const ms = await timeFor(c, 'pingresp', N, () => c.sendBytes(pings(N)), 10_000);
    expect(ms).toBeLessThan(10_000);
    expect(await readPauses(h, 'rate')).toBe(0);
    c.destroy();
  } finally {
    await h.stop();
  }
});

test('the input rates are on by default: 1000 packets/s (burst 2000) and 1 MiB/s (burst 2 MiB)', async () => {
  expect(DEFAULTS.messageRate).toEqual({ perSecond: 1000, burst: 2000 });
  expect(DEFAULTS.byteRate).toEqual({ perSecond: 1024 * 1024, burst: 2 * 1024 * 1024 });
  const o = resolveOptions({});
  expect(o.messageRate).toEqual({ perSecond: 1000, burst: 2000 });
  expect(o.byteRate).toEqual({ perSecond: 1024 * 1024, burst: 2 * 1024 * 1024 });
  expect(resolveOptions({ messageRate: { perSecond: 10 } }).messageRate).toEqual({ perSecond: 10, burst: 20 });
  const { h } = await gateWith({});
  try {
    const c = await RawClient.open(h.tcpPort);
    await c.connect({ clientId: 'default-rates' });
    const N = 3000; // 2000 at once, then 1000 at 1000/s: at least 1 s
    const ms = await timeFor(c, 'pingresp', N, () => c.sendBytes(pings(N)), 20_000);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(await readPauses(h, 'rate')).toBeGreaterThan(0);
    c.destroy();
  } finally {
    await h.stop();
  }
});

test('invalid rates throw, naming the option', () => {
  const make = (o: GateOptions) => () => new Gate({ tcp: false, websocket: false, ...o });
  expect(make({ messageRate: { perSecond: 0 } })).toThrow(/messageRate\.perSecond must be a positive number, got 0/);
  expect(make({ messageRate: { perSecond: 10, burst: 0.5 } })).toThrow(/messageRate\.burst must be at least 1/);
  expect(make({ messageRate: { burst: 10 } })).toThrow(/messageRate\.perSecond/);
  expect(make({ byteRate: { perSecond: Number.NaN } })).toThrow(/byteRate\.perSecond/);
  expect(make({ byteRate: { perSecond: 10, burst: -1 } })).toThrow(/byteRate\.burst/);
  expect(make({ byteRate: 5 as unknown as false })).toThrow(/byteRate must be \{ perSecond, burst \} or false/);
  expect(make({ messageRate: true as unknown as false })).toThrow(/messageRate must be/);
});

describe('TokenBucket', () => {
  test('starts full, refills lazily at perSecond up to burst, and says how long to wait once dry', () => {
    const b = new TokenBucket({ perSecond: 1000, burst: 100 }, 0);
    expect(b.take(99, 0)).toBe(false); // 1 left
    expect(b.take(1, 0)).toBe(true); // dry
    expect(b.waitMs()).toBe(50); // 50 ms of refill before reading again
    b.refill(20);
    expect(b.tokens).toBeCloseTo(20);
    expect(b.waitMs()).toBe(30);
    b.refill(10_000);
    expect(b.tokens).toBe(100); // capped at burst
    expect(b.take(300, 10_000)).toBe(true); // a whole chunk is charged: 200 in debt
    expect(b.waitMs()).toBe(250); // the debt is paid before reading again
  });

  test('a small bucket waits for one token at least, a large one for at most its burst', () => {
    const slow = new TokenBucket({ perSecond: 2, burst: 1 }, 0);
    expect(slow.take(1, 0)).toBe(true);
    expect(slow.waitMs()).toBe(500);
    const tiny = new TokenBucket({ perSecond: 100_000, burst: 10 }, 0);
    expect(tiny.take(10, 0)).toBe(true);
    expect(tiny.waitMs()).toBe(1); // refill to the burst (10), not 50 ms worth (5000)
  });
});

test('a client that goes away while paused on its rate is seen closed once the pause ends', async () => {
  const { h } = await gateWith({ messageRate: { perSecond: 1, burst: 1 } });
  try {
    const c = await RawClient.open(h.tcpPort);
    const gone = new Promise<string>((resolve) => h.gate.on('disconnect', (_s, reason) => resolve(reason)));
    await c.connect({ clientId: 'leaves-while-paused' }); // the CONNECT took the only token: paused for 1 s
    c.sendBytes(pings(10)); // 10 s of packets at 1/s
    c.destroy();
    // The paused socket reads the close when it resumes (after 1 s), not after the 10 packets.
    expect(await within(gone, 5000, 'disconnect of the paused client')).toMatch(/connection lost/);
  } finally {
    await h.stop();
  }
});
