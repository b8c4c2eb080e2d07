/**
 * The SDK against a real gate over TCP and WebSocket, MQTT 5 and 3.1.1: requests as
 * promises of Result, typed errors, notifies, bytes, pushes without SUBSCRIBE, QoS 1
 * acknowledged after the listener, kicks.
 */
import type { Packet } from 'mqtt';
import { ConnectError, ConnectionLostError, GateError, TimeoutError, connect, type GateClient, type KickInfo } from '@mqgate/sdk';
import { within } from '@mqgate/test-support';
import { startTestGate, type TestGate } from './helpers/gate';

let g: TestGate;
const clients: GateClient[] = [];
async function open(url: string, opts: Parameters<typeof connect>[1] = {}): Promise<GateClient> {
  const c = await connect(url, { reconnect: false, ...opts });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  g = await startTestGate();
});
afterEach(async () => {
  g.release();
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(() => g.stop());

describe.each([
  ['TCP', 5],
  ['TCP', 4],
  ['WebSocket', 5],
  ['WebSocket', 4],
  ['TCP', 3],
] as const)('over %s at MQTT level %i', (network, protocolVersion) => {
  const url = () => (network === 'TCP' ? g.tcpUrl : g.wsUrl);

  test('request resolves with Result; the handler error rejects with GateError; bytes round-trip raw', async () => {
    const c = await open(url(), { protocolVersion });
    expect(await c.request('test/HD_echo', { a: [1, 'two'] })).toEqual({ a: [1, 'two'] });
    const login = await c.request<{ userId: string }>('user/HD_login', { userId: `u-${network}-${protocolVersion}` });
    expect(login.userId).toBe(`u-${network}-${protocolVersion}`);

    const err = await c.request('test/HD_fail').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GateError);
    expect(err).toMatchObject({ message: 'BAD_ARGUMENT: always fails', code: 'BAD_ARGUMENT', route: 'test/HD_fail', trace: expect.any(String) });

    const routing = await c.request('nosuch/HD_x').catch((e: unknown) => e);
    expect(routing).toBeInstanceOf(GateError);
    expect((routing as GateError).message).toBe('Service(type:nosuch) not found');

    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const back = await c.request<Uint8Array>('test/HD_echo', bytes);
    expect(back).toBeInstanceOf(Uint8Array);
    expect([...back]).toEqual([...bytes]);
  });

  test('many requests in flight each get their own reply', async () => {
    const c = await open(url(), { protocolVersion });
    const got = await Promise.all(Array.from({ length: 50 }, (_, i) => c.request<{ i: number }>('test/HD_echo', { i })));
    expect(got.map((r) => r.i)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  test('pushes reach on(topic) listeners with no SUBSCRIBE, exact and by filter; off stops them', async () => {
    const c = await open(url(), { protocolVersion });
    const exact: unknown[] = [];
    const filtered: string[] = [];
    const onExact = (b: unknown) => void exact.push(b);
    c.on('room/news', onExact);
    c.on('room/+', (_b, meta) => void filtered.push(meta.topic));
    const next = c.once('room/last');
    await c.request('test/HD_push', { topic: 'room/news', body: { n: 1 } });
    await c.request('test/HD_push', { topic: 'room/other', body: { n: 2 } });
    c.off('room/news', onExact);
    await c.request('test/HD_push', { topic: 'room/news', body: { n: 3 } });
    await c.request('test/HD_push', { topic: 'room/last', body: { n: 4 } });
    expect(await within(next, 2000, 'room/last')).toEqual({ n: 4 });
    expect(exact).toEqual([{ n: 1 }]);
    expect(filtered).toEqual(['room/news', 'room/other', 'room/news', 'room/last']);
  });
});

test.each([5, 4] as const)(
  'a request past its timeout rejects with TimeoutError, and its late reply is no push (level %i)',
  async (protocolVersion) => {
    const c = await open(g.tcpUrl, { protocolVersion });
    const pushes: string[] = [];
    c.on('#', (_b, meta) => void pushes.push(meta.topic));
    const err = await c.request('test/HD_hold', { x: 1 }, { timeout: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(err).toMatchObject({ route: 'test/HD_hold', timeout: 200, message: 'test/HD_hold: no reply within 200 ms' });
    g.release();
    // the late reply comes before this one's (one connection, in order)
    expect(await c.request('test/HD_echo', { after: true })).toEqual({ after: true });
    expect(pushes).toEqual([]);
  },
);

test('a kick (gate/kick, then MQTT 5 DISCONNECT 0x98) emits kick with its reason and code; requests in flight reject; no reconnect', async () => {
  const c = await open(g.tcpUrl, { reconnect: { initialDelay: 10 } });
  await c.request('user/HD_login', { userId: 'kicked-5' });
  const held = c.request('test/HD_hold', {}).catch((e: unknown) => e);
  await g.parked(1);
  const kicked = c.once<KickInfo>('kick');
  const closed = c.once<{ reason: string }>('close');
  await c.request('user/HD_kick', { reason: 'bye now' }).catch(() => undefined);
  expect(await within(kicked, 2000, 'kick')).toEqual({ reason: 'bye now', reasonCode: 0x98 });
  expect(await held).toBeInstanceOf(ConnectionLostError);
  expect((await closed).reason).toBe('bye now');
  await expect(c.request('test/HD_echo', {})).rejects.toBeInstanceOf(ConnectionLostError);
});

test('a kick at MQTT 3.1.1 has the reason and no code', async () => {
  const c = await open(g.wsUrl, { protocolVersion: 4 });
  await c.request('user/HD_login', { userId: 'kicked-4' });
  const kicked = c.once<KickInfo>('kick');
  await c.request('user/HD_kick', { reason: 'enough' }).catch(() => undefined);
  expect(await within(kicked, 2000, 'kick')).toEqual({ reason: 'enough' });
});

test('notify runs the handler with no reply', async () => {
  const c = await open(g.tcpUrl);
  const before = g.calls.get('count') ?? 0;
  await c.notify('test/HD_count', {});
  const { n } = await c.request<{ n: number }>('test/HD_count', {});
  expect(n).toBe(before + 2);
});

test.each([5, 4] as const)('a QoS 1 push is acknowledged only after its listener settled (level %i)', async (protocolVersion) => {
  const c = await open(g.tcpUrl, { protocolVersion });
  const order: string[] = [];
  c.mqtt!.on('packetsend', (p: Packet) => void (p.cmd === 'puback' && order.push('puback')));
  let finish!: () => void;
  const inListener = new Promise<void>((entered) => {
    c.on('orders/new', (body, meta) => {
      expect(meta.qos).toBe(1);
      expect(body).toEqual({ id: 7 });
      order.push('listener');
      entered();
      return new Promise<void>((resolve) => (finish = resolve));
    });
  });
  // The gate writes the push, then the reply: the reply waits behind the listener (input is taken one PUBLISH at a time).
  const replied = c.request('test/HD_push', { topic: 'orders/new', body: { id: 7 }, qos: 1 }).then(() => order.push('reply'));
  await within(inListener, 2000, 'the listener');
  await new Promise((resolve) => setImmediate(resolve)); // an acknowledgement written on return would be out by now
  expect(order).toEqual(['listener']);
  finish();
  await within(replied, 2000, 'the reply');
  expect(order).toEqual(['listener', 'puback', 'reply']);
});

test('connect rejects with ConnectError when nothing listens; bad routes and options throw', async () => {
  const err = await connect('mqtt://127.0.0.1:1', { reconnect: false, connectTimeout: 2000 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConnectError);
  const c = await open(g.tcpUrl);
  await expect(c.request('user/HD_login/7', {})).rejects.toThrow(TypeError);
  await expect(c.request('user/#', {})).rejects.toThrow(TypeError);
  await expect(connect(g.tcpUrl, { reconnect: { factor: 0.5 } })).rejects.toThrow(RangeError);
  await expect(connect(g.tcpUrl, { protocolVersion: 6 as 5 })).rejects.toThrow(RangeError);
});

test('maxPending bounds the requests waiting at once', async () => {
  const c = await open(g.tcpUrl, { maxPending: 2 });
  const a = c.request('test/HD_hold', {});
  const b = c.request('test/HD_hold', {});
  await expect(c.request('test/HD_echo', {})).rejects.toThrow(/2 requests pending already \(maxPending\)/);
  await g.parked(2);
  g.release();
  await Promise.all([a, b]);
});
