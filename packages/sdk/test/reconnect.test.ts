/**
 * Dropped connections against a real gate: requests in flight reject once with
 * ConnectionLostError (or go out again with `retry`), reconnection with exponential backoff,
 * resume with the missed pushes in order and `resumed` {recovered, replayed, lost},
 * `onSessionLost` when the resume is refused, and JWT at CONNECT: getToken at every
 * connect, resume at CONNECT, refresh before expiry.
 */
import type { SessionData } from '@mqgate/rpc';
import { ConnectionLostError, connect, type ConnectOptions, type GateClient, type ResumedInfo, type SessionLostInfo } from '@mqgate/sdk';
import { startTcpProxy, within, type Interruptible } from '@mqgate/test-support';
import { JWT_SECRET, signToken, startTestGate, type TestGate } from './helpers/gate';

const gates: TestGate[] = [];
const clients: GateClient[] = [];
const proxies: Interruptible[] = [];

async function gateWith(options: Parameters<typeof startTestGate>[0] = {}): Promise<TestGate> {
  const g = await startTestGate(options);
  gates.push(g);
  return g;
}
async function open(url: string, opts: ConnectOptions = {}): Promise<GateClient> {
  const c = await connect(url, { reconnect: { initialDelay: 10, maxDelay: 50 }, ...opts });
  clients.push(c);
  return c;
}
async function proxyTo(g: TestGate): Promise<Interruptible> {
  const p = await startTcpProxy(g.tcpUrl);
  proxies.push(p);
  return p;
}
/** Resolves when the gate has seen the connection of `userId` end (its session detached or gone). */
function dropped(g: TestGate, userId: string): Promise<void> {
  return new Promise((resolve) => {
    const on = (s: SessionData) => {
      if (s.userId !== userId) return;
      g.gate.off('disconnect', on);
      resolve();
    };
    g.gate.on('disconnect', on);
  });
}

afterEach(async () => {
  for (const g of gates) g.release();
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
  await Promise.all(gates.splice(0).map((g) => g.stop()));
});

test.each([
  [5, 'TCP'],
  [4, 'WebSocket'],
] as const)(
  'a drop mid-request rejects it once with ConnectionLostError; a retry request goes out again (MQTT %i over %s)',
  async (protocolVersion, network) => {
    const g = await gateWith();
    const c = await open(network === 'TCP' ? g.tcpUrl : g.wsUrl, { protocolVersion });
    await c.request('user/HD_login', { userId: `mid-${protocolVersion}` });
    const settled: string[] = [];
    const plain = c.request('test/HD_hold', { n: 1 }).then(
      () => settled.push('resolved'),
      (e: unknown) => settled.push(e instanceof ConnectionLostError ? `lost: ${e.reason}` : String(e)),
    );
    const retried = c.request<{ n: number }>('test/HD_hold', { n: 2 }, { retry: true });
    await g.parked(2);
    const resumed = c.once<ResumedInfo>('resumed');
    c.mqtt!.stream.destroy();
    await plain;
    expect(settled).toEqual(['lost: connection lost']);
    await within(resumed, 5000, 'resumed');
    await g.parked(3); // the retry request, sent again on the new connection
    g.release();
    expect(await within(retried, 5000, 'the retried request')).toEqual({ n: 2 });
    expect(g.calls.get('hold')).toBe(3);
    expect(await c.request('test/HD_echo', { after: 1 })).toEqual({ after: 1 });
    expect(settled).toEqual(['lost: connection lost']); // the old connection's late reply changed nothing
  },
);

test.each([5, 4] as const)('reconnects with exponential backoff, then resumes with the missed pushes in order (MQTT %i)', async (protocolVersion) => {
  const g = await gateWith();
  const proxy = await proxyTo(g);
  const alice = await open(proxy.url, { protocolVersion, reconnect: { initialDelay: 20, factor: 2, maxDelay: 80, jitter: 0 } });
  const bob = await open(g.tcpUrl);
  const login = await alice.request<{ userId: string }>('user/HD_login', { userId: `alice-${protocolVersion}` });
  await alice.request('user/HD_set', { key: 'room', value: 'lobby' });
  const sessionId = alice.session?.sessionId;
  expect(sessionId).toMatch(/^[0-9a-f]{32}$/);
  const delays: number[] = [];
  const fourth = new Promise<void>((resolve) =>
    alice.on('reconnecting', ({ attempt, delay }) => {
      delays.push(delay);
      if (attempt === 4) resolve();
    }),
  );
  const offline = alice.once('offline');
  const gone = dropped(g, login.userId);
  await proxy.stop(); // the network fails: no DISCONNECT, attempts refused
  await within(offline, 2000, 'offline');
  await gone;
  for (const n of [1, 2]) await bob.request('test/HD_sendTo', { to: login.userId, topic: 'chat/onWhisper', body: { n } });
  await within(fourth, 5000, 'four attempts');
  expect(delays.slice(0, 4)).toEqual([20, 40, 80, 80]);

  const got: unknown[] = [];
  alice.on('chat/onWhisper', (b) => void got.push(b));
  const resumed = alice.once<ResumedInfo>('resumed');
  await proxy.restart();
  const info = await within(resumed, 5000, 'resumed');
  expect(info).toEqual({ via: 'token', userId: login.userId, sessionId, settings: { room: 'lobby' }, recovered: true, replayed: 2, lost: 0 });
  expect(await alice.request('user/HD_get')).toMatchObject({ userId: login.userId, sessionId });
  expect(got).toEqual([{ n: 1 }, { n: 2 }]);
});

test('a refused resume calls onSessionLost, where the app logs in again before the requests that waited', async () => {
  const g = await gateWith();
  const proxy = await proxyTo(g);
  const lost: SessionLostInfo[] = [];
  const alice: GateClient = await open(proxy.url, {
    onSessionLost: async (info) => {
      lost.push(info);
      await alice.request('user/HD_login', { userId: 'alice-lost' });
    },
  });
  await alice.request('user/HD_login', { userId: 'alice-lost' });
  await alice.request('user/HD_set', { key: 'color', value: 'red' });
  const gone = dropped(g, 'alice-lost');
  await proxy.stop();
  await gone;
  // A login of the same user elsewhere discards the detached session: its token is void.
  const other = await open(g.tcpUrl);
  await other.request('user/HD_login', { userId: 'alice-lost' });
  const waited = alice.request('user/HD_get'); // made while offline: goes out once the session is back
  const sessionLost = alice.once('sessionLost');
  await proxy.restart();
  await within(sessionLost, 5000, 'sessionLost');
  expect(lost).toHaveLength(1);
  expect(lost[0]!.reason).toBe('resume token expired or already used: log in again');
  expect(lost[0]!.error?.name).toBe('GateError');
  expect(await waited).toMatchObject({ userId: 'alice-lost', settings: { color: 'red' } });
});

test('reconnect: false ends the client on a drop; queued requests reject', async () => {
  const g = await gateWith();
  const c = await open(g.tcpUrl, { reconnect: false });
  const closed = c.once<{ reason: string }>('close');
  c.mqtt!.stream.destroy();
  expect((await closed).reason).toMatch(/^connection lost \(reconnect off\)/);
  await expect(c.request('test/HD_echo', {})).rejects.toBeInstanceOf(ConnectionLostError);
});

test('JWT: getToken at every connect, the session resumed at CONNECT with its missed pushes, refresh before expiry', async () => {
  const g = await gateWith({ jwt: { secret: JWT_SECRET } });
  const proxy = await proxyTo(g);
  let issued = 0;
  const alice = await open(proxy.url, {
    getToken: () => (issued++, signToken('jwt-alice', 40)),
    refreshBefore: 39_500, // 40 s tokens refreshed after about 1 s (the SDK waits at least 1000 ms)
  });
  expect(issued).toBe(1);
  expect(await alice.request('user/HD_get')).toMatchObject({ userId: 'jwt-alice' });
  const refreshed = await within(alice.once<{ exp: number }>('refreshed'), 5000, 'a refresh');
  expect(issued).toBe(2);
  expect(refreshed.exp).toBeGreaterThan(Date.now() / 1000);

  const bob = await open(g.tcpUrl, { token: await signToken('jwt-bob') });
  let attempts = 0; // every reconnect attempt, failed ones while the proxy is down included, takes a token
  alice.on('reconnecting', () => void attempts++);
  const gone = dropped(g, 'jwt-alice');
  await proxy.stop();
  await gone;
  await bob.request('test/HD_sendTo', { to: 'jwt-alice', topic: 'news/flash', body: { n: 1 } });
  const got: unknown[] = [];
  alice.on('news/flash', (b) => void got.push(b));
  const resumed = alice.once<ResumedInfo>('resumed');
  await proxy.restart();
  expect(await within(resumed, 5000, 'resumed')).toMatchObject({ via: 'connect', userId: 'jwt-alice', replayed: 1, recovered: null, lost: null });
  expect(attempts).toBeGreaterThanOrEqual(1);
  expect(issued).toBe(2 + attempts);
  expect(got).toEqual([{ n: 1 }]);
});
